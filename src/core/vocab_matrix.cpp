// Factored vocab x vocab matrices (vocab_matrix.h). TransformerLens convention,
// row vectors: M = norm_a(A) P1 P2 norm_b(B)^T + row_bias 1^T + 1 col_bias^T.
//
// Rows and columns: one small vector (norm_a(A_i) P1 P2, or P1 P2 norm_b(B_j)^T)
// dotted with every normalized row of the other side, in fixed blocks. The
// normalization is folded in algebraically, so normalized rows are never
// formed for a row or column query: with x a base row, mu its mean,
// rho = 1 / sqrt(mean((x - mu)^2) + eps), w / b the LN weights,
//   norm(x) . v = rho * (x . a - mu * sum(a)) + b . v,   a = w o v (a = v for LNPre)
// so one pass over the base rows gives x . a, sum(x) and |x|^2 per row.
//
// Full scans: the left factor norm_a(A) P1 per chunk of rows, the right factor
// norm_b(B) P2^T materialised once (or B in place), then block GEMMs with a
// running threshold selection.
#include "core/vocab_matrix.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <numeric>
#include <string>

#include "core/error.h"
#include "core/forward.h"
#include "core/kernels.h"

namespace cs {

namespace {


// Rows of a side per chunk of a column query (and per block of a row query's
// dot products): 256 rows keep each slice in cache between the product and
// the squared norms.
constexpr Eigen::Index kChunk = 256;

std::string range_msg(const std::string& name, const char* what, long long v, const char* bound_name, long long bound) {
  return name + ": " + what + " " + std::to_string(v) + " is outside [0, " + bound_name + " = " +
         std::to_string(bound) + ")";
}

bool side_normalizes(const Model& m, const VocabSide& s) { return s.norm != kNoNorm && m.config().normalizes(); }

// Normalized rows [r0, r0 + n) of a side: [n, d].
RowMat side_rows(const Model& m, const VocabSide& s, Eigen::Index r0, Eigen::Index n) {
  RowMat X;
  if (s.stored_transposed)
    X = s.base().middleCols(r0, n).transpose();
  else
    X = s.base().middleRows(r0, n);
  if (side_normalizes(m, s)) normalize_rows(m, X, s.norm);
  return X;
}

// Normalized rows idx of a side: [idx.size(), d].
RowMat side_rows(const Model& m, const VocabSide& s, std::span<const int> idx) {
  RowMat X(Eigen::Index(idx.size()), s.d());
  for (size_t i = 0; i < idx.size(); ++i)
    if (s.stored_transposed)
      X.row(Eigen::Index(i)) = s.base().col(idx[i]).transpose();
    else
      X.row(Eigen::Index(i)) = s.base().row(idx[i]);
  if (side_normalizes(m, s)) normalize_rows(m, X, s.norm);
  return X;
}

// What a pass "every normalized row of a side . v" needs besides the side.
struct DotPrep {
  bool normalizes = false;
  Vec v;             // [d]
  Vec a;             // [d]: w o v (v for LNPre)
  float bias = 0.f;  // the constant added to every entry (+ ln_b . v)
  float sum_a = 0.f, eps = 0.f;
};

DotPrep dot_prep(const Model& m, const VocabSide& s, Vec v, float bias) {
  const ModelConfig& c = m.config();
  DotPrep p;
  p.normalizes = side_normalizes(m, s);
  p.v = std::move(v);
  p.bias = bias;
  if (!p.normalizes) return p;
  if (c.has_ln_weights()) {
    const ConstVecMap w = s.norm >= 0 ? m.ln1_w(s.norm) : m.ln_final_w();
    const ConstVecMap b = s.norm >= 0 ? m.ln1_b(s.norm) : m.ln_final_b();
    p.a = w.cwiseProduct(p.v);
    p.bias += b.dot(p.v);
  } else {
    p.a = p.v;
  }
  p.sum_a = p.a.sum();
  p.eps = c.eps;
  return p;
}

// out[0, n) = (side rows r0..r0+n as stored) . v: one pass over the rows
// (kernels.h: SIMD128 in wasm).
void base_dot(const VocabSide& s, Eigen::Index r0, Eigen::Index n, const float* v, float* out) {
  if (s.stored_transposed)  // rows are columns r0.. of base [d, stored_cols]
    kernels::gemv_t(s.data + r0, s.stored_rows, n, s.stored_cols, v, out);
  else
    kernels::gemv(s.data + r0 * s.stored_cols, n, s.stored_cols, s.stored_cols, v, out);
}

// mean and var [n] of side rows r0..r0+n as stored (kernels.h: two passes,
// centred, as normalize_rows computes them).
void side_row_stats(const VocabSide& s, Eigen::Index r0, Eigen::Index n, float* mean, float* var) {
  if (s.stored_transposed)  // rows of the side are columns of base [d, stored_cols]
    kernels::col_mean_var(s.data + r0, s.stored_rows, n, s.stored_cols, mean, var);
  else
    kernels::row_mean_var(s.data + r0 * s.stored_cols, n, s.stored_cols, s.stored_cols, mean, var);
}

// out.segment(r0, n) = norm(side rows r0..r0+n) . p.v + p.bias. Normalized:
// norm(x) . v = (x . a - mean(x) sum(a)) / sqrt(var(x) + eps) + b . v, with
// each row's mean and variance stored (the load's row_stats) or computed here.
void dot_chunk(const VocabSide& s, const DotPrep& p, Eigen::Index r0, Eigen::Index n, Vec& out) {
  if (!p.normalizes) {
    base_dot(s, r0, n, p.v.data(), out.data() + r0);
    if (p.bias != 0.f) out.segment(r0, n).array() += p.bias;
    return;
  }
  base_dot(s, r0, n, p.a.data(), out.data() + r0);
  Vec mean_here, var_here;
  const float* mean = nullptr;
  const float* var = nullptr;
  if (s.stats) {
    mean = s.stats->mean.data() + r0;
    var = s.stats->var.data() + r0;
  } else {
    mean_here.resize(n);
    var_here.resize(n);
    side_row_stats(s, r0, n, mean_here.data(), var_here.data());
    mean = mean_here.data();
    var = var_here.data();
  }
  const auto mu = Eigen::Map<const Vec>(mean, n).array();
  const auto sigma2 = Eigen::Map<const Vec>(var, n).array();
  out.segment(r0, n).array() = (sigma2 + p.eps).rsqrt() * (out.segment(r0, n).array() - mu * p.sum_a) + p.bias;
}

// Rows of B per unit of a row query at most: 2048 (a GEMV over 2048 columns
// of W_U, 1 M floats at d_model 512).
constexpr Eigen::Index kRowQueryRows = 2048;

// Rows of a side per unit of a row/column query: whole chunks, about kSliceFloats floats.
Eigen::Index rows_per_unit(const VocabSide& s) {
  const Eigen::Index chunks = std::max<Eigen::Index>(1, Eigen::Index(kSliceFloats) / (kChunk * std::max<Eigen::Index>(1, s.d())));
  return chunks * kChunk;
}

bool entry_before(const MatrixEntry& a, const MatrixEntry& b) {
  return a.value > b.value || (a.value == b.value && (a.row < b.row || (a.row == b.row && a.col < b.col)));
}
bool id_before(const IdValue& a, const IdValue& b) { return a.value > b.value || (a.value == b.value && a.id < b.id); }

// State of a query on one vector (row or column).
struct LineState {
  VocabMatrix M;
  DotPrep prep;
  explicit LineState(const VocabMatrix& m) : M(m) {}
};

}  // namespace

// ---- VocabMatrix -------------------------------------------------------------------

VocabMatrix::VocabMatrix(const Model& m, std::string name, VocabSide a, VocabSide b, RowMat P1, RowMat P2,
                         Vec col_bias, Vec row_bias)
    : m_(&m), name_(std::move(name)), a_(a), b_(b) {
  const int L = m.config().n_layers;
  for (const VocabSide* s : {&a_, &b_})
    if (s->norm != kNoNorm && (s->norm < kFinalNorm || s->norm >= L))
      throw Error(name_ + ": normalization layer " + std::to_string(s->norm) + " is outside [0, n_layers = " +
                  std::to_string(L) + ") (or final / none)");
  for (const VocabSide* s : {&a_, &b_})
    if (s->stats && (s->stats->data != s->data || s->stats->mean.size() != s->n() || s->stats->var.size() != s->n()))
      throw Error(name_ + ": the row statistics given belong to other weights (" +
                  std::to_string(s->stats->mean.size()) + " rows, the side has " + std::to_string(s->n()) + ")");
  const bool p1 = P1.size() > 0, p2 = P2.size() > 0;
  // Width of norm_a(A) P1 P2 must meet norm_b(B).
  Eigen::Index w = a_.d();
  if (p1) {
    if (P1.rows() != w)
      throw Error(name_ + ": P1 has " + std::to_string(P1.rows()) + " rows, expected d_a = " + std::to_string(w));
    w = P1.cols();
  }
  if (p2) {
    if (P2.rows() != w)
      throw Error(name_ + ": P2 has " + std::to_string(P2.rows()) + " rows, expected " + std::to_string(w));
    w = P2.cols();
  }
  if (w != b_.d())
    throw Error(name_ + ": the left factor has width " + std::to_string(w) + ", B has rows of " +
                std::to_string(b_.d()));
  if (col_bias.size() > 0 && col_bias.size() != n_cols())
    throw Error(name_ + ": col_bias has " + std::to_string(col_bias.size()) + " entries, expected n_cols = " +
                std::to_string(n_cols()));
  if (row_bias.size() > 0 && row_bias.size() != n_rows())
    throw Error(name_ + ": row_bias has " + std::to_string(row_bias.size()) + " entries, expected n_rows = " +
                std::to_string(n_rows()));
  if (p1) P1_ = std::make_shared<const RowMat>(std::move(P1));
  if (p2) P2_ = std::make_shared<const RowMat>(std::move(P2));
  if (col_bias.size() > 0) col_bias_ = std::make_shared<const Vec>(std::move(col_bias));
  if (row_bias.size() > 0) row_bias_ = std::make_shared<const Vec>(std::move(row_bias));
}

Eigen::Index VocabMatrix::inner_dim() const { return P1_ ? P1_->cols() : a_.d(); }

VocabMatrix VocabMatrix::transposed() const {
  VocabMatrix t = *this;
  t.name_ = name_ + "^T";
  std::swap(t.a_, t.b_);
  t.P1_ = P2_ ? std::make_shared<const RowMat>(P2_->transpose()) : nullptr;
  t.P2_ = P1_ ? std::make_shared<const RowMat>(P1_->transpose()) : nullptr;
  std::swap(t.col_bias_, t.row_bias_);
  return t;
}

void VocabMatrix::check_row(int i) const {
  if (i < 0 || i >= n_rows()) throw Error(range_msg(name_, "row", i, "n_rows", n_rows()));
}
void VocabMatrix::check_col(int j) const {
  if (j < 0 || j >= n_cols()) throw Error(range_msg(name_, "column", j, "n_cols", n_cols()));
}

Vec VocabMatrix::row(int i) const {
  VocabRowQuery q(*this, i);
  q.run();
  return q.result();
}
Vec VocabMatrix::column(int j) const {
  VocabColumnQuery q(*this, j);
  q.run();
  return q.result();
}
std::vector<IdValue> VocabMatrix::row_top_k(int i, int k) const {
  VocabRowTopK q(*this, i, k);
  q.run();
  return q.result();
}
std::vector<IdValue> VocabMatrix::column_top_k(int j, int k) const {
  VocabColumnTopK q(*this, j, k);
  q.run();
  return q.result();
}
std::vector<MatrixEntry> VocabMatrix::top_entries(int n) const {
  VocabTopEntries q(*this, n);
  q.run();
  return q.result();
}
std::vector<std::vector<IdValue>> VocabMatrix::top_k_per_row(int k) const {
  VocabTopKPerRow q(*this, k);
  q.run();
  return q.result();
}
std::vector<std::vector<IdValue>> VocabMatrix::top_k_per_column(int k) const { return transposed().top_k_per_row(k); }

RowMat VocabMatrix::block(std::span<const int> rows, std::span<const int> cols) const {
  for (int i : rows) check_row(i);
  for (int j : cols) check_col(j);
  RowMat L = side_rows(*m_, a_, rows);  // [R, d_a]
  if (P1_) L = L * *P1_;                // [R, r]
  if (P2_) L = L * *P2_;                // [R, d_b]
  const RowMat Bs = side_rows(*m_, b_, cols);  // [C, d_b]
  RowMat out = L * Bs.transpose();             // [R, C]
  if (col_bias_)
    for (size_t j = 0; j < cols.size(); ++j) out.col(Eigen::Index(j)).array() += (*col_bias_)[cols[j]];
  if (row_bias_)
    for (size_t i = 0; i < rows.size(); ++i) out.row(Eigen::Index(i)).array() += (*row_bias_)[rows[i]];
  return out;
}

// ---- factories ---------------------------------------------------------------------

VocabMatrix direct_path_matrix(const Model& m, std::shared_ptr<const RowStats> embed_stats) {
  // norm_final(W_E) [d_vocab, d_model] . W_U [d_model, d_vocab_out] + b_U
  return VocabMatrix(m, "direct_path", embed_side(m, kFinalNorm, std::move(embed_stats)),
                     VocabSide::columns_of(m.W_U()), RowMat(), RowMat(), Vec(m.b_U()));
}

VocabMatrix ov_circuit_matrix(const Model& m, int layer, int head, const CircuitOptions& opt) {
  check_head(m, layer, head, "ov_circuit_matrix");
  // E [d_vocab, d_model] W_V [d_model, d_head] W_O [d_head, d_model] (W_U^T)^T [d_model, d_vocab_out]
  return VocabMatrix(m, head_name("ov_circuit_matrix", layer, head), embed_side(m, layer, opt),
                     VocabSide::columns_of(m.W_U()), RowMat(m.W_V(layer, head)), RowMat(m.W_O(layer, head)));
}

VocabMatrix qk_circuit_matrix(const Model& m, int layer, int head, const CircuitOptions& opt) {
  check_head(m, layer, head, "qk_circuit_matrix");
  // E [d_vocab, d_model] W_Q [d_model, d_head] W_K^T [d_head, d_model] E^T [d_model, d_vocab]
  return VocabMatrix(m, head_name("qk_circuit_matrix", layer, head), embed_side(m, layer, opt),
                     embed_side(m, layer, opt), RowMat(m.W_Q(layer, head)), RowMat(m.W_K(layer, head).transpose()));
}

VocabMatrix virtual_ov_circuit_matrix(const Model& m, int l1, int h1, int l2, int h2, const CircuitOptions& opt) {
  check_head_pair(m, l1, h1, l2, h2, "virtual_ov_circuit_matrix");
  // E W_V1 [d_vocab, d_head]; (W_O1 W_V2) W_O2 [d_head, d_model]; W_U
  const RowMat P2 = (RowMat(m.W_O(l1, h1)) * m.W_V(l2, h2)) * m.W_O(l2, h2);
  return VocabMatrix(m,
                     "virtual_ov_circuit_matrix(" + std::to_string(l1) + "." + std::to_string(h1) + " -> " +
                         std::to_string(l2) + "." + std::to_string(h2) + ")",
                     embed_side(m, l1, opt), VocabSide::columns_of(m.W_U()), RowMat(m.W_V(l1, h1)), P2);
}

VocabMatrix k_composition_term_matrix(const Model& m, int l1, int h1, int l2, int h2, const CircuitOptions& opt) {
  check_head_pair(m, l1, h1, l2, h2, "k_composition_term_matrix");
  // E_l2 [d_vocab, d_model] W_Q2 [d_model, d_head]; (W_V1 W_O1 W_K2)^T [d_head, d_model]; E_l1
  const RowMat P2 = ((RowMat(m.W_V(l1, h1)) * m.W_O(l1, h1)) * m.W_K(l2, h2)).transpose();
  return VocabMatrix(m,
                     "k_composition_term_matrix(" + std::to_string(l1) + "." + std::to_string(h1) + " -> " +
                         std::to_string(l2) + "." + std::to_string(h2) + ")",
                     embed_side(m, l2, opt), embed_side(m, l1, opt), RowMat(m.W_Q(l2, h2)), P2);
}

VocabSide embed_side(const Model& m, int norm, std::shared_ptr<const RowStats> stats) {
  VocabSide s = VocabSide::rows_of(m.W_E(), norm);
  s.stats = std::move(stats);
  return s;
}

VocabSide embed_side(const Model& m, int layer, const CircuitOptions& opt) {
  return embed_side(m, opt.normalize_embed ? layer : kNoNorm, opt.embed_stats);
}

// ---- row statistics ----------------------------------------------------------------

RowStatsPlan::RowStatsPlan(const VocabSide& s) : r_(std::make_shared<RowStats>()) {
  r_->data = s.data;
  r_->mean.resize(s.n());
  r_->var.resize(s.n());
  const Eigen::Index N = s.n(), per = rows_per_unit(s);
  for (Eigen::Index u0 = 0; u0 < N; u0 += per) {
    const Eigen::Index u1 = std::min(N, u0 + per);
    add("row statistics", double((u1 - u0) * s.d()), [r = r_.get(), s, u0, u1] {
      side_row_stats(s, u0, u1 - u0, r->mean.data() + u0, r->var.data() + u0);
    }, /*concurrent=*/true);  // its own rows' statistics
  }
}

std::shared_ptr<const RowStats> RowStatsPlan::result() const {
  if (!done()) throw Error("row statistics: result() before the computation finished");
  return r_;
}

std::shared_ptr<const RowStats> row_stats(const VocabSide& s) {
  RowStatsPlan p(s);
  p.run();
  return p.result();
}

std::vector<IdValue> top_k_of(const Vec& v, int k) {
  const int n = int(v.size());
  k = std::clamp(k, 0, n);
  std::vector<int> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  auto before = [&](int a, int b) { return v[a] > v[b] || (v[a] == v[b] && a < b); };
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), before);
  std::vector<IdValue> out;
  out.reserve(size_t(k));
  for (int i = 0; i < k; ++i) out.push_back(IdValue{idx[size_t(i)], v[idx[size_t(i)]]});
  return out;
}

