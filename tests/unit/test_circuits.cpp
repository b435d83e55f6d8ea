// OV / QK circuits and the eigenvalue copying score (core/circuits.h) against
// dense matrices built here with plain loops from the flat weights
// (naive_reference.h), and eigenvalues of the full vocab x vocab OV circuit
// computed by a dense eigen-solver on that loop-built matrix.
#include <gtest/gtest.h>

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <complex>
#include <vector>

#include "core/circuits.h"
#include "core/error.h"
#include "core/model.h"
#include "naive_reference.h"

namespace cs {
namespace {

using cd = std::complex<double>;

ModelConfig small_config(Norm norm) {
  ModelConfig c;
  c.n_layers = 2;
  c.d_model = 8;
  c.n_heads = 2;
  c.d_head = 3;
  c.n_ctx = 5;
  c.d_vocab = 23;
  c.normalization = norm;
  c.positional = PosEmbed::Shortformer;
  return c;
}

// E W_V[h] W_O[h] W_U with loops over the flat TransformerLens tensors
// (TL layout: W_V [n_heads, d_model, d_head], W_O [n_heads, d_head, d_model],
// W_U [d_model, d_vocab_out]); E = rows of W_E, normalized by block l's ln1 when asked.
naive::Mat dense_full_ov(const Model& m, int l, int h, bool normalize) {
  const ModelConfig& c = m.config();
  const size_t V = size_t(c.d_vocab), D = size_t(c.d_model), H = size_t(c.d_head), Vo = size_t(c.vocab_out());
  const naive::Tensor WE = naive::tensor(m, "embed.W_E"), WV = naive::tensor(m, naive::blk(l, "attn.W_V")),
                      WO = naive::tensor(m, naive::blk(l, "attn.W_O")), WU = naive::tensor(m, "unembed.W_U");
  naive::Mat out = naive::zeros(V, Vo);
  for (size_t s = 0; s < V; ++s) {
    std::vector<double> e(D);
    for (size_t d = 0; d < D; ++d) e[d] = WE[s * D + d];
    if (normalize) e = naive::norm_row(m, e, naive::blk(l, "ln1"));
    std::vector<double> v(H, 0.0), r(D, 0.0);
    for (size_t j = 0; j < H; ++j)
      for (size_t d = 0; d < D; ++d) v[j] += e[d] * WV[(size_t(h) * D + d) * H + j];
    for (size_t d = 0; d < D; ++d)
      for (size_t j = 0; j < H; ++j) r[d] += v[j] * WO[(size_t(h) * H + j) * D + d];
    for (size_t o = 0; o < Vo; ++o)
      for (size_t d = 0; d < D; ++d) out[s][o] += r[d] * WU[d * Vo + o];
  }
  return out;
}

// Eigenvalues of a dense square matrix whose modulus exceeds tol * the largest modulus.
std::vector<cd> nonzero_dense_eigenvalues(const naive::Mat& a, double tol) {
  const Eigen::Index n = Eigen::Index(a.size());
  Eigen::MatrixXd M(n, n);
  for (Eigen::Index i = 0; i < n; ++i)
    for (Eigen::Index j = 0; j < n; ++j) M(i, j) = a[size_t(i)][size_t(j)];
  Eigen::EigenSolver<Eigen::MatrixXd> es(M, false);
  std::vector<cd> all(es.eigenvalues().begin(), es.eigenvalues().end()), out;
  double top = 0;
  for (const cd& x : all) top = std::max(top, std::abs(x));
  for (const cd& x : all)
    if (std::abs(x) > tol * top) out.push_back(x);
  return out;
}

class OvEigen : public ::testing::TestWithParam<Norm> {};

TEST_P(OvEigen, FullCircuitMatchesLoops) {
  Model m(small_config(GetParam()));
  randomize(m, 7, 0.6f);
  for (int l = 0; l < 2; ++l)
    for (int h = 0; h < 2; ++h)
      for (bool norm : {false, true}) {
        const naive::Mat want = dense_full_ov(m, l, h, norm);
        const RowMat got = full_ov_circuit(m, l, h, CircuitOptions{norm});
        ASSERT_EQ(got.rows(), 23);
        ASSERT_EQ(got.cols(), 23);
        for (int s = 0; s < 23; ++s)
          for (int o = 0; o < 23; ++o) ASSERT_NEAR(got(s, o), want[size_t(s)][size_t(o)], 1e-4) << s << "," << o;
      }
}

TEST_P(OvEigen, EigenvaluesAreTheNonzeroEigenvaluesOfTheDenseVocabMatrix) {
  Model m(small_config(GetParam()));
  randomize(m, 11, 0.6f);
  for (int l = 0; l < 2; ++l)
    for (int h = 0; h < 2; ++h) {
      const std::vector<cd> dense = nonzero_dense_eigenvalues(dense_full_ov(m, l, h, true), 1e-7);
      const std::vector<cd> small = ov_eigenvalues(m, l, h);
      ASSERT_EQ(small.size(), 3u);  // d_head of them
      // Random weights: rank d_head, so exactly d_head nonzero eigenvalues.
      ASSERT_EQ(dense.size(), 3u) << "head " << l << "." << h;
      for (size_t i = 0; i + 1 < small.size(); ++i) EXPECT_GE(std::abs(small[i]), std::abs(small[i + 1]) - 1e-12);
      // Every dense eigenvalue has a match among the small ones (a multiset match).
      std::vector<bool> used(small.size(), false);
      for (const cd& x : dense) {
        size_t best = 0;
        double dist = 1e300;
        for (size_t i = 0; i < small.size(); ++i)
          if (!used[i] && std::abs(small[i] - x) < dist) dist = std::abs(small[i] - x), best = i;
        EXPECT_LT(dist, 1e-4 * std::max(1.0, std::abs(x))) << "head " << l << "." << h << " eigenvalue " << x;
        used[best] = true;
      }
      // And the score from the dense eigenvalues equals the score from the small matrix.
      double re = 0, mag = 0;
      for (const cd& x : dense) re += x.real(), mag += std::abs(x);
      EXPECT_NEAR(copying_score(small), re / mag, 1e-5);
    }
}

TEST_P(OvEigen, CopyingScoresHoldEveryHead) {
  Model m(small_config(GetParam()));
  randomize(m, 13, 0.6f);
  const RowMat s = copying_scores(m);
  ASSERT_EQ(s.rows(), 2);
  ASSERT_EQ(s.cols(), 2);
  for (int l = 0; l < 2; ++l)
    for (int h = 0; h < 2; ++h) {
      EXPECT_FLOAT_EQ(s(l, h), float(copying_score(ov_eigenvalues(m, l, h))));
      EXPECT_GE(s(l, h), -1.f);
      EXPECT_LE(s(l, h), 1.f);
    }
}

INSTANTIATE_TEST_SUITE_P(Norms, OvEigen, ::testing::Values(Norm::None, Norm::LN, Norm::LNPre));

TEST(CopyingScore, FromKnownEigenvalues) {
  const std::vector<cd> ev{cd(2, 0), cd(-1, 0), cd(1, 1), cd(1, -1)};
  EXPECT_NEAR(copying_score(ev), 3.0 / (3.0 + 2.0 * std::sqrt(2.0)), 1e-12);
  EXPECT_EQ(copying_score(std::vector<cd>{cd(0, 0), cd(0, 0)}), 0.0);
  EXPECT_NEAR(copying_score(std::vector<cd>{cd(-3, 0)}), -1.0, 1e-12);
}

// One head on 6 tokens with W_E = W_V = W_O = I (d_model = d_head = d_vocab = 6)
// and W_U a chosen matrix P: the full OV circuit is P itself.
Model identity_head(const Eigen::MatrixXf& P) {
  ModelConfig c;
  c.n_layers = 1;
  c.d_model = 6;
  c.n_heads = 1;
  c.d_head = 6;
  c.n_ctx = 4;
  c.d_vocab = 6;
  c.normalization = Norm::None;
  c.positional = PosEmbed::None;
  Model m(c);
  m.W_E().setIdentity();
  m.W_V(0, 0).setIdentity();
  m.W_O(0, 0).setIdentity();
  m.W_U() = P;
  return m;
}

TEST(CopyingScore, CopyingAntiCopyingAndRotatingHeads) {
  // Copying: the head raises the logit of the token it attends to.
  EXPECT_NEAR(copying_scores(identity_head(Eigen::MatrixXf::Identity(6, 6)))(0, 0), 1.f, 1e-6);
  // Anti-copying: it lowers it.
  EXPECT_NEAR(copying_scores(identity_head(-2.f * Eigen::MatrixXf::Identity(6, 6)))(0, 0), -1.f, 1e-6);
  // A 3-cycle on tokens 0..2 (0 -> 1 -> 2 -> 0), nothing else: eigenvalues 1, w, w^2
  // (cube roots of unity, real parts 1, -1/2, -1/2) and zeros: score 0.
  Eigen::MatrixXf P = Eigen::MatrixXf::Zero(6, 6);
  P(0, 1) = P(1, 2) = P(2, 0) = 1.f;
  const Model cyc = identity_head(P);
  EXPECT_NEAR(copying_scores(cyc)(0, 0), 0.f, 1e-6);
  const std::vector<cd> ev = ov_eigenvalues(cyc, 0, 0);
  ASSERT_EQ(ev.size(), 6u);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(std::abs(ev[size_t(i)]), 1.0, 1e-9);
  for (int i = 3; i < 6; ++i) EXPECT_NEAR(std::abs(ev[size_t(i)]), 0.0, 1e-9);
  // Diagonal with mixed signs: (3 - 1) / (3 + 1).
  Eigen::MatrixXf D = Eigen::MatrixXf::Zero(6, 6);
  D(0, 0) = 3.f;
  D(4, 4) = -1.f;
  EXPECT_NEAR(copying_scores(identity_head(D))(0, 0), 0.5f, 1e-6);
}

TEST(Circuits, OvAndQkCircuitsMatchLoops) {
  Model m(small_config(Norm::LN));
  randomize(m, 17, 0.5f);
  const int D = 8, H = 3;
  for (int l = 0; l < 2; ++l)
    for (int h = 0; h < 2; ++h) {
      const naive::Tensor WQ = naive::tensor(m, naive::blk(l, "attn.W_Q")),
                          WK = naive::tensor(m, naive::blk(l, "attn.W_K")),
                          WV = naive::tensor(m, naive::blk(l, "attn.W_V")),
                          WO = naive::tensor(m, naive::blk(l, "attn.W_O"));
      const RowMat ov = ov_circuit(m, l, h), qk = qk_circuit(m, l, h);
      ASSERT_EQ(ov.rows(), D);
      ASSERT_EQ(ov.cols(), D);
      ASSERT_EQ(qk.rows(), D);
      ASSERT_EQ(qk.cols(), D);
      for (int a = 0; a < D; ++a)
        for (int b = 0; b < D; ++b) {
          double want_ov = 0, want_qk = 0;
          for (int j = 0; j < H; ++j) {
            want_ov += WV[size_t((h * D + a) * H + j)] * WO[size_t((h * H + j) * D + b)];
            want_qk += WQ[size_t((h * D + a) * H + j)] * WK[size_t((h * D + b) * H + j)];
          }
          EXPECT_NEAR(ov(a, b), want_ov, 1e-5);
          EXPECT_NEAR(qk(a, b), want_qk, 1e-5);
        }
    }
}

TEST(Circuits, BadArgumentsNameTheProblem) {
  ModelConfig c = small_config(Norm::None);
  c.d_vocab_out = 19;
  Model m(c);
  randomize(m, 3);
  try {
    ov_eigenvalues(m, 0, 0);
    FAIL() << "no error for a non-square OV circuit";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("d_vocab_out 19"), std::string::npos) << e.what();
  }
  EXPECT_THROW(copying_scores(m), Error);
  EXPECT_NO_THROW(full_ov_circuit(m, 0, 0));  // 23 x 19 is fine for the dense circuit
  try {
    ov_circuit(m, 2, 0);
    FAIL() << "no error for layer 2 of 2";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(qk_circuit(m, 0, -1), Error);
}

}  // namespace
}  // namespace cs
