// Head summaries (core/head_summary.h): the OV diagonal test against dense
// per-row sorts of a loop-built OV circuit, attention to the current and
// previous token against the reference forward pass (naive_reference.h), and
// the whole summary against the single functions, sliced and at once.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/circuits.h"
#include "core/error.h"
#include "core/head_summary.h"
#include "core/induction.h"
#include "core/model.h"
#include "naive_reference.h"

namespace cs {
namespace {

ModelConfig config(Norm norm, PosEmbed pos, int vocab = 41, int vocab_out = 0) {
  ModelConfig c;
  c.n_layers = 2;
  c.d_model = 12;
  c.n_heads = 2;
  c.d_head = 4;
  c.n_ctx = 9;
  c.d_vocab = vocab;
  c.d_vocab_out = vocab_out;
  c.normalization = norm;
  c.positional = pos;
  return c;
}

// E W_V W_O W_U by loops (E normalized by ln1 of block l when asked).
naive::Mat dense_ov(const Model& m, int l, int h, bool normalize) {
  const ModelConfig& c = m.config();
  const size_t V = size_t(c.d_vocab), D = size_t(c.d_model), H = size_t(c.d_head), Vo = size_t(c.vocab_out());
  const naive::Tensor WE = naive::tensor(m, "embed.W_E"), WV = naive::tensor(m, naive::blk(l, "attn.W_V")),
                      WO = naive::tensor(m, naive::blk(l, "attn.W_O")), WU = naive::tensor(m, "unembed.W_U");
  naive::Mat out = naive::zeros(V, Vo);
  for (size_t s = 0; s < V; ++s) {
    std::vector<double> e(D);
    for (size_t d = 0; d < D; ++d) e[d] = WE[s * D + d];
    if (normalize) e = naive::norm_row(m, e, naive::blk(l, "ln1"));
    for (size_t o = 0; o < Vo; ++o)
      for (size_t j = 0; j < H; ++j) {
        double v = 0, w = 0;
        for (size_t d = 0; d < D; ++d) v += e[d] * WV[(size_t(h) * D + d) * H + j];
        for (size_t d = 0; d < D; ++d) w += WO[(size_t(h) * H + j) * D + d] * WU[d * Vo + o];
        out[s][o] += v * w;
      }
  }
  return out;
}

// Fractions of rows whose top 1 / top 5 (sorted by value descending, ties smaller id) hold the row's own id.
std::pair<double, double> dense_diagonal(const naive::Mat& M) {
  double t1 = 0, t5 = 0;
  for (size_t s = 0; s < M.size(); ++s) {
    std::vector<size_t> idx(M[s].size());
    std::iota(idx.begin(), idx.end(), size_t(0));
    std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return M[s][a] > M[s][b] || (M[s][a] == M[s][b] && a < b); });
    if (idx[0] == s) t1 += 1;
    for (size_t i = 0; i < std::min<size_t>(5, idx.size()); ++i)
      if (idx[i] == s) t5 += 1;
  }
  return {t1 / double(M.size()), t5 / double(M.size())};
}

class Summary : public ::testing::TestWithParam<Norm> {};

TEST_P(Summary, OvDiagonalMatchesDenseRowSorts) {
  Model m(config(GetParam(), PosEmbed::Standard, 120));
  randomize(m, 41, 0.7f);
  // Make head 0.0 copy: W_U += 0.5 (W_E W_V W_O)^T adds 0.5 X X^T (X = W_E W_V W_O) to its OV circuit.
  const RowMat X = m.W_E() * m.W_V(0, 0) * m.W_O(0, 0);  // [d_vocab, d_model]
  m.W_U() += 0.5f * X.transpose();
  const auto copying = dense_diagonal(dense_ov(m, 0, 0, false));
  EXPECT_GT(copying.first, 0.05);  // rank d_head: far from all, but well above chance (1/120), so hits are tested too
  for (int l = 0; l < 2; ++l)
    for (int h = 0; h < 2; ++h)
      for (bool norm : {true, false}) {
        const auto want = dense_diagonal(dense_ov(m, l, h, norm));
        const OvDiagonal got = ov_diagonal(m, l, h, CircuitOptions{norm});
        EXPECT_NEAR(got.top1, want.first, 1e-12) << l << "." << h;
        EXPECT_NEAR(got.top5, want.second, 1e-12) << l << "." << h;
        EXPECT_LE(got.top1, got.top5);
      }
}

INSTANTIATE_TEST_SUITE_P(Norms, Summary, ::testing::Values(Norm::None, Norm::LN, Norm::LNPre));

