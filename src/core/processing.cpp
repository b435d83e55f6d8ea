// TransformerLens weight processing (processing.h, docs/model.md). Shapes and the
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
#include <memory>
#include <string>
#include <utility>

#include "core/error.h"

namespace cs {

namespace {

using Index = Eigen::Index;

// Rows of a [rows, cols] tensor per unit of work: about kSliceFloats floats.
Index rows_per_unit(Index cols) { return std::max<Index>(1, Index(kSliceFloats) / std::max<Index>(1, cols)); }

// M[d, :] *= w[d] for a [d_model, n] block, then subtract each column's mean over d_model.
// Row by row: the blocks are columns of row-major matrices (W_U's columns),
// where a column-wise reduction would stride across whole rows.
template <class Block, class W>
void scale_rows_and_center_columns(Block M, const W& w) {
  Eigen::RowVectorXf col_mean = Eigen::RowVectorXf::Zero(M.cols());
  for (Index r = 0; r < M.rows(); ++r) {
    M.row(r) *= w[r];
    col_mean += M.row(r);
  }
  col_mean /= float(M.rows());
  for (Index r = 0; r < M.rows(); ++r) M.row(r) -= col_mean;
}

template <class Block>
void center_rows(Block M) {
  const Eigen::VectorXf row_mean = M.rowwise().mean();
  M.colwise() -= row_mean;
}

LayerNormWeights take_ln_weights(const Model& m) {
  const ModelConfig& c = m.config();
  LayerNormWeights ln;
  for (int l = 0; l < c.n_layers; ++l) {
    ln.ln1_w.push_back(m.ln1_w(l));
    ln.ln1_b.push_back(m.ln1_b(l));
  }
  ln.ln_final_w = m.ln_final_w();
  ln.ln_final_b = m.ln_final_b();
  return ln;
}

// fold_ln. `ln` holds the LayerNorm weights; when `relayout`, the model is
// still in the LN layout: a first unit copies its LN weights into `ln` and
// rebuilds the model without them (LN -> LNPre; one unit, done only by the
// one-shot functions: the loader reads models straight into the LNPre layout).
// Then, with ln(x) = n(x) * w + b and n the pure normalisation:
//   b_Q[h] += ln1.b @ W_Q[h], W_Q[h] = diag(ln1.w) W_Q[h] centred over d_model (likewise K, V),
//   b_U += ln_final.b @ W_U, W_U = diag(ln_final.w) W_U centred over d_model.
void add_fold_ln(WorkPlan& p, Model& m, std::shared_ptr<LayerNormWeights> ln, bool relayout) {
  const ModelConfig& c = m.config();
  const Index D = c.d_model, V = c.vocab_out();
  const int L = c.n_layers, H = c.n_heads;
  if (relayout) {
    p.add("fold_ln", double(m.size()), [&m, ln] {
      *ln = take_ln_weights(m);
      ModelConfig nc = m.config();
      nc.normalization = Norm::LNPre;
      Model folded(nc);
      for (const TensorSpec& s : folded.tensors()) {
        const TensorSpec* old = m.find(s.name);
        if (!old || old->numel != s.numel) throw Error("fold_ln: internal layout mismatch at tensor '" + s.name + "'");
        std::copy_n(m.data() + old->offset, s.numel, folded.data() + s.offset);
      }
      folded.processing = m.processing;
      m = std::move(folded);
    });
  }
  for (int l = 0; l < L; ++l)
    p.add("fold_ln", double(3 * H * D * c.d_head), [&m, ln, l, H] {
      const Vec& w = ln->ln1_w[size_t(l)];
      const Vec& b = ln->ln1_b[size_t(l)];
      for (int h = 0; h < H; ++h) {
        // b_Q[h] += ln1.b @ W_Q[h] (before W_Q is rescaled), likewise K and V.
        m.b_Q(l, h) += (b.transpose() * m.W_Q(l, h)).transpose();
        m.b_K(l, h) += (b.transpose() * m.W_K(l, h)).transpose();
        m.b_V(l, h) += (b.transpose() * m.W_V(l, h)).transpose();
        scale_rows_and_center_columns(m.W_Q(l, h), w);
        scale_rows_and_center_columns(m.W_K(l, h), w);
        scale_rows_and_center_columns(m.W_V(l, h), w);
      }
    });
  // W_U in blocks of columns (each column's fold reads only that column).
  const Index cols = rows_per_unit(D);
  for (Index j0 = 0; j0 < V; j0 += cols) {
    const Index n = std::min(cols, V - j0);
    p.add("fold_ln", double(n * D), [&m, ln, j0, n] {
      MatMap W_U = m.W_U();
      m.b_U().segment(j0, n) += (ln->ln_final_b.transpose() * W_U.middleCols(j0, n)).transpose();
      scale_rows_and_center_columns(W_U.middleCols(j0, n), ln->ln_final_w);
    });
  }
  p.add("fold_ln", 1, [&m] {
    m.set_normalization(Norm::LNPre);
    m.processing.fold_ln = true;
  });
}

// Every read of the residual stream subtracts the mean over d_model first, so
// what is written into it (W_E, W_pos with Standard positions, W_O, b_O) is centred.
void add_center_writing_weights(WorkPlan& p, Model& m) {
  const ModelConfig& c = m.config();
  const Index D = c.d_model, rows = rows_per_unit(D);
  for (Index r0 = 0; r0 < c.d_vocab; r0 += rows) {
    const Index n = std::min(rows, Index(c.d_vocab) - r0);
    p.add("center_writing_weights", double(n * D), [&m, r0, n] { center_rows(m.W_E().middleRows(r0, n)); });
  }
  if (c.positional == PosEmbed::Standard)
    for (Index r0 = 0; r0 < c.n_ctx; r0 += rows) {
      const Index n = std::min(rows, Index(c.n_ctx) - r0);
      p.add("center_writing_weights", double(n * D), [&m, r0, n] { center_rows(m.W_pos().middleRows(r0, n)); });
    }
  for (int l = 0; l < c.n_layers; ++l)
    p.add("center_writing_weights", double(c.n_heads * c.d_head * D), [&m, l] {
      for (int h = 0; h < m.config().n_heads; ++h) center_rows(m.W_O(l, h));
      VecMap b_O = m.b_O(l);
      b_O.array() -= b_O.mean();
    });
  p.add("center_writing_weights", 1, [&m] { m.processing.center_writing_weights = true; });
}

// Each row of W_U loses its mean over the vocabulary; b_U its mean.
void add_center_unembed(WorkPlan& p, Model& m) {
  const ModelConfig& c = m.config();
  const Index V = c.vocab_out(), rows = rows_per_unit(V);
  for (Index r0 = 0; r0 < c.d_model; r0 += rows) {
    const Index n = std::min(rows, Index(c.d_model) - r0);
    p.add("center_unembed", double(n * V), [&m, r0, n] { center_rows(m.W_U().middleRows(r0, n)); });
  }
  p.add("center_unembed", double(V), [&m] {
    VecMap b_U = m.b_U();
    b_U.array() -= b_U.mean();
    m.processing.center_unembed = true;
  });
}

// b_O += sum_h b_V[h] @ W_O[h]; b_V = 0.
void add_fold_value_biases(WorkPlan& p, Model& m) {
  const ModelConfig& c = m.config();
  for (int l = 0; l < c.n_layers; ++l)
    p.add("fold_value_biases", double(c.n_heads * c.d_head * c.d_model), [&m, l] {
      VecMap b_O = m.b_O(l);
      for (int h = 0; h < m.config().n_heads; ++h) {
        VecMap b_V = m.b_V(l, h);
        b_O += (b_V.transpose() * m.W_O(l, h)).transpose();  // b_V [d_head] @ W_O[h] [d_head, d_model]
        b_V.setZero();
      }
    });
  p.add("fold_value_biases", 1, [&m] { m.processing.fold_value_biases = true; });
}

void check_fold_ln(const ModelConfig& c) {
  if (c.positional == PosEmbed::Shortformer)
    throw Error("fold_ln: not applicable with shortformer positions (W_pos is added after ln1, so ln1.w cannot be folded into W_Q/W_K)");
}

}  // namespace

void fold_ln(Model& m) {
  if (m.config().normalization != Norm::LN) return;  // nothing to fold
  check_fold_ln(m.config());
  WorkPlan p;
  add_fold_ln(p, m, std::make_shared<LayerNormWeights>(), true);
  p.run();
}

void center_writing_weights(Model& m) {
  if (!m.config().normalizes())
    throw Error("center_writing_weights: not applicable, the model has no normalization (normalization is none)");
  WorkPlan p;
  add_center_writing_weights(p, m);
  p.run();
}

void center_unembed(Model& m) {
  WorkPlan p;
  add_center_unembed(p, m);
  p.run();
}

void fold_value_biases(Model& m) {
  WorkPlan p;
  add_fold_value_biases(p, m);
  p.run();
}

void process_weights(Model& m, const ProcessOptions& opt) { WeightProcessing(m, opt).run(); }

WeightProcessing::WeightProcessing(Model& m, const ProcessOptions& opt) {
  const ModelConfig& c = m.config();
  if (opt.fold_ln && c.normalization == Norm::LN && c.positional != PosEmbed::Shortformer)
    add_fold_ln(*this, m, std::make_shared<LayerNormWeights>(), true);
  // LN and LNPre both normalize: fold_ln does not change whether this applies.
  if (opt.center_writing_weights && c.normalizes()) add_center_writing_weights(*this, m);
  if (opt.center_unembed) add_center_unembed(*this, m);
  if (opt.fold_value_biases) add_fold_value_biases(*this, m);
}

WeightProcessing::WeightProcessing(Model& m, const ProcessOptions& opt, LayerNormWeights ln) {
  const ModelConfig& c = m.config();
  if (!opt.fold_ln) throw Error("weight processing: LayerNorm weights given but fold_ln is off");
  if (c.normalization != Norm::LNPre)
    throw Error(std::string("weight processing: LayerNorm weights given for a model with normalization ") +
                to_string(c.normalization) + " (expected LNPre)");
  check_fold_ln(c);
  auto fits = [&](const Vec& v) { return v.size() == c.d_model; };
  bool ok = int(ln.ln1_w.size()) == c.n_layers && int(ln.ln1_b.size()) == c.n_layers && fits(ln.ln_final_w) &&
            fits(ln.ln_final_b);
  for (size_t l = 0; ok && l < ln.ln1_w.size(); ++l) ok = fits(ln.ln1_w[l]) && fits(ln.ln1_b[l]);
  if (!ok)
    throw Error("weight processing: LayerNorm weights do not fit the model (need " + std::to_string(c.n_layers) +
                " layers of ln1.w, ln1.b and ln_final.w, ln_final.b, each of d_model = " +
                std::to_string(c.d_model) + ")");
  add_fold_ln(*this, m, std::make_shared<LayerNormWeights>(std::move(ln)), false);
  if (opt.center_writing_weights) add_center_writing_weights(*this, m);
  if (opt.center_unembed) add_center_unembed(*this, m);
  if (opt.fold_value_biases) add_fold_value_biases(*this, m);
}

}  // namespace cs
