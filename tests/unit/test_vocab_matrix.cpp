// The factored vocab x vocab matrix engine (core/vocab_matrix.h) against dense
// matrices built here in double precision with plain loops over the flat
// parameter block (rows of W_E normalized by naive::norm_row), for every
// normalization and positional type. Rankings are compared with a full sort of
// the dense matrix; on a model whose weights are small multiples of 1/2 (and no
// normalization) every float is exact, so the scans must reproduce the dense
// sort exactly, ties (by index) included.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/model.h"
#include "core/vocab_matrix.h"
#include "core/circuits.h"
#include "dense_eigen.h"
#include "naive_reference.h"

namespace cs {
namespace {

using naive::Mat;

ModelConfig config(Norm norm, PosEmbed pos, int d_vocab, int d_vocab_out) {
  ModelConfig c;
  c.n_layers = 2;
  c.d_model = 8;
  c.n_heads = 2;
  c.d_head = 3;
  c.n_ctx = 6;
  c.d_vocab = d_vocab;
  c.d_vocab_out = d_vocab_out;
  c.normalization = norm;
  c.positional = pos;
  return c;
}

// ---- dense references (double, loops, TransformerLens names and row-major indexing) ----

// Rows of `table` ("embed.W_E" or "pos_embed.W_pos") normalized with `prefix`
// ("blocks.l.ln1", "ln_final", or "" for none): [n][d_model].
Mat normalized_rows(const Model& m, const std::string& table, const std::string& prefix) {
  const size_t D = size_t(m.config().d_model);
  const naive::Tensor t = naive::tensor(m, table);
  Mat out;
  for (size_t r = 0; r < t.n / D; ++r) {
    std::vector<double> x(D);
    for (size_t d = 0; d < D; ++d) x[d] = t[r * D + d];
    out.push_back(prefix.empty() ? x : naive::norm_row(m, x, prefix));
  }
  return out;
}

// A [n][D] times a head's [D][Dh] slice of a [H, D, Dh] tensor.
Mat times_head_in(const Model& m, const Mat& A, const std::string& name, int h) {
  const size_t D = size_t(m.config().d_model), Dh = size_t(m.config().d_head);
  const naive::Tensor W = naive::tensor(m, name);
  Mat out = naive::zeros(A.size(), Dh);
  for (size_t i = 0; i < A.size(); ++i)
    for (size_t e = 0; e < Dh; ++e)
      for (size_t d = 0; d < D; ++d) out[i][e] += A[i][d] * W[(size_t(h) * D + d) * Dh + e];
  return out;
}

// Dense direct path: norm_final(W_E) W_U + b_U (or with W_pos rows and no b_U).
Mat dense_unembed(const Model& m, const Mat& X, bool bias) {
  const size_t D = size_t(m.config().d_model), V = size_t(m.config().vocab_out());
  const naive::Tensor W_U = naive::tensor(m, "unembed.W_U"), b_U = naive::tensor(m, "unembed.b_U");
  Mat out = naive::zeros(X.size(), V);
  for (size_t s = 0; s < X.size(); ++s)
    for (size_t o = 0; o < V; ++o) {
      double v = bias ? b_U[o] : 0.0;
      for (size_t d = 0; d < D; ++d) v += X[s][d] * W_U[d * V + o];
      out[s][o] = v;
    }
  return out;
}

std::string ln_prefix(const Model& m, int layer, bool normalize) {
  if (!normalize || !m.config().normalizes()) return "";
  return layer >= 0 ? naive::blk(layer, "ln1") : "ln_final";
}

Mat dense_direct(const Model& m) { return dense_unembed(m, normalized_rows(m, "embed.W_E", ln_prefix(m, -1, true)), true); }

// E W_V W_O W_U.
Mat dense_ov(const Model& m, int l, int h, bool normalize) {
  const size_t D = size_t(m.config().d_model), Dh = size_t(m.config().d_head);
  const Mat E = normalized_rows(m, "embed.W_E", ln_prefix(m, l, normalize));
  const Mat EV = times_head_in(m, E, naive::blk(l, "attn.W_V"), h);  // [n, Dh]
  const naive::Tensor W_O = naive::tensor(m, naive::blk(l, "attn.W_O"));  // [H, Dh, D]
  Mat EVO = naive::zeros(E.size(), D);
  for (size_t i = 0; i < E.size(); ++i)
    for (size_t d = 0; d < D; ++d)
      for (size_t e = 0; e < Dh; ++e) EVO[i][d] += EV[i][e] * W_O[(size_t(h) * Dh + e) * D + d];
  return dense_unembed(m, EVO, false);
}

// E W_V1 W_O1 W_V2 W_O2 W_U: the virtual head h2 o h1.
Mat dense_virtual_ov(const Model& m, int l1, int h1, int l2, int h2, bool normalize) {
  const size_t D = size_t(m.config().d_model), Dh = size_t(m.config().d_head);
  const Mat E = normalized_rows(m, "embed.W_E", ln_prefix(m, l1, normalize));
  Mat X = E;  // [n, D], through h1's then h2's OV
  for (auto [l, h] : {std::pair{l1, h1}, std::pair{l2, h2}}) {
    const Mat XV = times_head_in(m, X, naive::blk(l, "attn.W_V"), h);  // [n, Dh]
    const naive::Tensor W_O = naive::tensor(m, naive::blk(l, "attn.W_O"));
    Mat XVO = naive::zeros(X.size(), D);
    for (size_t i = 0; i < X.size(); ++i)
      for (size_t d = 0; d < D; ++d)
        for (size_t e = 0; e < Dh; ++e) XVO[i][d] += XV[i][e] * W_O[(size_t(h) * Dh + e) * D + d];
    X = XVO;
  }
  return dense_unembed(m, X, false);
}

// E W_Q W_K^T E^T.
Mat dense_qk(const Model& m, int l, int h, bool normalize) {
  const Mat E = normalized_rows(m, "embed.W_E", ln_prefix(m, l, normalize));
  const Mat Q = times_head_in(m, E, naive::blk(l, "attn.W_Q"), h);
  const Mat K = times_head_in(m, E, naive::blk(l, "attn.W_K"), h);
  Mat out = naive::zeros(E.size(), E.size());
  for (size_t i = 0; i < E.size(); ++i)
    for (size_t j = 0; j < E.size(); ++j)
      for (size_t e = 0; e < Q[i].size(); ++e) out[i][j] += Q[i][e] * K[j][e];
  return out;
}

using naive::transpose;

std::vector<double> column_of(const Mat& a, size_t j) {
  std::vector<double> c;
  for (const auto& r : a) c.push_back(r[j]);
  return c;
}

// Scale of a matrix (for tolerances): its largest |entry|, at least 1.
double scale_of(const Mat& a) {
  double s = 1;
  for (const auto& r : a)
    for (double v : r) s = std::max(s, std::abs(v));
  return s;
}

// ---- ranking checks ----

// A ranked list against a dense vector: entry p carries dense[id] and is the
// p-th largest value (within tol), ids distinct; exact: ids equal the full
// sort by value descending, ties by smaller index, and values are exact.
void expect_ranked(const std::vector<IdValue>& got, const std::vector<double>& dense, int k, double tol, bool exact) {
  const size_t want_n = size_t(std::clamp<int>(k, 0, int(dense.size())));
  ASSERT_EQ(got.size(), want_n);
  std::vector<int> order(dense.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return dense[size_t(a)] > dense[size_t(b)]; });
  std::vector<bool> seen(dense.size(), false);
  for (size_t p = 0; p < got.size(); ++p) {
    const int id = got[p].id;
    ASSERT_GE(id, 0);
    ASSERT_LT(size_t(id), dense.size());
    EXPECT_FALSE(seen[size_t(id)]) << "id " << id << " listed twice";
    seen[size_t(id)] = true;
    if (exact) {
      EXPECT_EQ(id, order[p]) << "position " << p;
      EXPECT_EQ(double(got[p].value), dense[size_t(id)]) << "position " << p;
    } else {
      EXPECT_NEAR(got[p].value, dense[size_t(id)], tol) << "position " << p;
      EXPECT_NEAR(got[p].value, dense[size_t(order[p])], tol) << "position " << p;
    }
  }
}

struct DenseEntry {
  int r, c;
  double v;
};
// Every entry of a dense matrix, sorted by value descending; row-major order
// is index order, so a stable sort breaks ties by (row, col).
std::vector<DenseEntry> sorted_entries(const Mat& dense) {
  std::vector<DenseEntry> all;
  for (size_t i = 0; i < dense.size(); ++i)
    for (size_t j = 0; j < dense[i].size(); ++j) all.push_back(DenseEntry{int(i), int(j), dense[i][j]});
  std::stable_sort(all.begin(), all.end(), [](const DenseEntry& a, const DenseEntry& b) { return a.v > b.v; });
  return all;
}

void expect_top_entries(const std::vector<MatrixEntry>& got, const Mat& dense, const std::vector<DenseEntry>& all,
                        int n, double tol, bool exact) {
  const size_t want_n = std::min(all.size(), size_t(std::max(0, n)));
  ASSERT_EQ(got.size(), want_n);
  for (size_t p = 0; p < got.size(); ++p) {
    const MatrixEntry& g = got[p];
    ASSERT_GE(g.row, 0);
    ASSERT_LT(size_t(g.row), dense.size());
    ASSERT_GE(g.col, 0);
    ASSERT_LT(size_t(g.col), dense[0].size());
    if (exact) {
      EXPECT_EQ(g.row, all[p].r) << "position " << p;
      EXPECT_EQ(g.col, all[p].c) << "position " << p;
      EXPECT_EQ(double(g.value), all[p].v) << "position " << p;
    } else {
      EXPECT_NEAR(g.value, dense[size_t(g.row)][size_t(g.col)], tol) << "position " << p;
      EXPECT_NEAR(g.value, all[p].v, tol) << "position " << p;
    }
  }
  for (size_t p = 1; p < got.size(); ++p) {  // listed once each
    for (size_t q = 0; q < p; ++q) EXPECT_FALSE(got[p].row == got[q].row && got[p].col == got[q].col);
  }
}

// Every operation of M against the dense matrix D.
void check_all(const VocabMatrix& M, const Mat& D, bool exact) {
  const double tol = exact ? 0.0 : 2e-5 * scale_of(D);
  const size_t R = D.size(), C = D[0].size();
  ASSERT_EQ(size_t(M.n_rows()), R);
  ASSERT_EQ(size_t(M.n_cols()), C);
  for (size_t i = 0; i < R; ++i) {
    const Vec row = M.row(int(i));
    ASSERT_EQ(size_t(row.size()), C);
    for (size_t j = 0; j < C; ++j) EXPECT_NEAR(row[Eigen::Index(j)], D[i][j], tol) << "row " << i << " col " << j;
  }
  for (size_t j = 0; j < C; ++j) {
    const Vec col = M.column(int(j));
    ASSERT_EQ(size_t(col.size()), R);
    for (size_t i = 0; i < R; ++i) EXPECT_NEAR(col[Eigen::Index(i)], D[i][j], tol) << "row " << i << " col " << j;
  }
  for (int i : {0, int(R) / 2, int(R) - 1})
    for (int k : {1, 5, int(C) + 3}) expect_ranked(M.row_top_k(i, k), D[size_t(i)], k, tol, exact);
  for (int j : {0, int(C) - 1})
    for (int k : {0, 4, int(R)}) expect_ranked(M.column_top_k(j, k), column_of(D, size_t(j)), k, tol, exact);

  const std::vector<int> rows = {int(R) - 1, 0, 3, 3};
  const std::vector<int> cols = {2, int(C) - 1, 0};
  const RowMat blk = M.block(rows, cols);
  ASSERT_EQ(blk.rows(), 4);
  ASSERT_EQ(blk.cols(), 3);
  for (size_t a = 0; a < rows.size(); ++a)
    for (size_t b = 0; b < cols.size(); ++b)
      EXPECT_NEAR(blk(Eigen::Index(a), Eigen::Index(b)), D[size_t(rows[a])][size_t(cols[b])], tol);

  const std::vector<DenseEntry> all = sorted_entries(D);
  for (int n : {1, 17, int(R * C)}) expect_top_entries(M.top_entries(n), D, all, n, tol, exact);
  for (int k : {1, 4}) {
    const auto per_row = M.top_k_per_row(k);
    ASSERT_EQ(per_row.size(), R);
    for (size_t i = 0; i < R; ++i) expect_ranked(per_row[i], D[i], k, tol, exact);
    const auto per_col = M.top_k_per_column(k);
    ASSERT_EQ(per_col.size(), C);
    for (size_t j = 0; j < C; ++j) expect_ranked(per_col[j], column_of(D, j), k, tol, exact);
  }
}

std::string error_of(const std::function<void()>& f);  // defined below

class VocabMatrixDense : public ::testing::TestWithParam<std::tuple<Norm, PosEmbed>> {};

TEST_P(VocabMatrixDense, EveryOperationMatchesDenseLoops) {
  const auto [norm, pos] = GetParam();
  Model m(config(norm, pos, 23, 19));
  randomize(m, 77, 0.6f);

  check_all(direct_path_matrix(m), dense_direct(m), false);
  check_all(direct_path_matrix(m).transposed(), transpose(dense_direct(m)), false);
  for (bool normalize : {true, false}) {
    const CircuitOptions opt{normalize};
    check_all(ov_circuit_matrix(m, 1, 0, opt), dense_ov(m, 1, 0, normalize), false);
    check_all(qk_circuit_matrix(m, 0, 1, opt), dense_qk(m, 0, 1, normalize), false);
  }
  check_all(ov_circuit_matrix(m, 0, 1).transposed(), transpose(dense_ov(m, 0, 1, true)), false);

  // A virtual head's OV circuit (layer 0 head 1 read by layer 1 head 0's values).
  for (bool normalize : {true, false})
    check_all(virtual_ov_circuit_matrix(m, 0, 1, 1, 0, CircuitOptions{normalize}),
              dense_virtual_ov(m, 0, 1, 1, 0, normalize), false);

  // The same with W_E's row statistics computed beforehand (rows and columns
  // then read W_E once).
  const std::shared_ptr<const RowStats> st = row_stats(VocabSide::rows_of(m.W_E()));
  check_all(direct_path_matrix(m, st), dense_direct(m), false);
  for (bool normalize : {true, false}) {
    CircuitOptions opt{normalize};
    opt.embed_stats = st;
    check_all(ov_circuit_matrix(m, 1, 1, opt), dense_ov(m, 1, 1, normalize), false);
    check_all(qk_circuit_matrix(m, 1, 0, opt), dense_qk(m, 1, 0, normalize), false);
    check_all(qk_circuit_matrix(m, 1, 0, opt).transposed(), transpose(dense_qk(m, 1, 0, normalize)), false);
  }

  // The general form with positional rows: norm_final(W_pos) W_U.
  if (pos != PosEmbed::None) {
    const VocabMatrix P(m, "pos", VocabSide::rows_of(m.W_pos(), kFinalNorm), VocabSide::columns_of(m.W_U()));
    check_all(P, dense_unembed(m, normalized_rows(m, "pos_embed.W_pos", ln_prefix(m, -1, true)), false), false);
  } else {
    EXPECT_EQ(m.W_pos().rows(), 0);
  }
}

// A virtual head's OV eigenvalues from its d_head x d_head small matrix are
// the nonzero eigenvalues of the dense vocab x vocab circuit built with loops,
// one-shot and as the page's plan (the sums computed or given, a unit per step).
TEST_P(VocabMatrixDense, VirtualHeadEigenvaluesAreTheDenseCircuitsNonzeroEigenvalues) {
  const auto [norm, pos] = GetParam();
  Model m(config(norm, pos, 23, 23));
  randomize(m, 78, 0.6f);
  for (bool normalize : {true, false}) {
    const CircuitOptions opt{normalize};
    std::shared_ptr<const EmbedGrams> grams;
    for (int h1 = 0; h1 < 2; ++h1)
      for (int h2 = 0; h2 < 2; ++h2) {
        const std::string what = "virtual 1." + std::to_string(h2) + " o 0." + std::to_string(h1) +
                                 (normalize ? " (LayerNorm on W_E)" : "");
        const std::vector<cd> dense = nonzero_dense_eigenvalues(dense_virtual_ov(m, 0, h1, 1, h2, normalize), 1e-7);
        ASSERT_EQ(dense.size(), 3u) << what;  // random weights: rank d_head
        const std::vector<cd> once = virtual_ov_eigenvalues(m, 0, h1, 1, h2, opt);
        ASSERT_EQ(once.size(), 3u);
        expect_eigen_match(once, dense, what);
        HeadEigenPlan p(m, VirtualHeadRef{0, h1, 1, h2}, opt, grams);
        while (!p.step(0.0)) {
        }
        expect_eigen_match(p.result().ov, dense, what + ", plan");
        EXPECT_NEAR(p.result().ov_score, copying_score(dense), 1e-5) << what;
        EXPECT_TRUE(p.result().qk.empty());
        EXPECT_TRUE(std::isnan(p.result().qk_score));
        grams = p.grams();
      }
  }
  EXPECT_NE(error_of([&] { virtual_ov_eigenvalues(m, 1, 0, 1, 1); }).find("must be in an earlier layer"),
            std::string::npos);
  Model wide(config(norm, pos, 23, 19));
  randomize(wide, 79);
  EXPECT_NE(error_of([&] { HeadEigenPlan(wide, VirtualHeadRef{0, 0, 1, 1}, {}); }).find("not square"),
            std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(NormsAndPositions, VocabMatrixDense,
                         ::testing::Combine(::testing::Values(Norm::None, Norm::LN, Norm::LNPre),
                                            ::testing::Values(PosEmbed::Standard, PosEmbed::Shortformer,
                                                              PosEmbed::None)));

// Weights that are small multiples of 1/2: every product and sum below is
// exact in float, so results must equal the dense double matrix exactly.
void make_exact(Model& m, uint64_t seed) {
  randomize(m, seed, 1.0f);
  float* p = m.data();
  for (size_t i = 0; i < m.size(); ++i) p[i] = std::clamp(std::round(p[i] * 1.5f), -2.f, 2.f) * 0.5f;
}

// Several blocks of the scans (256 rows x 512 columns at rank <= 128), many ties.
TEST(VocabMatrixExact, ScansEqualFullSortsAcrossBlocksWithTies) {
  Model m(config(Norm::None, PosEmbed::Standard, 300, 600));
  make_exact(m, 5);
  const Mat D = dense_ov(m, 0, 1, true);
  const VocabMatrix M = ov_circuit_matrix(m, 0, 1);
  const std::vector<DenseEntry> all = sorted_entries(D);
  for (int n : {1, 50, 3000}) expect_top_entries(M.top_entries(n), D, all, n, 0, true);
  for (int k : {1, 7}) {
    const auto per_row = M.top_k_per_row(k);
    for (size_t i = 0; i < D.size(); ++i) expect_ranked(per_row[i], D[i], k, 0, true);
  }
  const auto per_col = M.top_k_per_column(3);
  ASSERT_EQ(per_col.size(), 600u);
  for (size_t j = 0; j < 600; j += 3) expect_ranked(per_col[j], column_of(D, j), 3, 0, true);
  for (int i : {0, 257, 299}) expect_ranked(M.row_top_k(i, 20), D[size_t(i)], 20, 0, true);
  for (int j : {0, 513, 599}) expect_ranked(M.column_top_k(j, 20), column_of(D, size_t(j)), 20, 0, true);

  // The direct path (B used in place, with a column bias) and QK (both sides W_E).
  const Mat Dd = dense_direct(m);
  expect_top_entries(direct_path_matrix(m).top_entries(200), Dd, sorted_entries(Dd), 200, 0, true);
  const auto dd_rows = direct_path_matrix(m).top_k_per_row(5);
  for (size_t i = 0; i < Dd.size(); i += 2) expect_ranked(dd_rows[i], Dd[i], 5, 0, true);
  const Mat Dq = dense_qk(m, 1, 0, true);
  expect_top_entries(qk_circuit_matrix(m, 1, 0).top_entries(300), Dq, sorted_entries(Dq), 300, 0, true);
}

// Slicing: stepping with tiny budgets gives bit-identical results to run().
template <class Plan, class... Args>
auto sliced_vs_run(Args&&... args) {
  Plan once(args...);
  once.run();
  for (double budget : {0.0, 0.05}) {
    Plan q(args...);
    int steps = 0;
    float last = -1.f;
    while (!q.step(budget)) {
      ++steps;
      EXPECT_GE(q.progress(), last);
      last = q.progress();
      EXPECT_NE(q.stage(), "done");
    }
    EXPECT_EQ(q.progress(), 1.f);
    if (budget == 0.0) EXPECT_EQ(size_t(steps + 1), q.units());  // one unit per step
    const auto& a = q.result();
    const auto& b = once.result();
    EXPECT_EQ(a.size(), b.size());
    if constexpr (std::is_same_v<std::decay_t<decltype(a)>, Vec>) {
      for (Eigen::Index i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]);
    } else {
      EXPECT_TRUE(std::equal(a.begin(), a.end(), b.begin(), [](const auto& x, const auto& y) {
        if constexpr (std::is_same_v<std::decay_t<decltype(x)>, MatrixEntry>)
          return x.row == y.row && x.col == y.col && x.value == y.value;
        else if constexpr (std::is_same_v<std::decay_t<decltype(x)>, IdValue>)
          return x.id == y.id && x.value == y.value;
        else
          return x.size() == y.size() && std::equal(x.begin(), x.end(), y.begin(), [](const IdValue& u, const IdValue& v) {
                   return u.id == v.id && u.value == v.value;
                 });
      }));
    }
  }
  return once.result();
}

TEST(VocabMatrixSliced, StepsGiveTheSameBitsAsRun) {
  Model m(config(Norm::LN, PosEmbed::Shortformer, 300, 600));
  randomize(m, 12, 0.5f);
  const VocabMatrix ov = ov_circuit_matrix(m, 1, 1);
  const VocabMatrix qk = qk_circuit_matrix(m, 0, 0);
  const VocabMatrix dp = direct_path_matrix(m);
  for (const VocabMatrix* M : {&ov, &qk, &dp}) {
    sliced_vs_run<VocabRowQuery>(*M, 299);
    sliced_vs_run<VocabColumnQuery>(*M, 3);
    sliced_vs_run<VocabRowTopK>(*M, 10, 9);
    sliced_vs_run<VocabColumnTopK>(*M, 260, 9);
    sliced_vs_run<VocabTopEntries>(*M, 100);
    sliced_vs_run<VocabTopKPerRow>(*M, 6);
    sliced_vs_run<VocabTopKPerRow>(M->transposed(), 2);
  }
  // And the one-shot rows match the dense matrix.
  const Mat D = dense_ov(m, 1, 1, true);
  const Vec r = ov.row(299);
  for (size_t j = 0; j < D[299].size(); ++j) EXPECT_NEAR(r[Eigen::Index(j)], D[299][j], 2e-5 * scale_of(D));
}

TEST(VocabMatrixRowStats, MeanAndVarianceOfEveryRowOrColumnAsLoopsGiveThem) {
  Model m(config(Norm::LN, PosEmbed::Standard, 23, 19));
  randomize(m, 8, 0.7f);
  for (bool transposed : {false, true}) {
    const VocabSide s = transposed ? VocabSide::columns_of(m.W_U()) : VocabSide::rows_of(m.W_E());
    const std::shared_ptr<const RowStats> st = row_stats(s);
    ASSERT_EQ(st->data, s.data);
    ASSERT_EQ(st->mean.size(), s.n());
    ASSERT_EQ(st->var.size(), s.n());
    const ConstMatMap base = s.base();
    for (Eigen::Index i = 0; i < s.n(); ++i) {
      double sum = 0, sq = 0;
      for (Eigen::Index k = 0; k < s.d(); ++k) sum += transposed ? base(k, i) : base(i, k);
      const double mu = sum / double(s.d());
      for (Eigen::Index k = 0; k < s.d(); ++k) {
        const double x = (transposed ? base(k, i) : base(i, k)) - mu;
        sq += x * x;
      }
      EXPECT_NEAR(st->mean[i], mu, 1e-6) << "row " << i;
      EXPECT_NEAR(st->var[i], sq / double(s.d()), 1e-6) << "row " << i;
    }
  }
}

TEST(VocabMatrixRowStats, GivenStatisticsAreWhatTheQueriesUse) {
  Model m(config(Norm::LN, PosEmbed::Standard, 23, 19));
  randomize(m, 9, 0.7f);
  const std::shared_ptr<const RowStats> st = row_stats(VocabSide::rows_of(m.W_E()));
  // Statistics of the right storage but with one row's mean moved: that row's
  // entry of every column changes, the others stay (so the stored numbers,
  // not a recomputation, are what a column reads).
  auto moved = std::make_shared<RowStats>(*st);
  moved->mean[4] += 0.5f;
  CircuitOptions opt;
  opt.embed_stats = moved;
  const Vec good = ov_circuit_matrix(m, 0, 1).column(7);
  const Vec off = ov_circuit_matrix(m, 0, 1, opt).column(7);
  for (Eigen::Index i = 0; i < good.size(); ++i)
    if (i == 4)
      EXPECT_GT(std::abs(off[i] - good[i]), 1e-4);
    else
      EXPECT_NEAR(off[i], good[i], 1e-5 * (1 + std::abs(good[i])));
  // Statistics of other weights are refused, naming the matrix.
  Model other(config(Norm::LN, PosEmbed::Standard, 23, 19));
  randomize(other, 10, 0.7f);
  opt.embed_stats = row_stats(VocabSide::rows_of(other.W_E()));
  const std::string e = error_of([&] { ov_circuit_matrix(m, 0, 1, opt); });
  EXPECT_NE(e.find("ov_circuit_matrix(0, 1): the row statistics given belong to other weights"), std::string::npos)
      << e;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no cs::Error)";
}

TEST(VocabMatrixErrors, BadIndicesNameTheIndexAndBound) {
  Model m(config(Norm::LN, PosEmbed::Standard, 23, 19));
  randomize(m, 3);
  const VocabMatrix M = ov_circuit_matrix(m, 1, 0);
  EXPECT_NE(error_of([&] { M.row(23); }).find("row 23 is outside [0, n_rows = 23)"), std::string::npos);
  EXPECT_NE(error_of([&] { M.row(-1); }).find("row -1"), std::string::npos);
  EXPECT_NE(error_of([&] { M.column(19); }).find("column 19 is outside [0, n_cols = 19)"), std::string::npos);
  EXPECT_NE(error_of([&] { M.row_top_k(40, 3); }).find("row 40"), std::string::npos);
  EXPECT_NE(error_of([&] { M.column_top_k(-2, 3); }).find("column -2"), std::string::npos);
  const std::vector<int> ok = {0, 1}, bad_row = {0, 23}, bad_col = {5, 19};
  EXPECT_NE(error_of([&] { M.block(bad_row, ok); }).find("row 23"), std::string::npos);
  EXPECT_NE(error_of([&] { M.block(ok, bad_col); }).find("column 19"), std::string::npos);
  EXPECT_NE(error_of([&] { M.transposed().row(19); }).find("n_rows = 19"), std::string::npos);
  EXPECT_NE(error_of([&] { VocabRowQuery q(M, 99); }).find("row 99"), std::string::npos);
  EXPECT_NE(error_of([&] { ov_circuit_matrix(m, 2, 0); }).find("layer 2 is outside [0, n_layers = 2)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { qk_circuit_matrix(m, 0, 2); }).find("head 2 is outside [0, n_heads = 2)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { virtual_ov_circuit_matrix(m, 1, 0, 1, 1); }).find("must be in an earlier layer"),
            std::string::npos);
  EXPECT_NE(error_of([&] { VocabMatrix(m, "bad", VocabSide::rows_of(m.W_E()), VocabSide::rows_of(m.W_E()),
                                       RowMat(m.W_V(0, 0))); })
                .find("bad: the left factor has width 3"),
            std::string::npos);
  // Sizes out of range are clamped, not errors.
  EXPECT_EQ(M.top_entries(0).size(), 0u);
  EXPECT_EQ(M.top_entries(-5).size(), 0u);
  EXPECT_EQ(M.top_k_per_row(0).size(), 23u);
  EXPECT_EQ(M.row_top_k(0, 1000).size(), 19u);
}

}  // namespace
}  // namespace cs
