// OV / QK circuits and the eigenvalue copying score (core/circuits.h) against
// dense matrices built here with plain loops from the flat weights
// (naive_reference.h), and eigenvalues of the full vocab x vocab OV circuit
// computed by a dense eigen-solver on that loop-built matrix.
#include <gtest/gtest.h>

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <complex>
#include <string>
#include <vector>

#include "core/circuits.h"
#include "core/error.h"
#include "core/induction.h"
#include "core/model.h"
#include "core/vocab_matrix.h"
#include "dense_eigen.h"
#include "naive_reference.h"
#include "test_models.h"

namespace cs {
namespace {

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
      expect_eigen_match(small, dense, "head " + std::to_string(l) + "." + std::to_string(h));
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

using testmodels::identity_head;

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


// ---- QK circuit, vocabulary sums, positions --------------------------------------

struct Variant {
  Norm norm;
  PosEmbed pos;
};

std::string variant_name(const ::testing::TestParamInfo<Variant>& info) {
  return std::string(to_string(info.param.norm)) + "_" + to_string(info.param.pos);
}

ModelConfig variant_config(const Variant& v) {
  ModelConfig c = small_config(v.norm);
  c.positional = v.pos;
  c.n_ctx = 7;
  return c;
}

// Row s of E (W_E, normalized by block l's ln1 when asked), by loops.
std::vector<double> naive_embed_row(const Model& m, int l, int s, bool normalize) {
  const size_t D = size_t(m.config().d_model);
  const naive::Tensor WE = naive::tensor(m, "embed.W_E");
  std::vector<double> e(D);
  for (size_t d = 0; d < D; ++d) e[d] = WE[size_t(s) * D + d];
  return normalize ? naive::norm_row(m, e, naive::blk(l, "ln1")) : e;
}

// Row i of P (circuits.h): W_pos, normalized by ln1 for standard positions when asked.
std::vector<double> naive_pos_row(const Model& m, int l, int i, bool normalize) {
  const size_t D = size_t(m.config().d_model);
  const naive::Tensor WP = naive::tensor(m, "pos_embed.W_pos");
  std::vector<double> p(D);
  for (size_t d = 0; d < D; ++d) p[d] = WP[size_t(i) * D + d];
  if (normalize && m.config().positional == PosEmbed::Standard) p = naive::norm_row(m, p, naive::blk(l, "ln1"));
  return p;
}

// x W_Q[h] W_K[h]^T y^T by loops.
double naive_qk(const Model& m, int l, int h, const std::vector<double>& x, const std::vector<double>& y) {
  const size_t D = size_t(m.config().d_model), H = size_t(m.config().d_head);
  const naive::Tensor WQ = naive::tensor(m, naive::blk(l, "attn.W_Q")), WK = naive::tensor(m, naive::blk(l, "attn.W_K"));
  double s = 0;
  for (size_t j = 0; j < H; ++j) {
    double q = 0, k = 0;
    for (size_t d = 0; d < D; ++d) {
      q += x[d] * WQ[(size_t(h) * D + d) * H + j];
      k += y[d] * WK[(size_t(h) * D + d) * H + j];
    }
    s += q * k;
  }
  return s;
}

naive::Mat dense_full_qk(const Model& m, int l, int h, bool normalize) {
  const int V = m.config().d_vocab;
  naive::Mat out = naive::zeros(size_t(V), size_t(V));
  std::vector<std::vector<double>> E;
  for (int s = 0; s < V; ++s) E.push_back(naive_embed_row(m, l, s, normalize));
  for (int a = 0; a < V; ++a)
    for (int b = 0; b < V; ++b) out[size_t(a)][size_t(b)] = naive_qk(m, l, h, E[size_t(a)], E[size_t(b)]);
  return out;
}


class Positional : public ::testing::TestWithParam<Variant> {};

TEST_P(Positional, QkEigenvaluesAreTheNonzeroEigenvaluesOfTheDenseQkCircuit) {
  Model m(variant_config(GetParam()));
  randomize(m, 21, 0.6f);
  for (int l = 0; l < 2; ++l)
    for (int h = 0; h < 2; ++h)
      for (bool norm : {true, false}) {
        const CircuitOptions opt{norm};
        const naive::Mat want = dense_full_qk(m, l, h, norm);
        const RowMat got = full_qk_circuit(m, l, h, opt);
        for (int a = 0; a < 23; ++a)
          for (int b = 0; b < 23; ++b) ASSERT_NEAR(got(a, b), want[size_t(a)][size_t(b)], 1e-4);
        const std::vector<cd> dense = nonzero_dense_eigenvalues(want, 1e-7);
        const std::vector<cd> small = qk_eigenvalues(m, l, h, opt);
        ASSERT_EQ(small.size(), 3u);
        ASSERT_EQ(dense.size(), 3u);
        for (size_t i = 0; i + 1 < small.size(); ++i) EXPECT_GE(std::abs(small[i]), std::abs(small[i + 1]) - 1e-12);
        expect_eigen_match(small, dense, "qk " + std::to_string(l) + "." + std::to_string(h));
        double re = 0, mag = 0;
        for (const cd& x : dense) re += x.real(), mag += std::abs(x);
        EXPECT_NEAR(copying_score(small), re / mag, 1e-5);
        // And the OV eigenvalues with this normalization choice.
        expect_eigen_match(ov_eigenvalues(m, l, h, opt), nonzero_dense_eigenvalues(dense_full_ov(m, l, h, norm), 1e-7),
                           "ov");
      }
}

// The page's per-head plan: the same eigenvalues as the dense circuits, with
// the sums computed by the plan or given, run at once or a unit per step.
TEST_P(Positional, HeadEigenPlanGivesTheDenseCircuitsEigenvalues) {
  Model m(variant_config(GetParam()));
  randomize(m, 22, 0.6f);
  for (bool norm : {true, false}) {
    const CircuitOptions opt{norm};
    std::shared_ptr<const EmbedGrams> grams;
    for (int l = 0; l < 2; ++l)
      for (int h = 0; h < 2; ++h) {
        HeadEigenPlan p(m, l, h, opt, grams);
        EXPECT_GT(p.units(), 4u);
        while (!p.step(0.0)) {
        }
        const std::string what = std::to_string(l) + "." + std::to_string(h) + (grams ? " (sums given)" : "");
        expect_eigen_match(p.result().qk, nonzero_dense_eigenvalues(dense_full_qk(m, l, h, norm), 1e-7), "qk " + what);
        expect_eigen_match(p.result().ov, nonzero_dense_eigenvalues(dense_full_ov(m, l, h, norm), 1e-7), "ov " + what);
        EXPECT_NEAR(p.result().ov_score, copying_score(ov_eigenvalues(m, l, h, opt)), 1e-9) << what;
        EXPECT_NEAR(p.result().qk_score, copying_score(qk_eigenvalues(m, l, h, opt)), 1e-9) << what;
        grams = p.grams();  // the next head reuses the sums
        ASSERT_TRUE(grams);
      }
  }
}

TEST_P(Positional, FrobeniusNormsFromTheFactorsEqualDenseSums) {
  ModelConfig c = variant_config(GetParam());
  Model m(c);
  randomize(m, 23, 0.6f);
  for (bool norm : {true, false}) {
    const EmbedGrams g = embed_grams(m, CircuitOptions{norm}, /*want_UUt=*/true);
    for (int l = 0; l < 2; ++l)
      for (int h = 0; h < 2; ++h) {
        double qk = 0, ov = 0;
        for (const auto& row : dense_full_qk(m, l, h, norm))
          for (double x : row) qk += x * x;
        for (const auto& row : dense_full_ov(m, l, h, norm))
          for (double x : row) ov += x * x;
        EXPECT_NEAR(qk_frobenius_sq(m, l, h, g), qk, 1e-4 * qk);
        EXPECT_NEAR(ov_frobenius_sq(m, l, h, g), ov, 1e-4 * ov);
      }
  }
  // Non-square OV: the Frobenius norm still works (over d_vocab x d_vocab_out), eigenvalues do not.
  c.d_vocab_out = 17;
  Model r(c);
  randomize(r, 24, 0.6f);
  const EmbedGrams g = embed_grams(r, {}, true);
  double ov = 0;
  for (const auto& row : dense_full_ov(r, 1, 0, true))
    for (double x : row) ov += x * x;
  EXPECT_NEAR(ov_frobenius_sq(r, 1, 0, g), ov, 1e-4 * ov);
  EXPECT_THROW(ov_small_matrix(r, 1, 0, g), Error);
}

TEST_P(Positional, SlicedVocabularySumsEqualOneShot) {
  ModelConfig c = variant_config(GetParam());
  // Rows per unit are about 2^25 / d_model^2 (at least 16): a wide model gives several units.
  c.d_vocab = 50;
  c.d_model = 1460;
  c.n_heads = 2;
  c.d_head = 5;
  Model m(c);
  randomize(m, 25, 0.3f);
  const EmbedGrams one = embed_grams(m, {}, true);
  EmbedGramsPlan plan(m, {}, true);
  int steps = 0;
  while (!plan.step(0.0)) ++steps;
  EXPECT_EQ(size_t(steps + 1), plan.units());
  EXPECT_GE(plan.units(), 4u);
  const EmbedGrams& sl = plan.result();
  EXPECT_TRUE((one.NtN.array() == sl.NtN.array()).all());
  EXPECT_TRUE((one.UN.array() == sl.UN.array()).all());
  EXPECT_TRUE((one.UUt.array() == sl.UUt.array()).all());
  EXPECT_TRUE((one.N_sum.array() == sl.N_sum.array()).all());
}

TEST_P(Positional, PositionalQkAndTheFourTermsMatchLoops) {
  const Variant v = GetParam();
  Model m(variant_config(v));
  randomize(m, 27, 0.6f);
  if (v.pos == PosEmbed::None) {
    EXPECT_THROW(positional_qk_circuit(m, 0, 0), Error);
    EXPECT_THROW(qk_token_position_matrix(m, 0, 0), Error);
    return;
  }
  const std::vector<int> qt{0, 5, 22}, kt{3, 3, 11, 17}, qp{0, 6, 2}, kp{1, 4};
  for (int l = 0; l < 2; ++l)
    for (int h = 0; h < 2; ++h)
      for (bool norm : {true, false}) {
        const CircuitOptions opt{norm};
        const RowMat pq = positional_qk_circuit(m, l, h, opt);
        ASSERT_EQ(pq.rows(), 7);
        ASSERT_EQ(pq.cols(), 7);
        for (int i = 0; i < 7; ++i)
          for (int j = 0; j < 7; ++j)
            ASSERT_NEAR(pq(i, j), naive_qk(m, l, h, naive_pos_row(m, l, i, norm), naive_pos_row(m, l, j, norm)), 1e-4);
        const QkTerms t = qk_terms(m, l, h, qt, qp, kt, kp, opt);
        ASSERT_EQ(t.token_token.rows(), 3);
        ASSERT_EQ(t.token_token.cols(), 4);
        ASSERT_EQ(t.token_position.cols(), 2);
        ASSERT_EQ(t.position_token.rows(), 3);
        for (size_t a = 0; a < qt.size(); ++a) {
          for (size_t b = 0; b < kt.size(); ++b)
            EXPECT_NEAR(t.token_token(Eigen::Index(a), Eigen::Index(b)),
                        naive_qk(m, l, h, naive_embed_row(m, l, qt[a], norm), naive_embed_row(m, l, kt[b], norm)), 1e-4);
          for (size_t b = 0; b < kp.size(); ++b)
            EXPECT_NEAR(t.token_position(Eigen::Index(a), Eigen::Index(b)),
                        naive_qk(m, l, h, naive_embed_row(m, l, qt[a], norm), naive_pos_row(m, l, kp[b], norm)), 1e-4);
        }
        for (size_t a = 0; a < qp.size(); ++a) {
          for (size_t b = 0; b < kt.size(); ++b)
            EXPECT_NEAR(t.position_token(Eigen::Index(a), Eigen::Index(b)),
                        naive_qk(m, l, h, naive_pos_row(m, l, qp[a], norm), naive_embed_row(m, l, kt[b], norm)), 1e-4);
          for (size_t b = 0; b < kp.size(); ++b)
            EXPECT_NEAR(t.position_position(Eigen::Index(a), Eigen::Index(b)), pq(qp[a], kp[b]), 1e-4);
        }
      }
  // The engine matrices of the cross terms: every entry by loops.
  for (bool norm : {true, false}) {
    const CircuitOptions opt{norm};
    const VocabMatrix tp = qk_token_position_matrix(m, 1, 0, opt), pt = qk_position_token_matrix(m, 1, 0, opt),
                      pp = qk_position_position_matrix(m, 1, 0, opt);
    ASSERT_EQ(tp.n_rows(), 23);
    ASSERT_EQ(tp.n_cols(), 7);
    ASSERT_EQ(pt.n_rows(), 7);
    ASSERT_EQ(pt.n_cols(), 23);
    ASSERT_EQ(pp.n_rows(), 7);
    for (int t = 0; t < 23; ++t) {
      const Vec row = tp.row(t), col = pt.column(t);
      for (int i = 0; i < 7; ++i) {
        EXPECT_NEAR(row[i], naive_qk(m, 1, 0, naive_embed_row(m, 1, t, norm), naive_pos_row(m, 1, i, norm)), 1e-4);
        EXPECT_NEAR(col[i], naive_qk(m, 1, 0, naive_pos_row(m, 1, i, norm), naive_embed_row(m, 1, t, norm)), 1e-4);
      }
    }
    for (int i = 0; i < 7; ++i) {
      const Vec row = pp.row(i);
      for (int j = 0; j < 7; ++j)
        EXPECT_NEAR(row[j], naive_qk(m, 1, 0, naive_pos_row(m, 1, i, norm), naive_pos_row(m, 1, j, norm)), 1e-4);
    }
  }
  const std::vector<int> bad{7};
  EXPECT_THROW(qk_terms(m, 0, 0, qt, bad, kt, kp), Error);
  const std::vector<int> badtok{23};
  EXPECT_THROW(qk_terms(m, 0, 0, badtok, qp, kt, kp), Error);
}

// The variance ratio recomputed here by loops on the same samples, with the
// split written out independently (circuits.h: positional_share).
double naive_share(const Model& m, int l, int h, uint64_t seed, int samples, bool normalize) {
  const ModelConfig& c = m.config();
  const size_t D = size_t(c.d_model);
  const naive::Tensor WE = naive::tensor(m, "embed.W_E"), WP = naive::tensor(m, "pos_embed.W_pos");
  const bool norm = normalize && c.normalization != Norm::None;
  auto split = [&](int t, int i, std::vector<double>& a, std::vector<double>& p) {
    std::vector<double> e(D), q(D);
    for (size_t d = 0; d < D; ++d) e[d] = WE[size_t(t) * D + d], q[d] = WP[size_t(i) * D + d];
    if (c.positional == PosEmbed::Shortformer) {
      a = norm ? naive::norm_row(m, e, naive::blk(l, "ln1")) : e;
      p = q;
      return;
    }
    if (!norm) {
      a = e, p = q;
      return;
    }
    // LN(e + q) = rho w o (c(e) + c(q)) + b
    double me = 0, mq = 0;
    for (size_t d = 0; d < D; ++d) me += e[d] / double(D), mq += q[d] / double(D);
    double ss = 0;
    for (size_t d = 0; d < D; ++d) ss += (e[d] + q[d] - me - mq) * (e[d] + q[d] - me - mq);
    const double rho = 1.0 / std::sqrt(ss / double(D) + double(c.eps));
    a.assign(D, 0.0), p.assign(D, 0.0);
    for (size_t d = 0; d < D; ++d) {
      const double w = c.normalization == Norm::LN ? naive::w(m, naive::blk(l, "ln1.w"), d) : 1.0;
      const double b = c.normalization == Norm::LN ? naive::w(m, naive::blk(l, "ln1.b"), d) : 0.0;
      a[d] = rho * w * (e[d] - me) + b;
      p[d] = rho * w * (q[d] - mq);
    }
  };
  std::vector<double> tt, pos;
  for (const QkSample& s : draw_qk_samples(c, seed, samples)) {
    EXPECT_LE(s.key_pos, s.query_pos);
    std::vector<double> aq, pq, ak, pk;
    split(s.query_token, s.query_pos, aq, pq);
    split(s.key_token, s.key_pos, ak, pk);
    tt.push_back(naive_qk(m, l, h, aq, ak));
    pos.push_back(naive_qk(m, l, h, aq, pk) + naive_qk(m, l, h, pq, ak) + naive_qk(m, l, h, pq, pk));
  }
  auto var = [](const std::vector<double>& x) {
    double mu = 0, v = 0;
    for (double y : x) mu += y / double(x.size());
    for (double y : x) v += (y - mu) * (y - mu) / double(x.size());
    return v;
  };
  return var(pos) / (var(tt) + var(pos));
}

TEST_P(Positional, PositionalShareEqualsTheVarianceRatioByLoops) {
  const Variant v = GetParam();
  Model m(variant_config(v));
  randomize(m, 29, 0.6f);
  if (v.pos == PosEmbed::None) {
    EXPECT_EQ(positional_share(m, 0, 0, 1, 100), 0.0);
    return;
  }
  for (int l = 0; l < 2; ++l)
    for (int h = 0; h < 2; ++h)
      for (bool norm : {true, false}) {
        const double got = positional_share(m, l, h, 5, 600, CircuitOptions{norm});  // 3 chunks (256 each)
        EXPECT_NEAR(got, naive_share(m, l, h, 5, 600, norm), 1e-9);
        EXPECT_GT(got, 0.0);
        EXPECT_LT(got, 1.0);
        EXPECT_EQ(got, positional_share(m, l, h, 5, 600, CircuitOptions{norm}));  // deterministic
      }
  EXPECT_NE(positional_share(m, 0, 0, 5, 600), positional_share(m, 0, 0, 6, 600));
}

TEST_P(Positional, PositionalShareIsZeroWithoutW_posAndOneWithoutW_E) {
  const Variant v = GetParam();
  if (v.pos == PosEmbed::None) return;
  Model m(variant_config(v));
  randomize(m, 31, 0.6f);
  Model no_pos = m;
  no_pos.W_pos().setZero();
  Model no_tok = m;
  no_tok.W_E().setZero();
  Model const_tok = m;
  for (int t = 0; t < 23; ++t) const_tok.W_E().row(t) = m.W_E().row(0);
  for (int l = 0; l < 2; ++l)
    for (int h = 0; h < 2; ++h) {
      EXPECT_EQ(positional_share(no_pos, l, h, 3, 300), 0.0);
      EXPECT_NEAR(positional_share(no_tok, l, h, 3, 300), 1.0, 1e-9);
      if (v.pos == PosEmbed::Shortformer || v.norm == Norm::None)  // the token part is then exactly constant
        EXPECT_NEAR(positional_share(const_tok, l, h, 3, 300), 1.0, 1e-9);
    }
}

INSTANTIATE_TEST_SUITE_P(
    Variants, Positional,
    ::testing::Values(Variant{Norm::None, PosEmbed::Standard}, Variant{Norm::LN, PosEmbed::Standard},
                      Variant{Norm::LNPre, PosEmbed::Standard}, Variant{Norm::None, PosEmbed::Shortformer},
                      Variant{Norm::LN, PosEmbed::Shortformer}, Variant{Norm::LNPre, PosEmbed::Shortformer},
                      Variant{Norm::LN, PosEmbed::None}),
    variant_name);

TEST(QkSamples, DrawnFromTheProjectRng) {
  ModelConfig c = small_config(Norm::None);
  const std::vector<QkSample> s = draw_qk_samples(c, 9, 50);
  Rng rng(9);
  for (const QkSample& x : s) {
    EXPECT_EQ(x.query_token, int(rng.below(23)));
    EXPECT_EQ(x.query_pos, int(rng.below(5)));
    EXPECT_EQ(x.key_token, int(rng.below(23)));
    EXPECT_EQ(x.key_pos, int(rng.below(uint64_t(x.query_pos) + 1)));
  }
  EXPECT_THROW(draw_qk_samples(c, 9, 0), Error);
}

}  // namespace
}  // namespace cs
