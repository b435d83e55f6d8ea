// Head detector: how much of each head's attention on a token sequence
// follows a reference pattern (docs/two-layer.md, "Head detector"), as
// TransformerLens' detect_head with error_measure "mul" scores it:
//
//   score = sum_{i,j} A[i, j] P[i, j] / sum_{i,j} A[i, j]
//
// A: the head's attention pattern [T(destination), T(source)] from forward(),
// with column 0 zeroed when exclude_bos and the diagonal zeroed when
// exclude_current_token; P: a 0/1 pattern (causal: j <= i):
//   previous token:  P[i, j] = 1 when j = i - 1
//   duplicate token: P[i, j] = 1 when j < i and tokens[j] == tokens[i]
//   induction:       P[i, j] = 1 when 1 <= j <= i, j - 1 != i and tokens[j - 1] == tokens[i]
//                    (the token just after an earlier occurrence of tokens[i])
// Scores of several sequences are averaged (each sequence weighs the same).
// Per-head results are [n_layers, n_heads].
#pragma once
#include <memory>
#include <span>
#include <vector>

#include "core/forward.h"
#include "core/model.h"
#include "core/sliced.h"

namespace cs {

enum class HeadPattern { PreviousToken, DuplicateToken, Induction };
const char* to_string(HeadPattern p);  // "previous_token" | "duplicate_token" | "induction"

struct DetectorOptions {
  bool exclude_bos = false;            // ignore attention to position 0
  bool exclude_current_token = false;  // ignore attention to the destination itself
};

// P for one sequence: [T, T] of 0 and 1.
RowMat detection_pattern(HeadPattern p, std::span<const int> tokens);

// The score of one attention pattern A [T, T] against P (0 when A sums to 0 after the exclusions).
double detection_score(const RowMat& A, const RowMat& P, const DetectorOptions& opt = {});

// Every head's score on every sequence, averaged over the sequences; one
// forward pass per sequence serves all three patterns. Throws cs::Error for
// an empty list or a sequence forward() rejects.
struct DetectorScores {
  RowMat previous_token, duplicate_token, induction;  // [n_layers, n_heads]
  const RowMat& of(HeadPattern p) const;
};
DetectorScores detect_heads(const Model& m, const std::vector<std::vector<int>>& sequences,
                            const DetectorOptions& opt = {});

// The same as a plan (core/sliced.h): each sequence's forward pass (patterns
// only) in its units, then its scores. detect_heads() runs it. The model must
// outlive the plan.
class DetectorPlan final : public WorkPlan {
 public:
  DetectorPlan(const Model& m, std::vector<std::vector<int>> sequences, const DetectorOptions& opt = {});
  ~DetectorPlan() override;
  const DetectorScores& result() const;  // once done()
 private:
  std::vector<std::vector<int>> seqs_;
  std::vector<std::unique_ptr<ForwardPlan>> passes_;
  DetectorScores s_;
};

}  // namespace cs
