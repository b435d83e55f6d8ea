// The Heads view (view.h): every attention head in a grid, each with its OV
// copying score (eigenvalues of the OV circuit), the diagonal test, its
// positional share and attention to the current / previous token, and a small
// plot of its OV eigenvalues in the complex plane. Clicking a head opens it in
// the Head view. Definitions: docs/one-layer.md; core/head_summary.h computes
// them (one sliced plan for all heads, run as a job).
#pragma once
#include <vector>

#include "app/result.h"
#include "app/view.h"
#include "core/head_summary.h"

namespace cs::app {

struct HeadsSelection {
  bool embed_norm = true;  // E = W_E through each block's normalization (the paper's choice)
  bool diagonal = true;    // run the OV diagonal test (a full vocab x vocab scan per head)

  Json to_json() const;  // {"embed_norm","diagonal"}
  static HeadsSelection from_json(const Json& j);  // missing fields keep defaults; cs::Error names a bad one
  bool operator==(const HeadsSelection&) const = default;
};

class HeadsView final : public SelectionView<HeadsSelection> {
 public:
  static constexpr const char* kSummarySlot = "heads.summary";

  const char* id() const override { return "heads"; }
  const char* title() const override { return "Heads"; }
  void on_model(Session& s, ModelChange change) override;
  // {"summary": {"key": {"embed_norm","diagonal"}|null, "freshness","stale","pending",
  //              "weights": "processed"|"raw", "value": [ {as `circuitscope heads --json`} ]}}
  // "heads" (one row per head: the grid's scores), "eigenvalues" (OV and QK, per head).
  std::vector<ExportTable> tables(const Session& s) const override;
  Json state_json(const Session& s) const override;
#ifdef CS_APP_DRAW
  void draw(Session& s) override;  // heads_view_draw.cpp
#endif

  void set_embed_norm(Session& s, bool on);
  void set_diagonal(Session& s, bool on);
  using Summary = Result<HeadsSelection, std::vector<HeadSummary>>;
  const Summary& summary() const { return summary_; }
  // Whether the OV diagonal test is on by default for the shown model (quick
  // enough; the analysis report follows the same rule).
  static bool diagonal_is_quick(const Session& s);

 private:
  void apply_selection(Session& s) override { start(s); }
  void start(Session& s);
  void start_deferred(Session& s) override { start(s); }

  Summary summary_{kSummarySlot};
  bool weights_raw_ = false;  // which weights summary_ came from
};

}  // namespace cs::app
