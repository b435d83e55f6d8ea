// Composition scores (core/composition.h) against dense d_model x d_model
// products formed here with loops in double, and the random baseline against
// a Monte-Carlo estimate made here from dense Gaussian matrices.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/composition.h"
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