// ---- row / column queries ----------------------------------------------------------

void add_row_units(WorkPlan& plan, const VocabMatrix& M, int i, Vec& out, const std::string& stage) {
  M.check_row(i);
  auto st = std::make_shared<LineState>(M);
  const VocabSide& a = M.left();
  const VocabSide& b = M.right();
  out.resize(M.n_cols());
  // x = norm_a(A_i) P1 P2: [d_b] (small: computed here, not in a unit)
  {
    const int idx[1] = {i};
    RowMat x = side_rows(M.model(), a, idx);  // [1, d_a]
    if (M.P1()) x = x * *M.P1();
    if (M.P2()) x = x * *M.P2();
    const float bias = M.row_bias() ? (*M.row_bias())[i] : 0.f;
    st->prep = dot_prep(M.model(), b, x.row(0).transpose(), bias);
  }
  const Eigen::Index N = b.n(), per = std::min(kRowQueryRows, rows_per_unit(b));
  Vec* o = &out;
  for (Eigen::Index u0 = 0; u0 < N; u0 += per) {
    const Eigen::Index u1 = std::min(N, u0 + per);
    plan.add(stage, double((u1 - u0) * b.d()), [st, o, u0, u1] {
      const VocabMatrix& M = st->M;
      for (Eigen::Index r0 = u0; r0 < u1; r0 += kChunk) {
        const Eigen::Index n = std::min(kChunk, u1 - r0);
        dot_chunk(M.right(), st->prep, r0, n, *o);
        if (M.col_bias()) o->segment(r0, n) += M.col_bias()->segment(r0, n);
      }
    }, /*concurrent=*/true);  // its own entries of out; prep is read only
  }
}

