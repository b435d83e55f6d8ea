// The direct path (zero-layer circuit) as a bigram table, computed on demand
// (direct_path.h). TransformerLens convention, row vectors:
//   bigram_logits[s, :] = norm_final(W_E[s]) W_U + b_U   ([d_vocab, d_vocab_out])
// The full table (d_vocab x d_vocab_out, e.g. 48262^2 floats = 9 GB) is never formed:
// a row is one GEMV with W_U, a column is one pass over W_E against one column
// of W_U (the normalization folded in algebraically). Both are done in fixed
// blocks, so the sliced versions (BigramTopNext, BigramTopSources) give the
// same floats as the one-shot functions, which run them to the end.
#include "core/direct_path.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
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

// Rows of W_E per chunk of a column: 256 rows (512 KB at d_model 512) keep
// each slice in cache between the product and the squared norms.
constexpr Eigen::Index kColumnChunk = 256;
// W_U columns per block of a row.
constexpr Eigen::Index kRowBlock = 2048;

// What a column needs besides W_E (see column_chunk).
struct ColumnPrep {
  bool normalizes = false;
  Vec u;                                        // W_U[:, next]: [d_model]
  Eigen::Matrix<float, Eigen::Dynamic, 2> A;    // [d_model, 2]: a = w o u (u for LNPre), ones
  float bias = 0.f;                             // b_U[next] (+ ln_final.b . u)
  float sum_a = 0.f;
  float inv_d = 0.f;
  float eps = 0.f;
};

ColumnPrep column_prep(const Model& m, int next) {
  const ModelConfig& c = m.config();
  ColumnPrep p;
  p.normalizes = c.normalizes();
  p.u = m.W_U().col(next);
  p.bias = m.b_U()[next];
  if (!p.normalizes) return p;
  // With x a row of W_E, mu its mean, rho = 1 / sqrt(mean((x - mu)^2) + eps):
  //   ln(x) . u = rho * (x - mu) . (w o u) + ln_b . u
  //             = rho * (x . a - mu * sum(a)) + ln_b . u,   a = w o u (a = u for LNPre)
  // so one pass over W_E gives x . a, sum(x) and |x|^2 per row, without
  // forming the normalized rows.
  p.A.resize(c.d_model, 2);
  if (c.has_ln_weights()) {
    p.A.col(0) = m.ln_final_w().cwiseProduct(p.u);
    p.bias += m.ln_final_b().dot(p.u);
  } else {
    p.A.col(0) = p.u;
  }
  p.A.col(1).setOnes();
  p.sum_a = p.A.col(0).sum();
  p.inv_d = 1.f / float(c.d_model);
  p.eps = c.eps;
  return p;
}

// Column entries for W_E rows [r0, r0 + n), n <= kColumnChunk, into out.segment(r0, n).
void column_chunk(const Model& m, const ColumnPrep& p, Eigen::Index r0, Eigen::Index n, Vec& out) {
  const auto rows = m.W_E().middleRows(r0, n);
  if (!p.normalizes) {
    out.segment(r0, n).noalias() = rows * p.u;
    out.segment(r0, n).array() += p.bias;
    return;
  }
  const Eigen::Matrix<float, Eigen::Dynamic, 2> S = rows * p.A;  // [n, 2]: x . a, sum(x)
  const Eigen::VectorXf sq = rows.rowwise().squaredNorm();       // [n]: |x|^2
  const auto mu = S.col(1).array() * p.inv_d;
  // mean((x - mu)^2) = |x|^2 / d - mu^2 (clamped: rounding can make it slightly negative)
  const auto var = (sq.array() * p.inv_d - mu.square()).max(0.f);
  out.segment(r0, n).array() = (var + p.eps).rsqrt() * (S.col(0).array() - mu * p.sum_a) + p.bias;
}

