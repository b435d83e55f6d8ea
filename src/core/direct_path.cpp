// The direct path (zero-layer circuit) as a bigram table, computed on demand
// (direct_path.h). TransformerLens convention, row vectors:
//   bigram_logits[s, :] = norm_final(W_E[s]) W_U + b_U   ([d_vocab, d_vocab_out])
// The full table (d_vocab x d_vocab_out, e.g. 48262^2 floats = 9 GB) is never formed:
// a row is one GEMV with W_U, a column is W_E (normalized in chunks) times one
// column of W_U.
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
  // Normalize W_E in chunks of rows so no d_vocab x d_model copy is made.
  constexpr Eigen::Index kChunk = 2048;
  RowMat chunk;
  for (Eigen::Index r0 = 0; r0 < c.d_vocab; r0 += kChunk) {
    const Eigen::Index n = std::min<Eigen::Index>(kChunk, c.d_vocab - r0);
    if (c.normalizes()) {
      chunk = W_E.middleRows(r0, n);
      normalize_rows(m, chunk, -1);
      out.segment(r0, n).noalias() = chunk * u;
    } else {
      out.segment(r0, n).noalias() = W_E.middleRows(r0, n) * u;
    }
  }
  out.array() += b;
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
  std::vector<Ranked> out;
  for (int s : top_k_indices(col, k)) {
    // p(next | s) needs the whole row of s: one GEMV per listed source.
    const Vec row = bigram_row(m, s);
    out.push_back(Ranked{s, col[s], std::exp(row[next] - log_sum_exp(row))});
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
