// Path expansion and term importance (core/paths.h): the terms add up to the
// forward pass's logits for every positional type and normalization; single
// terms equal their definitions written out with the weights and the naive
// reference's patterns; term importance against pattern-preserving ablation
// (a separate route through the forward pass).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/forward.h"
#include "core/paths.h"
#include "naive_reference.h"

namespace cs {
namespace {

ModelConfig config(int layers, PosEmbed pos, Norm norm) {
  ModelConfig c;
  c.n_layers = layers;
  c.d_model = 10;
  c.n_heads = 3;
  c.d_head = 4;
  c.n_ctx = 9;
  c.d_vocab = 13;
  c.d_vocab_out = 11;
  c.positional = pos;
  c.normalization = norm;
  return c;
}

const std::vector<int> kTokens{3, 7, 1, 12, 7, 1, 0, 5, 7};
// For losses every next token must be an output token (d_vocab_out = 11).
const std::vector<int> kText{3, 7, 1, 10, 7, 1, 0, 5, 7};

RowMat eigen(const naive::Mat& a) {
  RowMat m(Eigen::Index(a.size()), Eigen::Index(a.empty() ? 0 : a[0].size()));
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t j = 0; j < a[i].size(); ++j) m(Eigen::Index(i), Eigen::Index(j)) = float(a[i][j]);
  return m;
}

TEST(Paths, TermsAddUpToTheLogitsForEveryConfiguration) {
  int seed = 0;
  for (int layers : {1, 2, 3})
    for (PosEmbed pos : {PosEmbed::Standard, PosEmbed::Shortformer, PosEmbed::None})
      for (Norm norm : {Norm::None, Norm::LN, Norm::LNPre})
        for (int max_order : {1, 2, 3}) {
          const std::string what = "layers " + std::to_string(layers) + " pos " + to_string(pos) + " norm " +
                                   to_string(norm) + " max_order " + std::to_string(max_order);
          Model m(config(layers, pos, norm));
          randomize(m, 300 + seed++, norm == Norm::None ? 0.5f : 0.8f);
          const ForwardResult run = forward(m, kTokens);
          const PathExpansion p = expand_paths(m, kTokens, run.cache, max_order);
          // 1 direct + 3 per head of the layers up to max_order deep + higher order (when cut) + biases
          size_t heads_terms = 0, per_order = 1;
          for (int k = 1; k <= std::min(layers, max_order); ++k) {
            // paths of k heads in increasing layers: C(layers, k) * 3^k
            size_t choose = 1;
            for (int i = 0; i < k; ++i) choose = choose * size_t(layers - i) / size_t(i + 1);
            per_order = choose;
            for (int i = 0; i < k; ++i) per_order *= 3;
            heads_terms += per_order;
          }
          EXPECT_EQ(p.terms.size(), 1 + heads_terms + (layers > max_order ? 1 : 0) + 1) << what;
          EXPECT_EQ(path_term_count(m.config(), max_order), p.terms.size()) << what;
          const double scale = std::max(1.f, run.logits.cwiseAbs().maxCoeff());
          for (int t = 0; t < int(kTokens.size()); ++t)
            for (int o = 0; o < 11; ++o) {
              const Vec parts = path_logit_contributions(m, p, t, o);
              ASSERT_NEAR(parts.sum(), run.logits(t, o), 1e-5 * scale) << what << " position " << t << " out " << o;
            }
          // All terms kept by path_logits: the logits again.
          const RowMat all = path_logits(m, p, std::vector<char>(p.terms.size(), 1));
          EXPECT_LE((all - run.logits).cwiseAbs().maxCoeff(), 1e-5 * scale) << what;
        }
}

// Without normalization the terms are what [F] writes; here each one is formed
// from the weights with the reference's patterns:
//   direct          x0 W_U
//   head h (layer l) A_h x0 W_V^h W_O^h W_U
//   h1 > h2         A_h2 A_h1 x0 W_V^h1 W_O^h1 W_V^h2 W_O^h2 W_U
TEST(Paths, TermsEqualTheirDefinitionsWithoutNormalization) {
  for (PosEmbed pos : {PosEmbed::Standard, PosEmbed::Shortformer}) {
    Model m(config(2, pos, Norm::None));
    randomize(m, 41, 0.5f);
    const naive::Result ref = naive::forward(m, kTokens);
    const PathExpansion p = expand_paths(m, kTokens, forward(m, kTokens).cache);
    const Eigen::Index T = Eigen::Index(kTokens.size());
    RowMat x0(T, 10);
    for (Eigen::Index t = 0; t < T; ++t) {
      x0.row(t) = m.W_E().row(kTokens[size_t(t)]);
      if (pos == PosEmbed::Standard) x0.row(t) += m.W_pos().row(t);
    }
    auto ov = [&](int l, int h) { return RowMat(RowMat(m.W_V(l, h)) * m.W_O(l, h)); };
    auto A = [&](int l, int h) { return eigen(ref.pattern[size_t(l) * 3 + size_t(h)]); };
    int checked = 0;
    for (size_t i = 0; i < p.terms.size(); ++i) {
      const PathTerm& t = p.terms[i];
      RowMat want;
      if (t.kind == PathTerm::kDirect) {
        want = x0 * m.W_U();
      } else if (t.kind == PathTerm::kHeads && t.heads.size() == 1) {
        want = A(t.heads[0].layer, t.heads[0].head) * x0 * ov(t.heads[0].layer, t.heads[0].head) * m.W_U();
      } else if (t.kind == PathTerm::kHeads && t.heads.size() == 2) {
        const HeadId a = t.heads[0], b = t.heads[1];
        EXPECT_LT(a.layer, b.layer) << t.name();
        want = A(b.layer, b.head) * A(a.layer, a.head) * x0 * ov(a.layer, a.head) * ov(b.layer, b.head) * m.W_U();
      } else {
        continue;
      }
      std::vector<char> keep(p.terms.size(), 0);
      keep[i] = 1;
      const RowMat got = path_logits(m, p, keep);
      const double scale = std::max(1.f, want.cwiseAbs().maxCoeff());
      EXPECT_LE((got - want).cwiseAbs().maxCoeff(), 1e-5 * scale) << to_string(pos) << " term " << t.name();
      ++checked;
    }
    EXPECT_EQ(checked, 1 + 6 + 9);
  }
}

TEST(Paths, TermNamesAndOrders) {
  Model m(config(2, PosEmbed::Standard, Norm::LN));
  randomize(m, 5, 0.5f);
  const PathExpansion p = expand_paths(m, kTokens, forward(m, kTokens).cache);
  EXPECT_EQ(p.terms.front().name(), "direct");
  EXPECT_EQ(p.terms.back().name(), "biases");
  EXPECT_EQ(p.terms[1].name(), "0.0");
  EXPECT_EQ(p.terms[1].order(), 1);
  // Grouped by order: direct, the six heads, the nine pairs, then biases.
  for (size_t i = 1; i + 1 < p.terms.size(); ++i)
    EXPECT_LE(p.terms[i - 1].order(), p.terms[i].order()) << p.terms[i].name();
  EXPECT_EQ(p.terms[6].name(), "1.2");
  EXPECT_EQ(p.terms[7].order(), 2);
  int virtual_heads = 0;
  for (const PathTerm& t : p.terms)
    if (t.order() == 2) ++virtual_heads;
  EXPECT_EQ(virtual_heads, 9);
  bool found = false;
  for (const PathTerm& t : p.terms) found = found || t.name() == "0.2 > 1.1";
  EXPECT_TRUE(found);
}

// On one layer without b_V, head h's first-order term is exactly head h's
// output, so the loss without that term is the loss of ablating head h with
// the patterns preserved (ForwardOptions::ablate, a separate code path).
TEST(Paths, TermImportanceMatchesAblationOnOneLayer) {
  Model m(config(1, PosEmbed::Standard, Norm::None));
  randomize(m, 8, 0.7f);
  for (int h = 0; h < 3; ++h) m.b_V(0, h).setZero();
  const std::vector<std::vector<int>> seqs{kText, {4, 4, 9, 2, 4, 9}};
  const TermImportance ti = term_importance(m, seqs);
  double full = 0, tokens = 0;
  std::vector<double> ablated(3, 0.0);
  for (const auto& s : seqs) {
    const ForwardResult run = forward(m, s);
    full += mean_loss(run.logits, s) * double(s.size() - 1);
    tokens += double(s.size() - 1);
    for (int h = 0; h < 3; ++h) {
      ForwardOptions o;
      o.frozen_patterns = run.cache.pattern;
      o.ablate.assign(3, 0);
      o.ablate[size_t(h)] = 1;
      ablated[size_t(h)] += mean_loss(forward(m, s, o).logits, s) * double(s.size() - 1);
    }
  }
  EXPECT_EQ(ti.tokens, int(tokens));
  EXPECT_NEAR(ti.loss_full, full / tokens, 1e-5);
  ASSERT_EQ(ti.terms.size(), 5u);  // direct, 0.0, 0.1, 0.2, biases
  for (int h = 0; h < 3; ++h) {
    EXPECT_EQ(ti.terms[size_t(h) + 1].name(), "0." + std::to_string(h));
    EXPECT_NEAR(ti.loss_without[size_t(h) + 1], ablated[size_t(h)] / tokens, 1e-4) << "head " << h;
  }
  // Every term kept (the last order) is the model itself.
  ASSERT_EQ(ti.loss_by_order.size(), 3u);
  EXPECT_NEAR(ti.loss_by_order[1], ti.loss_full, 1e-5);
  EXPECT_NEAR(ti.loss_by_order[2], ti.loss_full, 1e-5);
  // Order 0 (direct path and biases) is the loss of all heads ablated.
  double none = 0;
  for (const auto& s : seqs) {
    const ForwardResult run = forward(m, s);
    ForwardOptions o;
    o.frozen_patterns = run.cache.pattern;
    o.ablate.assign(3, 1);
    none += mean_loss(forward(m, s, o).logits, s) * double(s.size() - 1);
  }
  EXPECT_NEAR(ti.loss_by_order[0], none / tokens, 1e-4);
}

TEST(Paths, TwoLayersEveryTermKeptIsTheFullLoss) {
  Model m(config(2, PosEmbed::Shortformer, Norm::LN));
  randomize(m, 9, 0.8f);
  const TermImportance ti = term_importance(m, {kText});
  EXPECT_NEAR(ti.loss_by_order.back(), ti.loss_full, 1e-5);
  EXPECT_NEAR(ti.loss_full, mean_loss(forward(m, kText).logits, kText), 1e-6);
  // Dropping a term changes the loss (else the marginal effects could not be told apart).
  double moved = 0;
  for (double v : ti.loss_without) moved = std::max(moved, std::abs(v - ti.loss_full));
  EXPECT_GT(moved, 1e-3);
}

TEST(Paths, ACacheOfAnotherSequenceIsRefused) {
  Model m(config(2, PosEmbed::Standard, Norm::LN));
  randomize(m, 2, 0.5f);
  const ForwardResult run = forward(m, std::vector<int>{1, 2, 3});
  try {
    expand_paths(m, kTokens, run.cache);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "expand_paths: a cached residual stream is 3 x 10, expected 9 x d_model = 10 (the cache of another sequence?)");
  }
  EXPECT_THROW(expand_paths(m, std::vector<int>{1, 2, 3}, ForwardCache{}), Error);
  EXPECT_THROW(path_logit_contributions(m, expand_paths(m, std::vector<int>{1, 2, 3}, run.cache), 3, 0), Error);
}

}  // namespace
}  // namespace cs

