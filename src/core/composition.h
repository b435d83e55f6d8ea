// How attention heads of different layers compose (docs/two-layer.md,
// "Composition"). TransformerLens convention (row vectors, x @ W): a head's
// OV circuit is W_OV = W_V W_O and its QK circuit W_QK = W_Q W_K^T, both
// [d_model, d_model] and of rank at most d_head. For an earlier head h1 (layer
// l1) and a later head h2 (layer l2 > l1), with ||.|| the Frobenius norm:
//
//   Q-composition  ||W_OV^h1 W_QK^h2||   / (||W_OV^h1|| ||W_QK^h2||)  h1 writes what h2's queries read
//   K-composition  ||W_OV^h1 W_QK^h2^T|| / (||W_OV^h1|| ||W_QK^h2||)  ... what h2's keys read
//   V-composition  ||W_OV^h1 W_OV^h2||   / (||W_OV^h1|| ||W_OV^h2||)  ... what h2's values read
//
// (the paper's formulas, transposed to the row convention). Every score is in
// [0, 1]; random matrices of these shapes already score about 1/sqrt(d_model),
// the baseline the paper subtracts. Nothing d_model x d_model is formed: each
// product is kept as its d_head-wide factors (docs/two-layer.md).
#pragma once
#include <Eigen/Core>
#include <complex>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/circuits.h"
#include "core/model.h"
#include "core/sliced.h"

namespace cs {

enum class CompositionKind { Q, K, V };
const char* to_string(CompositionKind k);  // "Q" | "K" | "V"

struct CompositionScores {
  int n_layers = 0, n_heads = 0;
  // [n_layers * n_heads, n_layers * n_heads]: row = earlier head (l1 * n_heads
  // + h1), column = later head (l2 * n_heads + h2); 0 unless l1 < l2. Raw
  // scores (the baseline not subtracted).
  Eigen::MatrixXd Q, K, V;
  // ||W_OV^h1 W_OV^h2||: the size of the virtual head h2 o h1's OV circuit
  // W_V1 W_O1 W_V2 W_O2 [d_model, d_model] (V-composition's numerator);
  // indexed like V, 0 unless l1 < l2.
  Eigen::MatrixXd virtual_norm;
  double baseline = 0;  // composition_baseline(d_model, d_head, ...)
  const Eigen::MatrixXd& of(CompositionKind k) const;
  double at(CompositionKind k, int l1, int h1, int l2, int h2) const;
};

struct CompositionOptions {
  uint64_t seed = 0;          // of the random baseline
  int baseline_samples = 32;  // random matrix pairs it averages
};

// Every score of every (earlier, later) pair. Throws cs::Error for options out of range.
CompositionScores composition_scores(const Model& m, const CompositionOptions& opt = {});
// The same as a plan (core/sliced.h): the random baseline (a unit per pair),
// each head's factors, then one GEMM per (earlier head, later layer, kind).
// composition_scores() runs it. The model must outlive the plan.
class CompositionPlan final : public WorkPlan {
 public:
  CompositionPlan(const Model& m, const CompositionOptions& opt = {});
  ~CompositionPlan() override;
  const CompositionScores& result() const;  // once done()
 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  CompositionScores r_;
};

// A virtual head h2 o h1 and its size (docs/two-layer.md, "Virtual heads").
struct VirtualHeadNorm {
  VirtualHeadRef head;
  double norm = 0;           // ||W_OV^h1 W_OV^h2|| (CompositionScores::virtual_norm)
  double v_composition = 0;  // the same over ||W_OV^h1|| ||W_OV^h2|| (CompositionScores::V)
};
// Every virtual head of the scores, largest norm first (ties: smaller l1, h1,
// l2, h2 first): n_heads^2 per pair of layers.
std::vector<VirtualHeadNorm> rank_virtual_heads(const CompositionScores& s);

// One score from factors: ||(A1 B1)(A2 B2)|| / (||A1 B1|| ||A2 B2||), with
// A: [d, r] and B: [r, d] (r <= d); 0 when either product is 0.
double composition_score(const Eigen::MatrixXd& A1, const Eigen::MatrixXd& B1, const Eigen::MatrixXd& A2,
                         const Eigen::MatrixXd& B2);

// ---- the K-composition induction term (docs/two-layer.md, "Induction heads in the weights") ----
// Its d_head x d_head small matrix (W_K2^T W_O1^T W_V1^T) (E_l1^T E_l2) W_Q2,
// whose eigenvalues are the nonzero eigenvalues of k_composition_term_matrix
// (core/vocab_matrix.h), from the vocabulary sums g (core/circuits.h) of the
// same model and options.
Eigen::MatrixXd k_composition_small_matrix(const Model& m, int l1, int h1, int l2, int h2, const EmbedGrams& g);
// Its eigenvalues (descending modulus) and their positivity,
// sum Re(lambda) / sum |lambda| (copying_score): near 1 when the later head
// attends to positions whose previous token (as h1 moved it) equals the
// current one, the induction pattern.
std::vector<std::complex<double>> k_composition_eigenvalues(const Model& m, int l1, int h1, int l2, int h2,
                                                            const EmbedGrams& g);

// [F]'s induction-head scatter: every head of layers after `prev`'s, with its
// OV eigenvalue positivity (copying) and the positivity of its K-composition
// term with the earlier head `prev` (usually the previous-token head).
struct InductionScatterPoint {
  int layer = 0, head = 0;
  double ov_positivity = 0;      // copying_score of the OV eigenvalues (NaN when d_vocab != d_vocab_out)
  double k_term_positivity = 0;  // copying_score of k_composition_eigenvalues(prev -> this head)
  std::vector<std::complex<double>> k_term_eigenvalues;  // those eigenvalues, descending modulus
};
std::vector<InductionScatterPoint> induction_scatter(const Model& m, int prev_layer, int prev_head, const EmbedGrams& g);

// The scatter as a plan (core/sliced.h), with its previous-token head found
// the way `circuitscope induction` finds it when none is given: the head of a
// layer before the last with the highest previous-token detector score on
// `sequences` (e.g. repeated_random_tokens with the CLI's defaults). Units:
// the vocabulary sums (unless `grams` is given), the detector's forward passes
// (when the head is not given), then one unit per later head. The model
// must outlive the plan.
// The previous-token head from detector scores [n_layers, n_heads] (n_layers
// >= 2): the highest score among the layers before the last.
HeadId previous_token_head(const RowMat& previous_token);

struct InductionScatter {
  int prev_layer = 0, prev_head = 0;  // the earlier head used
  RowMat previous_token;              // [n_layers, n_heads] detector scores (empty when the head was given)
  std::vector<InductionScatterPoint> points;
};
class InductionScatterPlan final : public WorkPlan {
 public:
  // prev_layer < 0: find the previous-token head on `sequences`. Throws
  // cs::Error for a model with fewer than two layers, or a given head with no
  // later layer.
  InductionScatterPlan(const Model& m, const CircuitOptions& opt, int prev_layer, int prev_head,
                       std::vector<std::vector<int>> sequences, std::shared_ptr<const EmbedGrams> grams = nullptr);
  ~InductionScatterPlan() override;
  const InductionScatter& result() const;  // once done()
  std::shared_ptr<const EmbedGrams> grams() const;  // once done(): the vocabulary sums it used
 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  InductionScatter r_;
  std::shared_ptr<const EmbedGrams> grams_;
};

// The mean composition_score of `samples` pairs of products of independent
// standard Gaussian factors [d_model, d_head] x [d_head, d_model] (fixed seed).
double composition_baseline(int d_model, int d_head, uint64_t seed = 0, int samples = 32);

}  // namespace cs