void add_column_units(WorkPlan& plan, const VocabMatrix& M, int j, Vec& out, const std::string& stage) {
  M.check_col(j);
  auto st = std::make_shared<LineState>(M);
  const VocabSide& a = M.left();
  const VocabSide& b = M.right();
  out.resize(M.n_rows());
  // y = P1 P2 norm_b(B_j)^T: [d_a] (small: computed here, not in a unit)
  {
    const int idx[1] = {j};
    Vec y = side_rows(M.model(), b, idx).row(0).transpose();  // [d_b]
    if (M.P2()) y = *M.P2() * y;
    if (M.P1()) y = *M.P1() * y;
    const float bias = M.col_bias() ? (*M.col_bias())[j] : 0.f;
    st->prep = dot_prep(M.model(), a, std::move(y), bias);
  }
  const Eigen::Index N = a.n(), per = rows_per_unit(a);
  Vec* o = &out;
  for (Eigen::Index u0 = 0; u0 < N; u0 += per) {
    const Eigen::Index u1 = std::min(N, u0 + per);
    plan.add(stage, double((u1 - u0) * a.d()), [st, o, u0, u1] {
      const VocabMatrix& M = st->M;
      for (Eigen::Index r0 = u0; r0 < u1; r0 += kChunk) {
        const Eigen::Index n = std::min(kChunk, u1 - r0);
        dot_chunk(M.left(), st->prep, r0, n, *o);
        if (M.row_bias()) o->segment(r0, n) += M.row_bias()->segment(r0, n);
      }
    }, /*concurrent=*/true);  // its own entries of out; prep is read only
  }
}