namespace cs {
namespace {

// The expansion at one position (prefix rows, last layer at that row only)
// against the full expansion's row: every term, every position, every
// normalization, 1-3 layers, with and without higher-order terms.
TEST(Paths, ExpansionAtOnePositionEqualsTheFullExpansionsRow) {
  int seed = 0;
  for (int layers : {0, 1, 2, 3})
    for (Norm norm : {Norm::None, Norm::LN, Norm::LNPre})
      for (int max_order : {1, 2}) {
        const std::string what =
            "layers " + std::to_string(layers) + " norm " + to_string(norm) + " max_order " + std::to_string(max_order);
        Model m(config(layers, PosEmbed::Shortformer, norm));
        randomize(m, 900 + seed++, 0.8f);
        const ForwardResult run = forward(m, kTokens);
        const PathExpansion full = expand_paths(m, kTokens, run.cache, max_order);
        const double scale = std::max(1.f, run.logits.cwiseAbs().maxCoeff());
        for (int t = 0; t < int(kTokens.size()); ++t) {
          const PathExpansion at = expand_paths(m, kTokens, run.cache, max_order, t);
          ASSERT_EQ(at.terms.size(), full.terms.size()) << what;
          EXPECT_EQ(at.position, t);
          for (size_t i = 0; i < at.terms.size(); ++i) {
            EXPECT_EQ(at.terms[i].name(), full.terms[i].name()) << what;
            ASSERT_EQ(at.resid[i].rows(), 1) << what;
          }
          for (int o = 0; o < 11; ++o) {
            const Vec a = path_logit_contributions(m, at, t, o), b = path_logit_contributions(m, full, t, o);
            EXPECT_LE((a - b).cwiseAbs().maxCoeff(), 1e-5 * scale) << what << " position " << t << " out " << o;
            EXPECT_NEAR(a.sum(), run.logits(t, o), 1e-5 * scale) << what;
          }
          EXPECT_THROW(path_logit_contributions(m, at, t == 0 ? 1 : 0, 0), Error) << "another position";
        }
        EXPECT_THROW(expand_paths(m, kTokens, run.cache, max_order, int(kTokens.size())), Error);
      }
}

}  // namespace
}  // namespace cs

namespace cs {
namespace {

// The plan stepped a unit at a time gives the one-shot numbers; its units are
// one expansion per sequence plus one per loss.
TEST(Paths, TermImportancePlanInSlicesEqualsTheOneShot) {
  Model m(config(2, PosEmbed::Shortformer, Norm::LN));
  randomize(m, 1234, 0.8f);
  const std::vector<std::vector<int>> seqs{{3, 7, 1, 10, 7, 1}, {5}, {0, 5, 7, 1, 10}};
  const TermImportance once = term_importance(m, seqs);
  TermImportancePlan plan(m, seqs);
  const size_t n = path_term_count(m.config(), 2);
  EXPECT_EQ(plan.units(), 2 * (1 + 3 + n) + 1) << "the 1-token sequence is skipped";
  while (!plan.step(0.0)) {
  }
  const TermImportance& r = plan.result();
  EXPECT_EQ(r.tokens, 5 + 4);
  EXPECT_DOUBLE_EQ(r.loss_full, once.loss_full);
  EXPECT_EQ(r.loss_by_order, once.loss_by_order);
  EXPECT_EQ(r.loss_without, once.loss_without);
  EXPECT_THROW(TermImportancePlan(m, {{1}}), Error);
}

}  // namespace
}  // namespace cs
