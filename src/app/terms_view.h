// The Term importance view (view.h): [F]'s term importance on a text sample
// (core/paths.h; docs/two-layer.md, "Paths"). With each window's attention
// patterns and LayerNorm scales frozen from its own run, the loss keeping the
// direct path only, then adding every single head, then every virtual head
// (for two layers: the model again), as bars; and each term's marginal effect
// (the loss without it minus the full loss) as a ranked bar list. The numbers
// are `circuitscope terms` on the same text.
#pragma once
#include <string>

#include "app/result.h"
#include "app/view.h"
#include "app/widgets.h"
#include "core/paths.h"

namespace cs::app {

struct TermsSelection {
  std::string text;  // the sample (cut into n_ctx windows, each after the BOS)
  int max_order = 2;

  TermsSelection();  // the default sample
  Json to_json() const;  // {"text", "max_order"}
  static TermsSelection from_json(const Json& j);  // cs::Error names a bad field
  bool operator==(const TermsSelection&) const = default;
};

class TermsView final : public SelectionView<TermsSelection> {
 public:
  static constexpr const char* kSlot = "terms.importance";

  const char* id() const override { return "terms"; }
  const char* title() const override { return "Term importance"; }
  void on_model(Session& s, ModelChange change) override;
  // {"importance": {freshness, "value": {"windows","tokens","max_order","loss_full","loss_by_order",
  //   "uniform", "terms": [{"name","order","loss_without","effect"}]} | null}}
  // "terms" (each path term: the loss without it and its effect), "loss-by-order".
  std::vector<ExportTable> tables(const Session& s) const override;
  Json state_json(const Session& s) const override;
#ifdef CS_APP_DRAW
  void draw(Session& s) override;  // terms_view_draw.cpp
#endif

  void set_text(Session& s, const std::string& text, int max_order);

  struct Value {
    TermImportance importance;
    int windows = 0;
  };
  using Importance = Result<TermsSelection, Value>;
  const Importance& importance() const { return importance_; }

 private:
  void apply_selection(Session& s) override;
  void start_deferred(Session& s) override { start(s); }
  void start(Session& s);

  Importance importance_{kSlot};
  widgets::TextBoxState text_box_;
  TextAcrossModels text_across_;  // ids in place of the text for a model without a tokenizer
};

}  // namespace cs::app
