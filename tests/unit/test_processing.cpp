// TransformerLens weight processing: every step keeps log-softmax(logits)
// unchanged (checked with the independent naive forward in double precision),
// and each step's effect on the weights is checked against loops written here.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/forward.h"
#include "core/model.h"
#include "core/processing.h"
#include "naive_reference.h"

namespace cs {
namespace {

ModelConfig config(int layers, PosEmbed pos, Norm norm) {
  ModelConfig c;
  c.n_layers = layers;
  c.d_model = 8;
  c.n_heads = 2;
  c.d_head = 3;
  c.n_ctx = 7;
  c.d_vocab = 11;
  c.d_vocab_out = 9;
  c.positional = pos;
  c.normalization = norm;
  return c;
}

const std::vector<int> kTokens = {3, 0, 10, 7, 7, 2, 5};

double max_abs_diff(const naive::Mat& a, const naive::Mat& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t j = 0; j < a[i].size(); ++j) m = std::max(m, std::abs(a[i][j] - b[i][j]));
  return m;
}

naive::Mat log_probs(const Model& m) { return naive::log_softmax(naive::forward(m, kTokens).logits); }

enum class Step { All, FoldLn, CenterWriting, CenterUnembed, FoldValueBiases };

bool applies(Step s, const ModelConfig& c) {
  switch (s) {
    case Step::FoldLn: return c.normalization == Norm::LN && c.positional != PosEmbed::Shortformer;
    case Step::CenterWriting: return c.normalizes();
    default: return true;
  }
}

void apply(Step s, Model& m) {
  switch (s) {
    case Step::All: process_weights(m); break;
    case Step::FoldLn: fold_ln(m); break;
    case Step::CenterWriting: center_writing_weights(m); break;
    case Step::CenterUnembed: center_unembed(m); break;
    case Step::FoldValueBiases: fold_value_biases(m); break;
  }
}

TEST(Processing, KeepsLogSoftmaxForEveryConfigAndStep) {
  int seed = 0;
  for (int layers : {0, 1, 2})
    for (PosEmbed pos : {PosEmbed::Standard, PosEmbed::Shortformer, PosEmbed::None})
      for (Norm norm : {Norm::None, Norm::LN, Norm::LNPre})
        for (Step step : {Step::All, Step::FoldLn, Step::CenterWriting, Step::CenterUnembed, Step::FoldValueBiases}) {
          const ModelConfig c = config(layers, pos, norm);
          if (!applies(step, c)) continue;
          Model m(c);
          randomize(m, 500 + ++seed, 0.6f);
          const naive::Mat before = log_probs(m);
          const Model original = m;
          apply(step, m);
          const std::string what = std::string("layers ") + std::to_string(layers) + " pos " + to_string(pos) +
                                   " norm " + to_string(norm) + " step " + std::to_string(int(step));
          EXPECT_LT(max_abs_diff(before, log_probs(m)), 1e-4) << what;
          // The step did change the weights (so the comparison above means something).
          bool changed = m.size() != original.size();
          for (size_t i = 0; !changed && i < m.size(); ++i) changed = m.data()[i] != original.data()[i];
          if (!(layers == 0 && step == Step::FoldValueBiases)) {  // no value biases without layers
            EXPECT_TRUE(changed) << what;
          }
          // And the code under test agrees with itself after processing too.
          const RowMat lsm = log_softmax_rows(forward(m, kTokens).logits);
          for (size_t i = 0; i < before.size(); ++i)
            for (size_t j = 0; j < before[i].size(); ++j)
              ASSERT_NEAR(lsm(Eigen::Index(i), Eigen::Index(j)), before[i][j], 1e-4) << what;
        }
}

TEST(Processing, FoldLnFoldsIntoQKVAndUnembedAndBecomesLNPre) {
  const ModelConfig c = config(2, PosEmbed::Standard, Norm::LN);
  Model m(c);
  randomize(m, 77, 0.5f);
  const Model old = m;
  fold_ln(m);
  EXPECT_EQ(m.config().normalization, Norm::LNPre);
  EXPECT_TRUE(m.processing.fold_ln);
  EXPECT_FALSE(m.processing.center_unembed);
  for (const TensorSpec& s : m.tensors()) EXPECT_EQ(s.name.find("ln"), std::string::npos) << s.name;
  EXPECT_EQ(m.tensors().size(), old.tensors().size() - 6);
  const size_t D = 8, H = 2, Dh = 3, V = 9;
  for (int l = 0; l < 2; ++l) {
    const std::string b = "blocks." + std::to_string(l) + ".";
    for (const char* x : {"Q", "K", "V"}) {
      const std::string Wn = b + "attn.W_" + x, bn = b + "attn.b_" + x;
      for (size_t h = 0; h < H; ++h)
        for (size_t e = 0; e < Dh; ++e) {
          // W'[d,e] = w[d] W[d,e] - mean_d(w[d] W[d,e]);  b'[e] = b[e] + sum_d ln.b[d] W[d,e]
          double mean = 0, bias = naive::w(old, bn, h * Dh + e);
          for (size_t d = 0; d < D; ++d) {
            const double Wde = naive::w(old, Wn, (h * D + d) * Dh + e);
            mean += naive::w(old, b + "ln1.w", d) * Wde / double(D);
            bias += naive::w(old, b + "ln1.b", d) * Wde;
          }
          EXPECT_NEAR(naive::w(m, bn, h * Dh + e), bias, 1e-5) << bn;
          for (size_t d = 0; d < D; ++d) {
            const double want = naive::w(old, b + "ln1.w", d) * naive::w(old, Wn, (h * D + d) * Dh + e) - mean;
            EXPECT_NEAR(naive::w(m, Wn, (h * D + d) * Dh + e), want, 1e-5) << Wn;
          }
        }
    }
  }
  for (size_t o = 0; o < V; ++o) {
    double mean = 0, bias = naive::w(old, "unembed.b_U", o);
    for (size_t d = 0; d < D; ++d) {
      mean += naive::w(old, "ln_final.w", d) * naive::w(old, "unembed.W_U", d * V + o) / double(D);
      bias += naive::w(old, "ln_final.b", d) * naive::w(old, "unembed.W_U", d * V + o);
    }
    EXPECT_NEAR(naive::w(m, "unembed.b_U", o), bias, 1e-5);
    for (size_t d = 0; d < D; ++d)
      EXPECT_NEAR(naive::w(m, "unembed.W_U", d * V + o),
                  naive::w(old, "ln_final.w", d) * naive::w(old, "unembed.W_U", d * V + o) - mean, 1e-5);
  }
  // Untouched tensors are copied across the layout change.
  for (const char* n : {"embed.W_E", "pos_embed.W_pos", "blocks.1.attn.W_O", "blocks.0.attn.b_O"}) {
    const TensorSpec* s = old.find(n);
    for (size_t i = 0; i < s->numel; ++i) ASSERT_EQ(naive::w(m, n, i), naive::w(old, n, i)) << n;
  }
  // A second fold has nothing left to do.
  const Model once = m;
  fold_ln(m);
  EXPECT_TRUE(std::equal(m.data(), m.data() + m.size(), once.data()));
}

TEST(Processing, ShortformerKeepsLayerNorm) {
  Model m(config(1, PosEmbed::Shortformer, Norm::LN));
  randomize(m, 4);
  EXPECT_THROW(fold_ln(m), Error);
  process_weights(m);
  EXPECT_EQ(m.config().normalization, Norm::LN);
  EXPECT_FALSE(m.processing.fold_ln);
  EXPECT_TRUE(m.processing.center_writing_weights && m.processing.center_unembed && m.processing.fold_value_biases);
  EXPECT_NE(m.find("blocks.0.ln1.w"), nullptr);
}

double row_mean(const Model& m, const std::string& name, size_t row, size_t cols) {
  double s = 0;
  for (size_t j = 0; j < cols; ++j) s += naive::w(m, name, row * cols + j);
  return s / double(cols);
}

TEST(Processing, CenterWritingWeightsCentresWhatIsWritten) {
  for (PosEmbed pos : {PosEmbed::Standard, PosEmbed::Shortformer}) {
    Model m(config(2, pos, Norm::LNPre));
    randomize(m, 12, 0.5f);
    const Model old = m;
    center_writing_weights(m);
    EXPECT_TRUE(m.processing.center_writing_weights);
    for (size_t r = 0; r < 11; ++r) EXPECT_NEAR(row_mean(m, "embed.W_E", r, 8), 0, 1e-6);
    EXPECT_GT(std::abs(row_mean(old, "embed.W_E", 0, 8)), 1e-4);
    for (size_t r = 0; r < 7; ++r) {
      if (pos == PosEmbed::Standard)
        EXPECT_NEAR(row_mean(m, "pos_embed.W_pos", r, 8), 0, 1e-6);
      else  // Shortformer's W_pos is never written into the stream: untouched
        EXPECT_EQ(row_mean(m, "pos_embed.W_pos", r, 8), row_mean(old, "pos_embed.W_pos", r, 8));
    }
    for (const char* l : {"blocks.0.", "blocks.1."}) {
      for (size_t r = 0; r < 2 * 3; ++r) EXPECT_NEAR(row_mean(m, std::string(l) + "attn.W_O", r, 8), 0, 1e-6);
      EXPECT_NEAR(row_mean(m, std::string(l) + "attn.b_O", 0, 8), 0, 1e-6);
    }
  }
  Model none(config(1, PosEmbed::Standard, Norm::None));
  randomize(none, 1);
  EXPECT_THROW(center_writing_weights(none), Error);
  process_weights(none);
  EXPECT_FALSE(none.processing.center_writing_weights);
  EXPECT_GT(std::abs(row_mean(none, "embed.W_E", 0, 8)), 1e-4);  // left alone without normalization
  EXPECT_EQ(none.processing.describe(), "processed: center_unembed, fold_value_biases");
}

TEST(Processing, CenterUnembedAndFoldValueBiases) {
  Model m(config(2, PosEmbed::None, Norm::None));
  randomize(m, 21, 0.5f);
  const Model old = m;
  center_unembed(m);
  for (size_t d = 0; d < 8; ++d) EXPECT_NEAR(row_mean(m, "unembed.W_U", d, 9), 0, 1e-6);
  EXPECT_NEAR(row_mean(m, "unembed.b_U", 0, 9), 0, 1e-6);
  EXPECT_TRUE(m.processing.center_unembed);

  fold_value_biases(m);
  EXPECT_TRUE(m.processing.fold_value_biases);
  for (int l = 0; l < 2; ++l) {
    const std::string b = "blocks." + std::to_string(l) + ".attn.";
    for (size_t i = 0; i < 2 * 3; ++i) EXPECT_EQ(naive::w(m, b + "b_V", i), 0.0);
    for (size_t d = 0; d < 8; ++d) {  // b_O' = b_O + sum_{h,e} b_V[h,e] W_O[h,e,d]
      double want = naive::w(old, b + "b_O", d);
      for (size_t h = 0; h < 2; ++h)
        for (size_t e = 0; e < 3; ++e)
          want += naive::w(old, b + "b_V", h * 3 + e) * naive::w(old, b + "W_O", (h * 3 + e) * 8 + d);
      EXPECT_NEAR(naive::w(m, b + "b_O", d), want, 1e-6);
    }
  }
}

TEST(Processing, ProcessWeightsRecordsAndHonoursOptions) {
  Model m(config(1, PosEmbed::Standard, Norm::LN));
  randomize(m, 8);
  process_weights(m);
  EXPECT_EQ(m.processing.describe(),
            "processed: fold_ln, center_writing_weights, center_unembed, fold_value_biases");
  EXPECT_EQ(m.config().normalization, Norm::LNPre);

  Model k(config(1, PosEmbed::Standard, Norm::LN));
  randomize(k, 8);
  ProcessOptions opt;
  opt.fold_ln = false;
  opt.fold_value_biases = false;
  process_weights(k, opt);
  EXPECT_EQ(k.config().normalization, Norm::LN);
  EXPECT_EQ(k.processing.describe(), "processed: center_writing_weights, center_unembed");
  EXPECT_NE(k.b_V(0, 0).cwiseAbs().maxCoeff(), 0.f);
}

}  // namespace
}  // namespace cs
