// The labels the page puts on heads wherever they appear (docs/two-layer.md,
// "Badges"): what the head detector and the OV eigenvalues say a head does.
//   previous token  [I]'s previous-token score (the detector's "mul" score)
//                   on repeated random tokens >= kPrevious
//   induction       prefix-matching score on the same sequences >= kInduction
//   copying         OV copying score (eigenvalue positivity, docs/one-layer.md)
//                   >= kCopying
// The sequences are [I]'s experiment (InductionExperimentPlan) with its
// defaults where n_ctx allows: BOS + 25 random tokens repeated 4 times, 10
// examples, seed 0 (`circuitscope induction` with no options); fewer tokens
// per copy when n_ctx is shorter.
#pragma once
#include <memory>

#include "core/head_summary.h"
#include "core/induction.h"
#include "core/sliced.h"

namespace cs {

struct HeadBadges {
  static constexpr double kPrevious = 0.4, kInduction = 0.4, kCopying = 0.7;
  // The whole experiment (the Induction view shows it when its parameters are these).
  InductionExperiment experiment;
  RowMat ov_copying;  // [n_layers, n_heads] (NaN when the OV circuit is not square)
  const RowMat& previous_token() const { return experiment.previous_token; }    // [n_layers, n_heads]
  const RowMat& prefix_matching() const { return experiment.prefix_matching; }  // [n_layers, n_heads]
  bool previous(int l, int h) const { return previous_token()(l, h) >= kPrevious; }
  bool induction(int l, int h) const { return prefix_matching()(l, h) >= kInduction; }
  bool copying(int l, int h) const { return ov_copying(l, h) >= kCopying; }
};

// The experiment's shape for a model: [I]'s 25 tokens x 4 repeats when
// BOS + 100 tokens fit n_ctx, else as many tokens per copy as fit (4 repeats,
// or 2 when fewer than 2 tokens per copy would fit). Throws cs::Error when
// not even BOS + 2 x 1 tokens fit.
struct BadgeExperimentShape {
  int tokens = 25, repeats = 4, examples = 10;
};
BadgeExperimentShape badge_experiment_shape(const ModelConfig& c, bool bos);

// Sliced: the experiment's forward passes, then the OV eigenvalues (the
// head summary's vocabulary sums and eigen-problems; no diagonal scan). The
// model must outlive the plan. A model without layers gives empty matrices.
class HeadBadgePlan final : public WorkPlan {
 public:
  // grams: the vocabulary sums of this model and `circuit`, when computed
  // before (no pass over W_E then).
  HeadBadgePlan(const Model& m, int bos, const CircuitOptions& circuit = {},
                std::shared_ptr<const EmbedGrams> grams = nullptr);
  const HeadBadges& result() const;  // once done()
  std::shared_ptr<const EmbedGrams> grams() const;  // once done(): the sums it used (null without heads)

 private:
  std::unique_ptr<InductionExperimentPlan> experiment_;
  std::unique_ptr<HeadSummaryPlan> summary_;
  HeadBadges r_;
  std::shared_ptr<const EmbedGrams> grams_;
};

}  // namespace cs
