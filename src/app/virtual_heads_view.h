// The Virtual heads view (view.h): a later head reading, through its values,
// what an earlier head wrote (docs/two-layer.md, "Virtual heads").
//  - Every virtual head h2 o h1 ranked by ||W_OV1 W_OV2|| (the numerator of
//    V-composition), with its V-composition score; click one to explore it.
//  - OV explorer of the chosen one, as the Head view's: pick a source token,
//    see the outs its full OV circuit E W_V1 W_O1 W_V2 W_O2 W_U raises most (a
//    row); pick an out, see the sources that raise it most (a column).
//  - The eigenvalues of that circuit and its copying score.
// TransformerLens row convention. The ranking is a CompositionPlan job; rows,
// columns and eigenvalues come from the factored engine (core/vocab_matrix.h,
// core/circuits.h) as jobs.
#pragma once
#include <optional>
#include <vector>

#include "app/result.h"
#include "app/view.h"
#include "app/widgets.h"
#include "core/circuits.h"
#include "core/composition.h"
#include "core/vocab_matrix.h"

namespace cs::app {

struct VirtualHeadSelection {
  // The virtual head (later) o (earlier); earlier_layer -1: the largest one
  // (the ranking's first), also after a new model.
  int earlier_layer = -1, earlier_head = 0;
  int later_layer = -1, later_head = 0;
  bool embed_norm = true;  // E = W_E through the earlier head's LayerNorm
  int k = 10;              // rows in each ranked list
  int ov_source = 0;       // OV row: outs raised through the virtual head by this source token
  int ov_out = 0;          // OV column: sources that raise this out

  // {"earlier": "L.H" | null, "later": "L.H" | null (both or neither), "embed_norm", "k", "ov_source", "ov_out"}
  Json to_json() const;
  static VirtualHeadSelection from_json(const Json& j);  // cs::Error names a bad field
  bool operator==(const VirtualHeadSelection&) const = default;
};

// The input a ranked list belongs to.
struct VirtualQuery {
  VirtualHeadRef head;
  bool embed_norm = true;
  int id = -1, k = 0;
  bool operator==(const VirtualQuery&) const = default;
};
struct VirtualKey {
  VirtualHeadRef head;
  bool embed_norm = true;
  bool operator==(const VirtualKey&) const = default;
};

class VirtualHeadsView final : public SelectionView<VirtualHeadSelection> {
 public:
  static constexpr const char* kRankingSlot = "virtual.ranking";
  static constexpr const char* kOvOutsSlot = "virtual.ov_outs";
  static constexpr const char* kOvSourcesSlot = "virtual.ov_sources";
  static constexpr const char* kEigenSlot = "virtual.eigen";

  const char* id() const override { return "virtual"; }
  const char* title() const override { return "Virtual heads"; }
  void on_model(Session& s, ModelChange change) override;
  // {"ranking": {freshness, "value": [{"earlier","later","norm","v_composition"}]},
  //  "head": {"earlier","later"} | null (the one explored),
  //  "ov_outs","ov_sources": {freshness, "key": {"earlier","later","embed_norm","id","k"} | null,
  //                           "value": [{"id","token","value"}]},
  //  "eigen": {freshness, "key", "value": {"ov": [[re, im]], "ov_copying_score"} | null}, "weights"}
  // "ranking" (every pair by the norm of its OV product), "ov-out",
  // "ov-sources" (the explorer's lists), "eigenvalues" (of the chosen one).
  std::vector<ExportTable> tables(const Session& s) const override;
  Json state_json(const Session& s) const override;
#ifdef CS_APP_DRAW
  void draw(Session& s) override;  // virtual_heads_view_draw.cpp
#endif

  // User intents; each restarts what it changes. select_virtual_head throws
  // cs::Error (the selection kept) unless l1.h1 is a head of an earlier layer
  // than l2.h2.
  void select_virtual_head(Session& s, int l1, int h1, int l2, int h2);
  void set_embed_norm(Session& s, bool on);
  void set_k(Session& s, int k);
  void select_ov_source(Session& s, int id);
  void select_ov_out(Session& s, int id);

  // The virtual head explored: the chosen one, or the ranking's first when
  // none is chosen (nullopt until the ranking is there, or without two layers).
  std::optional<VirtualHeadRef> shown_head(const Session& s) const;

  struct RankingKey {
    bool operator==(const RankingKey&) const = default;
  };
  using Ranking = Result<RankingKey, std::vector<VirtualHeadNorm>>;
  using List = Result<VirtualQuery, std::vector<IdValue>>;
  const Ranking& ranking() const { return ranking_; }
  const List& ov_outs() const { return ov_outs_; }
  const List& ov_sources() const { return ov_sources_; }
  const Result<VirtualKey, HeadEigen>& eigen() const { return eigen_; }
  // The inputs wanted now (shown_head() with the selection); nullopt without a head.
  std::optional<VirtualQuery> query(const Session& s, int id) const;
  std::optional<VirtualKey> key(const Session& s) const;

  // Widget state (page only; plain data).
  widgets::TokenPickerState ov_source_picker, ov_out_picker;

 private:
  void apply_selection(Session& s) override;
  void check_selection(const Session& s) const;  // throws cs::Error naming the field
  void clamp_tokens(const Session& s);
  void start(Session& s);
  void start_deferred(Session& s) override { start(s); }
  void start_ranking(Session& s);
  void start_head(Session& s);  // the lists and eigenvalues of shown_head()
  void start_list(Session& s, List& r, const char* slot, bool row, int id);
  void start_eigen(Session& s);

  Ranking ranking_{kRankingSlot};
  List ov_outs_{kOvOutsSlot}, ov_sources_{kOvSourcesSlot};
  Result<VirtualKey, HeadEigen> eigen_{kEigenSlot};
  bool weights_raw_ = false;
};

}  // namespace cs::app