VocabRowQuery::VocabRowQuery(const VocabMatrix& M, int i) { add_row_units(*this, M, i, out_); }
const Vec& VocabRowQuery::result() const {
  if (!done()) throw Error("vocab row query: result() before the computation finished");
  return out_;
}

VocabColumnQuery::VocabColumnQuery(const VocabMatrix& M, int j) { add_column_units(*this, M, j, out_); }
const Vec& VocabColumnQuery::result() const {
  if (!done()) throw Error("vocab column query: result() before the computation finished");
  return out_;
}

VocabRowTopK::VocabRowTopK(const VocabMatrix& M, int i, int k) {
  add_row_units(*this, M, i, row_);
  add("top k", double(M.n_cols()), [this, k] {
    result_ = top_k_of(row_, k);
    row_ = Vec();
  });
}
const std::vector<IdValue>& VocabRowTopK::result() const {
  if (!done()) throw Error("vocab row top-k: result() before the computation finished");
  return result_;
}

VocabColumnTopK::VocabColumnTopK(const VocabMatrix& M, int j, int k) {
  add_column_units(*this, M, j, col_);
  add("top k", double(M.n_rows()), [this, k] {
    result_ = top_k_of(col_, k);
    col_ = Vec();
  });
}
const std::vector<IdValue>& VocabColumnTopK::result() const {
  if (!done()) throw Error("vocab column top-k: result() before the computation finished");
  return result_;
}

