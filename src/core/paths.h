// Path expansion of a prompt's logits and term importance ("A Mathematical
// Framework for Transformer Circuits", [F], two-layer section; the math in
// our words: docs/two-layer.md, "Paths").
//
// Freeze every attention pattern and every normalization's per-position
// scale at their values in the full run (a ForwardCache). The model is then
// linear in the embedding x0 = W_E[tokens] (+ W_pos), and the logits split
// exactly into one term per path from the embedding to the unembedding:
//   direct                    x0 -> unembedding
//   first order, head h       x0 -> h -> unembedding           (one per head)
//   second order, h1 > h2     x0 -> h1 -> h2 -> unembedding    (layer h1 < layer h2: a virtual head)
//   ... up to n_layers heads on a path
// plus one term of everything that does not depend on x0 (b_V, b_O, the
// normalizations' b, b_U: "biases"). Paths longer than max_order heads are
// summed into one "higher order" term, so the terms always add up to the
// logits of the full run (tested to 1e-5 without LayerNorm; with it too,
// since the scales are frozen).
//
// Row convention (x @ W). With frozen scales the normalization of block l is
// the linear map lin_l(X) = ((X - rowmean(X)) / s_l) o w_l ([T, d_model],
// s_l the run's per-position scale, w_l = 1 for LNPre) plus b_l; a head
// applied to one term X of its input gives A (lin_l(X) W_V) W_O.
#pragma once
#include <span>
#include <string>
#include <vector>

#include "core/forward.h"
#include "core/model.h"
#include "core/sliced.h"

namespace cs {

struct PathTerm {
  enum Kind { kDirect, kHeads, kBiases, kHigherOrder } kind = kDirect;
  std::vector<HeadId> heads;  // kHeads: the path's heads, earliest layer first (its order = heads.size())
  int order() const;          // 0 direct, heads.size(), -1 for biases and higher order
  std::string name() const;   // "direct", "0.3", "0.3 > 1.5", "biases", "higher order"
};

struct PathExpansion {
  std::vector<PathTerm> terms;
  // Each term's share of the final normalization's output, lin_f(term)
  // (+ b_f for the bias term): [T, d_model] per term, or [1, d_model] (the
  // row of `position`) for an expansion at one position. Its logits are
  // resid[i] W_U (+ b_U for the bias term).
  std::vector<RowMat> resid;
  int max_order = 2;
  int position = -1;  // -1: every position; else the one position the rows are of
};

// The expansion of one run. `cache` must be forward()'s cache of `tokens` on
// `m` (resid and pattern; it is checked for shape). max_order >= 0 (2: up to
// virtual heads of two heads). Throws cs::Error on a cache of another shape.
// position >= 0: only that position's row (what the Prompt view splits),
// computed from the right (docs/two-layer.md, "Paths"): each path's term from
// the patterns' rows back from `position` and one product with the
// embedding, so a long prompt of a wide model costs a fraction of the full
// expansion; the same numbers (tested against the full expansion's row).
PathExpansion expand_paths(const Model& m, std::span<const int> tokens, const ForwardCache& cache,
                           int max_order = 2, int position = -1);

// expand_paths at one position as a plan (core/sliced.h), what the Prompt
// view runs: a unit for the scales, one per head (the paths ending in it;
// the direct path with the first), one for the paths longer than max_order,
// one for the bias term. The model and the cache must outlive it; the
// arguments are expand_paths' (checked there, not here).
class PathsAtPlan final : public WorkPlan {
 public:
  PathsAtPlan(const Model& m, const ForwardCache& cache, int max_order, int position);
  PathExpansion take();  // once done()

 private:
  Eigen::RowVectorXf term_row(const std::vector<HeadId>& heads) const;
  const Model& m_;
  const ForwardCache& cache_;
  int position_;
  std::vector<Eigen::VectorXf> inv_;  // [n_layers + 1] scales of positions 0..position
  PathExpansion p_;
};

// [n_terms]: each term's contribution to the logit of `token` at `position`
// (they add up to that logit). An expansion at one position has that
// position only.
Vec path_logit_contributions(const Model& m, const PathExpansion& p, int position, int token);

// [T, d_vocab_out]: the logits of the terms where keep[i] (keep: [n_terms]).
RowMat path_logits(const Model& m, const PathExpansion& p, const std::vector<char>& keep);

// Term importance on a text sample: each sequence's patterns and scales are
// frozen from its own full run; the mean next-token loss over all sequences
//  - by path order: direct path and biases only (order 0), + first-order terms
//    (order 1), + second order (2), ... up to every term (= the full model);
//  - without each single term (the others kept): its marginal effect is that
//    loss minus the full loss.
struct TermImportance {
  std::vector<PathTerm> terms;
  std::vector<double> loss_by_order;  // [max_order + 1]; the last includes "higher order" terms
  double loss_full = 0;               // the model's own loss
  std::vector<double> loss_without;   // [n_terms]
  int tokens = 0;                     // predictions averaged over
};
TermImportance term_importance(const Model& m, const std::vector<std::vector<int>>& sequences, int max_order = 2);

// The number of terms expand_paths gives for a model's shape.
size_t path_term_count(const ModelConfig& c, int max_order);

// term_importance as a plan (core/sliced.h), what the page's Term importance
// view runs: per sequence its forward pass and expansion, then one unit per
// loss (each order's, each term's: a [T, d_model] @ W_U product). Sequences
// of fewer than 2 tokens are skipped. The model must outlive the plan.
// Throws cs::Error (in the constructor) when no sequence has 2 tokens.
class TermImportancePlan final : public WorkPlan {
 public:
  TermImportancePlan(const Model& m, std::vector<std::vector<int>> sequences, int max_order = 2);
  const TermImportance& result() const;  // once done()

 private:
  const Model& m_;
  std::vector<std::vector<int>> seqs_;
  int max_order_;
  PathExpansion p_;  // the current sequence's
  TermImportance r_;
};

}  // namespace cs
