// Direct path (bigram table) against a dense table computed with loops in the
// test (naive::bigram_table), for every normalization.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/direct_path.h"
#include "core/error.h"
#include "core/model.h"
#include "naive_reference.h"

namespace cs {
namespace {

ModelConfig config(Norm norm, int d_vocab, int d_vocab_out) {
  ModelConfig c;
  c.n_layers = 1;
  c.d_model = 6;
  c.n_heads = 1;
  c.d_head = 2;
  c.n_ctx = 4;
  c.d_vocab = d_vocab;
  c.d_vocab_out = d_vocab_out;
  c.normalization = norm;
  return c;
}

// Indices sorted by value descending, ties by smaller index.
std::vector<int> ranking(const std::vector<double>& v) {
  std::vector<int> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return v[size_t(a)] > v[size_t(b)]; });
  return idx;
}

class DirectPath : public ::testing::TestWithParam<Norm> {};

TEST_P(DirectPath, MatchesDenseNaiveTable) {
  const ModelConfig c = config(GetParam(), 37, 29);
  Model m(c);
  randomize(m, 31, 0.7f);
  const naive::Mat table = naive::bigram_table(m);  // [37][29]
  const naive::Mat logp = naive::log_softmax(table);

  for (int s : {0, 5, 36}) {
    const Vec row = bigram_row(m, s);
    ASSERT_EQ(row.size(), 29);
    for (int o = 0; o < 29; ++o) EXPECT_NEAR(row[o], table[size_t(s)][size_t(o)], 1e-5);

    const std::vector<Ranked> top = bigram_top_next(m, s, 5);
    const std::vector<int> want = ranking(table[size_t(s)]);
    ASSERT_EQ(top.size(), 5u);
    for (size_t i = 0; i < 5; ++i) {
      EXPECT_EQ(top[i].id, want[i]);
      EXPECT_NEAR(top[i].logit, table[size_t(s)][size_t(want[i])], 1e-5);
      EXPECT_NEAR(top[i].prob, std::exp(logp[size_t(s)][size_t(want[i])]), 1e-6);
    }
    // Over the whole row the probabilities sum to one.
    const std::vector<Ranked> all = bigram_top_next(m, s, 1000);  // k clamps to d_vocab_out
    ASSERT_EQ(all.size(), 29u);
    double sum = 0;
    for (const Ranked& r : all) sum += r.prob;
    EXPECT_NEAR(sum, 1.0, 1e-5);
    for (size_t i = 1; i < all.size(); ++i) EXPECT_GE(all[i - 1].logit, all[i].logit);
  }
  EXPECT_TRUE(bigram_top_next(m, 1, 0).empty());

  for (int n : {0, 13, 28}) {
    const Vec col = bigram_column(m, n);
    ASSERT_EQ(col.size(), 37);
    std::vector<double> want_col(37);
    for (size_t s = 0; s < 37; ++s) {
      want_col[s] = table[s][size_t(n)];
      EXPECT_NEAR(col[Eigen::Index(s)], want_col[s], 1e-5);
    }
    const std::vector<Ranked> src = bigram_top_sources(m, n, 4);
    const std::vector<int> want = ranking(want_col);
    ASSERT_EQ(src.size(), 4u);
    for (size_t i = 0; i < 4; ++i) {
      EXPECT_EQ(src[i].id, want[i]);
      EXPECT_NEAR(src[i].logit, want_col[size_t(want[i])], 1e-5);
      EXPECT_NEAR(src[i].prob, std::exp(logp[size_t(want[i])][size_t(n)]), 1e-6);  // p(n | source)
    }
  }

  const std::vector<int> rows = {3, 0, 36, 3}, cols = {28, 1, 7};
  const RowMat block = bigram_block(m, rows, cols);
  ASSERT_EQ(block.rows(), 4);
  ASSERT_EQ(block.cols(), 3);
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t j = 0; j < cols.size(); ++j)
      EXPECT_NEAR(block(Eigen::Index(i), Eigen::Index(j)), table[size_t(rows[i])][size_t(cols[j])], 1e-5);

  // normalize_final against the naive LayerNorm of a row.
  std::vector<double> x(6);
  Vec xv(6);
  for (int d = 0; d < 6; ++d) xv[d] = float(x[size_t(d)] = 0.3 * d - 0.5 + (d == 2 ? 1.0 : 0.0));
  const std::vector<double> want = naive::norm_row(m, x, "ln_final");
  const Vec got = normalize_final(m, xv);
  for (int d = 0; d < 6; ++d) EXPECT_NEAR(got[d], want[size_t(d)], 1e-5);

  EXPECT_THROW(bigram_row(m, 37), Error);
  EXPECT_THROW(bigram_row(m, -1), Error);
  EXPECT_THROW(bigram_column(m, 29), Error);  // d_vocab_out is 29
  EXPECT_THROW(bigram_top_sources(m, -1, 3), Error);
  EXPECT_THROW(bigram_block(m, std::vector<int>{0}, std::vector<int>{29}), Error);
  EXPECT_THROW(bigram_block(m, std::vector<int>{37}, std::vector<int>{0}), Error);
  EXPECT_THROW(normalize_final(m, Vec::Zero(5)), Error);
}

INSTANTIATE_TEST_SUITE_P(AllNorms, DirectPath, ::testing::Values(Norm::None, Norm::LN, Norm::LNPre),
                         [](const auto& info) { return std::string(to_string(info.param)); });

// A vocabulary larger than the column's internal chunk (256 rows), not a multiple of it.
TEST(DirectPathLarge, ColumnAcrossChunks) {
  const ModelConfig c = config(Norm::LN, 4500, 5);
  Model m(c);
  randomize(m, 9, 0.5f);
  const naive::Mat table = naive::bigram_table(m);
  for (int n : {0, 4}) {
    const Vec col = bigram_column(m, n);
    for (size_t s = 0; s < 4500; ++s) ASSERT_NEAR(col[Eigen::Index(s)], table[s][size_t(n)], 1e-5) << s;
  }
}

}  // namespace
}  // namespace cs
