// Composition scores (core/composition.h) against dense d_model x d_model
// products formed here with loops in double, and the random baseline against
// a Monte-Carlo estimate made here from dense Gaussian matrices.
#include <gtest/gtest.h>

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <array>
#include <cmath>
#include <complex>
#include <string>
#include <vector>

#include "core/circuits.h"
#include "core/composition.h"
#include "core/head_detector.h"
#include "core/vocab_matrix.h"
#include "core/error.h"
#include "core/model.h"
#include "core/rng.h"
#include "naive_reference.h"

namespace cs {
namespace {

using Dense = naive::Mat;

template <class M>
Dense mat(const M& x) {
  Dense a(size_t(x.rows()), std::vector<double>(size_t(x.cols())));
  for (Eigen::Index i = 0; i < x.rows(); ++i)
    for (Eigen::Index j = 0; j < x.cols(); ++j) a[size_t(i)][size_t(j)] = x(i, j);
  return a;
}
using naive::matmul;
using naive::transpose;
double fro(const Dense& a) {
  double s = 0;
  for (const auto& row : a)
    for (double v : row) s += v * v;
  return std::sqrt(s);
}
double score(const Dense& left, const Dense& right) { return fro(matmul(left, right)) / (fro(left) * fro(right)); }

ModelConfig config(int layers, Norm norm) {
  ModelConfig c;
  c.n_layers = layers;
  c.d_model = 12;
  c.n_heads = 3;
  c.d_head = 4;
  c.n_ctx = 8;
  c.d_vocab = 20;
  c.normalization = norm;
  return c;
}

TEST(Composition, EveryPairEqualsTheDenseProducts) {
  for (Norm norm : {Norm::LN, Norm::None}) {
    Model m(config(3, norm));
    randomize(m, 91, 0.7f);
    const CompositionScores s = composition_scores(m);
    ASSERT_EQ(s.Q.rows(), 9);
    const int H = 3;
    for (int l1 = 0; l1 < 3; ++l1)
      for (int h1 = 0; h1 < H; ++h1) {
        const Dense ov1 = matmul(mat(m.W_V(l1, h1)), mat(m.W_O(l1, h1)));  // [d, d]
        for (int l2 = 0; l2 < 3; ++l2)
          for (int h2 = 0; h2 < H; ++h2) {
            const std::string what = std::to_string(l1) + "." + std::to_string(h1) + " -> " + std::to_string(l2) +
                                     "." + std::to_string(h2);
            if (l1 >= l2) {
              for (auto k : {CompositionKind::Q, CompositionKind::K, CompositionKind::V})
                EXPECT_EQ(s.at(k, l1, h1, l2, h2), 0.0) << what << ": not an earlier head";
              continue;
            }
            const Dense qk2 = matmul(mat(m.W_Q(l2, h2)), transpose(mat(m.W_K(l2, h2))));
            const Dense ov2 = matmul(mat(m.W_V(l2, h2)), mat(m.W_O(l2, h2)));
            EXPECT_NEAR(s.at(CompositionKind::Q, l1, h1, l2, h2), score(ov1, qk2), 2e-6) << what;
            EXPECT_NEAR(s.at(CompositionKind::K, l1, h1, l2, h2), score(ov1, transpose(qk2)), 2e-6) << what;
            EXPECT_NEAR(s.at(CompositionKind::V, l1, h1, l2, h2), score(ov1, ov2), 2e-6) << what;
            const double vn = fro(matmul(ov1, ov2));
            EXPECT_NEAR(s.virtual_norm(l1 * H + h1, l2 * H + h2), vn, 2e-6 * std::max(1.0, vn)) << what;
          }
      }
  }
}

// The ranking lists every (earlier, later) pair once, each with its dense
// ||W_OV1 W_OV2|| and V-composition score, largest norm first.
TEST(Composition, VirtualHeadsRankedByTheDenseNorms) {
  Model m(config(3, Norm::LN));
  randomize(m, 92, 0.7f);
  const std::vector<VirtualHeadNorm> r = rank_virtual_heads(composition_scores(m));
  ASSERT_EQ(r.size(), size_t(3 * 9));  // (0,1), (0,2), (1,2) layer pairs of 3 x 3 heads
  std::vector<std::array<int, 4>> seen;
  for (size_t i = 0; i < r.size(); ++i) {
    const VirtualHeadRef v = r[i].head;
    ASSERT_LT(v.l1, v.l2);
    const Dense ov1 = matmul(mat(m.W_V(v.l1, v.h1)), mat(m.W_O(v.l1, v.h1)));
    const Dense ov2 = matmul(mat(m.W_V(v.l2, v.h2)), mat(m.W_O(v.l2, v.h2)));
    const double vn = fro(matmul(ov1, ov2));
    EXPECT_NEAR(r[i].norm, vn, 2e-6 * std::max(1.0, vn));
    EXPECT_NEAR(r[i].v_composition, score(ov1, ov2), 2e-6);
    if (i > 0) EXPECT_GE(r[i - 1].norm, r[i].norm);
    seen.push_back({v.l1, v.h1, v.l2, v.h2});
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(std::adjacent_find(seen.begin(), seen.end()), seen.end());
  // One layer: no virtual heads.
  Model one(config(1, Norm::LN));
  randomize(one, 93);
  EXPECT_TRUE(rank_virtual_heads(composition_scores(one)).empty());
}

// A head that writes into the very subspace a later head's keys read scores
// above the random baseline; one orthogonal to it scores exactly 0.
TEST(Composition, AlignedAndOrthogonalHeads) {
  Model m(config(2, Norm::None));
  randomize(m, 92, 0.5f);
  // Head 0.0 writes only to dimensions 0..3; head 1.0 reads keys from 0..3,
  // head 1.1 reads keys from 8..11 only.
  auto WO = m.W_O(0, 0);
  WO.rightCols(8).setZero();
  auto WK0 = m.W_K(1, 0), WK1 = m.W_K(1, 1);
  WK0.bottomRows(8).setZero();
  WK1.topRows(8).setZero();
  const CompositionScores s = composition_scores(m);
  EXPECT_EQ(s.at(CompositionKind::K, 0, 0, 1, 1), 0.0);
  EXPECT_GT(s.at(CompositionKind::K, 0, 0, 1, 0), s.baseline) << "within the same 4 of 12 dimensions";
}

TEST(Composition, ScoreOfFactorsEqualsDense) {
  Rng rng(5);
  auto g = [&](int r, int c) {
    Eigen::MatrixXd x(r, c);
    for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = rng.gaussian();
    return x;
  };
  for (int r : {1, 3, 7}) {
    const Eigen::MatrixXd A1 = g(7, r), B1 = g(r, 7), A2 = g(7, r), B2 = g(r, 7);
    const Eigen::MatrixXd L = A1 * B1, R = A2 * B2;
    EXPECT_NEAR(composition_score(A1, B1, A2, B2), (L * R).norm() / (L.norm() * R.norm()), 1e-12) << "rank " << r;
  }
  EXPECT_EQ(composition_score(Eigen::MatrixXd::Zero(5, 2), g(2, 5), g(5, 2), g(2, 5)), 0.0);
  EXPECT_THROW(composition_score(g(5, 2), g(2, 4), g(5, 2), g(2, 5)), Error);
}

// The baseline against a Monte-Carlo estimate of the same expectation made
// here: dense products of Gaussian matrices from another stream, its mean
// within four standard errors.
TEST(Composition, BaselineMatchesAMonteCarloEstimate) {
  const int d = 16, r = 4, n = 400;
  Rng rng(777);
  std::vector<double> xs;
  for (int s = 0; s < n; ++s) {
    auto g = [&](int rows, int cols) {
      Dense x(size_t(rows), std::vector<double>(size_t(cols), 0.0));
      for (auto& row : x)
        for (double& v : row) v = rng.gaussian();
      return x;
    };
    const Dense L = matmul(g(d, r), g(r, d)), R = matmul(g(d, r), g(r, d));
    xs.push_back(score(L, R));
  }
  double mean = 0, var = 0;
  for (double x : xs) mean += x / n;
  for (double x : xs) var += (x - mean) * (x - mean) / (n - 1);
  const double se = std::sqrt(var / n);
  const double b = composition_baseline(d, r, /*seed=*/3, /*samples=*/n);
  EXPECT_NEAR(b, mean, 4 * se + 4 * se) << "mean " << mean << " se " << se;  // both are estimates
  // The paper's point: random matrices do not score 0 (here about 1/sqrt(d)).
  EXPECT_GT(b, 0.5 / std::sqrt(double(d)));
  EXPECT_LT(b, 2.0 / std::sqrt(double(d)));
  EXPECT_EQ(composition_baseline(d, r, 3, 50), composition_baseline(d, r, 3, 50)) << "fixed seed";
  EXPECT_THROW(composition_baseline(d, r, 3, 0), Error);
}

TEST(Composition, OneLayerHasNoPairs) {
  Model m(config(1, Norm::LN));
  randomize(m, 93, 0.5f);
  const CompositionScores s = composition_scores(m);
  EXPECT_EQ(s.Q.cwiseAbs().maxCoeff(), 0.0);
  EXPECT_GT(s.baseline, 0.0);
  EXPECT_THROW(s.at(CompositionKind::Q, 0, 0, 1, 0), Error);
}

}  // namespace
}  // namespace cs

namespace cs {
namespace {

// E_l: the rows of W_E through block l's ln1 (as the reference normalizes a row).
naive::Mat embed_rows(const Model& m, int l) {
  const ModelConfig& c = m.config();
  naive::Mat E;
  for (int t = 0; t < c.d_vocab; ++t) {
    std::vector<double> x(size_t(c.d_model));
    for (int d = 0; d < c.d_model; ++d) x[size_t(d)] = m.W_E()(t, d);
    E.push_back(naive::norm_row(m, x, naive::blk(l, "ln1")));
  }
  return E;
}

// E_l2 W_Q2 W_K2^T (E_l1 W_V1 W_O1)^T, every product formed densely here.
naive::Mat dense_k_term(const Model& m, int l1, int h1, int l2, int h2) {
  const naive::Mat q = matmul(embed_rows(m, l2), mat(m.W_Q(l2, h2)));                          // [V, d_head]
  const naive::Mat moved = matmul(matmul(embed_rows(m, l1), mat(m.W_V(l1, h1))), mat(m.W_O(l1, h1)));  // [V, d_model]
  const naive::Mat k = matmul(moved, mat(m.W_K(l2, h2)));                                        // [V, d_head]
  return matmul(q, transpose(k));
}

TEST(KCompositionTerm, FactoredMatrixAndEigenvaluesEqualTheDenseTerm) {
  for (Norm norm : {Norm::None, Norm::LN, Norm::LNPre}) {
    Model m(config(3, norm));
    randomize(m, 55, 0.5f);
    const EmbedGrams g = embed_grams(m);
    for (auto [l1, h1, l2, h2] : {std::array{0, 1, 1, 2}, std::array{0, 0, 2, 1}, std::array{1, 2, 2, 0}}) {
      const std::string what = std::string(to_string(norm)) + " " + std::to_string(l1) + "." + std::to_string(h1) +
                               " -> " + std::to_string(l2) + "." + std::to_string(h2);
      const naive::Mat want = dense_k_term(m, l1, h1, l2, h2);
      const VocabMatrix M = k_composition_term_matrix(m, l1, h1, l2, h2);
      std::vector<int> all(20);
      for (int i = 0; i < 20; ++i) all[size_t(i)] = i;
      const RowMat got = M.block(all, all);
      double scale = 1e-6;
      for (const auto& row : want)
        for (double v : row) scale = std::max(scale, std::abs(v));
      for (int i = 0; i < 20; ++i)
        for (int j = 0; j < 20; ++j) ASSERT_NEAR(got(i, j), want[size_t(i)][size_t(j)], 1e-5 * scale) << what;
      // Eigenvalues: the small matrix's equal the dense term's largest d_head (the rest are 0).
      Eigen::MatrixXd D(20, 20);
      for (int i = 0; i < 20; ++i)
        for (int j = 0; j < 20; ++j) D(i, j) = want[size_t(i)][size_t(j)];
      Eigen::EigenSolver<Eigen::MatrixXd> es(D);
      std::vector<std::complex<double>> dense(es.eigenvalues().begin(), es.eigenvalues().end());
      std::sort(dense.begin(), dense.end(), [](auto a, auto b) { return std::abs(a) > std::abs(b); });
      const auto small = k_composition_eigenvalues(m, l1, h1, l2, h2, g);
      ASSERT_EQ(small.size(), 4u);
      double sum_abs = 0;
      for (auto v : small) sum_abs += std::abs(v);
      for (size_t i = 0; i < 4; ++i) {
        // match each small eigenvalue to the nearest of the dense top 4 (conjugate pairs share a modulus)
        double best = 1e300;
        for (size_t j = 0; j < 4; ++j) best = std::min(best, std::abs(small[i] - dense[j]));
        EXPECT_LT(best, 1e-6 * sum_abs) << what << " eigenvalue " << i;
      }
      for (size_t j = 4; j < dense.size(); ++j) EXPECT_LT(std::abs(dense[j]), 1e-6 * sum_abs) << what;
    }
  }
}

// d_head = d_model, W_V1 = W_O1 = W_K2 = I: the term is E W_Q2 E^T. With
// W_Q2 = I it is E E^T (positive semi-definite: positivity 1), with -I it is -1.
TEST(KCompositionTerm, PositivityOfAnIdealAndAnAntiInductionHead) {
  ModelConfig c = config(2, Norm::None);
  c.d_head = 12;
  c.n_heads = 2;
  Model m(c);
  randomize(m, 3, 0.5f);
  m.W_V(0, 1).setIdentity();
  m.W_O(0, 1).setIdentity();
  for (int h = 0; h < 2; ++h) m.W_K(1, h).setIdentity();
  m.W_Q(1, 0).setIdentity();
  m.W_Q(1, 1) = -Eigen::MatrixXf::Identity(12, 12);
  const EmbedGrams g = embed_grams(m);
  const std::vector<InductionScatterPoint> pts = induction_scatter(m, 0, 1, g);
  ASSERT_EQ(pts.size(), 2u);
  EXPECT_EQ(pts[0].layer, 1);
  EXPECT_EQ(pts[1].head, 1);
  EXPECT_NEAR(pts[0].k_term_positivity, 1.0, 1e-9);
  EXPECT_NEAR(pts[1].k_term_positivity, -1.0, 1e-9);
  // The OV positivity is the head's own copying score.
  EXPECT_NEAR(pts[0].ov_positivity, copying_score(ov_eigenvalues(m, 1, 0)), 1e-12);
  EXPECT_THROW(k_composition_term_matrix(m, 1, 0, 1, 1), Error);
  EXPECT_THROW(induction_scatter(m, 2, 0, g), Error);
}

}  // namespace
}  // namespace cs

namespace cs {
namespace {

// The plan stepped one unit at a time gives what composition_scores and
// composition_baseline give at once.
TEST(Composition, SlicedPlanEqualsTheOneShotScores) {
  Model m(config(3, Norm::LN));
  randomize(m, 17, 0.5f);
  const CompositionScores once = composition_scores(m, CompositionOptions{.seed = 5, .baseline_samples = 6});
  CompositionPlan p(m, CompositionOptions{.seed = 5, .baseline_samples = 6});
  size_t steps = 0;
  while (!p.step(0.0)) ++steps;
  EXPECT_EQ(steps + 1, p.units());
  EXPECT_EQ(p.units(), size_t(6 + 3 + 3 * 3 + 1 + 3 * 3 * (1 + 2) + 1));  // baseline pairs, layers, heads, barrier, earlier heads x later layers x kinds, end
  const CompositionScores& r = p.result();
  EXPECT_EQ(r.baseline, composition_baseline(12, 4, 5, 6));
  EXPECT_EQ(r.baseline, once.baseline);
  EXPECT_TRUE(r.Q == once.Q && r.K == once.K && r.V == once.V && r.virtual_norm == once.virtual_norm);
  EXPECT_GT(r.K.maxCoeff(), 0.0);
}

}  // namespace
}  // namespace cs

namespace cs {
namespace {

TEST(InductionScatter, PlanFindsThePreviousTokenHeadAndMatchesTheOneShotScatter) {
  Model m(config(3, Norm::LN));
  randomize(m, 23, 0.7f);
  const std::vector<std::vector<int>> seqs{{1, 5, 9, 2, 5, 9, 2, 7}, {3, 3, 4, 0, 3, 4}};
  const DetectorScores d = detect_heads(m, seqs);
  Eigen::Index bl = 0, bh = 0;
  d.previous_token.topRows(2).maxCoeff(&bl, &bh);
  InductionScatterPlan found(m, {}, -1, 0, seqs);
  found.run();
  const InductionScatter& r = found.result();
  EXPECT_EQ(r.prev_layer, int(bl));
  EXPECT_EQ(r.prev_head, int(bh));
  EXPECT_TRUE(r.previous_token == d.previous_token);
  const EmbedGrams g = embed_grams(m);
  const auto want = induction_scatter(m, r.prev_layer, r.prev_head, g);
  ASSERT_EQ(r.points.size(), want.size());
  ASSERT_EQ(want.size(), size_t((2 - r.prev_layer) * 3));
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(r.points[i].layer, want[i].layer);
    EXPECT_EQ(r.points[i].head, want[i].head);
    EXPECT_NEAR(r.points[i].k_term_positivity, want[i].k_term_positivity, 1e-12);
    EXPECT_NEAR(r.points[i].ov_positivity, want[i].ov_positivity, 1e-12);
  }
  // A given head is used as given.
  InductionScatterPlan given(m, {}, 1, 2, {});
  given.run();
  EXPECT_EQ(given.result().points.size(), 3u);
  EXPECT_EQ(given.result().previous_token.size(), 0);
  EXPECT_THROW(InductionScatterPlan(m, {}, 2, 0, {}), Error);
}

}  // namespace
}  // namespace cs

namespace cs {
namespace {

// On many threads (more than the cores, so units interleave), run again and
// again: exactly the numbers of the plan stepped unit by unit. Scores read
// the factors, so a stretch of concurrent units must not mix the two.
TEST(Composition, RunConcurrentlyEqualsTheSteppedPlan) {
  Model m(config(3, Norm::LN));
  randomize(m, 23, 0.5f);
  CompositionPlan stepped(m, CompositionOptions{.baseline_samples = 1});
  while (!stepped.step(0.0)) {
  }
  const CompositionScores& want = stepped.result();
  for (int rep = 0; rep < 20; ++rep) {
    CompositionPlan p(m, CompositionOptions{.baseline_samples = 1});
    p.run_concurrently(8);
    const CompositionScores& r = p.result();
    ASSERT_TRUE(r.Q == want.Q && r.K == want.K && r.V == want.V && r.virtual_norm == want.virtual_norm) << "run " << rep;
  }
}

}  // namespace
}  // namespace cs