TEST(OvDiagonal, ACopyingHeadIsOnTheDiagonalAndNonSquareCountsMisses) {
  // d_model = d_head = V, W_E = W_V = W_O = I, W_U = I + small noise: OV = W_U, top 1 on the diagonal.
  ModelConfig c = config(Norm::None, PosEmbed::None, 12);
  c.n_layers = 1;
  c.n_heads = 1;
  c.d_head = 12;
  Model m(c);
  randomize(m, 3, 0.01f);
  m.W_E().setIdentity();
  m.W_V(0, 0).setIdentity();
  m.W_O(0, 0).setIdentity();
  m.W_U() += RowMat::Identity(12, 12);
  const OvDiagonal d = ov_diagonal(m, 0, 0, CircuitOptions{false});
  EXPECT_EQ(d.top1, 1.0);
  EXPECT_EQ(d.top5, 1.0);
  // Negated: the diagonal is the smallest entry of every row.
  m.W_U() = -m.W_U();
  EXPECT_EQ(ov_diagonal(m, 0, 0, CircuitOptions{false}).top5, 0.0);
  // Non-square (d_vocab_out 30 > d_vocab): the dense test agrees.
  Model r(config(Norm::LN, PosEmbed::Standard, 20, 30));
  randomize(r, 5, 0.7f);
  const auto want = dense_diagonal(dense_ov(r, 1, 1, true));
  EXPECT_NEAR(ov_diagonal(r, 1, 1).top5, want.second, 1e-12);
  EXPECT_THROW(ov_diagonal(r, 2, 0), Error);
}

TEST(AttentionShares, CurrentAndPreviousFromReferencePatterns) {
  for (PosEmbed pos : {PosEmbed::Standard, PosEmbed::Shortformer, PosEmbed::None}) {
    Model m(config(Norm::LN, pos));
    randomize(m, 43, 0.8f);
    const auto seqs = random_token_sequences(m.config(), 7, 3, 64);
    ASSERT_EQ(seqs.size(), 3u);
    Rng rng(7);
    for (const auto& s : seqs) {
      ASSERT_EQ(s.size(), 9u);  // min(n_ctx, 64)
      for (int t : s) EXPECT_EQ(t, int(rng.below(41)));
    }
    const AttentionShares got = attention_current_previous(m, 7, 3, 64);
    for (int l = 0; l < 2; ++l)
      for (int h = 0; h < 2; ++h) {
        double cur = 0, prev = 0, n = 0;
        for (const auto& s : seqs) {
          const naive::Result r = naive::forward(m, s);
          const naive::Mat& A = r.pattern[size_t(l) * 2 + size_t(h)];
          for (size_t i = 1; i < s.size(); ++i) cur += A[i][i], prev += A[i][i - 1], n += 1;
        }
        EXPECT_NEAR(got.current(l, h), cur / n, 1e-5);
        EXPECT_NEAR(got.previous(l, h), prev / n, 1e-5);
      }
  }
  EXPECT_THROW(random_token_sequences(config(Norm::LN, PosEmbed::Standard), 1, 0, 5), Error);
}

TEST(AttentionShares, APreviousTokenHeadScoresOne) {
  // Shortformer, one head, W_E = 0: the score is the positional QK P W_Q W_K^T P^T only.
  // W_pos = one-hot rows, W_Q W_K^T large on (i, i-1): attends to the previous token.
  ModelConfig c = config(Norm::None, PosEmbed::Shortformer);
  c.n_layers = 1;
  c.n_heads = 1;
  c.d_model = 9;
  c.d_head = 9;
  Model m(c);
  m.W_pos().setIdentity();
  m.W_Q(0, 0).setZero();
  for (int i = 1; i < 9; ++i) m.W_Q(0, 0)(i, i - 1) = 30.f;
  m.W_K(0, 0).setIdentity();
  const AttentionShares a = attention_current_previous(m, 1, 2, 64);
  EXPECT_GT(a.previous(0, 0), 0.999f);
  EXPECT_LT(a.current(0, 0), 0.001f);
  // W_E = 0 too: every score is positional.
  EXPECT_NEAR(positional_share(m, 0, 0, 1, 500), 1.0, 1e-12);
}

