// Head scores of core/induction.h on hand-built models whose attention is
// known in closed form (a previous-token head from W_pos alone, a uniform
// head, a two-layer induction circuit written into the weights), checked
// against values computed here: closed forms and naive loops over forward()'s
// patterns and logits with the positional definitions of [I].
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/forward.h"
#include "core/head_detector.h"
#include "core/induction.h"
#include "core/model.h"
#include "test_models.h"

namespace cs {
namespace {

// A two-layer attention-only model (Shortformer positions, no normalization,
// two heads per layer) built so that:
//  - layer 0 head 0 attends to the previous token only: its queries and keys
//    read W_pos alone (one-hot positions), W_K shifts position j to j + 1, so
//    the score is `gain` exactly at (i, i - 1) and 0 elsewhere; it copies the
//    token's one-hot into a "previous token" block of the residual stream;
//  - layer 1 head 0 is an induction head: its query is the current token's
//    one-hot, its key the previous-token block, so it attends to the sources
//    whose previous token equals the current token, and copies their token
//    into an "out" block that W_U reads (times `gain`);
//  - head 1 of each layer has zero weights: uniform attention, no output.
// Residual layout (d_model = 3 V + n_ctx): [tok V | prev V | pos n_ctx | out V].
struct Built {
  Model m;
  int V, C;
};

Built build_induction_model(int V, int C, float gain) {
  ModelConfig c;
  c.n_layers = 2;
  c.n_heads = 2;
  c.d_model = 3 * V + C;
  c.d_head = std::max(V, C);
  c.n_ctx = C;
  c.d_vocab = V;
  c.positional = PosEmbed::Shortformer;
  c.normalization = Norm::None;
  Model m(c);  // zero-filled
  const int tok = 0, prev = V, pos = 2 * V, out = 2 * V + C;
  const float qgain = gain * c.scale();  // scores are q.k / attn_scale
  for (int t = 0; t < V; ++t) m.W_E()(t, tok + t) = 1;
  for (int i = 0; i < C; ++i) m.W_pos()(i, pos + i) = 1;
  // Layer 0, head 0: previous-token head.
  for (int i = 0; i < C; ++i) m.W_Q(0, 0)(pos + i, i) = qgain;
  for (int j = 0; j + 1 < C; ++j) m.W_K(0, 0)(pos + j, j + 1) = 1;
  for (int t = 0; t < V; ++t) {
    m.W_V(0, 0)(tok + t, t) = 1;
    m.W_O(0, 0)(t, prev + t) = 1;
  }
  // Layer 1, head 0: induction head.
  for (int t = 0; t < V; ++t) {
    m.W_Q(1, 0)(tok + t, t) = qgain;
    m.W_K(1, 0)(prev + t, t) = 1;
    m.W_V(1, 0)(tok + t, t) = 1;
    m.W_O(1, 0)(t, out + t) = 1;
    m.W_U()(out + t, t) = gain;
  }
  return {std::move(m), V, C};
}

// Naive prefix-matching on [bos] + s * r with distinct tokens in s (the
// positional definition of [I]): destinations in copies 2..r, sources = the
// position just after each earlier occurrence.
double naive_prefix_matching(const std::vector<std::vector<int>>& seqs, int n, int r, int l, int h,
                             const Model& m) {
  double sum = 0;
  int count = 0;
  for (const auto& seq : seqs) {
    const ForwardResult f = forward(m, seq);
    const RowMat& A = f.cache.attn(l, h, m.config().n_heads);
    for (int k = 1; k < r; ++k)
      for (int j = 0; j < n; ++j) {
        const int dest = 1 + k * n + j;
        double s = 0;
        for (int k2 = 0; k2 < k; ++k2) s += A(dest, 1 + k2 * n + j + 1);
        sum += s;
        ++count;
      }
  }
  return sum / count;
}

TEST(Rng, DeterministicAndInRange) {
  Rng a(42), b(42), c(43);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    const uint64_t x = a.next();
    EXPECT_EQ(x, b.next());
    differs |= x != c.next();
  }
  EXPECT_TRUE(differs);
  // below(n) covers [0, n) roughly uniformly.
  std::vector<int> hist(7, 0);
  for (int i = 0; i < 7000; ++i) {
    const uint64_t v = a.below(7);
    ASSERT_LT(v, 7u);
    ++hist[size_t(v)];
  }
  for (int k : hist) EXPECT_NEAR(k, 1000, 150);
  for (int i = 0; i < 1000; ++i) {
    const double u = a.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
  }
  // The state round-trips.
  Rng d(1);
  d.next();
  Rng e(0);
  e.set_state(d.state());
  EXPECT_EQ(d.next(), e.next());
}

TEST(RepeatedRandomTokens, LayoutExclusionsAndSeed) {
  const std::vector<int> exclude{3, 5, 7};
  const auto seqs = repeated_random_tokens(30, 25, 4, 10, 123, /*bos=*/0, exclude);
  ASSERT_EQ(seqs.size(), 10u);
  std::set<std::vector<int>> distinct;
  for (const auto& s : seqs) {
    ASSERT_EQ(s.size(), 1u + 25 * 4);
    EXPECT_EQ(s[0], 0);
    std::set<int> ids;
    for (int j = 0; j < 25; ++j) {
      const int t = s[size_t(1 + j)];
      EXPECT_GE(t, 0);
      EXPECT_LT(t, 30);
      EXPECT_NE(t, 0) << "BOS drawn";
      EXPECT_TRUE(t != 3 && t != 5 && t != 7) << "excluded id " << t << " drawn";
      ids.insert(t);
      for (int r = 1; r < 4; ++r) EXPECT_EQ(s[size_t(1 + r * 25 + j)], t);
    }
    EXPECT_EQ(ids.size(), 25u) << "tokens of one copy are distinct when enough ids are allowed";
    distinct.insert(s);
  }
  EXPECT_EQ(distinct.size(), 10u);
  EXPECT_EQ(seqs, repeated_random_tokens(30, 25, 4, 10, 123, 0, exclude));
  EXPECT_NE(seqs, repeated_random_tokens(30, 25, 4, 10, 124, 0, exclude));
  // Fewer allowed ids than n: drawn with replacement, still never excluded ones.
  const auto small = repeated_random_tokens(5, 8, 2, 1, 9, -1, std::vector<int>{1, 2});
  ASSERT_EQ(small[0].size(), 16u);
  for (int t : small[0]) EXPECT_TRUE(t == 0 || t == 3 || t == 4);
  EXPECT_THROW(repeated_random_tokens(3, 4, 2, 1, 1, 0, std::vector<int>{1, 2}), Error);
}

TEST(PreviousTokenScores, PositionalHeadScoresOneUniformHeadHarmonic) {
  const Built b = build_induction_model(12, 24, 20.f);
  // Any token sequences: the layer-0 heads ignore token identity.
  std::vector<std::vector<int>> seqs;
  Rng rng(5);
  for (int k = 0; k < 3; ++k) {
    std::vector<int> s;
    for (int i = 0; i < 20 + k; ++i) s.push_back(int(rng.below(12)));
    seqs.push_back(s);
  }
  seqs.push_back({1, 2});  // too short to contribute
  const RowMat s = previous_token_scores(b.m, seqs);
  ASSERT_EQ(s.rows(), 2);
  ASSERT_EQ(s.cols(), 2);
  EXPECT_NEAR(s(0, 0), 1.0, 1e-5);
  // Uniform head: A[i, i-1] = 1 / (i + 1), averaged over i >= 2 of every sequence.
  double want = 0;
  int n = 0;
  for (const auto& q : seqs)
    for (size_t i = 2; i < q.size(); ++i) {
      want += 1.0 / double(i + 1);
      ++n;
    }
  want /= n;
  EXPECT_NEAR(s(0, 1), want, 1e-6);
  EXPECT_NEAR(s(1, 1), want, 1e-6);
  // Against a naive loop over forward()'s patterns for every head.
  for (int l = 0; l < 2; ++l)
    for (int h = 0; h < 2; ++h) {
      double sum = 0;
      int cnt = 0;
      for (const auto& q : seqs) {
        if (q.size() < 3) continue;
        const ForwardResult f = forward(b.m, q);
        for (size_t i = 2; i < q.size(); ++i) sum += f.cache.attn(l, h, 2)(Eigen::Index(i), Eigen::Index(i - 1));
        cnt += int(q.size()) - 2;
      }
      EXPECT_NEAR(s(l, h), sum / cnt, 1e-6) << "head " << l << "." << h;
    }
  EXPECT_TRUE(std::isnan(previous_token_scores(b.m, {{1, 2}})(0, 0)));
}

TEST(PrefixMatchingScores, InductionHeadScoresOneOthersMatchNaiveLoop) {
  const int V = 40, C = 64, n = 12, r = 4;
  const Built b = build_induction_model(V, C, 20.f);
  const int bos = 0;
  const auto seqs = repeated_random_tokens(V, n, r, 6, 77, bos);
  const RowMat pm = prefix_matching_scores(b.m, seqs, bos);
  EXPECT_GT(pm(1, 0), 0.999);
  // Every head against the positional definition, computed here.
  for (int l = 0; l < 2; ++l)
    for (int h = 0; h < 2; ++h)
      EXPECT_NEAR(pm(l, h), naive_prefix_matching(seqs, n, r, l, h, b.m), 1e-5) << "head " << l << "." << h;
  // The previous-token head never attends to the token after an earlier occurrence.
  EXPECT_LT(pm(0, 0), 1e-3);
  // [I]'s evaluator entry point gives the same as scoring its sequences.
  const RowMat pm2 = prefix_matching_scores(b.m, n, r, 6, 77, bos);
  EXPECT_TRUE(pm2.isApprox(pm)) << pm2 << "\nvs\n" << pm;
  // Sequences longer than n_ctx: a clear error.
  try {
    prefix_matching_scores(b.m, 25, 4, 10, 1, bos);
    FAIL() << "no error for 101 tokens in n_ctx 64";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("n_ctx 64"), std::string::npos) << e.what();
  }
}