// Row entries for W_U columns [j0, j0 + n): out.segment(j0, n) = xn W_U[:, j0:j0+n] + b_U[j0:j0+n].
void row_block(const Model& m, const Vec& xn, Eigen::Index j0, Eigen::Index n, Vec& out) {
  out.segment(j0, n) = m.b_U().segment(j0, n);
  out.segment(j0, n).noalias() += m.W_U().middleCols(j0, n).transpose() * xn;
}

// X W_U[:, j0:j0+n] + b_U[j0:j0+n] for a few rows X [k, d_model] -> [k, n]. A
// GEMM would first pack (copy) the block of W_U; here it is streamed once,
// with the k output segments in cache across the d_model rows of the block.
void few_rows_times_W_U_block(const Model& m, const RowMat& X, Eigen::Index j0, Eigen::Index n, RowMat& out) {
  const ConstMatMap W_U = m.W_U();
  const Eigen::Index k = X.rows(), D = W_U.rows();
  out.resize(k, n);
  out.rowwise() = m.b_U().segment(j0, n).transpose();
  Eigen::Index d = 0;
  // Four W_U rows per update: one load/store of the output segment per four products.
  for (; d + 4 <= D; d += 4) {
    const auto w0 = W_U.row(d).segment(j0, n), w1 = W_U.row(d + 1).segment(j0, n);
    const auto w2 = W_U.row(d + 2).segment(j0, n), w3 = W_U.row(d + 3).segment(j0, n);
    for (Eigen::Index i = 0; i < k; ++i)
      out.row(i) += X(i, d) * w0 + X(i, d + 1) * w1 + X(i, d + 2) * w2 + X(i, d + 3) * w3;
  }
  for (; d < D; ++d)
    for (Eigen::Index i = 0; i < k; ++i) out.row(i) += X(i, d) * W_U.row(d).segment(j0, n);
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
  const Eigen::Index V = m.config().vocab_out();
  Vec out(V);
  for (Eigen::Index j0 = 0; j0 < V; j0 += kRowBlock) row_block(m, xn, j0, std::min(kRowBlock, V - j0), out);
  return out;
}

Vec bigram_column(const Model& m, int next) {
  const ModelConfig& c = m.config();
  check_next(c, next, "bigram_column");
  const ColumnPrep p = column_prep(m, next);
  Vec out(c.d_vocab);
  for (Eigen::Index r0 = 0; r0 < c.d_vocab; r0 += kColumnChunk)
    column_chunk(m, p, r0, std::min<Eigen::Index>(kColumnChunk, c.d_vocab - r0), out);
  return out;
}

std::vector<Ranked> bigram_top_next(const Model& m, int source, int k) {
  BigramTopNext q(m, source, k);
  q.run();
  return q.result();
}

std::vector<Ranked> bigram_top_sources(const Model& m, int next, int k) {
  BigramTopSources q(m, next, k);
  q.run();
  return q.result();
}

// ---- sliced versions -------------------------------------------------------------

BigramTopNext::BigramTopNext(const Model& m, int source, int k) : m_(m), source_(source), k_(k) {
  check_source(m.config(), source, "bigram_top_next");
  const Eigen::Index V = m.config().vocab_out(), D = m.config().d_model;
  xn_ = normalize_final(m, m.W_E().row(source).transpose());
  row_.resize(V);
  for (Eigen::Index j0 = 0; j0 < V; j0 += kRowBlock) {
    const Eigen::Index n = std::min(kRowBlock, V - j0);
    add("bigram row", double(n * D), [this, j0, n] { row_block(m_, xn_, j0, n, row_); });
  }
  add("top k", double(V), [this] {
    const float lse = log_sum_exp(row_);
    for (int id : top_k_indices(row_, k_)) result_.push_back(Ranked{id, row_[id], std::exp(row_[id] - lse)});
    row_ = Vec();
  });
}

const std::vector<Ranked>& BigramTopNext::result() const {
  if (!done()) throw Error("bigram_top_next: result() before the computation finished");
  return result_;
}

