// Factored vocab x vocab matrices: the direct path (bigram table), a head's
// full OV and QK circuits, and anything else of the form
//
//   M = norm_a(A) P1 P2 norm_b(B)^T + row_bias 1^T + 1 col_bias^T     M: [n_rows, n_cols]
//
// TransformerLens convention (row vectors, x @ W):
//   A: [n_rows, d_a] base rows (W_E, W_pos, ...); B: [n_cols, d_b] base rows,
//      possibly stored transposed (W_U [d_model, d_vocab_out] is B = W_U^T);
//   norm_a / norm_b: none, block l's normalization (ln1 of layer l) or the
//      final one, applied to each row as the forward pass does (normalize_rows);
//   P1: [d_a, r], P2: [r, d_b]; either may be absent (identity); r is the rank
//      (d_head for a head's circuit);
//   row_bias: [n_rows], col_bias: [n_cols], both optional (b_U is a col_bias).
// Row i of M is "what row token i does to every column token".
//
// At d_vocab 48262 the dense matrix is 9 GB: it is never formed. Rows,
// columns, small blocks and top-k lists are computed from the factors; full
// scans (top-N entries, top-k of every row) multiply blocks of the factors
// and keep only the candidates. Every query is a WorkPlan (core/sliced.h)
// whose units are fixed at construction, so a result is bit-identical however
// it is sliced; the one-shot member functions run the same plans to the end.
// The math: docs/zero-layer.md (direct path), docs/one-layer.md (OV and QK
// circuits), docs/model.md (LayerNorm).
//
// Lifetime: a VocabMatrix refers to the model's weights (maps, not copies);
// the model must outlive it and every plan built from it. Copying a
// VocabMatrix is cheap (small factors are shared).
#pragma once
#include <Eigen/Core>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/circuits.h"
#include "core/model.h"
#include "core/sliced.h"

namespace cs {

// Normalization of one side's rows: kNoNorm, kFinalNorm (ln_final) or a layer
// index l >= 0 (blocks.l.ln1). On a model without normalization every choice
// is the identity.
inline constexpr int kNoNorm = -2;
inline constexpr int kFinalNorm = -1;

// Mean and variance over the d entries of each of a side's n rows, as stored
// (before any w and b): what normalizing a row needs besides the row itself.
struct RowStats {
  const float* data = nullptr;  // the storage they were computed from (VocabSide::data)
  Eigen::VectorXf mean, var;    // [n]
};

// One side of the factorization: its rows are the rows of base(), or the
// columns of base() when `stored_transposed` (W_U [d_model, d_vocab_out] gives
// rows of length d_model, one per output token).
struct VocabSide {
  const float* data = nullptr;  // row-major storage [stored_rows, stored_cols]
  Eigen::Index stored_rows = 0, stored_cols = 0;
  bool stored_transposed = false;
  int norm = kNoNorm;
  // Mean and variance of every row, when computed beforehand (RowStats below):
  // a normalized row or column query then reads each row once for one dot
  // product instead of also summing it and its squares. Optional.
  std::shared_ptr<const RowStats> stats;

  // Rows of `m` as they are: [n, d].
  static VocabSide rows_of(ConstMatMap m, int norm = kNoNorm) {
    return {m.data(), m.rows(), m.cols(), false, norm, nullptr};
  }
  // Columns of `m` as rows (m^T): m is [d, n].
  static VocabSide columns_of(ConstMatMap m, int norm = kNoNorm) {
    return {m.data(), m.rows(), m.cols(), true, norm, nullptr};
  }
  // The same for a mutable map (a non-const Model's accessors).
  static VocabSide rows_of(const MatMap& m, int norm = kNoNorm) {
    return {m.data(), m.rows(), m.cols(), false, norm, nullptr};
  }
  static VocabSide columns_of(const MatMap& m, int norm = kNoNorm) {
    return {m.data(), m.rows(), m.cols(), true, norm, nullptr};
  }
  ConstMatMap base() const { return ConstMatMap(data, stored_rows, stored_cols); }
  Eigen::Index n() const { return stored_transposed ? stored_cols : stored_rows; }  // number of rows
  Eigen::Index d() const { return stored_transposed ? stored_rows : stored_cols; }  // row length
};

// A ranked id: top-k of a row or column. Sorted by value descending, ties by smaller id.
struct IdValue {
  int id = 0;
  float value = 0.f;
};

// One entry of the matrix: top-N lists. Sorted by value descending, ties by
// smaller row, then smaller column.
struct MatrixEntry {
  int row = 0;
  int col = 0;
  float value = 0.f;
};

class VocabMatrix {
 public:
  // General form (see the top of this file). P1: [a.d(), r] or empty (0x0 =
  // identity), P2: [r, b.d()] or empty; biases empty (size 0) when absent.
  // `name` prefixes error messages, e.g. "ov_circuit_matrix(0, 3)". Throws
  // cs::Error on mismatched shapes.
  VocabMatrix(const Model& m, std::string name, VocabSide a, VocabSide b, RowMat P1 = RowMat(),
              RowMat P2 = RowMat(), Vec col_bias = Vec(), Vec row_bias = Vec());