TEST(PrefixMatchingScores, TokenIdentityDefinitionOnAnySequence) {
  const Built b = build_induction_model(10, 16, 3.f);  // a soft model: spread-out patterns
  const std::vector<int> seq{0, 4, 5, 4, 6, 5, 4, 9};
  // Destinations whose token occurred before: i = 3 (4), 5 (5), 6 (4).
  // Sources j <= i with seq[j-1] == seq[i]: i=3: j=2 (after the 4 at 1);
  // i=5: j=3 (after 5 at 2); i=6: j=2, j=4 (after the 4s at 1 and 3).
  const ForwardResult f = forward(b.m, seq);
  const RowMat pm = prefix_matching_scores(b.m, {seq}, 0);
  for (int l = 0; l < 2; ++l)
    for (int h = 0; h < 2; ++h) {
      const RowMat& A = f.cache.attn(l, h, 2);
      const double want = (A(3, 2) + A(5, 3) + A(6, 2) + A(6, 4)) / 3.0;
      EXPECT_NEAR(pm(l, h), want, 1e-6) << "head " << l << "." << h;
    }
  EXPECT_TRUE(std::isnan(prefix_matching_scores(b.m, {{0, 1, 2, 3}}, 0)(1, 0)));
}

TEST(RepeatLoss, InductionModelPredictsRepeatsNotFirstCopy) {
  const int V = 30, C = 64, n = 15, r = 4;
  const Built b = build_induction_model(V, C, 12.f);
  const auto seqs = repeated_random_tokens(V, n, r, 5, 3, 0);
  const RepeatLoss rl = repeat_loss(b.m, seqs, n, r, true);
  // Naive: per-position losses from forward()'s logits, split by position.
  double first = 0, rep = 0;
  int nf = 0, nr = 0;
  for (const auto& s : seqs) {
    const ForwardResult f = forward(b.m, s);
    for (int t = 1; t < int(s.size()); ++t) {
      const auto row = f.logits.row(t - 1).cast<double>();
      const double lse = std::log((row.array() - row.maxCoeff()).exp().sum()) + row.maxCoeff();
      const double loss = lse - row(s[size_t(t)]);
      if (t <= n) {
        first += loss;
        ++nf;
      } else {
        rep += loss;
        ++nr;
      }
    }
  }
  EXPECT_EQ(nf, 5 * n);
  EXPECT_NEAR(rl.first, first / nf, 1e-4);
  EXPECT_NEAR(rl.repeats, rep / nr, 1e-4);
  // The circuit works: repeats are nearly free, the first copy is not.
  EXPECT_LT(rl.repeats, 0.2);
  EXPECT_GT(rl.first, 1.0);
  const RepeatLoss rl2 = repeat_loss(b.m, n, r, 5, 3, 0);
  EXPECT_DOUBLE_EQ(rl2.first, rl.first);
  EXPECT_DOUBLE_EQ(rl2.repeats, rl.repeats);
  EXPECT_THROW(repeat_loss(b.m, seqs, n + 1, r, true), Error);
}