// ---- full scans --------------------------------------------------------------------

// Entries of a block row per segment of the selection: a segment whose
// maximum (one vectorized pass) is below the threshold is skipped.
constexpr Eigen::Index kSegment = 64;

// Keeps the `keep` best of `c` (by `before`, a strict total order) once it
// holds more; returns the worst kept value once it holds `keep` (else -inf):
// a threshold no later candidate below it can pass.
template <class Entry, class Before>
float compact(std::vector<Entry>& c, size_t keep, Before before) {
  if (c.size() > keep) {
    std::nth_element(c.begin(), c.begin() + std::ptrdiff_t(keep - 1), c.end(), before);
    c.resize(keep);
  }
  if (c.size() < keep) return -std::numeric_limits<float>::infinity();
  float mn = c[0].value;
  for (const Entry& e : c) mn = std::min(mn, e.value);
  return mn;
}

// A chunk of rows of a scan: its strand of units (one per block of columns)
// owns this scratch, so chunks run on several threads at once.
struct ChunkScratch {
  RowMat L;    // left factor of the chunk norm_a(A) P1: [nr, K]
  RowMat blk;  // current block of M: [nr, <= bn]
  Vec rowmax;  // per row of blk
  // top entries: this chunk's candidates, threshold
  std::vector<MatrixEntry> cand;
  float thr = -std::numeric_limits<float>::infinity();
  // top k per row: candidates and threshold per row of the chunk
  std::vector<std::vector<IdValue>> rcand;
  std::vector<float> rthr;
  std::vector<float> buf;  // one block row (first-block threshold)
};

