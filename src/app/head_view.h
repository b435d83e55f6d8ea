// The Head view (view.h): one attention head, opened from the Heads grid.
//  - OV explorer: pick a source token, see the outs whose logits attending to
//    it raises most (a row of the OV circuit E W_V W_O W_U); pick an out, see
//    the sources that raise it most (a column).
//  - QK explorer: pick a destination (query) token, see the source (key)
//    tokens it attends to most (a row of the QK circuit E W_Q W_K^T E^T); pick
//    a source, see the destinations that attend to it most (a column).
//  - Positional QK: P W_Q W_K^T P^T over a window of positions (query rows,
//    key columns).
//  - Eigenvalues of the OV and QK circuits in the complex plane.
// TransformerLens row convention; definitions in docs/one-layer.md. The
// circuits are never formed: rows and columns come from the factored engine
// (core/vocab_matrix.h) as jobs.
#pragma once
#include <complex>
#include <vector>

#include "app/result.h"
#include "app/view.h"
#include "app/widgets.h"
#include "core/circuits.h"
#include "core/vocab_matrix.h"

namespace cs::app {

struct HeadSelection {
  int layer = 0, head = 0;
  bool embed_norm = true;  // E = W_E through the block's normalization (the paper's choice)
  int k = 10;              // rows in each ranked list
  int ov_source = 0;       // OV row: outs raised by attending to this token
  int ov_out = 0;          // OV column: sources that raise this token
  int qk_destination = 0;  // QK row: sources this query token attends to
  int qk_source = 0;       // QK column: destinations that attend to this key token
  int pos_first = 0;       // positional QK window: positions [pos_first, pos_first + pos_count)
  int pos_count = 16;

  Json to_json() const;
  static HeadSelection from_json(const Json& j);  // missing fields keep defaults; cs::Error names a bad one
  bool operator==(const HeadSelection&) const = default;
};

// The input a ranked list belongs to.
struct CircuitQuery {
  int layer = -1, head = -1;
  bool embed_norm = true;
  int id = -1, k = 0;
  bool operator==(const CircuitQuery&) const = default;
};
struct HeadKey {
  int layer = -1, head = -1;
  bool embed_norm = true;
  bool operator==(const HeadKey&) const = default;
};
struct PositionalKey {
  int layer = -1, head = -1;
  bool embed_norm = true;
  int first = 0, count = 0;
  bool operator==(const PositionalKey&) const = default;
};

class HeadView final : public SelectionView<HeadSelection> {
 public:
  static constexpr const char* kOvOutsSlot = "head.ov_outs";
  static constexpr const char* kOvSourcesSlot = "head.ov_sources";
  static constexpr const char* kQkSourcesSlot = "head.qk_sources";
  static constexpr const char* kQkDestinationsSlot = "head.qk_destinations";
  static constexpr const char* kEigenSlot = "head.eigen";
  static constexpr const char* kPositionalSlot = "head.positional";  // computed at once: never runs

  const char* id() const override { return "head"; }
  const char* title() const override { return "Head"; }
  void on_model(Session& s, ModelChange change) override;
  // {"ov_outs","ov_sources","qk_sources","qk_destinations": {"key","freshness","stale","pending",
  //   "value":[{"id","token","value"}]}, "eigen": {..., "value": {"ov","qk","ov_copying_score",
  //   "qk_copying_score"}}, "positional": {..., "value": [[score]]}, "weights"}
  // "ov-out", "ov-sources", "qk-sources", "qk-destinations" (the explorers'
  // lists), "eigenvalues" (OV and QK), "positional" (the position-only QK block).
  std::vector<ExportTable> tables(const Session& s) const override;
  Json state_json(const Session& s) const override;
#ifdef CS_APP_DRAW
  void draw(Session& s) override;  // head_view_draw.cpp
#endif

  // User intents; each clamps to the shown model and restarts what it changes.
  void select_head(Session& s, int layer, int head);
  void set_embed_norm(Session& s, bool on);
  void set_k(Session& s, int k);
  void select_ov_source(Session& s, int id);
  void select_ov_out(Session& s, int id);
  void select_qk_destination(Session& s, int id);
  void select_qk_source(Session& s, int id);
  void set_positions(Session& s, int first, int count);

  using Ranking = Result<CircuitQuery, std::vector<IdValue>>;
  const Ranking& ov_outs() const { return ov_outs_; }
  const Ranking& ov_sources() const { return ov_sources_; }
  const Ranking& qk_sources() const { return qk_sources_; }
  const Ranking& qk_destinations() const { return qk_destinations_; }
  const Result<HeadKey, HeadEigen>& eigen() const { return eigen_; }
  const Result<PositionalKey, RowMat>& positional() const { return positional_; }
  HeadKey head_key() const { return {sel_.layer, sel_.head, sel_.embed_norm}; }
  CircuitQuery query(int id) const { return {sel_.layer, sel_.head, sel_.embed_norm, id, sel_.k}; }
  PositionalKey positional_key() const {
    return {sel_.layer, sel_.head, sel_.embed_norm, sel_.pos_first, sel_.pos_count};
  }

  // Widget state (page only; plain data).
  widgets::TokenPickerState ov_source_picker, ov_out_picker, qk_destination_picker, qk_source_picker;

 private:
  void apply_selection(Session& s) override;
  void clamp_selection(const Session& s);
  void start_all(Session& s);
  void start_deferred(Session& s) override { start_all(s); }
  void start_rankings(Session& s);  // the four ranked lists
  // One ranked list: a row (outs / sources) or a column of the OV or QK matrix.
  void start_ranking(Session& s, Ranking& r, const char* slot, bool ov, bool row, int id);
  void start_eigen(Session& s);
  void compute_positional(Session& s);

  Ranking ov_outs_{kOvOutsSlot}, ov_sources_{kOvSourcesSlot};
  Ranking qk_sources_{kQkSourcesSlot}, qk_destinations_{kQkDestinationsSlot};
  Result<HeadKey, HeadEigen> eigen_{kEigenSlot};
  Result<PositionalKey, RowMat> positional_{kPositionalSlot};
  bool weights_raw_ = false;
};

}  // namespace cs::app