TEST(InContextLearning, PositionsScaleWithContext) {
  EXPECT_EQ(icl_positions(512).early, 50);
  EXPECT_EQ(icl_positions(512).late, 500);
  EXPECT_EQ(icl_positions(1024).early, 100);
  EXPECT_EQ(icl_positions(1024).late, 1000);
  EXPECT_EQ(icl_positions(128).early, 13);  // 12.5 rounds away from zero
  EXPECT_EQ(icl_positions(128).late, 125);
  const IclPositions tiny = icl_positions(4);
  EXPECT_GE(tiny.early, 1);
  EXPECT_LT(tiny.early, tiny.late);
  EXPECT_LE(tiny.late, 3);
}

TEST(InContextLearning, EarlyMinusLateLossPositiveForInduction) {
  const int V = 30, C = 64, n = 15, r = 4;
  const Built b = build_induction_model(V, C, 12.f);
  const auto seqs = repeated_random_tokens(V, n, r, 4, 8, 0);
  // early = 5 (first copy), late = 50 (fourth copy): an induction model learns in context.
  for (int w : {0, 2}) {
    const double icl = in_context_learning_score(b.m, seqs, 5, 50, w);
    double want = 0;
    for (const auto& s : seqs) {
      const ForwardResult f = forward(b.m, s);
      const std::vector<float> tl = token_losses(f.logits, s);  // tl[t-1] predicts s[t]
      double e = 0, l = 0;
      for (int u = 5 - w; u <= 5 + w; ++u) e += tl[size_t(u - 1)];
      for (int u = 50 - w; u <= 50 + w; ++u) l += tl[size_t(u - 1)];
      want += (e - l) / (2 * w + 1);
    }
    want /= double(seqs.size());
    EXPECT_NEAR(icl, want, 1e-5) << "window " << w;
    EXPECT_GT(icl, 1.0);
  }
  EXPECT_THROW(in_context_learning_score(b.m, seqs, 50, 5), Error);
  EXPECT_THROW(in_context_learning_score(b.m, seqs, 5, 61), Error);  // sequences have 61 tokens
}