struct ScanState {
  VocabMatrix M;
  Eigen::Index K = 0;        // inner dimension
  Eigen::Index bm = 0, bn = 0;  // rows per chunk, columns per block
  bool right_in_place = false;
  RowMat R;  // materialised right factor norm_b(B) P2^T: [n_cols, K] (empty when in place)
  std::vector<std::unique_ptr<ChunkScratch>> chunks;  // per chunk while its strand runs
  // top entries: the best n of the chunks merged so far. Any partition of the
  // rows gives the same n (an exact top n under entry_before's total order).
  int n = 0;
  size_t limit = 0;
  std::mutex merge;
  std::vector<MatrixEntry> best;
  std::atomic<float> best_thr{-std::numeric_limits<float>::infinity()};
  // top k per row
  int k = 0;

  explicit ScanState(const VocabMatrix& m) : M(m) {}

  void setup() {
    K = M.inner_dim();
    right_in_place = !M.P2() && !side_normalizes(M.model(), M.right());
    // Blocks of at most 128K floats (512 KB, in L2 for the selection pass)
    // and about 2^24 multiply-adds (a few ms in wasm).
    bm = K <= 128 ? 256 : 128;
    const Eigen::Index floats = std::min<Eigen::Index>(Eigen::Index(1) << 17, (Eigen::Index(1) << 24) / std::max<Eigen::Index>(1, K));
    bn = std::max<Eigen::Index>(64, floats / bm / 64 * 64);
    chunks.resize(size_t((M.n_rows() + bm - 1) / bm));
  }

  void compute_left(ChunkScratch& c, Eigen::Index r0, Eigen::Index nr) const {
    c.L = side_rows(M.model(), M.left(), r0, nr);  // [nr, d_a]
    if (M.P1()) c.L = c.L * *M.P1();               // [nr, r]
  }

  void compute_right(Eigen::Index c0, Eigen::Index nc) {
    const RowMat Bn = side_rows(M.model(), M.right(), c0, nc);  // [nc, d_b]
    if (M.P2())
      R.middleRows(c0, nc).noalias() = Bn * M.P2()->transpose();  // [nc, r]
    else
      R.middleRows(c0, nc) = Bn;
  }

