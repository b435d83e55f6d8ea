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
#include <cstdint>

#include "core/model.h"

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

// One score from factors: ||(A1 B1)(A2 B2)|| / (||A1 B1|| ||A2 B2||), with
// A: [d, r] and B: [r, d] (r <= d); 0 when either product is 0.
double composition_score(const Eigen::MatrixXd& A1, const Eigen::MatrixXd& B1, const Eigen::MatrixXd& A2,
                         const Eigen::MatrixXd& B2);

// The mean composition_score of `samples` pairs of products of independent
// standard Gaussian factors [d_model, d_head] x [d_head, d_model] (fixed seed).
double composition_baseline(int d_model, int d_head, uint64_t seed = 0, int samples = 32);

}  // namespace cs