// [I]'s copying score from the OV circuit: against the definition applied to
// OV rows formed here with loops (no normalization: E = W_E).
TEST(TokenCopyingScores, EqualTheDefinitionOnDenseOvRows) {
  ModelConfig c;
  c.n_layers = 2;
  c.d_model = 8;
  c.n_heads = 2;
  c.d_head = 4;
  c.n_ctx = 8;
  c.d_vocab = 15;
  c.normalization = Norm::None;
  Model m(c);
  randomize(m, 71, 0.7f);
  // Two sequences after BOS 1; the second has a repeat. Distinct tokens: {0, 3, 9, 14} and {2, 5}.
  const std::vector<std::vector<int>> seqs = {{1, 3, 9, 3, 0, 14}, {1, 5, 2, 5}};
  const RowMat s = token_copying_scores(m, seqs, 1);
  const Model& cm = m;
  const ConstMatMap WE = cm.W_E(), WU = cm.W_U();
  for (int l = 0; l < 2; ++l)
    for (int h = 0; h < 2; ++h) {
      const ConstMatMap WV = cm.W_V(l, h), WO = cm.W_O(l, h);
      double want = 0;
      for (const std::vector<int>& ids : {std::vector<int>{0, 3, 9, 14}, std::vector<int>{2, 5}}) {
        double per = 0;
        for (int t : ids) {
          // The row of the dense OV circuit (W_E unnormalized: this model has no LayerNorm) on the sequence's tokens.
          std::vector<double> row;
          for (int o : ids) {
            double v = 0;
            for (int a = 0; a < 8; ++a)
              for (int k = 0; k < 4; ++k)
                for (int b = 0; b < 8; ++b) v += double(WE(t, a)) * WV(a, k) * WO(k, b) * WU(b, o);
            row.push_back(v);
          }
          double mean = 0;
          for (double v : row) mean += v / double(row.size());
          double mass = 0;
          for (double& v : row) mass += (v = std::max(v - mean, 0.0));
          const size_t self = size_t(std::find(ids.begin(), ids.end(), t) - ids.begin());
          const double share = mass > 0 ? row[self] / mass : 0.0;
          per += std::clamp(4 * share - 1, -1.0, 1.0) / double(ids.size());
        }
        want += per / 2;
      }
      EXPECT_NEAR(s(l, h), want, 1e-5) << "head " << l << "." << h;
    }
  EXPECT_TRUE(std::isnan(token_copying_scores(m, {{1, 4, 4}}, 1)(0, 0))) << "one distinct token: nothing to compare";
  EXPECT_THROW(token_copying_scores(m, {{15, 2}}, -1), Error);
}

