// The direct path (zero-layer circuit) as a bigram table, computed on demand
// (direct_path.h). TransformerLens convention, row vectors:
//   bigram_logits[s, :] = norm_final(W_E[s]) W_U + b_U   ([d_vocab, d_vocab_out])
// The full table (d_vocab x d_vocab_out, e.g. 48262^2 floats = 9 GB) is never formed:
// it is the factored matrix direct_path_matrix (core/vocab_matrix.h), whose row
// is one GEMV with W_U and whose column is one pass over W_E against one column
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
#include "core/vocab_matrix.h"

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

// W_U columns per block of the softmax pass of BigramTopSources.
constexpr Eigen::Index kRowBlock = 2048;

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
  return direct_path_matrix(m).row(source);
}

Vec bigram_column(const Model& m, int next) {
  check_next(m.config(), next, "bigram_column");
  return direct_path_matrix(m).column(next);
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

BigramTopNext::BigramTopNext(const Model& m, int source, int k) : source_(source), k_(k) {
  check_source(m.config(), source, "bigram_top_next");
  add_row_units(*this, direct_path_matrix(m), source, row_, "bigram row");
  add("top k", double(m.config().vocab_out()), [this] {
    const float lse = log_sum_exp(row_);
    for (const IdValue& t : top_k_of(row_, k_)) result_.push_back(Ranked{t.id, t.value, std::exp(t.value - lse)});
    row_ = Vec();
  });
}

const std::vector<Ranked>& BigramTopNext::result() const {
  if (!done()) throw Error("bigram_top_next: result() before the computation finished");
  return result_;
}

BigramTopSources::BigramTopSources(const Model& m, int next, int k, std::shared_ptr<const RowStats> embed_stats)
    : m_(m), next_(next), k_(k) {
  const ModelConfig& c = m.config();
  check_next(c, next, "bigram_top_sources");
  const Eigen::Index Vin = c.d_vocab, V = c.vocab_out(), D = c.d_model;
  k_ = std::clamp(k, 0, c.d_vocab);
  add_column_units(*this, direct_path_matrix(m, std::move(embed_stats)), next, col_, "bigram column");
  if (k_ == 0) return;
  add("top k", double(Vin), [this] {
    for (const IdValue& t : top_k_of(col_, k_)) top_.push_back(t.id);
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
  for (int r : rows) check_source(c, r, "bigram_block");
  for (int o : cols) check_next(c, o, "bigram_block");
  return direct_path_matrix(m).block(rows, cols);
}

}  // namespace cs
