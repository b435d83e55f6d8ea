// Head detector (core/head_detector.h) against its definitions written here
// directly: the reference patterns by their rules, the score as a double loop
// over the naive forward pass's attention (naive_reference.h).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "core/head_detector.h"
#include "core/model.h"
#include "naive_reference.h"

namespace cs {
namespace {

// The rules, one token pair at a time (i: destination, j: source).
bool previous(const std::vector<int>&, size_t i, size_t j) { return j + 1 == i; }
bool duplicate(const std::vector<int>& t, size_t i, size_t j) { return j < i && t[j] == t[i]; }
bool induction(const std::vector<int>& t, size_t i, size_t j) { return j >= 1 && j <= i && j - 1 != i && t[j - 1] == t[i]; }

double reference_score(const naive::Mat& A, const std::vector<int>& t, bool (*rule)(const std::vector<int>&, size_t, size_t),
                       bool no_bos, bool no_current) {
  double hit = 0, all = 0;
  for (size_t i = 0; i < A.size(); ++i)
    for (size_t j = 0; j <= i; ++j) {
      if ((no_bos && j == 0) || (no_current && i == j)) continue;
      all += A[i][j];
      if (rule(t, i, j)) hit += A[i][j];
    }
  return all > 0 ? hit / all : 0.0;
}

TEST(HeadDetector, PatternsFollowTheirRules) {
  const std::vector<int> t = {7, 3, 5, 3, 5, 9, 7};
  for (auto [kind, rule] : {std::pair{HeadPattern::PreviousToken, &previous}, std::pair{HeadPattern::DuplicateToken, &duplicate},
                            std::pair{HeadPattern::Induction, &induction}}) {
    const RowMat P = detection_pattern(kind, t);
    for (size_t i = 0; i < t.size(); ++i)
      for (size_t j = 0; j < t.size(); ++j)
        EXPECT_EQ(P(Eigen::Index(i), Eigen::Index(j)), (j <= i && rule(t, i, j)) ? 1.f : 0.f)
            << to_string(kind) << " [" << i << "," << j << "]";
  }
  // Spot checks by hand: token 3 at 3 repeats position 1, so induction points at 2 (the token after it).
  EXPECT_EQ(detection_pattern(HeadPattern::Induction, t)(3, 2), 1.f);
  EXPECT_EQ(detection_pattern(HeadPattern::DuplicateToken, t)(3, 1), 1.f);
  EXPECT_EQ(detection_pattern(HeadPattern::Induction, t)(6, 1), 1.f);  // 7 at 6: after the 7 at 0 comes position 1
}

TEST(HeadDetector, ScoresEqualTheDefinitionOnEveryHead) {
  ModelConfig c;
  c.n_layers = 2;
  c.d_model = 16;
  c.n_heads = 3;
  c.d_head = 4;
  c.n_ctx = 24;
  c.d_vocab = 9;
  c.normalization = Norm::LN;
  Model m(c);
  randomize(m, 61, 0.8f);
  const std::vector<std::vector<int>> seqs = {{0, 1, 2, 3, 1, 2, 3, 1, 2, 3, 4, 5}, {8, 6, 6, 7, 8, 6, 7, 5, 8, 6}};
  for (bool no_bos : {false, true})
    for (bool no_current : {false, true}) {
      const DetectorScores s = detect_heads(m, seqs, DetectorOptions{no_bos, no_current});
      for (int l = 0; l < 2; ++l)
        for (int h = 0; h < 3; ++h) {
          double want[3] = {0, 0, 0};
          for (const auto& t : seqs) {
            const naive::Result ref = naive::forward(m, t);
            const naive::Mat& A = ref.pattern[size_t(l * 3 + h)];
            want[0] += reference_score(A, t, &previous, no_bos, no_current) / 2;
            want[1] += reference_score(A, t, &duplicate, no_bos, no_current) / 2;
            want[2] += reference_score(A, t, &induction, no_bos, no_current) / 2;
          }
          const std::string what = "head " + std::to_string(l) + "." + std::to_string(h) +
                                   (no_bos ? " no bos" : "") + (no_current ? " no current" : "");
          EXPECT_NEAR(s.previous_token(l, h), want[0], 1e-5) << what;
          EXPECT_NEAR(s.duplicate_token(l, h), want[1], 1e-5) << what;
          EXPECT_NEAR(s.induction(l, h), want[2], 1e-5) << what;
        }
    }
  EXPECT_THROW(detect_heads(m, {}), Error);
}

// A pattern that is exactly the previous-token diagonal scores 1; uniform
// causal attention scores the pattern's share of each row.
TEST(HeadDetector, ScoreOfKnownPatterns) {
  const std::vector<int> t = {1, 2, 3, 4};
  RowMat A = RowMat::Zero(4, 4);
  A(0, 0) = 1;
  for (int i = 1; i < 4; ++i) A(i, i - 1) = 1;
  EXPECT_DOUBLE_EQ(detection_score(A, detection_pattern(HeadPattern::PreviousToken, t)), 3.0 / 4.0);
  EXPECT_DOUBLE_EQ(detection_score(A, detection_pattern(HeadPattern::PreviousToken, t), {true, false}), 1.0)
      << "position 0's self-attention is to BOS, excluded";
  EXPECT_THROW(detection_score(A, RowMat::Zero(3, 3)), Error);
}

}  // namespace
}  // namespace cs
