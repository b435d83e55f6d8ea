// The trainer's batched forward/backward (src/train/backward.h) against
// independent computations:
//   - its loss against cs::forward + cs::token_losses (core, a separate path),
//     for every configuration combination;
//   - every parameter tensor's gradient against central finite differences of
//     a double-precision loss written here on top of the naive reference
//     forward (naive_reference.h: plain loops in double, no Eigen);
//   - the loss mask, thread-count invariance, and a few SGD steps.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/forward.h"
#include "core/model.h"
#include "naive_reference.h"
#include "train/backward.h"

namespace cs {
namespace {

using train::BatchView;

// A fixed 64-bit LCG for test data (not the code under test's PRNG).
struct Lcg {
  uint64_t s;
  explicit Lcg(uint64_t seed) : s(seed * 2862933555777941757ull + 3037000493ull) {}
  uint64_t next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return s >> 33;
  }
  int below(int n) { return int(next() % uint64_t(n)); }
};

struct Combo {
  int layers;
  PosEmbed pos;
  Norm norm;
};

std::vector<Combo> all_combos(int max_layers) {
  std::vector<Combo> out;
  for (int l = 0; l <= max_layers; ++l)
    for (PosEmbed p : {PosEmbed::Standard, PosEmbed::Shortformer, PosEmbed::None})
      for (Norm n : {Norm::None, Norm::LN, Norm::LNPre}) out.push_back({l, p, n});
  return out;
}

std::string name_of(const Combo& c) {
  return std::to_string(c.layers) + " layers, " + to_string(c.pos) + ", " + to_string(c.norm);
}

// Small config; `variant` alternates the optional features so that every
// combination is seen with d_vocab_out above and below d_vocab and with a
// custom attn_scale.
ModelConfig tiny_config(const Combo& k, int variant) {
  ModelConfig c;
  c.n_layers = k.layers;
  c.d_model = 6;
  c.n_heads = 2;
  c.d_head = 4;  // n_heads * d_head != d_model on purpose
  c.n_ctx = 7;
  c.d_vocab = 9;
  c.d_vocab_out = variant % 3 == 0 ? 0 : variant % 3 == 1 ? 11 : 6;
  c.attn_scale = variant % 2 ? 1.7f : 0.f;
  c.positional = k.pos;
  c.normalization = k.norm;
  return c;
}

// [B, T] tokens: inputs in [0, d_vocab), every target (t >= 1) in [0, vocab_out).
std::vector<int> batch_tokens(const ModelConfig& c, int B, int T, uint64_t seed) {
  Lcg r(seed);
  std::vector<int> t(size_t(B) * T);
  for (int b = 0; b < B; ++b)
    for (int i = 0; i < T; ++i) t[size_t(b) * T + i] = r.below(i == 0 ? c.d_vocab : std::min(c.d_vocab, c.vocab_out()));
  return t;
}

std::vector<int> row(const std::vector<int>& tokens, int b, int T) {
  return std::vector<int>(tokens.begin() + ptrdiff_t(b) * T, tokens.begin() + ptrdiff_t(b + 1) * T);
}

// Mean loss through core forward() + token_losses(), mask as weights.
double core_loss(const Model& m, const std::vector<int>& tokens, int B, int T, const std::vector<float>& mask) {
  double num = 0, den = 0;
  for (int b = 0; b < B; ++b) {
    const std::vector<int> seq = row(tokens, b, T);
    const std::vector<float> l = token_losses(forward(m, seq, {.keep_cache = false}).logits, seq);
    for (int t = 0; t + 1 < T; ++t) {
      const double w = mask.empty() ? 1.0 : mask[size_t(b) * T + t];
      num += w * l[size_t(t)];
      den += w;
    }
  }
  return num / den;
}

// The same loss in double through the naive reference forward.
double naive_loss(const Model& m, const std::vector<int>& tokens, int B, int T, const std::vector<float>& mask) {
  double num = 0, den = 0;
  for (int b = 0; b < B; ++b) {
    const std::vector<int> seq = row(tokens, b, T);
    const naive::Mat lp = naive::log_softmax(naive::forward(m, seq).logits);
    for (int t = 0; t + 1 < T; ++t) {
      const double w = mask.empty() ? 1.0 : mask[size_t(b) * T + t];
      if (w == 0) continue;
      num += -w * lp[size_t(t)][size_t(seq[size_t(t) + 1])];
      den += w;
    }
  }
  return num / den;
}

BatchView view(const std::vector<int>& tokens, int B, int T, const std::vector<float>& mask = {}) {
  return BatchView{tokens, B, T, mask};
}

// ---- (1) the loss equals the core forward's ------------------------------------

TEST(Backward, LossMatchesCoreForwardForEveryConfig) {
  int variant = 0;
  for (const Combo& k : all_combos(4)) {
    const ModelConfig c = tiny_config(k, variant++);
    Model m(c);
    randomize(m, 100 + uint64_t(variant), 0.5f);
    const int B = 3, T = 7;
    const std::vector<int> tokens = batch_tokens(c, B, T, uint64_t(variant));
    const double want = core_loss(m, tokens, B, T, {});
    std::vector<float> g(m.size());
    const float got_grad = train::loss_and_grad(m, view(tokens, B, T), g);
    const float got_eval = train::batch_loss(m, view(tokens, B, T));
    const float got_eval2 = train::batch_loss(m, view(tokens, B, T), 2);
    EXPECT_NEAR(got_grad, want, 2e-6 * std::max(1.0, want)) << name_of(k);
    EXPECT_NEAR(got_eval, want, 2e-6 * std::max(1.0, want)) << name_of(k);
    EXPECT_NEAR(got_eval2, want, 2e-6 * std::max(1.0, want)) << name_of(k);
  }
}

// Longer sequences than one unembedding chunk (256 rows), bigger shapes.
TEST(Backward, LossMatchesCoreForwardOnLongerBatch) {
  ModelConfig c;
  c.n_layers = 2;
  c.d_model = 16;
  c.n_heads = 4;
  c.d_head = 4;
  c.n_ctx = 160;
  c.d_vocab = 50;
  c.positional = PosEmbed::Shortformer;
  c.normalization = Norm::LN;
  Model m(c);
  randomize(m, 5, 0.3f);
  const int B = 3, T = 150;
  const std::vector<int> tokens = batch_tokens(c, B, T, 77);
  const double want = core_loss(m, tokens, B, T, {});
  std::vector<float> g(m.size());
  EXPECT_NEAR(train::loss_and_grad(m, view(tokens, B, T), g), want, 1e-5 * want);
  EXPECT_NEAR(train::batch_loss(m, view(tokens, B, T)), want, 1e-5 * want);
}

// ---- (2) gradients against finite differences --------------------------------------

// Central difference of the double-precision naive loss in parameter p. The
// perturbed float value is what the model holds, so the step is measured from
// the floats actually stored.
double fd_grad(Model& m, size_t p, const std::vector<int>& tokens, int B, int T, const std::vector<float>& mask,
               double eps) {
  float* x = m.data() + p;
  const float orig = *x;
  const float hi = float(double(orig) + eps), lo = float(double(orig) - eps);
  *x = hi;
  const double Lhi = naive_loss(m, tokens, B, T, mask);
  *x = lo;
  const double Llo = naive_loss(m, tokens, B, T, mask);
  *x = orig;
  return (Lhi - Llo) / (double(hi) - double(lo));
}

// Entries checked: all of a small tensor, else 20 random ones (plus the first and last).
std::vector<size_t> sample(const TensorSpec& s, Lcg& r) {
  std::vector<size_t> idx;
  if (s.numel <= 24) {
    for (size_t i = 0; i < s.numel; ++i) idx.push_back(i);
    return idx;
  }
  idx.push_back(0);
  idx.push_back(s.numel - 1);
  for (int i = 0; i < 20; ++i) idx.push_back(size_t(r.next() % s.numel));
  return idx;
}

// Compares every tensor's analytic gradient with finite differences; returns
// the number of entries checked. Tolerance: |g - fd| <= 1e-2 |fd| + 1e-4.
int check_gradients(Model& m, const std::vector<int>& tokens, int B, int T, const std::vector<float>& mask,
                    const std::string& what, uint64_t seed) {
  std::vector<float> g(m.size(), 123.f);  // must be overwritten, not accumulated
  const float loss = train::loss_and_grad(m, view(tokens, B, T, mask), g);
  EXPECT_NEAR(loss, naive_loss(m, tokens, B, T, mask), 1e-5) << what;
  Lcg r(seed);
  int checked = 0;
  for (const TensorSpec& s : m.tensors()) {
    double max_abs_fd = 0;
    for (size_t i : sample(s, r)) {
      const double fd = fd_grad(m, s.offset + i, tokens, B, T, mask, 1e-3);
      const double an = g[s.offset + i];
      max_abs_fd = std::max(max_abs_fd, std::abs(fd));
      EXPECT_NEAR(an, fd, 1e-2 * std::abs(fd) + 1e-4) << what << ": " << s.name << "[" << i << "]";
      ++checked;
    }
    // The tensor must matter (else the comparison proves nothing), except
    // W_pos (its rows beyond T do not) and b_K, which adds q . b_K to every
    // score of a row: softmax ignores it, its gradient is 0.
    if (s.name != "pos_embed.W_pos" && !s.name.ends_with("b_K")) EXPECT_GT(max_abs_fd, 1e-4) << what << ": " << s.name << " has no effect";
  }
  return checked;
}

TEST(Backward, GradientsMatchFiniteDifferencesForEveryConfig) {
  int variant = 0, checked = 0;
  for (const Combo& k : all_combos(4)) {
    const ModelConfig c = tiny_config(k, variant);
    Model m(c);
    randomize(m, 200 + uint64_t(variant), 0.5f);
    // One sequence keeps the naive finite differences cheap (batching is
    // covered by the loss and thread tests and the weighted-mask test below).
    const int B = 1, T = 6;
    const std::vector<int> tokens = batch_tokens(c, B, T, 1000 + uint64_t(variant));
    // Every other combination with a 0/1 loss mask.
    std::vector<float> mask;
    if (variant % 2) mask = {1, 0, 1, 1, 0, 1};
    checked += check_gradients(m, tokens, B, T, mask, name_of(k) + " variant " + std::to_string(variant),
                               uint64_t(variant));
    ++variant;
  }
  EXPECT_GT(checked, 4000);
}

// Weighted (non-0/1) mask and LN models whose normalization was switched to
// LNPre after construction (fold_ln keeps the ln tensors in the layout: their
// gradient must be 0).
TEST(Backward, GradientsWithWeightedMaskAndFoldedLayout) {
  ModelConfig c = tiny_config({2, PosEmbed::Shortformer, Norm::LN}, 0);
  Model m(c);
  randomize(m, 9, 0.5f);
  const int B = 2, T = 5;
  const std::vector<int> tokens = batch_tokens(c, B, T, 4);
  check_gradients(m, tokens, B, T, {0.5f, 2.f, 0, 1, 3, 1, 1, 0.25f, 1, 0}, "weighted mask", 1);

  m.set_normalization(Norm::LNPre);
  std::vector<float> g(m.size(), 1.f);
  train::loss_and_grad(m, view(tokens, B, T), g);
  for (const TensorSpec& s : m.tensors())
    if (s.name.find("ln") != std::string::npos)
      for (size_t i = 0; i < s.numel; ++i) ASSERT_EQ(g[s.offset + i], 0.f) << s.name;
  EXPECT_NEAR(train::batch_loss(m, view(tokens, B, T)), core_loss(m, tokens, B, T, {}), 1e-5);
}

// ---- (3) the loss mask ------------------------------------------------------------------

TEST(Backward, LossMaskSelectsPredictions) {
  ModelConfig c = tiny_config({2, PosEmbed::Standard, Norm::LN}, 0);
  Model m(c);
  randomize(m, 3, 0.5f);
  const int B = 2, T = 6;
  std::vector<int> tokens = batch_tokens(c, B, T, 8);
  // Mask out sequence 1 except its position 1, and position T-2 of sequence 0.
  std::vector<float> mask(size_t(B) * T, 0.f);
  for (int t = 0; t < T - 2; ++t) mask[size_t(t)] = 1;
  mask[size_t(T) + 1] = 1;
  mask[size_t(T) - 1] = 1;  // the last column predicts nothing: ignored
  const double want = core_loss(m, tokens, B, T, mask);
  std::vector<float> g(m.size());
  const float got = train::loss_and_grad(m, view(tokens, B, T, mask), g);
  EXPECT_NEAR(got, want, 1e-5);
  EXPECT_NEAR(train::batch_loss(m, view(tokens, B, T, mask)), want, 1e-5);
  EXPECT_GT(std::abs(got - core_loss(m, tokens, B, T, {})), 1e-3);  // the mask changed something

  // The last token of sequence 0 is only the target of the masked position
  // T-2: changing it changes neither the loss nor any gradient.
  std::vector<int> other = tokens;
  other[size_t(T) - 1] = (other[size_t(T) - 1] + 1) % std::min(c.d_vocab, c.vocab_out());
  std::vector<float> g2(m.size());
  EXPECT_EQ(train::loss_and_grad(m, view(other, B, T, mask), g2), got);
  EXPECT_EQ(g2, g);
  // ... while without the mask it does.
  std::vector<float> g3(m.size()), g4(m.size());
  EXPECT_NE(train::loss_and_grad(m, view(other, B, T), g3), train::loss_and_grad(m, view(tokens, B, T), g4));
}

TEST(Backward, BadInputIsReported) {
  ModelConfig c = tiny_config({1, PosEmbed::Standard, Norm::LN}, 2);  // d_vocab 9, d_vocab_out 6
  Model m(c);
  randomize(m, 1, 0.5f);
  std::vector<int> tokens = {1, 2, 3, 4, 5, 0};
  std::vector<float> g(m.size());
  auto message = [&](const BatchView& b, std::span<float> grads) -> std::string {
    try {
      train::loss_and_grad(m, b, grads);
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  EXPECT_NE(message(view(tokens, 1, 6), std::span<float>(g).first(3)).find("grads"), std::string::npos);
  EXPECT_NE(message(view(tokens, 3, 3), g).find("tokens has 6 entries"), std::string::npos);
  EXPECT_NE(message(view(tokens, 6, 1), g).find("T must be >= 2"), std::string::npos);
  std::vector<int> long_seq(8, 1);  // n_ctx is 7
  EXPECT_NE(message(view(long_seq, 1, 8), g).find("n_ctx"), std::string::npos);
  std::vector<int> bad_id = {1, 2, 9, 4, 5, 0};
  EXPECT_NE(message(view(bad_id, 2, 3), g).find("tokens[0, 2] = 9"), std::string::npos);
  std::vector<int> bad_target = {8, 2, 3, 4, 7, 0};  // 8 may be an input, 7 is no valid target
  EXPECT_NE(message(view(bad_target, 2, 3), g).find("tokens[1, 1] = 7 is a target"), std::string::npos);
  std::vector<float> mask = {1, 0, 0, 0, 0, 0};  // ... unless its prediction is masked
  EXPECT_EQ(message(view(bad_target, 2, 3, mask), g), "(no error)");
  std::vector<float> zero(6, 0.f), negative = {1, 1, 1, -1, 1, 1}, short_mask = {1, 1};
  EXPECT_NE(message(view(tokens, 2, 3, zero), g).find("counts no prediction"), std::string::npos);
  EXPECT_NE(message(view(tokens, 2, 3, negative), g).find("loss_mask[1, 0]"), std::string::npos);
  EXPECT_NE(message(view(tokens, 2, 3, short_mask), g).find("loss_mask has 2 entries"), std::string::npos);
  EXPECT_THROW(train::batch_loss(Model(), view(tokens, 2, 3)), Error);
}

// ---- (4) thread count ---------------------------------------------------------------------

double norm(const std::vector<float>& g, const TensorSpec& s) {
  double n = 0;
  for (size_t i = 0; i < s.numel; ++i) n += double(g[s.offset + i]) * g[s.offset + i];
  return std::sqrt(n);
}

double diff_norm(const std::vector<float>& a, const std::vector<float>& b, const TensorSpec& s) {
  double n = 0;
  for (size_t i = 0; i < s.numel; ++i) {
    const double d = double(a[s.offset + i]) - b[s.offset + i];
    n += d * d;
  }
  return std::sqrt(n);
}

// Same gradients (to float rounding of the different summation order) whatever
// the split; B = 5 over 1, 2 and 3 groups, T = 120 so that one group spans
// several unembedding chunks while others span one.
TEST(Backward, ThreadCountDoesNotChangeGradients) {
  ModelConfig c;
  c.n_layers = 2;
  c.d_model = 12;
  c.n_heads = 3;
  c.d_head = 4;
  c.n_ctx = 128;
  c.d_vocab = 40;
  c.d_vocab_out = 30;
  c.positional = PosEmbed::Shortformer;
  c.normalization = Norm::LN;
  Model m(c);
  randomize(m, 11, 0.3f);
  const int B = 5, T = 120;
  std::vector<int> tokens = batch_tokens(c, B, T, 5);
  std::vector<float> g1(m.size()), g2(m.size()), g3(m.size());
  const float l1 = train::loss_and_grad(m, view(tokens, B, T), g1, 1);
  const float l2 = train::loss_and_grad(m, view(tokens, B, T), g2, 2);
  train::Workspace ws;
  const float l3 = train::loss_and_grad(m, view(tokens, B, T), g3, ws, 3);
  EXPECT_GT(ws.bytes(), 0u);
  EXPECT_NEAR(l2, l1, 1e-6 * l1);
  EXPECT_NEAR(l3, l1, 1e-6 * l1);
  // Relative difference of each tensor, ||g_n - g_1|| / ||g_1||. b_K's
  // gradient is 0 up to rounding (see above): measured against the largest.
  double largest = 0;
  for (const TensorSpec& s : m.tensors()) largest = std::max(largest, norm(g1, s));
  for (const TensorSpec& s : m.tensors()) {
    const double scale = s.name.ends_with("b_K") ? largest : norm(g1, s);
    ASSERT_GT(scale, 0.0) << s.name;
    EXPECT_LT(diff_norm(g2, g1, s) / scale, 1e-6) << s.name << " (2 threads)";
    EXPECT_LT(diff_norm(g3, g1, s) / scale, 1e-6) << s.name << " (3 threads)";
  }
  // More threads than sequences: one per sequence; a reused workspace gives the same again.
  std::vector<float> g8(m.size()), g3b(m.size());
  train::loss_and_grad(m, view(tokens, B, T), g8, 8);
  train::loss_and_grad(m, view(tokens, B, T), g3b, ws, 3);
  EXPECT_EQ(g3b, g3);
  // ... and so does a fresh one (other addresses: the result must not depend on alignment).
  std::vector<float> g3c(m.size());
  {
    std::vector<float> pad(3);  // shift the heap a little
    train::Workspace fresh;
    train::loss_and_grad(m, view(tokens, B, T), g3c, fresh, 3);
  }
  EXPECT_EQ(g3c, g3);
  for (const TensorSpec& s : m.tensors())
    EXPECT_LT(diff_norm(g8, g1, s) / (s.name.ends_with("b_K") ? largest : norm(g1, s)), 1e-6) << s.name;
}

// ---- (5) plain SGD reduces the loss -----------------------------------------------------------

TEST(Backward, SgdStepsReduceTheLoss) {
  ModelConfig c = tiny_config({2, PosEmbed::Shortformer, Norm::LN}, 0);
  c.d_model = 16;
  c.n_heads = 2;
  c.d_head = 8;
  Model m(c);
  randomize(m, 21, 0.2f);
  const int B = 4, T = 7;
  // A learnable pattern: each sequence counts up mod d_vocab from a random start.
  std::vector<int> tokens(size_t(B) * T);
  Lcg r(3);
  for (int b = 0; b < B; ++b) {
    const int start = r.below(c.d_vocab);
    for (int t = 0; t < T; ++t) tokens[size_t(b) * T + t] = (start + t) % c.d_vocab;
  }
  std::vector<float> g(m.size());
  const float first = train::loss_and_grad(m, view(tokens, B, T), g);
  float last = first;
  for (int step = 0; step < 30; ++step) {
    for (size_t i = 0; i < m.size(); ++i) m.data()[i] -= 0.5f * g[i];
    last = train::loss_and_grad(m, view(tokens, B, T), g);
  }
  EXPECT_LT(last, 0.5f * first) << "first " << first << ", last " << last;
  EXPECT_NEAR(last, core_loss(m, tokens, B, T, {}), 1e-5);
}

TEST(Backward, FlopCount) {
  ModelConfig c;
  c.n_layers = 1;
  c.d_model = 4;
  c.n_heads = 2;
  c.d_head = 3;
  c.d_vocab = 10;
  c.n_ctx = 8;
  // per sequence of T = 2: projections 2*2*(4*18 + 6*4) = 384, attention
  // 2 heads * 3 (triangle) * 3 * 2 products * 2 = 72, unembedding 2*2*4*10 = 160;
  // times 3 (forward + two backward products).
  EXPECT_DOUBLE_EQ(train::train_flops(c, 1, 2), 3.0 * (384 + 72 + 160));
  EXPECT_DOUBLE_EQ(train::train_flops(c, 5, 2), 5 * 3.0 * (384 + 72 + 160));
}

}  // namespace
}  // namespace cs
