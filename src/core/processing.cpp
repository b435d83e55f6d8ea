// TransformerLens weight processing (processing.h, formats.md). Shapes and the
// convention are TransformerLens': row vectors, x @ W; W_Q[h] is [d_model, d_head],
// W_O[h] is [d_head, d_model], W_U is [d_model, d_vocab_out].
//
// Why each step keeps log-softmax(logits) unchanged:
//  - fold_ln: ln(x) = n(x) * w + b with n the pure normalisation, so
//    ln(x) W + b_W = n(x) (diag(w) W) + (b W + b_W). n(x) has zero mean over
//    d_model, so adding a constant to each column of diag(w) W changes nothing:
//    the folded matrix is centred over d_model.
//  - center_writing_weights: every read of the residual stream goes through a
//    normalisation that first subtracts the mean over d_model, so the mean of
//    anything written into the stream (W_E, W_pos with Standard positions,
//    W_O, b_O) is irrelevant.
//  - center_unembed: adding a constant to every logit of a row leaves its
//    log-softmax unchanged.
//  - fold_value_biases: each attention row sums to 1, so sum_j A[i,j] b_V W_O
//    = b_V W_O, a constant that belongs in b_O.
#include "core/processing.h"

#include <algorithm>
#include <string>
#include <utility>

#include "core/error.h"

namespace cs {

namespace {

// M[d, :] *= w[d] for a [d_model, n] matrix, then subtract each column's mean over d_model.
void scale_rows_and_center_columns(MatMap M, const ConstVecMap& w) {
  M.array().colwise() *= w.array();
  const Eigen::RowVectorXf col_mean = M.colwise().mean();
  M.rowwise() -= col_mean;
}

void center_rows(MatMap M) {
  const Eigen::VectorXf row_mean = M.rowwise().mean();
  M.colwise() -= row_mean;
}

}  // namespace

void fold_ln(Model& m) {
  const ModelConfig& c = m.config();
  if (c.normalization != Norm::LN) return;  // nothing to fold
  if (c.positional == PosEmbed::Shortformer)
    throw Error("fold_ln: not applicable with shortformer positions (W_pos is added after ln1, so ln1.w cannot be folded into W_Q/W_K)");
  for (int l = 0; l < c.n_layers; ++l) {
    const ConstVecMap w = std::as_const(m).ln1_w(l);
    const ConstVecMap b = std::as_const(m).ln1_b(l);
    for (int h = 0; h < c.n_heads; ++h) {
      // b_Q[h] += ln1.b @ W_Q[h] (before W_Q is rescaled), likewise K and V.
      m.b_Q(l, h) += (b.transpose() * m.W_Q(l, h)).transpose();
      m.b_K(l, h) += (b.transpose() * m.W_K(l, h)).transpose();
      m.b_V(l, h) += (b.transpose() * m.W_V(l, h)).transpose();
      scale_rows_and_center_columns(m.W_Q(l, h), w);
      scale_rows_and_center_columns(m.W_K(l, h), w);
      scale_rows_and_center_columns(m.W_V(l, h), w);
    }
  }
  {
    const ConstVecMap w = std::as_const(m).ln_final_w();
    const ConstVecMap b = std::as_const(m).ln_final_b();
    m.b_U() += (b.transpose() * m.W_U()).transpose();
    scale_rows_and_center_columns(m.W_U(), w);
  }
  // LN becomes LNPre: rebuild the layout without ln tensors and copy the rest.
  ModelConfig nc = c;
  nc.normalization = Norm::LNPre;
  Model folded(nc);
  for (const TensorSpec& s : folded.tensors()) {
    const TensorSpec* old = m.find(s.name);
    if (!old || old->numel != s.numel) throw Error("fold_ln: internal layout mismatch at tensor '" + s.name + "'");
    std::copy_n(m.data() + old->offset, s.numel, folded.data() + s.offset);
  }
  folded.processing = m.processing;
  folded.processing.fold_ln = true;
  m = std::move(folded);
}

void center_writing_weights(Model& m) {
  const ModelConfig& c = m.config();
  if (!c.normalizes())
    throw Error("center_writing_weights: not applicable, the model has no normalization (normalization is none)");
  center_rows(m.W_E());
  if (c.positional == PosEmbed::Standard) center_rows(m.W_pos());
  for (int l = 0; l < c.n_layers; ++l) {
    for (int h = 0; h < c.n_heads; ++h) center_rows(m.W_O(l, h));
    VecMap b_O = m.b_O(l);
    b_O.array() -= b_O.mean();
  }
  m.processing.center_writing_weights = true;
}

void center_unembed(Model& m) {
  center_rows(m.W_U());  // each row: mean over the vocabulary removed
  VecMap b_U = m.b_U();
  b_U.array() -= b_U.mean();
  m.processing.center_unembed = true;
}

void fold_value_biases(Model& m) {
  const ModelConfig& c = m.config();
  for (int l = 0; l < c.n_layers; ++l) {
    VecMap b_O = m.b_O(l);
    for (int h = 0; h < c.n_heads; ++h) {
      VecMap b_V = m.b_V(l, h);
      b_O += (b_V.transpose() * m.W_O(l, h)).transpose();  // b_V [d_head] @ W_O[h] [d_head, d_model]
      b_V.setZero();
    }
  }
  m.processing.fold_value_biases = true;
}

void process_weights(Model& m, const ProcessOptions& opt) {
  const ModelConfig& c = m.config();
  if (opt.fold_ln && c.normalization == Norm::LN && c.positional != PosEmbed::Shortformer) fold_ln(m);
  if (opt.center_writing_weights && m.config().normalizes()) center_writing_weights(m);
  if (opt.center_unembed) center_unembed(m);
  if (opt.fold_value_biases) fold_value_biases(m);
}

}  // namespace cs