  const Model& model() const { return *m_; }
  const std::string& name() const { return name_; }
  Eigen::Index n_rows() const { return a_.n(); }
  Eigen::Index n_cols() const { return b_.n(); }
  // Inner dimension of the scans: r when P1 is present, else d_a.
  Eigen::Index inner_dim() const;
  const VocabSide& left() const { return a_; }
  const VocabSide& right() const { return b_; }
  bool has_P1() const { return P1_ != nullptr; }
  bool has_P2() const { return P2_ != nullptr; }
  const RowMat* P1() const { return P1_.get(); }  // nullptr when absent
  const RowMat* P2() const { return P2_.get(); }
  const Vec* row_bias() const { return row_bias_.get(); }
  const Vec* col_bias() const { return col_bias_.get(); }

  // M^T: [n_cols, n_rows] (sides swapped, P1' = P2^T, P2' = P1^T, biases swapped).
  VocabMatrix transposed() const;

  // ---- one-shot queries (each runs the plan class below to the end) ----
  Vec row(int i) const;                                     // [n_cols]
  Vec column(int j) const;                                  // [n_rows]
  std::vector<IdValue> row_top_k(int i, int k) const;       // k clamped to [0, n_cols]
  std::vector<IdValue> column_top_k(int j, int k) const;    // k clamped to [0, n_rows]
  // Submatrix [rows.size(), cols.size()], computed at once (meant for small blocks).
  RowMat block(std::span<const int> rows, std::span<const int> cols) const;
  // The n largest entries of the whole matrix (n clamped to n_rows * n_cols).
  std::vector<MatrixEntry> top_entries(int n) const;
  // Top k of every row: [n_rows][min(k, n_cols)]; of every column: [n_cols][min(k, n_rows)].
  std::vector<std::vector<IdValue>> top_k_per_row(int k) const;
  std::vector<std::vector<IdValue>> top_k_per_column(int k) const;

  // Throw cs::Error naming the index and its bound ("<name>: row 7 is outside [0, n_rows = 5)").
  void check_row(int i) const;
  void check_col(int j) const;

