// The Composition view (view.h): how the heads of later layers read what the
// heads of earlier layers wrote, from the weights (docs/two-layer.md).
//  - Q-, K- and V-composition scores of every (earlier, later) pair as three
//    heatmaps, each cell the score minus the random baseline [F] subtracts;
//  - [F]'s induction scatter: each head after the previous-token head at
//    (OV eigenvalue positivity, K-composition term positivity); induction
//    heads sit near (1, 1). The previous-token head is found as
//    `circuitscope induction` finds it (the detector on [I]'s repeated random
//    tokens), or chosen.
// core/composition.h computes both (sliced plans, run as jobs).
#pragma once
#include "app/result.h"
#include "app/view.h"
#include "core/composition.h"

namespace cs::app {

struct CompositionSelection {
  int prev_layer = -1, prev_head = 0;  // the scatter's previous-token head; prev_layer -1: found by the detector
  bool embed_norm = true;              // E = W_E through each block's normalization (the K-term)

  Json to_json() const;  // {"prev": "L.H" | null, "embed_norm"}
  static CompositionSelection from_json(const Json& j);  // cs::Error names a bad field
  bool operator==(const CompositionSelection&) const = default;
};

class CompositionView final : public SelectionView<CompositionSelection> {
 public:
  static constexpr const char* kScoresSlot = "composition.scores";
  static constexpr const char* kScatterSlot = "composition.scatter";
  // The detector's sequences for the previous-token head, as the CLI's defaults
  // (BOS + 25 tokens x 4, 10 examples, seed 0), fewer tokens when n_ctx is short.
  static constexpr int kTokens = 25, kRepeats = 4, kExamples = 10;

  const char* id() const override { return "composition"; }
  const char* title() const override { return "Composition"; }
  void on_model(Session& s, ModelChange change) override;
  // {"scores": {freshness, "value": {"Q","K","V": [l1][h1][l2][h2], "baseline"} | null},
  //  "scatter": {freshness, "value": {"previous_head": {"layer","head"}, "found": bool,
  //              "heads": [{"layer","head","ov_positivity","k_term_positivity"}]} | null}}
  // "scores" (Q-, K-, V-composition of every earlier/later head pair, as the
  // heatmaps hold them), "induction-scatter" (the scatter's points).
  std::vector<ExportTable> tables(const Session& s) const override;
  Json state_json(const Session& s) const override;
#ifdef CS_APP_DRAW
  void draw(Session& s) override;  // composition_view_draw.cpp
#endif

  // prev_layer -1: back to the detector's choice.
  void set_previous_head(Session& s, int layer, int head);
  void set_embed_norm(Session& s, bool on);

  struct ScoresKey {
    bool operator==(const ScoresKey&) const = default;
  };
  using Scores = Result<ScoresKey, CompositionScores>;
  using ScatterResult = Result<CompositionSelection, InductionScatter>;
  const Scores& scores() const { return scores_; }
  const ScatterResult& scatter() const { return scatter_; }

 private:
  void apply_selection(Session& s) override;
  void start_deferred(Session& s) override { start(s); }
  void start(Session& s);
  void start_scores(Session& s);
  void start_scatter(Session& s);

  Scores scores_{kScoresSlot};
  ScatterResult scatter_{kScatterSlot};
};

}  // namespace cs::app
