// Forward pass of the attention-only transformer (forward.h), TransformerLens
// convention: the residual stream is a stack of row vectors x [T, d_model] and
// every weight multiplies on the right (x @ W).
//
// Cost is dominated by products, all done as Eigen GEMMs: per head q, k, v
// ([T, d_model] @ [d_model, d_head]), the scores (lower triangle only) and
// A v (triangular product), the heads' outputs (one [T, n_heads*d_head] @
// [n_heads*d_head, d_model] GEMM when no per-head cache is wanted) and the
// unembedding (one [T, d_model] @ [d_model, d_vocab_out] GEMM).
#include "core/forward.h"

#include <cmath>
#include <limits>
#include <string>

#include "core/error.h"

namespace cs {

void normalize_rows(const Model& m, RowMat& x, int layer) {
  const ModelConfig& c = m.config();
  if (!c.normalizes()) return;
  const Eigen::Index D = x.cols();
  // Centre each row, then divide by its RMS: sqrt(mean(x_centered^2) + eps).
  const Eigen::VectorXf mean = x.rowwise().sum() / float(D);
  x.colwise() -= mean;
  const Eigen::ArrayXf inv_scale = (x.rowwise().squaredNorm().array() / float(D) + c.eps).rsqrt();
  x.array().colwise() *= inv_scale;
  if (c.has_ln_weights()) {
    const ConstVecMap w = layer >= 0 ? m.ln1_w(layer) : m.ln_final_w();
    const ConstVecMap b = layer >= 0 ? m.ln1_b(layer) : m.ln_final_b();
    x.array().rowwise() *= w.transpose().array();
    x.rowwise() += b.transpose();
  }
}

namespace {

void check_tokens(const Model& m, std::span<const int> tokens) {
  const ModelConfig& c = m.config();
  if (m.tensors().empty()) throw Error("forward: the model has no tensors (none loaded)");
  if (tokens.empty()) throw Error("forward: tokens is empty");
  if (c.has_pos() && tokens.size() > size_t(c.n_ctx))
    throw Error("forward: tokens has " + std::to_string(tokens.size()) + " positions, more than n_ctx " +
                std::to_string(c.n_ctx));
  for (size_t t = 0; t < tokens.size(); ++t)
    if (tokens[t] < 0 || tokens[t] >= c.d_vocab)
      throw Error("forward: tokens[" + std::to_string(t) + "] = " + std::to_string(tokens[t]) +
                  " is outside [0, d_vocab = " + std::to_string(c.d_vocab) + ")");
}

// In place: A <- softmax over each row's causal part (columns 0..i of row i);
// columns above the diagonal become exactly 0. Only the lower triangle of A
// is read.
void causal_softmax(RowMat& A) {
  const Eigen::Index T = A.rows();
  for (Eigen::Index i = 0; i < T; ++i) {
    auto row = A.row(i);
    auto live = row.head(i + 1);
    const float mx = live.maxCoeff();
    live = (live.array() - mx).exp();
    live /= live.sum();
    if (i + 1 < T) row.tail(T - i - 1).setZero();
  }
}

}  // namespace

ForwardResult forward(const Model& m, std::span<const int> tokens, const ForwardOptions& opt) {
  const ModelConfig& c = m.config();
  check_tokens(m, tokens);
  const Eigen::Index T = Eigen::Index(tokens.size());
  const int D = c.d_model, H = c.n_heads, Dh = c.d_head, L = c.n_layers;
  const float inv_scale = 1.f / c.scale();

  ForwardResult res;
  ForwardCache& cache = res.cache;
  if (opt.keep_cache) {
    cache.resid.reserve(size_t(L) + 1);
    cache.pattern.reserve(size_t(L) * H);
    cache.head_out.reserve(size_t(L) * H);
  }

  // x0 = W_E[tokens] (+ W_pos[0..T) for Standard positions): [T, d_model].
  const ConstMatMap W_E = m.W_E();
  RowMat x(T, D);
  for (Eigen::Index t = 0; t < T; ++t) x.row(t) = W_E.row(tokens[size_t(t)]);
  if (c.positional == PosEmbed::Standard) x += m.W_pos().topRows(T);
  if (opt.keep_cache) cache.resid.push_back(x);

  RowMat y(T, D), qk_in;      // normalized stream; Shortformer's q/k input
  RowMat q(T, Dh), k(T, Dh), v(T, Dh);  // one head's queries, keys, values: [T, d_head]
  RowMat A(T, T);                        // attention pattern [T(query), T(key)]
  RowMat z(T, Eigen::Index(H) * Dh);     // every head's A v side by side: [T, n_heads * d_head]

  for (int l = 0; l < L; ++l) {
    y = x;
    normalize_rows(m, y, l);
    const RowMat* qk_src = &y;
    if (c.positional == PosEmbed::Shortformer) {
      qk_in = y + m.W_pos().topRows(T);  // positions reach Q and K only
      qk_src = &qk_in;
    }
    for (int h = 0; h < H; ++h) {
      // [T, d_model] @ W_Q[h] [d_model, d_head] + b_Q[h] (a row vector per position)
      q.noalias() = *qk_src * m.W_Q(l, h);
      q.rowwise() += m.b_Q(l, h).transpose();
      q *= inv_scale;  // scores = q k^T / attn_scale
      k.noalias() = *qk_src * m.W_K(l, h);
      k.rowwise() += m.b_K(l, h).transpose();
      v.noalias() = y * m.W_V(l, h);
      v.rowwise() += m.b_V(l, h).transpose();
      // Only the causal (lower) triangle of the scores is computed and used.
      A.triangularView<Eigen::Lower>() = q * k.transpose();
      causal_softmax(A);
      z.middleCols(Eigen::Index(h) * Dh, Dh).noalias() = A.triangularView<Eigen::Lower>() * v;
      if (opt.keep_cache) cache.pattern.push_back(A);
    }
    // W_O is [n_heads, d_head, d_model] contiguous: as a matrix it is
    // [n_heads * d_head, d_model], so sum_h z_h W_O[h] = z W_O in one GEMM.
    if (opt.keep_cache) {
      for (int h = 0; h < H; ++h) {
        RowMat out = z.middleCols(Eigen::Index(h) * Dh, Dh) * m.W_O(l, h);
        x += out;
        cache.head_out.push_back(std::move(out));
      }
    } else {
      const ConstMatMap W_O_all(m.W_O(l, 0).data(), Eigen::Index(H) * Dh, D);
      x.noalias() += z * W_O_all;
    }
    x.rowwise() += m.b_O(l).transpose();
    if (opt.keep_cache) cache.resid.push_back(x);
  }

  if (!opt.logits) return res;  // attention patterns only: no unembedding
  // logits = norm_final(x_L) W_U + b_U: [T, d_vocab_out].
  normalize_rows(m, x, -1);
  res.logits.resize(T, c.vocab_out());
  res.logits.noalias() = x * m.W_U();
  res.logits.rowwise() += m.b_U().transpose();
  return res;
}

namespace {

// log sum_j exp(row_j), numerically stable.
float log_sum_exp(const Eigen::Ref<const Eigen::RowVectorXf>& row) {
  const float mx = row.maxCoeff();
  if (!std::isfinite(mx)) return mx;
  return mx + std::log((row.array() - mx).exp().sum());
}

}  // namespace

std::vector<float> token_losses(const RowMat& logits, std::span<const int> tokens) {
  if (size_t(logits.rows()) != tokens.size())
    throw Error("token_losses: logits has " + std::to_string(logits.rows()) + " rows but tokens has " +
                std::to_string(tokens.size()) + " entries");
  std::vector<float> out;
  if (tokens.size() < 2) return out;
  out.reserve(tokens.size() - 1);
  for (size_t t = 0; t + 1 < tokens.size(); ++t) {
    const int next = tokens[t + 1];
    if (next < 0 || next >= logits.cols())
      throw Error("token_losses: tokens[" + std::to_string(t + 1) + "] = " + std::to_string(next) +
                  " is outside [0, " + std::to_string(logits.cols()) + ")");
    const auto row = logits.row(Eigen::Index(t));
    out.push_back(log_sum_exp(row) - row(next));
  }
  return out;
}

float mean_loss(const RowMat& logits, std::span<const int> tokens) {
  const std::vector<float> l = token_losses(logits, tokens);
  if (l.empty()) return std::numeric_limits<float>::quiet_NaN();
  double s = 0;
  for (float v : l) s += v;
  return float(s / double(l.size()));
}

RowMat log_softmax_rows(const RowMat& logits) {
  RowMat out(logits.rows(), logits.cols());
  for (Eigen::Index i = 0; i < logits.rows(); ++i) {
    const auto row = logits.row(i);
    out.row(i) = row.array() - log_sum_exp(row);
  }
  return out;
}

}  // namespace cs