BigramTopSources::BigramTopSources(const Model& m, int next, int k) : m_(m), next_(next), k_(k) {
  const ModelConfig& c = m.config();
  check_next(c, next, "bigram_top_sources");
  const Eigen::Index Vin = c.d_vocab, V = c.vocab_out(), D = c.d_model;
  k_ = std::clamp(k, 0, c.d_vocab);
  auto prep = std::make_shared<const ColumnPrep>(column_prep(m, next));
  col_.resize(Vin);
  // Whole chunks of kColumnChunk rows per unit, about kSliceFloats floats of W_E.
  const Eigen::Index chunks_per_unit = std::max<Eigen::Index>(1, Eigen::Index(kSliceFloats) / (kColumnChunk * D));
  for (Eigen::Index u0 = 0; u0 < Vin; u0 += chunks_per_unit * kColumnChunk) {
    const Eigen::Index u1 = std::min(Vin, u0 + chunks_per_unit * kColumnChunk);
    add("bigram column", double((u1 - u0) * D), [this, prep, u0, u1] {
      for (Eigen::Index r0 = u0; r0 < u1; r0 += kColumnChunk)
        column_chunk(m_, *prep, r0, std::min(kColumnChunk, u1 - r0), col_);
    });
  }
  if (k_ == 0) return;
  add("top k", double(Vin), [this] {
    top_ = top_k_indices(col_, k_);
    // p(next | s) needs the whole row of every listed source: their normalized
    // rows [k, d_model] times W_U, block by block, so W_U is streamed once.
    const ConstMatMap W_E = m_.W_E();
    X_.resize(Eigen::Index(top_.size()), m_.config().d_model);
    for (size_t i = 0; i < top_.size(); ++i) X_.row(Eigen::Index(i)) = W_E.row(top_[i]);
    normalize_rows(m_, X_, -1);
    max_.assign(top_.size(), -std::numeric_limits<double>::infinity());
    sum_.assign(top_.size(), 0.0);
    at_next_.assign(top_.size(), 0.f);
  });
  // Blocks small enough that the k output segments stay in cache.
  const Eigen::Index block = k_ <= 16 ? kRowBlock : std::max<Eigen::Index>(256, (kRowBlock * 16 / k_) / 256 * 256);
  for (Eigen::Index j0 = 0; j0 < V; j0 += block) {
    const Eigen::Index n = std::min(block, V - j0);
    add("p(next | source)", double(n * D * k_), [this, j0, n] {
      RowMat out;
      few_rows_times_W_U_block(m_, X_, j0, n, out);
      const bool has_next = next_ >= j0 && next_ < j0 + n;
      for (Eigen::Index i = 0; i < out.rows(); ++i) {
        const auto v = out.row(i).array();
        if (has_next) at_next_[size_t(i)] = v[next_ - j0];
        // Running log-sum-exp: max_ and sum of exp(x - max_) over the blocks so far.
        const float mb = v.maxCoeff();
        double& mx = max_[size_t(i)];
        double& sm = sum_[size_t(i)];
        if (mb == -std::numeric_limits<float>::infinity()) continue;  // adds nothing
        if (double(mb) > mx) {
          sm = sm * std::exp(mx - double(mb)) + double((v - mb).exp().sum());
          mx = double(mb);
        } else {
          sm += double((v - float(mx)).exp().sum());
        }
      }
    });
  }
  add("p(next | source)", double(k_), [this] {
    for (size_t i = 0; i < top_.size(); ++i) {
      const double lse = std::isfinite(max_[i]) ? max_[i] + std::log(sum_[i]) : max_[i];
      result_.push_back(Ranked{top_[i], col_[top_[i]], float(std::exp(double(at_next_[i]) - lse))});
    }
    X_ = RowMat();
  });
}

const std::vector<Ranked>& BigramTopSources::result() const {
  if (!done()) throw Error("bigram_top_sources: result() before the computation finished");
  return result_;
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
