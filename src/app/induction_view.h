// The Induction view (view.h): [I]'s repeated-random-tokens experiment
// (docs/two-layer.md, "Repeated random tokens"). Sequences of random tokens
// repeated a few times: a model with induction heads predicts the repeats
// from the earlier copy. Shows the loss at each position (first copy against
// the repeats), each head's prefix-matching and previous-token scores as
// layer x head heatmaps, and a chosen head's attention on the first example
// (an induction head's is a stripe one copy-length below the diagonal).
// core/induction.h computes it (InductionExperimentPlan, run as a job) with
// the same sequences as `circuitscope induction` for the same parameters.
#pragma once
#include "app/result.h"
#include "app/view.h"
#include "core/induction.h"

namespace cs::app {

struct InductionSelection {
  int tokens = 25, repeats = 4, examples = 10;  // [I]'s experiment (the CLI's defaults)
  int seed = 0;
  int layer = -1, head = 0;  // the head whose attention is drawn; layer -1: the best prefix-matching head

  Json to_json() const;  // {"tokens","repeats","examples","seed","head": "L.H" | null}
  static InductionSelection from_json(const Json& j);  // cs::Error names a bad field
  bool operator==(const InductionSelection&) const = default;
  // What the experiment depends on (not the drawn head).
  bool same_experiment(const InductionSelection& o) const {
    return tokens == o.tokens && repeats == o.repeats && examples == o.examples && seed == o.seed;
  }
};

class InductionView final : public SelectionView<InductionSelection> {
 public:
  static constexpr const char* kSlot = "induction.experiment";

  const char* id() const override { return "induction"; }
  const char* title() const override { return "Induction"; }
  void on_model(Session& s, ModelChange change) override;
  // {"experiment": {freshness, "value": {"tokens","repeats","examples","seed","bos",
  //   "prefix_matching","previous_token","copying": [layer][head], "loss_first","loss_repeat",
  //   "loss_by_position": [..], "head": {"layer","head"}, "pattern": [query][key]} | null}}
  // "heads" (prefix matching, previous-token and copying score of every head),
  // "loss-by-position" (the experiment's loss curve), "pattern" (the chosen head's).
  std::vector<ExportTable> tables(const Session& s) const override;
  Json state_json(const Session& s) const override;
#ifdef CS_APP_DRAW
  void draw(Session& s) override;  // induction_view_draw.cpp
#endif

  void set_experiment(Session& s, int tokens, int repeats, int examples, int seed);
  void set_head(int layer, int head);  // layer -1: the best prefix-matching head (nothing to recompute)
  // The head drawn: the chosen one, or the best prefix-matching head of the result.
  HeadId shown_head() const;

  struct Key {
    int tokens = 0, repeats = 0, examples = 0, seed = 0;
    bool operator==(const Key&) const = default;
  };
  using Experiment = Result<Key, InductionExperiment>;
  const Experiment& experiment() const { return experiment_; }

 private:
  void apply_selection(Session& s) override;
  void start_deferred(Session& s) override { start(s); }
  void start(Session& s);
  Key key() const { return Key{sel_.tokens, sel_.repeats, sel_.examples, sel_.seed}; }

  Experiment experiment_{kSlot};
};

}  // namespace cs::app