  // blk = rows r0.. of M (L) x columns c0..c0+nc, with biases.
  void compute_block(ChunkScratch& c, Eigen::Index r0, Eigen::Index c0, Eigen::Index nc) const {
    const Eigen::Index nr = c.L.rows();
    c.blk.resize(nr, nc);
    if (!right_in_place)
      kernels::matmul(c.L, R.middleRows(c0, nc).transpose(), c.blk);
    else if (M.right().stored_transposed)
      kernels::matmul(c.L, M.right().base().middleCols(c0, nc), c.blk);
    else
      kernels::matmul(c.L, M.right().base().middleRows(c0, nc).transpose(), c.blk);
    if (M.col_bias()) c.blk.rowwise() += M.col_bias()->segment(c0, nc).transpose();
    if (M.row_bias()) c.blk.colwise() += M.row_bias()->segment(r0, nr);
    c.rowmax = c.blk.rowwise().maxCoeff();
  }

  void select_entries(ChunkScratch& c, Eigen::Index r0, Eigen::Index c0) const {
    // The chunks merged so far may already have raised the bar.
    c.thr = std::max(c.thr, best_thr.load(std::memory_order_relaxed));
    const Eigen::Index nr = c.blk.rows(), nc = c.blk.cols();
    for (Eigen::Index i = 0; i < nr; ++i) {
      if (!(c.rowmax[i] >= c.thr)) continue;
      const float* p = c.blk.row(i).data();
      for (Eigen::Index j0 = 0; j0 < nc; j0 += kSegment) {
        const Eigen::Index j1 = std::min(nc, j0 + kSegment);
        if (!(c.blk.row(i).segment(j0, j1 - j0).maxCoeff() >= c.thr)) continue;
        for (Eigen::Index j = j0; j < j1; ++j)
          if (p[j] >= c.thr) c.cand.push_back(MatrixEntry{int(r0 + i), int(c0 + j), p[j]});
        if (c.cand.size() >= limit) c.thr = std::max(c.thr, compact(c.cand, size_t(n), entry_before));
      }
    }
  }

  // Merges a finished chunk's candidates into the best n.
  void merge_entries(ChunkScratch& c) {
    const std::lock_guard<std::mutex> lock(merge);
    best.insert(best.end(), c.cand.begin(), c.cand.end());
    const float t = compact(best, size_t(n), entry_before);
    if (t > best_thr.load(std::memory_order_relaxed)) best_thr.store(t, std::memory_order_relaxed);
  }

  void select_rows(ChunkScratch& ch, Eigen::Index c0) const {
    const Eigen::Index nr = ch.blk.rows(), nc = ch.blk.cols();
    const size_t keep = size_t(k), lim = 2 * size_t(k) + 64;
    for (Eigen::Index i = 0; i < nr; ++i) {
      float& t = ch.rthr[size_t(i)];
      if (!(ch.rowmax[i] >= t)) continue;
      std::vector<IdValue>& c = ch.rcand[size_t(i)];
      const float* p = ch.blk.row(i).data();
      if (c.empty() && nc >= k) {
        // First block of the row: its k-th largest entry is a safe threshold
        // (the row's final k-th largest is no smaller), so about k entries are kept.
        ch.buf.assign(p, p + nc);
        std::nth_element(ch.buf.begin(), ch.buf.begin() + (k - 1), ch.buf.end(), std::greater<float>());
        t = ch.buf[size_t(k - 1)];
        c.reserve(lim);
      }
      for (Eigen::Index j = 0; j < nc; ++j) {
        // Skip a segment at once when its maximum is below the threshold.
        if (j % kSegment == 0 && !(ch.blk.row(i).segment(j, std::min(kSegment, nc - j)).maxCoeff() >= t)) {
          j += kSegment - 1;
          continue;
        }
        if (p[j] >= t) {
          c.push_back(IdValue{int(c0 + j), p[j]});
          if (c.size() >= lim) t = compact(c, keep, id_before);
        }
      }
    }
  }
};

