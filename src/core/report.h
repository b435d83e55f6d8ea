// The whole analysis of a model in one computation (docs/exports.md, "The
// analysis report"): every head's summary, the composition scores, the
// largest virtual heads with their OV eigenvalues, and [I]'s
// repeated-random-tokens experiment with [F]'s K-composition scatter. The
// same numbers `circuitscope heads`, `composition`, `virtual` and
// `induction` print with their defaults; `circuitscope report` and the
// page's "Download report" run this one plan.
#pragma once
#include <complex>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "core/circuits.h"
#include "core/composition.h"
#include "core/head_badges.h"
#include "core/head_summary.h"
#include "core/induction.h"
#include "core/model.h"
#include "core/sliced.h"

namespace cs {

struct ReportOptions {
  CircuitOptions circuit;  // how E is formed (normalize_embed), for every circuit below
  bool diagonal = true;    // the heads' OV diagonal test (one vocab x vocab scan per head)
  int virtual_top = 20;    // virtual heads listed with eigenvalues (largest norm first)
  int bos = -1;            // the tokenizer's BOS (or -1), first in each random sequence
};

struct Report {
  std::vector<HeadSummary> heads;  // head_summaries with HeadSummaryOptions{circuit, seed 0, diagonal}
  CompositionScores composition;   // composition_scores with CompositionOptions{} (seed 0)
  // rank_virtual_heads(composition): all of them, largest norm first; the
  // first min(virtual_top, all) with their OV eigenvalues (descending
  // modulus; empty lists when d_vocab != d_vocab_out).
  std::vector<VirtualHeadNorm> virtual_heads;
  std::vector<std::vector<std::complex<double>>> virtual_eigenvalues;
  // [I]'s experiment, shaped by badge_experiment_shape (the CLI's 25 x 4 x 10
  // when n_ctx allows), seed 0.
  InductionExperiment induction;
  // [F]'s scatter from the previous-token head previous_token_head(induction.previous_token);
  // nullopt with fewer than two layers.
  std::optional<InductionScatter> scatter;
};

// Stages: head summaries (their vocabulary sums serve the later stages),
// composition, virtual-head eigenvalues, the experiment, the scatter. The
// model must outlive the plan. Throws cs::Error as the parts do (e.g. a
// context too short for the experiment).
class ReportPlan final : public SlicedComputation {
 public:
  ReportPlan(const Model& m, const ReportOptions& opt);
  bool step(double budget_ms) override { return chain_.step(budget_ms); }
  void run_concurrently(int threads, RunControl* ctl = nullptr) override { chain_.run_concurrently(threads, ctl); }
  bool done() const override { return chain_.done(); }
  float progress() const override { return chain_.progress(); }
  std::string stage() const override { return chain_.stage(); }
  const Report& result() const;  // once done()

 private:
  const Model& m_;
  ReportOptions opt_;
  PlanChain chain_;
  Report r_;
  std::shared_ptr<const EmbedGrams> grams_;  // the head summaries' vocabulary sums
  std::vector<HeadEigen> virtual_eigen_;       // the virtual heads' stage, while it runs
};

}  // namespace cs
