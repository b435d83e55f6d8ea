// Forward pass against the independent naive reference (naive_reference.h) for
// every configuration combination, the one-layer path expansion of [F], losses,
// and input validation. Also covers ModelConfig validation and the Model layout.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <utility>
#include <string>
#include <tuple>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "core/forward.h"
#include "core/model.h"
#include "core/rng.h"
#include "naive_reference.h"

namespace cs {
namespace {

ModelConfig small_config(int layers, PosEmbed pos, Norm norm) {
  ModelConfig c;
  c.n_layers = layers;
  c.d_model = 10;
  c.n_heads = 3;
  c.d_head = 4;  // n_heads * d_head != d_model on purpose
  c.n_ctx = 9;
  c.d_vocab = 13;
  c.positional = pos;
  c.normalization = norm;
  return c;
}

std::vector<int> some_tokens(int n, int vocab, uint64_t seed) {
  std::vector<int> t;
  uint64_t s = seed * 2654435761u + 12345;
  for (int i = 0; i < n; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    t.push_back(int((s >> 33) % uint64_t(vocab)));
  }
  return t;
}

// Relative comparison at the tensor's scale: |a - b| <= tol * max(1, max|want|)
// for every element (float32 rounding grows with the magnitude of the stream,
// so a per-element relative test would be unfair to small entries). Reports
// the first mismatch.
void expect_close(const RowMat& got, const naive::Mat& want, double tol, const std::string& what) {
  ASSERT_EQ(size_t(got.rows()), want.size()) << what;
  double scale = 1;
  for (const auto& row : want)
    for (double v : row) scale = std::max(scale, std::abs(v));
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_EQ(size_t(got.cols()), want[i].size()) << what;
    for (size_t j = 0; j < want[i].size(); ++j)
      ASSERT_NEAR(got(Eigen::Index(i), Eigen::Index(j)), want[i][j], tol * scale)
          << what << " [" << i << "," << j << "] (scale " << scale << ")";
  }
}

const PosEmbed kPos[] = {PosEmbed::Standard, PosEmbed::Shortformer, PosEmbed::None};
const Norm kNorm[] = {Norm::None, Norm::LN, Norm::LNPre};

TEST(Forward, MatchesNaiveReferenceForEveryConfig) {
  int combo = 0;
  for (int layers : {0, 1, 2, 3})
    for (PosEmbed pos : kPos)
      for (Norm norm : kNorm)
        for (int variant = 0; variant < 2; ++variant, ++combo) {
          ModelConfig c = small_config(layers, pos, norm);
          if (variant == 1) {
            c.attn_scale = 1.7f;  // custom scale instead of sqrt(d_head)
            c.d_vocab_out = 7;    // d_vocab_out != d_vocab
          }
          Model m(c);
          // Large enough that patterns are far from uniform; smaller without normalization,
          // where the stream grows layer by layer and float32 softmax becomes ill-conditioned.
          randomize(m, 1000 + combo, norm == Norm::None ? 0.5f : 0.8f);
          const std::vector<int> tokens = some_tokens(c.n_ctx, c.d_vocab, combo);
          const std::string what = std::string("layers ") + std::to_string(layers) + " pos " + to_string(pos) +
                                   " norm " + to_string(norm) + " variant " + std::to_string(variant);
          const ForwardResult got = forward(m, tokens);
          const naive::Result want = naive::forward(m, tokens);
          expect_close(got.logits, want.logits, 1e-4, what + " logits");
          ASSERT_EQ(got.cache.resid.size(), size_t(layers + 1)) << what;
          ASSERT_EQ(got.cache.pattern.size(), size_t(layers * c.n_heads)) << what;
          ASSERT_EQ(got.cache.head_out.size(), size_t(layers * c.n_heads)) << what;
          for (int l = 0; l <= layers; ++l)
            expect_close(got.cache.resid[l], want.resid[l], 1e-4, what + " resid " + std::to_string(l));
          for (size_t i = 0; i < want.pattern.size(); ++i) {
            expect_close(got.cache.pattern[i], want.pattern[i], 1e-4, what + " pattern " + std::to_string(i));
            expect_close(got.cache.head_out[i], want.head_out[i], 1e-4, what + " head_out " + std::to_string(i));
          }
          if (layers > 0) {  // attn() indexes l * n_heads + h
            EXPECT_EQ(&got.cache.attn(layers - 1, 1, c.n_heads), &got.cache.pattern[size_t(layers - 1) * 3 + 1]);
          }
          // Without the cache the heads go through one concatenated W_O GEMM: same logits.
          const ForwardResult lean = forward(m, tokens, ForwardOptions{.keep_cache = false});
          EXPECT_TRUE(lean.cache.resid.empty() && lean.cache.pattern.empty());
          expect_close(lean.logits, want.logits, 1e-4, what + " logits without cache");
        }
}

TEST(Forward, PatternIsCausalAndSharpForLargeWeights) {
  Model m(small_config(2, PosEmbed::Standard, Norm::None));
  randomize(m, 7, 0.8f);
  const ForwardResult r = forward(m, some_tokens(9, 13, 3));
  double max_entry = 0;
  for (const RowMat& A : r.cache.pattern)
    for (int i = 0; i < A.rows(); ++i) {
      EXPECT_NEAR(A.row(i).sum(), 1.0, 1e-5);
      for (int j = i + 1; j < A.cols(); ++j) EXPECT_EQ(A(i, j), 0.f);
      for (int j = 1; j <= i; ++j) max_entry = std::max(max_entry, double(A(i, j)));
    }
  EXPECT_GT(max_entry, 0.5);  // the comparisons above are not against near-uniform patterns
}

// [F] path expansion of a one-layer model without LayerNorm:
// logits[i] = (W_E[t_i] (+ W_pos[i])) W_U + b_U                 direct path
//           + sum_h sum_j A^h[i,j] (x_j W_V^h + b_V^h) W_O^h W_U  one term per head
//           + b_O W_U
// Each term is computed here with loops, from the raw tensors.
TEST(Forward, OneLayerLogitsEqualPathExpansion) {
  for (PosEmbed pos : kPos) {
    ModelConfig c = small_config(1, pos, Norm::None);
    c.d_vocab_out = 11;
    Model m(c);
    randomize(m, 99, 0.8f);
    const std::vector<int> tokens = some_tokens(8, c.d_vocab, 5);
    const size_t T = tokens.size(), D = 10, H = 3, Dh = 4, V = 11;
    std::map<std::string, naive::Tensor> tensors;  // looked up once each
    auto W = [&](const char* name, size_t i) {
      auto it = tensors.find(name);
      if (it == tensors.end()) it = tensors.emplace(name, naive::tensor(m, name)).first;
      return it->second[i];
    };
    // Attention patterns from the naive reference (which does not use the code under test).
    const naive::Result ref = naive::forward(m, tokens);
    const ForwardResult got = forward(m, tokens);
    for (size_t i = 0; i < T; ++i) {
      std::vector<double> stream_in(D);  // what is written to the stream at position i (x_i)
      for (size_t d = 0; d < D; ++d)
        stream_in[d] = W("embed.W_E", size_t(tokens[i]) * D + d) +
                       (pos == PosEmbed::Standard ? W("pos_embed.W_pos", i * D + d) : 0.0);
      for (size_t o = 0; o < V; ++o) {
        double direct = W("unembed.b_U", o);
        for (size_t d = 0; d < D; ++d) direct += stream_in[d] * W("unembed.W_U", d * V + o);
        double heads = 0;
        for (size_t h = 0; h < H; ++h)
          for (size_t j = 0; j <= i; ++j) {
            std::vector<double> xj(D);  // values see no positions with Shortformer
            for (size_t d = 0; d < D; ++d)
              xj[d] = W("embed.W_E", size_t(tokens[j]) * D + d) +
                      (pos == PosEmbed::Standard ? W("pos_embed.W_pos", j * D + d) : 0.0);
            for (size_t e = 0; e < Dh; ++e) {
              double val = W("blocks.0.attn.b_V", h * Dh + e);
              for (size_t d = 0; d < D; ++d) val += xj[d] * W("blocks.0.attn.W_V", (h * D + d) * Dh + e);
              double ou = 0;  // (W_O^h W_U)[e, o]
              for (size_t d = 0; d < D; ++d)
                ou += W("blocks.0.attn.W_O", (h * Dh + e) * D + d) * W("unembed.W_U", d * V + o);
              heads += ref.pattern[h][i][j] * val * ou;
            }
          }
        double bias = 0;
        for (size_t d = 0; d < D; ++d) bias += W("blocks.0.attn.b_O", d) * W("unembed.W_U", d * V + o);
        const double want = direct + heads + bias;
        EXPECT_NEAR(got.logits(Eigen::Index(i), Eigen::Index(o)), want, 1e-5 * (1 + std::abs(want)))
            << to_string(pos) << " position " << i << " out " << o;
      }
    }
  }
}

TEST(Forward, RejectsBadTokens) {
  Model m(small_config(1, PosEmbed::Standard, Norm::LN));
  randomize(m, 1);
  EXPECT_THROW(forward(m, std::vector<int>{}), Error);
  EXPECT_THROW(forward(m, std::vector<int>{1, -1}), Error);
  EXPECT_THROW(forward(m, std::vector<int>{1, 13}), Error);
  EXPECT_THROW(forward(m, std::vector<int>(10, 0)), Error);  // n_ctx is 9
  EXPECT_NO_THROW(forward(m, std::vector<int>(9, 12)));
  try {
    forward(m, std::vector<int>{0, 1, 99});
    FAIL() << "no throw";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("tokens[2]"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  EXPECT_THROW(forward(Model{}, std::vector<int>{0}), Error);  // nothing loaded
  // Without positions there is no context limit.
  Model nopos(small_config(1, PosEmbed::None, Norm::None));
  randomize(nopos, 2);
  EXPECT_EQ(forward(nopos, std::vector<int>(20, 3)).logits.rows(), 20);
}

TEST(Forward, LossesMatchNaiveLogSoftmax) {
  Model m(small_config(2, PosEmbed::Standard, Norm::LN));
  randomize(m, 3, 0.5f);
  const std::vector<int> tokens = some_tokens(9, 13, 8);
  const RowMat logits = forward(m, tokens).logits;
  naive::Mat z(size_t(logits.rows()), std::vector<double>(size_t(logits.cols())));
  for (int i = 0; i < logits.rows(); ++i)
    for (int j = 0; j < logits.cols(); ++j) z[size_t(i)][size_t(j)] = logits(i, j);
  const naive::Mat lsm = naive::log_softmax(z);
  const std::vector<float> losses = token_losses(logits, tokens);
  ASSERT_EQ(losses.size(), tokens.size() - 1);
  double mean = 0;
  for (size_t t = 0; t + 1 < tokens.size(); ++t) {
    EXPECT_NEAR(losses[t], -lsm[t][size_t(tokens[t + 1])], 1e-5);
    mean += -lsm[t][size_t(tokens[t + 1])];
  }
  mean /= double(losses.size());
  EXPECT_NEAR(mean_loss(logits, tokens), mean, 1e-5);
  expect_close(log_softmax_rows(logits), lsm, 1e-5, "log_softmax_rows");
  // One token: no next-token loss.
  EXPECT_TRUE(token_losses(logits.topRows(1), std::vector<int>{tokens[0]}).empty());
  EXPECT_TRUE(std::isnan(mean_loss(logits.topRows(1), std::vector<int>{tokens[0]})));
  EXPECT_THROW(token_losses(logits, std::vector<int>{1, 2}), Error);  // row count mismatch
}

TEST(Forward, LogSoftmaxIsStableForHugeLogits) {
  RowMat z(1, 3);
  z << 1000.f, 999.f, -1000.f;
  const RowMat l = log_softmax_rows(z);
  const double lse = 1000.0 + std::log(1.0 + std::exp(-1.0) + std::exp(-2000.0));
  EXPECT_NEAR(l(0, 0), 1000.0 - lse, 1e-4);
  EXPECT_NEAR(l(0, 1), 999.0 - lse, 1e-4);
  EXPECT_TRUE(std::isfinite(l(0, 2)));
}

// ---- config and model layout ----------------------------------------------------

TEST(Config, ValidateNamesTheField) {
  const ModelConfig good = small_config(1, PosEmbed::Standard, Norm::LN);
  EXPECT_NO_THROW(good.validate());
  auto message = [](ModelConfig c) {
    try {
      c.validate();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no throw");
  };
  ModelConfig c = good;
  c.d_head = 0;
  EXPECT_NE(message(c).find("d_head"), std::string::npos);
  c = good;
  c.n_layers = -1;
  EXPECT_NE(message(c).find("n_layers"), std::string::npos);
  c = good;
  c.d_vocab_out = -2;
  EXPECT_NE(message(c).find("d_vocab_out"), std::string::npos);
  c = good;
  c.attn_scale = -1.f;
  EXPECT_NE(message(c).find("attn_scale"), std::string::npos);
  c = good;
  c.eps = 0.f;
  EXPECT_NE(message(c).find("eps"), std::string::npos);
  for (auto f : {&ModelConfig::d_model, &ModelConfig::n_heads, &ModelConfig::n_ctx, &ModelConfig::d_vocab}) {
    c = good;
    c.*f = 0;
    EXPECT_THROW(c.validate(), Error);
  }
  c = good;
  c.n_layers = 0;
  EXPECT_NO_THROW(c.validate());
  c.d_model = -1;
  EXPECT_THROW((void)Model(c), Error);
  EXPECT_STREQ(to_string(PosEmbed::Shortformer), "shortformer");
  EXPECT_STREQ(to_string(Norm::LNPre), "LNPre");
}

TEST(Model, TensorNamesShapesAndViews) {
  ModelConfig c = small_config(2, PosEmbed::Standard, Norm::LN);
  c.d_vocab_out = 6;
  Model m(c);
  std::vector<std::pair<std::string, std::vector<int64_t>>> want = {{"embed.W_E", {13, 10}},
                                                                    {"pos_embed.W_pos", {9, 10}}};
  for (int l = 0; l < 2; ++l) {
    const std::string b = "blocks." + std::to_string(l) + ".";
    want.push_back({b + "ln1.w", {10}});
    want.push_back({b + "ln1.b", {10}});
    for (const char* n : {"W_Q", "W_K", "W_V"}) want.push_back({b + "attn." + n, {3, 10, 4}});
    want.push_back({b + "attn.W_O", {3, 4, 10}});
    for (const char* n : {"b_Q", "b_K", "b_V"}) want.push_back({b + "attn." + n, {3, 4}});
    want.push_back({b + "attn.b_O", {10}});
  }
  want.push_back({"ln_final.w", {10}});
  want.push_back({"ln_final.b", {10}});
  want.push_back({"unembed.W_U", {10, 6}});
  want.push_back({"unembed.b_U", {6}});
  ASSERT_EQ(m.tensors().size(), want.size());
  size_t total = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(m.tensors()[i].name, want[i].first);
    EXPECT_EQ(m.tensors()[i].shape, want[i].second) << want[i].first;
    EXPECT_EQ(m.tensors()[i].offset, total) << want[i].first;
    total += m.tensors()[i].numel;
  }
  EXPECT_EQ(m.size(), total);
  EXPECT_EQ(m.parameter_count(), int64_t(total));
  for (size_t i = 0; i < m.size(); ++i) EXPECT_EQ(m.data()[i], 0.f);  // zero-filled
  randomize(m, 5);
  // Views address the row-major TransformerLens layout.
  const float* d = m.data();
  auto off = [&](const char* n) { return m.find(n)->offset; };
  EXPECT_EQ(m.W_E()(7, 3), d[off("embed.W_E") + 7 * 10 + 3]);
  EXPECT_EQ(m.W_pos()(8, 9), d[off("pos_embed.W_pos") + 8 * 10 + 9]);
  EXPECT_EQ(m.W_Q(1, 2)(6, 3), d[off("blocks.1.attn.W_Q") + (2 * 10 + 6) * 4 + 3]);
  EXPECT_EQ(m.W_K(0, 1)(9, 0), d[off("blocks.0.attn.W_K") + (1 * 10 + 9) * 4 + 0]);
  EXPECT_EQ(m.W_V(1, 0)(2, 2), d[off("blocks.1.attn.W_V") + (0 * 10 + 2) * 4 + 2]);
  EXPECT_EQ(m.W_O(1, 2)(3, 7), d[off("blocks.1.attn.W_O") + (2 * 4 + 3) * 10 + 7]);
  EXPECT_EQ(m.b_Q(1, 2)[1], d[off("blocks.1.attn.b_Q") + 2 * 4 + 1]);
  EXPECT_EQ(m.b_K(0, 1)[3], d[off("blocks.0.attn.b_K") + 1 * 4 + 3]);
  EXPECT_EQ(m.b_V(1, 1)[0], d[off("blocks.1.attn.b_V") + 1 * 4 + 0]);
  EXPECT_EQ(m.b_O(1)[9], d[off("blocks.1.attn.b_O") + 9]);
  EXPECT_EQ(m.ln1_w(1)[4], d[off("blocks.1.ln1.w") + 4]);
  EXPECT_EQ(m.ln1_b(0)[4], d[off("blocks.0.ln1.b") + 4]);
  EXPECT_EQ(m.ln_final_w()[2], d[off("ln_final.w") + 2]);
  EXPECT_EQ(m.ln_final_b()[2], d[off("ln_final.b") + 2]);
  EXPECT_EQ(m.W_U()(9, 5), d[off("unembed.W_U") + 9 * 6 + 5]);
  EXPECT_EQ(m.b_U()[5], d[off("unembed.b_U") + 5]);
  EXPECT_EQ(m.W_U().cols(), 6);
  EXPECT_THROW(m.W_Q(2, 0), Error);
  EXPECT_THROW(m.W_Q(0, 3), Error);
  EXPECT_EQ(m.find("blocks.2.attn.W_Q"), nullptr);
  // Writing through a view changes the flat block.
  m.W_O(0, 1)(2, 3) = 42.f;
  EXPECT_EQ(d[off("blocks.0.attn.W_O") + (1 * 4 + 2) * 10 + 3], 42.f);
}

TEST(Model, OptionalTensorsFollowTheConfig) {
  Model m(small_config(1, PosEmbed::None, Norm::LNPre));
  EXPECT_EQ(m.find("pos_embed.W_pos"), nullptr);
  EXPECT_EQ(m.find("blocks.0.ln1.w"), nullptr);
  EXPECT_EQ(m.find("ln_final.b"), nullptr);
  EXPECT_EQ(m.W_pos().rows(), 0);
  EXPECT_EQ(m.W_pos().cols(), 10);
  EXPECT_THROW(m.ln1_w(0), Error);
  EXPECT_THROW(m.ln_final_b(), Error);
  EXPECT_EQ(m.tensors().size(), 1u + 8u + 2u);
  Model sf(small_config(0, PosEmbed::Shortformer, Norm::None));
  EXPECT_NE(sf.find("pos_embed.W_pos"), nullptr);
  EXPECT_EQ(sf.tensors().size(), 4u);
}

TEST(Model, DefaultConstructedModelThrowsInsteadOfCrashing) {
  Model empty;
  EXPECT_TRUE(empty.tensors().empty());
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_THROW(empty.W_E(), Error);
  EXPECT_THROW(empty.W_U(), Error);
  EXPECT_THROW(empty.b_U(), Error);
  EXPECT_THROW(empty.W_Q(0, 0), Error);
}

TEST(Model, ProcessingStateDescribe) {
  ProcessingState p;
  EXPECT_FALSE(p.any());
  EXPECT_EQ(p.describe(), "raw (as stored)");
  p.fold_ln = p.center_writing_weights = p.center_unembed = p.fold_value_biases = true;
  EXPECT_EQ(p.describe(), "processed: fold_ln, center_writing_weights, center_unembed, fold_value_biases");
  p = {};
  p.center_unembed = true;
  EXPECT_EQ(p.describe(), "processed: center_unembed");
}

TEST(Model, RandomizeIsDeterministicAndHasTheRequestedScale) {
  ModelConfig c = small_config(1, PosEmbed::Standard, Norm::LN);
  c.d_vocab = 2000;
  Model a(c), b(c), other(c);
  randomize(a, 42, 0.1f);
  randomize(b, 42, 0.1f);
  randomize(other, 43, 0.1f);
  EXPECT_TRUE(std::equal(a.data(), a.data() + a.size(), b.data()));
  EXPECT_FALSE(std::equal(a.data(), a.data() + a.size(), other.data()));
  // W_E: mean ~0, std ~0.1 over 20000 samples.
  const ConstMatMap E = std::as_const(a).W_E();
  const double mean = E.mean();
  const double sd = std::sqrt((E.array() - float(mean)).square().mean());
  EXPECT_NEAR(mean, 0.0, 0.005);
  EXPECT_NEAR(sd, 0.1, 0.005);
  EXPECT_NEAR(a.ln1_w(0).mean(), 1.0, 0.2);  // LN weights near 1 but not 1
  EXPECT_GT((a.ln1_w(0).array() - 1.f).abs().maxCoeff(), 0.01f);
  EXPECT_GT(a.b_V(0, 0).cwiseAbs().maxCoeff(), 0.f);  // biases nonzero
  EXPECT_LT(a.b_V(0, 0).cwiseAbs().maxCoeff(), 0.5f);
  const double pos_sd = std::sqrt(std::as_const(a).W_pos().array().square().mean());
  EXPECT_NEAR(pos_sd, 0.1, 0.03);  // W_pos at W_E's scale
}

// The sliced pass with units small enough that the pattern, the head outputs
// and the unembedding each take several blocks (16 rows or columns): the same
// numbers as the loops of the naive reference, and the same bits however it
// is stepped.
TEST(Forward, SlicedPlanInSmallBlocksMatchesTheReferenceAndItsOwnRun) {
  int combo = 0;
  for (PosEmbed pos : kPos)
    for (Norm norm : kNorm)
      for (bool keep : {true, false}) {
        ModelConfig c = small_config(2, pos, norm);
        c.n_ctx = 40;
        c.d_vocab = 50;
        Model m(c);
        randomize(m, 500 + combo, norm == Norm::None ? 0.5f : 0.8f);
        const std::vector<int> tokens = some_tokens(37, c.d_vocab, combo++);
        const std::string what = std::string("pos ") + to_string(pos) + " norm " + to_string(norm) +
                                 (keep ? " cache" : " no cache");
        ForwardPlan once(m, tokens, ForwardOptions{.keep_cache = keep}, /*unit_macs=*/64);
        ForwardPlan stepped(m, tokens, ForwardOptions{.keep_cache = keep}, 64);
        // embedding; per layer: normalization, per head q, k, v in 3 blocks of
        // rows each (37 = 16 + 16 + 5), a barrier, 3 blocks of query rows and
        // a barrier (which keeps the pattern), the head outputs (with the
        // cache 3 row blocks per head, else 3 row blocks of all heads), the
        // bias; final normalization, 4 blocks of W_U's 50 columns, the end.
        EXPECT_EQ(once.units(), size_t(1 + 2 * (1 + 3 * (3 * 3 + 1 + 3 + 1) + (keep ? 3 * 3 : 3) + 1) + 1 + 4 + 1))
            << what;
        once.run();  // on every core (analysis_threads()); stepped below on one
        int steps = 0;
        while (!stepped.step(0.0)) ++steps;
        EXPECT_EQ(size_t(steps + 1), stepped.units()) << what << ": step(0) runs one unit";
        const naive::Result want = naive::forward(m, tokens);
        const ForwardResult& a = once.result();
        const ForwardResult& b = stepped.result();
        expect_close(a.logits, want.logits, 1e-4, what + " logits");
        EXPECT_TRUE(a.logits == b.logits) << what;
        if (keep) {
          ASSERT_EQ(a.cache.pattern.size(), want.pattern.size()) << what;
          for (size_t i = 0; i < want.pattern.size(); ++i) {
            expect_close(a.cache.pattern[i], want.pattern[i], 1e-4, what + " pattern " + std::to_string(i));
            expect_close(a.cache.head_out[i], want.head_out[i], 1e-4, what + " head_out " + std::to_string(i));
            EXPECT_TRUE(a.cache.pattern[i] == b.cache.pattern[i]) << what;
          }
          for (size_t l = 0; l < want.resid.size(); ++l)
            expect_close(a.cache.resid[l], want.resid[l], 1e-4, what + " resid " + std::to_string(l));
        }
      }
}

}  // namespace
}  // namespace cs

namespace cs {
namespace {

// logits = false stops before the unembedding: no logits, the same cache.
TEST(Forward, WithoutLogitsKeepsTheSameCache) {
  ModelConfig c;
  c.n_layers = 2;
  c.d_model = 16;
  c.n_heads = 2;
  c.d_head = 8;
  c.n_ctx = 12;
  c.d_vocab = 40;
  c.normalization = Norm::LN;
  Model m(c);
  randomize(m, 31, 0.6f);
  const std::vector<int> tokens{3, 1, 4, 1, 5, 9, 2, 6};
  const ForwardResult full = forward(m, tokens);
  const ForwardResult part = forward(m, tokens, ForwardOptions{.keep_cache = true, .logits = false});
  EXPECT_EQ(full.logits.rows(), 8);
  EXPECT_EQ(part.logits.size(), 0);
  ASSERT_EQ(part.cache.pattern.size(), full.cache.pattern.size());
  for (size_t i = 0; i < full.cache.pattern.size(); ++i)
    EXPECT_TRUE(part.cache.pattern[i] == full.cache.pattern[i]) << "pattern " << i;
  ASSERT_EQ(part.cache.resid.size(), full.cache.resid.size());
  EXPECT_TRUE(part.cache.resid.back() == full.cache.resid.back());
}

}  // namespace
}  // namespace cs

namespace cs {
namespace {

naive::Mat to_naive(const RowMat& a) {
  naive::Mat m = naive::zeros(size_t(a.rows()), size_t(a.cols()));
  for (Eigen::Index i = 0; i < a.rows(); ++i)
    for (Eigen::Index j = 0; j < a.cols(); ++j) m[size_t(i)][size_t(j)] = a(i, j);
  return m;
}

// Pattern-preserving ablation: the patterns of the clean run forced, some
// heads' outputs zeroed; against the reference doing the same by definition.
TEST(Forward, PatternPreservingAblationMatchesTheReference) {
  int combo = 0;
  for (PosEmbed pos : kPos)
    for (Norm norm : kNorm)
      for (bool keep : {true, false}) {
        ModelConfig c = small_config(2, pos, norm);
        Model m(c);
        randomize(m, 700 + combo, norm == Norm::None ? 0.5f : 0.8f);
        const std::vector<int> tokens = some_tokens(c.n_ctx, c.d_vocab, 40 + combo++);
        const std::string what = std::string("pos ") + to_string(pos) + " norm " + to_string(norm) +
                                 (keep ? " cache" : " no cache");
        const ForwardResult clean = forward(m, tokens);

        // Nothing ablated, patterns forced: the clean run again.
        ForwardOptions same{.keep_cache = keep, .frozen_patterns = clean.cache.pattern};
        same.ablate.assign(6, 0);
        const ForwardResult again = forward(m, tokens, same);
        EXPECT_LE((again.logits - clean.logits).cwiseAbs().maxCoeff(), 1e-5f) << what;

        // Heads 0.1 and 1.2 ablated.
        ForwardOptions ab{.keep_cache = keep, .frozen_patterns = clean.cache.pattern};
        ab.ablate = {0, 1, 0, 0, 0, 1};
        const ForwardResult got = forward(m, tokens, ab);
        std::vector<naive::Mat> forced;
        for (const RowMat& A : clean.cache.pattern) forced.push_back(to_naive(A));
        const std::vector<bool> off{false, true, false, false, false, true};
        const naive::Result want = naive::forward(m, tokens, &forced, &off);
        expect_close(got.logits, want.logits, 1e-4, what + " logits");
        // The ablation changes the prediction (else this test could not fail).
        EXPECT_GT((got.logits - clean.logits).cwiseAbs().maxCoeff(), 1e-3f) << what;
        if (keep) {
          for (size_t i = 0; i < 6; ++i) {
            // Layer 1's patterns stay the clean ones although its input changed.
            EXPECT_TRUE(got.cache.pattern[i] == clean.cache.pattern[i]) << what << " pattern " << i;
            expect_close(got.cache.head_out[i], want.head_out[i], 1e-4, what + " head_out " + std::to_string(i));
          }
          EXPECT_EQ(got.cache.head_out[1].cwiseAbs().maxCoeff(), 0.f) << what;
        }
        // Without forcing, the same ablation recomputes layer 1's patterns from the changed stream.
        const naive::Result unforced = naive::forward(m, tokens, nullptr, &off);
        ForwardOptions ab2{.keep_cache = true};
        ab2.ablate = ab.ablate;
        const ForwardResult got2 = forward(m, tokens, ab2);
        expect_close(got2.logits, unforced.logits, 1e-4, what + " logits, patterns recomputed");
      }
}

// Any forced pattern is used as given (here: uniform over the causal prefix).
TEST(Forward, FrozenPatternsAreUsedAsGiven) {
  ModelConfig c = small_config(2, PosEmbed::Standard, Norm::LN);
  Model m(c);
  randomize(m, 77, 0.8f);
  const std::vector<int> tokens = some_tokens(c.n_ctx, c.d_vocab, 5);
  const Eigen::Index T = Eigen::Index(tokens.size());
  RowMat U = RowMat::Zero(T, T);
  for (Eigen::Index i = 0; i < T; ++i) U.row(i).head(i + 1).setConstant(1.f / float(i + 1));
  ForwardOptions o;
  o.frozen_patterns.assign(6, U);
  const ForwardResult got = forward(m, tokens, o);
  const std::vector<naive::Mat> forced(6, to_naive(U));
  expect_close(got.logits, naive::forward(m, tokens, &forced).logits, 1e-4, "uniform patterns");
}

TEST(Forward, AblationOptionsWithWrongShapesNameTheField) {
  ModelConfig c = small_config(2, PosEmbed::Standard, Norm::LN);
  Model m(c);
  randomize(m, 1, 0.5f);
  const std::vector<int> tokens{1, 2, 3};
  auto message = [&](const ForwardOptions& o) {
    try {
      forward(m, tokens, o);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  ForwardOptions a;
  a.ablate.assign(5, 0);
  EXPECT_EQ(message(a), "forward: ablate has 5 entries, expected n_layers * n_heads = 6");
  ForwardOptions f;
  f.frozen_patterns.assign(2, RowMat::Zero(3, 3));
  EXPECT_EQ(message(f), "forward: frozen_patterns has 2 patterns, expected n_layers * n_heads = 6");
  f.frozen_patterns.assign(6, RowMat::Zero(3, 3));
  f.frozen_patterns[4] = RowMat::Zero(4, 4);
  EXPECT_EQ(message(f), "forward: frozen_patterns[4] (head 1.1) is 4 x 4, expected 3 x 3 (one row and column per token)");
}

}  // namespace
}  // namespace cs

namespace cs {
namespace {

// summarize: the logits folded block by block of W_U's columns (small units,
// so many blocks) against the dense logits of the same pass: log-normalizer,
// top-k (ids and values, by decreasing logit), next-token logits and losses.
TEST(Forward, LogitSummaryMatchesTheDenseLogits) {
  ModelConfig c = small_config(2, PosEmbed::Shortformer, Norm::LN);
  c.n_ctx = 40;
  c.d_vocab = 50;
  c.d_vocab_out = 47;
  Model m(c);
  randomize(m, 77, 0.8f);
  std::vector<int> tokens = some_tokens(33, c.d_vocab_out, 5);
  const ForwardResult dense = forward(m, tokens);
  for (int k : {1, 5, 47, 60}) {
    ForwardOptions o;
    o.summarize = true;
    o.top_k = k;
    ForwardPlan plan(m, tokens, o, /*unit_macs=*/64);  // W_U in blocks of 16 columns
    plan.run();
    const ForwardResult r = plan.take();
    const LogitSummary& s = r.summary;
    EXPECT_EQ(r.logits.size(), 0) << "summarize keeps no logits";
    ASSERT_EQ(s.k, std::min(k, 47));
    ASSERT_EQ(s.positions(), tokens.size());
    const RowMat logp = log_softmax_rows(dense.logits);
    for (size_t t = 0; t < tokens.size(); ++t) {
      const auto row = dense.logits.row(Eigen::Index(t));
      // log sum exp, in double
      double mx = row.maxCoeff(), sum = 0;
      for (Eigen::Index v = 0; v < row.size(); ++v) sum += std::exp(double(row(v)) - mx);
      EXPECT_NEAR(s.log_norm[t], mx + std::log(sum), 1e-4) << "position " << t;
      // Top k by a full sort of the dense row.
      std::vector<int> ids(size_t(row.size()));
      for (size_t v = 0; v < ids.size(); ++v) ids[v] = int(v);
      std::stable_sort(ids.begin(), ids.end(), [&](int a, int b) { return row(a) > row(b); });
      for (int i = 0; i < s.k; ++i) {
        EXPECT_EQ(s.top_id(t, i), ids[size_t(i)]) << "position " << t << " rank " << i << " k " << k;
        EXPECT_NEAR(s.top_logit(t, i), row(ids[size_t(i)]), 1e-5);  // blocks of W_U round differently
        EXPECT_NEAR(s.top_log_prob(t, i), logp(Eigen::Index(t), ids[size_t(i)]), 1e-4);
      }
    }
    const std::vector<float> want = token_losses(dense.logits, tokens), got = s.losses();
    ASSERT_EQ(got.size(), want.size());
    for (size_t t = 0; t < want.size(); ++t) EXPECT_NEAR(got[t], want[t], 1e-4) << "loss at " << t;
    EXPECT_NEAR(s.loss(), mean_loss(dense.logits, tokens), 1e-5);
  }
}

// The summary's parts: blocks folded into shares of the vocabulary and the
// shares merged (as the unembedding's strands do), on logits with many exact
// ties, against a full stable sort of each row: the top k by the total order
// (larger logit, then lower id) whatever the blocks, the shares or the order
// of the merges; the log-normalizer and the next-token logits.
TEST(Forward, LogitSummaryMergesSharesByTheTotalOrder) {
  const Eigen::Index T = 6, V = 103;
  Rng rng(41);
  RowMat logits(T, V);
  for (Eigen::Index t = 0; t < T; ++t)
    for (Eigen::Index v = 0; v < V; ++v) logits(t, v) = float(int(rng.uniform() * 7.0) - 3);  // -3..3: ties
  std::vector<int> tokens(static_cast<size_t>(T));
  for (Eigen::Index t = 0; t < T; ++t) tokens[size_t(t)] = int((t * 37) % V);
  for (int k : {1, 7, 103}) {
    // (shares, block width, merged in reverse)
    for (auto [shares, width, reverse] : {std::tuple{1, 10, false}, std::tuple{4, 7, false}, std::tuple{5, 3, true}}) {
      LogitSummary whole;
      whole.reset(size_t(T), k, int(V));
      std::vector<LogitSummary> parts(static_cast<size_t>(shares));
      for (int p = 0; p < shares; ++p) {
        parts[size_t(p)].reset(size_t(T), k, int(V));
        const Eigen::Index c_begin = V * p / shares, c_end = V * (p + 1) / shares;
        for (Eigen::Index c0 = c_begin; c0 < c_end; c0 += width) {
          const Eigen::Index n = std::min<Eigen::Index>(width, c_end - c0);
          parts[size_t(p)].add_block(logits.middleCols(c0, n), c0, tokens);
        }
      }
      for (int i = 0; i < shares; ++i) whole.merge(parts[size_t(reverse ? shares - 1 - i : i)]);
      whole.finish();
      const std::string what = "k " + std::to_string(k) + " shares " + std::to_string(shares);
      for (Eigen::Index t = 0; t < T; ++t) {
        const auto row = logits.row(t);
        std::vector<int> ids(static_cast<size_t>(V));
        for (size_t v = 0; v < ids.size(); ++v) ids[v] = int(v);
        std::stable_sort(ids.begin(), ids.end(), [&](int a, int b) { return row(a) > row(b); });
        for (int i = 0; i < k; ++i) {
          ASSERT_EQ(whole.top_id(size_t(t), i), ids[size_t(i)]) << what << " position " << t << " rank " << i;
          ASSERT_EQ(whole.top_logit(size_t(t), i), row(ids[size_t(i)]));
        }
        const double mx = row.maxCoeff();
        double sum = 0;
        for (Eigen::Index v = 0; v < V; ++v) sum += std::exp(double(row(v)) - mx);
        EXPECT_NEAR(whole.log_norm[size_t(t)], mx + std::log(sum), 1e-5) << what << " position " << t;
        if (t + 1 < T) EXPECT_EQ(whole.next_logit[size_t(t)], row(tokens[size_t(t) + 1])) << what;
      }
    }
  }
}

}  // namespace
}  // namespace cs