namespace {

// Adds the scan's units to `plan`: materialise the right factor (if needed,
// concurrent units), then per chunk of rows a strand of units, one per block
// of columns: `per_block(chunk, r0, nr, c0, first, last)` after the block is
// computed. The chunk's scratch lives from its first block to its last.
template <class F>
void add_scan_units(WorkPlan& plan, ScanState& s, const char* stage, F per_block) {
  s.setup();
  const Eigen::Index NR = s.M.n_rows(), NC = s.M.n_cols();
  if (NR == 0 || NC == 0) return;
  if (!s.right_in_place) {
    s.R.resize(NC, s.K);
    const VocabSide& b = s.M.right();
    const Eigen::Index per = std::max<Eigen::Index>(64, Eigen::Index(kSliceFloats) / std::max<Eigen::Index>(1, b.d()));
    for (Eigen::Index c0 = 0; c0 < NC; c0 += per) {
      const Eigen::Index nc = std::min(per, NC - c0);
      plan.add("right factor", double(nc * b.d() * (s.M.P2() ? s.K : 1)), [&s, c0, nc] { s.compute_right(c0, nc); },
               /*concurrent=*/true);
    }
    plan.fence();  // the blocks read R
  }
  for (Eigen::Index r0 = 0; r0 < NR; r0 += s.bm) {
    const Eigen::Index nr = std::min(s.bm, NR - r0);
    const size_t chunk = size_t(r0 / s.bm);
    for (Eigen::Index c0 = 0; c0 < NC; c0 += s.bn) {
      const Eigen::Index nc = std::min(s.bn, NC - c0);
      const bool first = c0 == 0, last = c0 + nc == NC;
      auto work = [&s, per_block, chunk, r0, nr, c0, nc, first, last] {
        if (first) {
          s.chunks[chunk] = std::make_unique<ChunkScratch>();
          s.compute_left(*s.chunks[chunk], r0, nr);
        }
        ChunkScratch& c = *s.chunks[chunk];
        s.compute_block(c, r0, c0, nc);
        per_block(c, r0, nr, c0, first, last);
        if (last) s.chunks[chunk].reset();
      };
      plan.add_to_strand(stage, double(nr * nc * s.K), work, /*new_strand=*/first);
    }
  }
  plan.fence();
}

}  // namespace

VocabTopEntries::VocabTopEntries(const VocabMatrix& M, int n) : s_(std::make_unique<ScanState>(M)) {
  const long long total = (long long)M.n_rows() * (long long)M.n_cols();
  n = int(std::clamp<long long>(n, 0, total));
  if (n == 0) return;
  ScanState& s = *s_;
  s.n = n;
  s.limit = 2 * size_t(n) + 1024;
  add_scan_units(*this, s, "top entries",
                 [&s](ChunkScratch& c, Eigen::Index r0, Eigen::Index, Eigen::Index c0, bool, bool last) {
                   s.select_entries(c, r0, c0);
                   if (last) s.merge_entries(c);
                 });
  add("top entries", double(n), [this] {
    ScanState& s = *s_;
    std::sort(s.best.begin(), s.best.end(), entry_before);
    result_ = std::move(s.best);
    s_.reset();
  });
}
VocabTopEntries::~VocabTopEntries() = default;
const std::vector<MatrixEntry>& VocabTopEntries::result() const {
  if (!done()) throw Error("vocab top entries: result() before the computation finished");
  return result_;
}

VocabTopKPerRow::VocabTopKPerRow(const VocabMatrix& M, int k) : s_(std::make_unique<ScanState>(M)) {
  k = std::clamp<int>(k, 0, int(std::min<Eigen::Index>(M.n_cols(), std::numeric_limits<int>::max())));
  result_.assign(size_t(M.n_rows()), {});
  if (k == 0) return;
  ScanState& s = *s_;
  s.k = k;
  add_scan_units(*this, s, "top k per row",
                 [this, &s](ChunkScratch& ch, Eigen::Index r0, Eigen::Index nr, Eigen::Index c0, bool first, bool last) {
                   if (first) {
                     ch.rcand.assign(size_t(nr), {});
                     ch.rthr.assign(size_t(nr), -std::numeric_limits<float>::infinity());
                   }
                   s.select_rows(ch, c0);
                   if (last) {
                     for (Eigen::Index i = 0; i < nr; ++i) {
                       std::vector<IdValue>& c = ch.rcand[size_t(i)];
                       const size_t keep = std::min(c.size(), size_t(s.k));
                       std::partial_sort(c.begin(), c.begin() + std::ptrdiff_t(keep), c.end(), id_before);
                       c.resize(keep);
                       result_[size_t(r0 + i)] = std::move(c);  // rows of this chunk only
                     }
                   }
                 });
  add("top k per row", 1.0, [this] { s_.reset(); });
}
VocabTopKPerRow::~VocabTopKPerRow() = default;
const std::vector<std::vector<IdValue>>& VocabTopKPerRow::result() const {
  if (!done()) throw Error("vocab top k per row: result() before the computation finished");
  return result_;
}

std::vector<std::vector<IdValue>> VocabTopKPerRow::take() {
  if (!done()) throw Error("vocab top k per row: take() before the computation finished");
  return std::move(result_);
}

}  // namespace cs
