// OV and QK circuits of one attention head, and the eigenvalue copying score
// ("A Mathematical Framework for Transformer Circuits", called [F]; shared
// docs paper-notes.md and formats.md).
//
// Convention: TransformerLens, row vectors, x @ W. The paper writes the same
// matrices acting on column vectors, so every TL matrix here is the
// transpose of the paper's:
//   paper                         TL (here)                          shape
//   W_OV  = W_O W_V               ov_circuit  = W_V W_O              [d_model, d_model]
//   W_QK  = W_Q^T W_K             qk_circuit  = W_Q W_K^T            [d_model, d_model]
//   OV circuit W_U W_OV W_E       full OV     = E W_V W_O W_U        [d_vocab, d_vocab_out]
//                                 (row = source token attended to, column = output logit)
// Transposing does not change eigenvalues, so the copying score is the same
// in either convention.
//
// E, the token embeddings as the head reads them: the rows of W_E, each
// passed through the normalization of block l (ln1) when `normalize_embed`
// is set, as the paper does for one-layer skip-trigrams ("the LayerNorm is
// applied to each row of W_E"); W_E as is otherwise. Biases (b_V, b_O, b_U)
// are not part of the circuit: they add the same vector whatever the source
// token. The final LayerNorm is not linear and is left out (on processed
// weights its w and b are already folded into W_U).
//
// Eigenvalues: the full OV circuit E W_V W_O W_U (d_vocab x d_vocab) has rank
// at most d_head, and lambda(AB) = lambda(BA) for the nonzero eigenvalues, so
// they come from the small d_head x d_head matrix W_O W_U E W_V; the dense
// vocab x vocab matrix is never formed.
#pragma once
#include <complex>
#include <span>
#include <vector>

#include "core/model.h"

namespace cs {

// W_V[h] W_O[h]: [d_model, d_model] (TL; the paper's W_OV transposed).
RowMat ov_circuit(const Model& m, int layer, int head);
// W_Q[h] W_K[h]^T: [d_model, d_model] (TL; the paper's W_QK transposed):
// score(query row x, key row y) = x qk_circuit y^T (before attn_scale and biases).
RowMat qk_circuit(const Model& m, int layer, int head);

struct CircuitOptions {
  bool normalize_embed = true;  // apply block `layer`'s normalization to each row of W_E (see above)
};

// E as the head of block `layer` reads it (see above): [d_vocab, d_model].
RowMat embed_for_layer(const Model& m, int layer, const CircuitOptions& opt = {});

// The full OV circuit E W_V W_O W_U: [d_vocab, d_vocab_out]. Dense, so only
// for small vocabularies (tests, a few hundred tokens); entry (s, o) is the
// logit effect on output token o of attending to source token s.
RowMat full_ov_circuit(const Model& m, int layer, int head, const CircuitOptions& opt = {});

// The d_head x d_head matrix W_O W_U E W_V (double precision), whose
// eigenvalues are the nonzero eigenvalues of the full OV circuit (and zeros).
Eigen::MatrixXd ov_small_matrix(const Model& m, int layer, int head, const CircuitOptions& opt = {});

// The d_head eigenvalues of ov_small_matrix (Eigen's EigenSolver), sorted by
// descending absolute value. They include the nonzero eigenvalues of the full
// OV circuit; the others are (numerically) zero. Throws cs::Error when
// d_vocab != d_vocab_out (the full circuit is not square), or layer / head is
// out of range.
std::vector<std::complex<double>> ov_eigenvalues(const Model& m, int layer, int head,
                                                 const CircuitOptions& opt = {});

// Copying score of a set of eigenvalues: sum_i Re(lambda_i) / sum_i |lambda_i|,
// in [-1, 1]; positive means the head copies on average ([F]: "positive
// eigenvalues mean copying"). 0 when every eigenvalue is 0.
double copying_score(std::span<const std::complex<double>> eigenvalues);

// copying_score(ov_eigenvalues(m, l, h)) of every head: [n_layers, n_heads].
RowMat copying_scores(const Model& m, const CircuitOptions& opt = {});

}  // namespace cs