// A head whose OV circuit is the identity on the embeddings copies perfectly: +1.
TEST(TokenCopyingScores, AnIdentityOvCircuitScoresOne) {
  const Model m = testmodels::identity_head(Eigen::MatrixXf::Identity(6, 6));
  const RowMat s = token_copying_scores(m, {{0, 2, 5}}, -1);
  EXPECT_FLOAT_EQ(s(0, 0), 1.f);
}

}  // namespace
}  // namespace cs

namespace cs {
namespace {

// The page's experiment plan, stepped unit by unit, equals the one-shot scores
// on the same sequences (which the CLI prints).
TEST(InductionExperiment, PlanEqualsTheOneShotScores) {
  ModelConfig c;
  c.n_layers = 2;
  c.d_model = 16;
  c.n_heads = 2;
  c.d_head = 8;
  c.n_ctx = 40;
  c.d_vocab = 30;
  c.normalization = Norm::LN;
  c.positional = PosEmbed::Shortformer;
  Model m(c);
  randomize(m, 12, 0.7f);
  const int bos = 0;
  InductionExperimentPlan p(m, 6, 3, 4, 9, bos);
  while (!p.step(0.0)) {
  }
  const InductionExperiment& r = p.result();
  const auto seqs = repeated_random_tokens(30, 6, 3, 4, 9, bos);
  ASSERT_EQ(r.sequences, seqs);
  const RowMat pm = prefix_matching_scores(m, seqs, bos);
  const RowMat prev = detect_heads(m, seqs).previous_token;
  const RepeatLoss rl = repeat_loss(m, seqs, 6, 3, true);
  EXPECT_LE((r.prefix_matching - pm).cwiseAbs().maxCoeff(), 1e-6f);
  EXPECT_LE((r.previous_token - prev).cwiseAbs().maxCoeff(), 1e-6f);
  EXPECT_LE((r.copying - token_copying_scores(m, seqs, bos)).cwiseAbs().maxCoeff(), 1e-6f);
  EXPECT_NEAR(r.loss.first, rl.first, 1e-6);
  EXPECT_NEAR(r.loss.repeats, rl.repeats, 1e-6);
  // Loss by position: the mean over the examples of each position's loss.
  ASSERT_EQ(r.loss_by_position.size(), size_t(1 + 6 * 3 - 1));
  double want = 0;
  for (const auto& s : seqs) want += token_losses(forward(m, s).logits, s)[7] / 4.0;
  EXPECT_NEAR(r.loss_by_position[7], want, 1e-6);
  // The first example's patterns.
  ASSERT_EQ(r.patterns.size(), 4u);
  EXPECT_TRUE(r.patterns[3] == forward(m, seqs[0]).cache.pattern[3]);
  EXPECT_THROW(InductionExperimentPlan(m, 20, 3, 1, 0, bos), Error);  // 61 tokens > n_ctx 40
}

}  // namespace
}  // namespace cs