TEST(HeadSummaries, EqualTheSingleFunctionsSlicedOrNot) {
  for (PosEmbed pos : {PosEmbed::Standard, PosEmbed::Shortformer}) {
    Model m(config(Norm::LN, pos, 60));
    randomize(m, 47, 0.7f);
    HeadSummaryOptions opt;
    opt.seed = 11;
    opt.share_samples = 300;
    opt.attn_sequences = 2;
    const std::vector<HeadSummary> one = head_summaries(m, opt);
    ASSERT_EQ(one.size(), 4u);
    const AttentionShares a = attention_current_previous(m, 11, 2, 64);
    for (const HeadSummary& s : one) {
      const int l = s.layer, h = s.head;
      EXPECT_EQ(&s - one.data(), l * 2 + h);
      const auto ov = ov_eigenvalues(m, l, h), qk = qk_eigenvalues(m, l, h);
      ASSERT_EQ(s.ov_eigenvalues.size(), 4u);
      ASSERT_EQ(s.qk_eigenvalues.size(), 4u);
      for (size_t i = 0; i < 4; ++i) {
        EXPECT_NEAR(std::abs(s.ov_eigenvalues[i] - ov[i]), 0.0, 1e-9);
        EXPECT_NEAR(std::abs(s.qk_eigenvalues[i] - qk[i]), 0.0, 1e-9);
      }
      EXPECT_NEAR(s.ov_copying_score, copying_score(ov), 1e-9);
      EXPECT_NEAR(s.qk_copying_score, copying_score(qk), 1e-9);
      EXPECT_EQ(s.positional_share, positional_share(m, l, h, 11, 300));
      const OvDiagonal d = ov_diagonal(m, l, h);
      EXPECT_EQ(s.ov_diagonal_top1, d.top1);
      EXPECT_EQ(s.ov_diagonal_top5, d.top5);
      EXPECT_EQ(s.attn_current, double(a.current(l, h)));
      EXPECT_EQ(s.attn_previous, double(a.previous(l, h)));
    }
    // Sliced with odd budgets: bit-identical.
    for (double budget : {0.0, 0.003, 1e9}) {
      HeadSummaryPlan plan(m, opt);
      EXPECT_GT(plan.units(), 20u);
      int steps = 0;
      while (!plan.step(budget)) ++steps;
      const auto& sl = plan.result();
      ASSERT_EQ(sl.size(), one.size());
      for (size_t i = 0; i < sl.size(); ++i) {
        EXPECT_EQ(sl[i].ov_copying_score, one[i].ov_copying_score);
        EXPECT_EQ(sl[i].qk_copying_score, one[i].qk_copying_score);
        EXPECT_EQ(sl[i].positional_share, one[i].positional_share);
        EXPECT_EQ(sl[i].ov_diagonal_top1, one[i].ov_diagonal_top1);
        EXPECT_EQ(sl[i].ov_diagonal_top5, one[i].ov_diagonal_top5);
        EXPECT_EQ(sl[i].attn_current, one[i].attn_current);
        EXPECT_EQ(sl[i].attn_previous, one[i].attn_previous);
        EXPECT_EQ(sl[i].qk_eigenvalues, one[i].qk_eigenvalues);
      }
    }
  }
}

// Given the vocabulary sums (another plan's), the plan skips its pass over
// W_E and gives the same numbers; grams() hands on the sums it used.
TEST(HeadSummaries, GivenVocabularySumsGiveTheSameSummary) {
  Model m(config(Norm::LN, PosEmbed::Standard, 60));
  randomize(m, 48, 0.7f);
  HeadSummaryOptions opt;
  opt.share_samples = 50;
  opt.attn_sequences = 1;
  opt.diagonal = false;
  HeadSummaryPlan computed(m, opt);
  computed.run();
  ASSERT_NE(computed.grams(), nullptr);
  opt.grams = computed.grams();
  HeadSummaryPlan given(m, opt);
  EXPECT_LT(given.units(), computed.units()) << "no pass over W_E";
  given.run();
  EXPECT_EQ(given.grams(), computed.grams());
  for (size_t i = 0; i < given.result().size(); ++i) {
    EXPECT_EQ(given.result()[i].ov_eigenvalues, computed.result()[i].ov_eigenvalues);
    EXPECT_EQ(given.result()[i].qk_eigenvalues, computed.result()[i].qk_eigenvalues);
  }
  // The sums equal a fresh one-shot pass.
  const EmbedGrams fresh = embed_grams(m, opt.circuit);
  EXPECT_LE((computed.grams()->NtN - fresh.NtN).cwiseAbs().maxCoeff(), 1e-9 * fresh.NtN.cwiseAbs().maxCoeff());
}

TEST(HeadSummaries, ZeroLayersAndBadOptions) {
  ModelConfig c = config(Norm::LN, PosEmbed::Standard);
  c.n_layers = 0;
  Model z(c);
  EXPECT_TRUE(head_summaries(z).empty());
  Model m(config(Norm::LN, PosEmbed::Standard));
  HeadSummaryOptions opt;
  opt.share_samples = 0;
  EXPECT_THROW(head_summaries(m, opt), Error);
  opt = HeadSummaryOptions{};
  opt.attn_length = 0;
  EXPECT_THROW(head_summaries(m, opt), Error);
}

TEST(HeadSummaries, NonSquareAndNoDiagonal) {
  Model m(config(Norm::None, PosEmbed::None, 30, 25));
  randomize(m, 49, 0.7f);
  HeadSummaryOptions opt;
  opt.diagonal = false;
  const auto s = head_summaries(m, opt);
  ASSERT_EQ(s.size(), 4u);
  for (const HeadSummary& x : s) {
    EXPECT_TRUE(std::isnan(x.ov_copying_score));
    EXPECT_TRUE(x.ov_eigenvalues.empty());
    EXPECT_EQ(x.qk_eigenvalues.size(), 4u);
    EXPECT_TRUE(std::isnan(x.ov_diagonal_top1));
    EXPECT_EQ(x.positional_share, 0.0);  // no positions
    EXPECT_FALSE(std::isnan(x.attn_previous));
  }
}

}  // namespace
}  // namespace cs
