// The direct path (zero-layer circuit) as a bigram table, computed on demand
// (direct_path.h). TransformerLens convention, row vectors:
//   bigram_logits[s, :] = norm_final(W_E[s]) W_U + b_U   ([d_vocab, d_vocab_out])
// The full table (d_vocab x d_vocab_out, e.g. 48262^2 floats = 9 GB) is never formed:
// a row is one GEMV with W_U, a column is one pass over W_E against one column
// of W_U (the normalization folded in algebraically).
#include "core/direct_path.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "core/error.h"
#include "core/forward.h"

namespace cs {

namespace {

void check_source(const ModelConfig& c, int source, const char* fn) {
  if (source < 0 || source >= c.d_vocab)
    throw Error(std::string(fn) + ": source token " + std::to_string(source) + " is outside [0, d_vocab = " +
                std::to_string(c.d_vocab) + ")");
}

void check_next(const ModelConfig& c, int next, const char* fn) {
  if (next < 0 || next >= c.vocab_out())
    throw Error(std::string(fn) + ": next token " + std::to_string(next) + " is outside [0, d_vocab_out = " +
                std::to_string(c.vocab_out()) + ")");
}

float log_sum_exp(const Vec& v) {
  const float mx = v.maxCoeff();
  if (!std::isfinite(mx)) return mx;
  return mx + std::log((v.array() - mx).exp().sum());
}

// Indices of the k largest entries of v, by value descending (ties: smaller id first).
std::vector<int> top_k_indices(const Vec& v, int k) {
  const int n = int(v.size());
  k = std::clamp(k, 0, n);
  std::vector<int> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  auto before = [&](int a, int b) { return v[a] > v[b] || (v[a] == v[b] && a < b); };
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), before);
  idx.resize(size_t(k));
  return idx;
}

// X W_U + b_U for a few rows X [k, d_model] -> [k, d_vocab_out]. A GEMM would
// first pack (copy) all of W_U; here W_U is streamed once, in column blocks
// small enough that the k output segments stay in cache across the d_model
// rows of the block.
RowMat few_rows_times_W_U(const Model& m, const RowMat& X) {
  const ConstMatMap W_U = m.W_U();
  const Eigen::Index k = X.rows(), D = W_U.rows(), V = W_U.cols();
  RowMat out(k, V);
  out.rowwise() = m.b_U().transpose();
  constexpr Eigen::Index kBlock = 2048;
  for (Eigen::Index j0 = 0; j0 < V; j0 += kBlock) {
    const Eigen::Index n = std::min(kBlock, V - j0);
    Eigen::Index d = 0;
    // Four W_U rows per update: one load/store of the output segment per four products.
    for (; d + 4 <= D; d += 4) {
      const auto w0 = W_U.row(d).segment(j0, n), w1 = W_U.row(d + 1).segment(j0, n);
      const auto w2 = W_U.row(d + 2).segment(j0, n), w3 = W_U.row(d + 3).segment(j0, n);
      for (Eigen::Index i = 0; i < k; ++i)
        out.row(i).segment(j0, n) += X(i, d) * w0 + X(i, d + 1) * w1 + X(i, d + 2) * w2 + X(i, d + 3) * w3;
    }
    for (; d < D; ++d)
      for (Eigen::Index i = 0; i < k; ++i) out.row(i).segment(j0, n) += X(i, d) * W_U.row(d).segment(j0, n);
  }
  return out;
}

}  // namespace

Vec normalize_final(const Model& m, const Vec& x) {
  if (x.size() != m.config().d_model)
    throw Error("normalize_final: vector has " + std::to_string(x.size()) + " entries, expected d_model = " +
                std::to_string(m.config().d_model));
  RowMat r = x.transpose();
  normalize_rows(m, r, -1);
  return r.row(0).transpose();
}

Vec bigram_row(const Model& m, int source) {
  check_source(m.config(), source, "bigram_row");
  const Vec xn = normalize_final(m, m.W_E().row(source).transpose());
  // (xn^T W_U)^T = W_U^T xn: [d_vocab_out]
  Vec out = m.b_U();
  out.noalias() += m.W_U().transpose() * xn;
  return out;
}