 private:
  const Model* m_;
  std::string name_;
  VocabSide a_, b_;
  std::shared_ptr<const RowMat> P1_, P2_;
  std::shared_ptr<const Vec> col_bias_, row_bias_;
};

// ---- factories: cheap (no big arithmetic; the heavy work is in the plans) ----

// The direct path, bigram logits: norm_final(W_E) W_U + b_U, [d_vocab, d_vocab_out];
// row = current token, column = next token. Positional embeddings left out.
// embed_stats: row_stats of W_E's rows (optional; faster columns).
VocabMatrix direct_path_matrix(const Model& m, std::shared_ptr<const RowStats> embed_stats = nullptr);
// W_E's rows under normalization `norm`, with W_E's row statistics when given.
VocabSide embed_side(const Model& m, int norm, std::shared_ptr<const RowStats> stats);
// E as block `layer` reads it: normalized by its ln1 when opt.normalize_embed,
// with opt.embed_stats.
VocabSide embed_side(const Model& m, int layer, const CircuitOptions& opt);
// A head's full OV circuit E W_V[l,h] W_O[l,h] W_U: [d_vocab, d_vocab_out];
// entry (source, out) = logit effect on `out` of attending to `source`.
// E = W_E, normalized by block l's ln1 when opt.normalize_embed. No biases.
VocabMatrix ov_circuit_matrix(const Model& m, int layer, int head, const CircuitOptions& opt = {});
// A head's full QK circuit E W_Q[l,h] W_K[l,h]^T E^T: [d_vocab, d_vocab];
// entry (destination/query token, source/key token), before attn_scale, no biases.
VocabMatrix qk_circuit_matrix(const Model& m, int layer, int head, const CircuitOptions& opt = {});

// The OV circuit of the virtual head h2 o h1 (head h1 of layer l1 < l2 read
// by the values of head h2 of layer l2): E W_V1 W_O1 W_V2 W_O2 W_U,
// [d_vocab, d_vocab_out]; entry (source, out) = the logit effect on `out`
// of h2 attending to a position where h1 attended to `source`. E as in
// ov_circuit_matrix, through block l1's ln1. Kept factored with rank d_head.
VocabMatrix virtual_ov_circuit_matrix(const Model& m, int l1, int h1, int l2, int h2, const CircuitOptions& opt = {});

// The K-composition induction term of a later head h2 (layer l2) with an
// earlier head h1 (layer l1 < l2) ([F], induction heads; docs/two-layer.md):
//   E_l2 W_Q2 W_K2^T (E_l1 W_V1 W_O1)^T = E_l2 W_Q2 (W_K2^T W_O1^T W_V1^T) E_l1^T
// [d_vocab(query token), d_vocab(token b)]: the score a query on token a
// gives to a key position whose stream holds h1's output from attending to
// token b (with h1 a previous-token head: b is the token before the key).
// An induction head scores a == b highly. E_l: W_E through block l's ln1
// (opt.normalize_embed), as in the QK circuit; no normalization between h1's
// output and h2's keys (as the composition scores). Kept factored, rank d_head.
VocabMatrix k_composition_term_matrix(const Model& m, int l1, int h1, int l2, int h2, const CircuitOptions& opt = {});

// RowStats of a side's rows, one unit per chunk of rows (the side's storage
// must outlive the plan).
class RowStatsPlan final : public WorkPlan {
 public:
  explicit RowStatsPlan(const VocabSide& s);
  std::shared_ptr<const RowStats> result() const;  // once done()
 private:
  std::shared_ptr<RowStats> r_;
};
std::shared_ptr<const RowStats> row_stats(const VocabSide& s);

// Indices of the k largest entries of v, value descending, ties by smaller id
// (k clamped to [0, v.size()]).
std::vector<IdValue> top_k_of(const Vec& v, int k);

// ---- building blocks: append a query's units to any plan (composite queries) ----
// `out` must outlive the plan; the matrix is copied into the units. The units
// are concurrent (WorkPlan::add): a unit that reads `out` must not be.
void add_row_units(WorkPlan& plan, const VocabMatrix& M, int i, Vec& out, const std::string& stage = "row");
void add_column_units(WorkPlan& plan, const VocabMatrix& M, int j, Vec& out, const std::string& stage = "column");

// ---- sliced queries (core/sliced.h); the matrix is copied, the model must outlive them ----

// Row i: the d_b vector norm_a(A_i) P1 P2, then against norm_b(B) in blocks of rows of B.
class VocabRowQuery final : public WorkPlan {
 public:
  VocabRowQuery(const VocabMatrix& M, int i);
  const Vec& result() const;  // [n_cols], once done()
 private:
  Vec out_;
};

// Column j: the d_a vector P1 P2 norm_b(B_j)^T, then against norm_a(A) in chunks of rows of A.
class VocabColumnQuery final : public WorkPlan {
 public:
  VocabColumnQuery(const VocabMatrix& M, int j);
  const Vec& result() const;  // [n_rows], once done()
 private:
  Vec out_;
};

// Top k of row i (k clamped to [0, n_cols]).
class VocabRowTopK final : public WorkPlan {
 public:
  VocabRowTopK(const VocabMatrix& M, int i, int k);
  const std::vector<IdValue>& result() const;
 private:
  Vec row_;
  std::vector<IdValue> result_;
};

// Top k of column j (k clamped to [0, n_rows]).
class VocabColumnTopK final : public WorkPlan {
 public:
  VocabColumnTopK(const VocabMatrix& M, int j, int k);
  const std::vector<IdValue>& result() const;
 private:
  Vec col_;
  std::vector<IdValue> result_;
};

struct ScanState;  // vocab_matrix.cpp

// Full scans: blocks of (norm_a(A) P1) [chunk, r] times (norm_b(B) P2^T)^T
// [r, block]; the right factor is materialised once (as plan units) when P2 is
// present or B is normalized, else B is used in place. Each block's entries
// are compared with a running threshold (the n-th / k-th best so far), so
// almost all are rejected by one compare.
//
// The n largest entries of M (n clamped to n_rows * n_cols).
class VocabTopEntries final : public WorkPlan {
 public:
  VocabTopEntries(const VocabMatrix& M, int n);
  ~VocabTopEntries() override;
  const std::vector<MatrixEntry>& result() const;
 private:
  std::unique_ptr<ScanState> s_;
  std::vector<MatrixEntry> result_;
};

// Top k of every row of M: [n_rows][min(k, n_cols)]. (Of every column: use M.transposed().)
class VocabTopKPerRow final : public WorkPlan {
 public:
  VocabTopKPerRow(const VocabMatrix& M, int k);
  ~VocabTopKPerRow() override;
  const std::vector<std::vector<IdValue>>& result() const;
  std::vector<std::vector<IdValue>> take();  // once done(): moves the result out
 private:
  std::unique_ptr<ScanState> s_;
  std::vector<std::vector<IdValue>> result_;
};

}  // namespace cs