Vec bigram_column(const Model& m, int next) {
  const ModelConfig& c = m.config();
  check_next(c, next, "bigram_column");
  const ConstMatMap W_E = m.W_E();
  const Vec u = m.W_U().col(next);  // [d_model]
  const float b = m.b_U()[next];
  Vec out(c.d_vocab);
  if (!c.normalizes()) {
    out.noalias() = W_E * u;
    out.array() += b;
    return out;
  }
  // With x a row of W_E, mu its mean, rho = 1 / sqrt(mean((x - mu)^2) + eps):
  //   ln(x) . u = rho * (x - mu) . (w o u) + ln_b . u
  //             = rho * (x . a - mu * sum(a)) + ln_b . u,   a = w o u (a = u for LNPre)
  // so one pass over W_E gives x . a, sum(x) and |x|^2 per row, without
  // forming the normalized rows. Chunks of rows keep each slice in cache
  // between the product and the squared norms.
  Eigen::Matrix<float, Eigen::Dynamic, 2> A(c.d_model, 2);
  float bias = b;
  if (c.has_ln_weights()) {
    A.col(0) = m.ln_final_w().cwiseProduct(u);
    bias += m.ln_final_b().dot(u);
  } else {
    A.col(0) = u;
  }
  A.col(1).setOnes();
  const float sum_a = A.col(0).sum();
  const float inv_d = 1.f / float(c.d_model);
  constexpr Eigen::Index kChunk = 256;  // 512 KB at d_model 512
  Eigen::Matrix<float, Eigen::Dynamic, 2> S;
  Eigen::VectorXf sq;
  for (Eigen::Index r0 = 0; r0 < c.d_vocab; r0 += kChunk) {
    const Eigen::Index n = std::min<Eigen::Index>(kChunk, c.d_vocab - r0);
    const auto rows = W_E.middleRows(r0, n);
    S.noalias() = rows * A;                 // [n, 2]: x . a, sum(x)
    sq = rows.rowwise().squaredNorm();      // [n]: |x|^2
    const auto mu = S.col(1).array() * inv_d;
    // mean((x - mu)^2) = |x|^2 / d - mu^2 (clamped: rounding can make it slightly negative)
    const auto var = (sq.array() * inv_d - mu.square()).max(0.f);
    out.segment(r0, n).array() = (var + c.eps).rsqrt() * (S.col(0).array() - mu * sum_a) + bias;
  }
  return out;
}

std::vector<Ranked> bigram_top_next(const Model& m, int source, int k) {
  const Vec row = bigram_row(m, source);
  const float lse = log_sum_exp(row);
  std::vector<Ranked> out;
  for (int id : top_k_indices(row, k)) out.push_back(Ranked{id, row[id], std::exp(row[id] - lse)});
  return out;
}

std::vector<Ranked> bigram_top_sources(const Model& m, int next, int k) {
  const Vec col = bigram_column(m, next);
  const std::vector<int> top = top_k_indices(col, k);
  std::vector<Ranked> out;
  if (top.empty()) return out;
  // p(next | s) needs the whole row of every listed source: their rows as one
  // [k, d_model] @ [d_model, d_vocab_out] GEMM, so W_U is streamed once.
  const ConstMatMap W_E = m.W_E();
  RowMat X(Eigen::Index(top.size()), m.config().d_model);
  for (size_t i = 0; i < top.size(); ++i) X.row(Eigen::Index(i)) = W_E.row(top[i]);
  normalize_rows(m, X, -1);
  const RowMat rows = few_rows_times_W_U(m, X);
  for (size_t i = 0; i < top.size(); ++i) {
    const Vec row = rows.row(Eigen::Index(i)).transpose();
    out.push_back(Ranked{top[i], col[top[i]], std::exp(row[next] - log_sum_exp(row))});
  }
  return out;
}

RowMat bigram_block(const Model& m, std::span<const int> rows, std::span<const int> cols) {
  const ModelConfig& c = m.config();
  const Eigen::Index R = Eigen::Index(rows.size()), C = Eigen::Index(cols.size());
  const ConstMatMap W_E = m.W_E();
  const ConstMatMap W_U = m.W_U();
  RowMat X(R, c.d_model);  // normalized W_E rows: [rows, d_model]
  for (Eigen::Index i = 0; i < R; ++i) {
    check_source(c, rows[size_t(i)], "bigram_block");
    X.row(i) = W_E.row(rows[size_t(i)]);
  }
  normalize_rows(m, X, -1);
  RowMat U(c.d_model, C);  // the chosen columns of W_U: [d_model, cols]
  Eigen::RowVectorXf b(C);
  for (Eigen::Index j = 0; j < C; ++j) {
    check_next(c, cols[size_t(j)], "bigram_block");
    U.col(j) = W_U.col(cols[size_t(j)]);
    b[j] = m.b_U()[cols[size_t(j)]];
  }
  RowMat out = X * U;
  out.rowwise() += b;
  return out;
}

}  // namespace cs
