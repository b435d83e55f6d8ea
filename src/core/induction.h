// Behavioural scores of attention heads on token sequences, as the induction
// heads paper defines them ("In-context Learning and Induction Heads", Olsson
// et al. 2022, called [I]; sources: docs/README.md):
//   - repeated random tokens (BOS + n random tokens, repeated r times),
//   - previous-token score (mean of A[i, i-1]),
//   - prefix-matching score (attention from a repeated token to the token just
//     after its earlier occurrences),
//   - in-context learning score (loss early in the context minus loss late),
//   - loss on the first occurrence of a random sequence vs on its repeats.
// Attention patterns are forward()'s: A[destination(query), source(key)], rows
// sum to 1, causal. Every score is computed from the model as given (raw or
// processed weights give the same patterns and losses).
// Per-head results are [n_layers, n_heads] matrices: entry (l, h) is head h of
// layer l.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/circuits.h"  // CircuitOptions
#include "core/forward.h"
#include "core/model.h"
#include "core/sliced.h"
#include "core/rng.h"  // Rng

namespace cs {

// [I]'s repeated random tokens: [bos] + s + s + ... (repeats copies), where s
// holds n distinct ids drawn uniformly from [0, d_vocab) minus `exclude` (and
// minus bos); when fewer than n ids are allowed, ids are drawn with
// replacement instead. bos < 0: no BOS token. Length (bos >= 0) + n * repeats.
// Throws cs::Error when no id is allowed or n, repeats < 1.
std::vector<int> repeated_random_tokens(Rng& rng, int d_vocab, int n, int repeats, int bos,
                                        std::span<const int> exclude = {});

// `examples` such sequences from Rng(seed).
std::vector<std::vector<int>> repeated_random_tokens(int d_vocab, int n, int repeats, int examples, uint64_t seed,
                                                     int bos, std::span<const int> exclude = {});

// Previous-token score of every head: mean of A[i, i-1] over destinations
// i >= 2 of every sequence (all sequences pooled, each destination weighs the
// same). Choice: i = 1 is skipped because its only other choice is position 0
// (the BOS), so a head that rests on BOS would count as a previous-token head
// there. Sequences shorter than 3 tokens contribute nothing; if none
// contributes, the result is NaN. Returns [n_layers, n_heads].
RowMat previous_token_scores(const Model& m, const std::vector<std::vector<int>>& sequences);

// Prefix-matching score of every head on any sequences: for each destination
// i whose token appeared earlier (and is not bos), the attention mass A[i, j]
// on the sources j <= i whose previous token equals token i ("the token just
// after its earlier occurrences", by token identity as TransformerLens'
// induction detector does); averaged over all such destinations of all
// sequences (NaN if there are none). On repeated random tokens the
// destinations are exactly the 2nd..r-th repeats. Returns [n_layers, n_heads].
RowMat prefix_matching_scores(const Model& m, const std::vector<std::vector<int>>& sequences, int bos);

// [I]'s evaluator: `examples` repeated random sequences (n tokens repeated
// `repeats` times, BOS prepended when bos >= 0, ids from Rng(seed), ids in
// `exclude` never drawn) scored by the function above. [I] used n = 25,
// repeats = 4, examples = 10, excluding the most and least common tokens.
// Throws cs::Error when the sequences are longer than the model's n_ctx.
RowMat prefix_matching_scores(const Model& m, int n, int repeats, int examples, uint64_t seed, int bos,
                              std::span<const int> exclude = {});

// Positions of [I]'s in-context learning score scaled to a context of n_ctx
// tokens: the paper compares the 500th with the 50th token of 512-token
// contexts, so early = round(50 * n_ctx / 512), late = round(500 * n_ctx / 512),
// clamped to [1, n_ctx - 1] (0-based indices of the predicted token).
struct IclPositions {
  int early = 0, late = 0;
};
IclPositions icl_positions(int n_ctx);

// In-context learning score, signed so that POSITIVE MEANS LEARNING:
// mean over sequences of (loss at `early` - loss at `late`), where the loss at
// position t is -log p(tokens[t] | tokens[0..t)) (t is the 0-based index of the
// predicted token, 1 <= t < length). With window w > 0 each loss is averaged
// over the positions t - w .. t + w (clamped to [1, length - 1]), which
// smooths single-token noise. [I] writes the difference both ways; this is
// its "late minus early" loss negated. Throws cs::Error when a sequence is too
// short for `late` or early >= late.
double in_context_learning_score(const Model& m, const std::vector<std::vector<int>>& sequences, int early,
                                 int late, int window = 0);

// Mean next-token loss on the first occurrence of the random tokens vs on the
// repeats, for repeated random sequences of the layout above:
//  first: the predictions of the tokens of the first copy, token indices
//         [1, o + n) with o = 1 when there is a BOS, else 0 (without BOS the
//         very first token has no prediction and is left out),
//  repeats: the predictions of every token of copies 2..r, indices
//         [o + n, o + n * r).
// An induction circuit drives `repeats` far below `first` (which stays near
// log of the number of allowed ids for random tokens).
struct RepeatLoss {
  double first = 0, repeats = 0;
};
RepeatLoss repeat_loss(const Model& m, const std::vector<std::vector<int>>& sequences, int n, int repeats,
                       bool has_bos);
RepeatLoss repeat_loss(const Model& m, int n, int repeats, int examples, uint64_t seed, int bos,
                       std::span<const int> exclude = {});

// [I]'s experiment as a plan (core/sliced.h), what the page's Induction view
// shows: `examples` sequences of repeated random tokens (as
// repeated_random_tokens with this seed, no exclusions), each run once
// (a ForwardPlan) for every number below. Equal to prefix_matching_scores,
// detect_heads(...).previous_token and repeat_loss on the same sequences.
struct InductionExperiment {
  int tokens = 0, repeats = 0, examples = 0, bos = -1;
  uint64_t seed = 0;
  std::vector<std::vector<int>> sequences;
  RowMat prefix_matching;                // [n_layers, n_heads]
  RowMat previous_token;                 // [n_layers, n_heads]: the head detector's "mul" score
  RowMat copying;                        // [n_layers, n_heads]: token_copying_scores (NaN when not square)
  RepeatLoss loss;                       // first copy / repeats
  std::vector<double> loss_by_position;  // [length - 1]: mean loss predicting token t + 1, over the examples
  std::vector<RowMat> patterns;          // the first example's patterns, [n_layers * n_heads] of [T, T]
};
class InductionExperimentPlan final : public WorkPlan {
 public:
  // Throws cs::Error when the sequences do not fit n_ctx or the counts are out of range.
  // `opt`: how E is formed for the copying scores.
  InductionExperimentPlan(const Model& m, int n, int repeats, int examples, uint64_t seed, int bos,
                          const CircuitOptions& opt = {});
  ~InductionExperimentPlan() override;
  const InductionExperiment& result() const;  // once done()
 private:
  struct Acc {
    Eigen::MatrixXd prefix, previous;
    int64_t count = 0, n_first = 0, n_rep = 0;
    double first = 0, rep = 0;
  };
  std::vector<std::unique_ptr<ForwardPlan>> passes_;
  InductionExperiment r_;
};

// [I]'s copying score of a head on token sequences, from its OV circuit
// (docs/two-layer.md, "Repeated random tokens"). Per sequence, its distinct
// tokens other than `bos` (ids, k of them); for each t of them the OV
// circuit's row on those tokens, row = OV[t, ids] (the logit effect on the
// sequence's own tokens of attending to t; core/vocab_matrix.h), centred and
// rectified, r = max(row - mean(row), 0); the share of the rectified mass on
// t itself, s_t = r[t] / sum(r), rescaled from [0, 0.5] to [-1, 1]
// (4 s_t - 1, clamped); averaged over the tokens, then over the sequences
// with k >= 2. NaN when no sequence has two distinct tokens. Throws cs::Error
// when the OV circuit is not square or a token is out of range.
double token_copying_score(const Model& m, int layer, int head, const std::vector<std::vector<int>>& sequences,
                           int bos, const CircuitOptions& opt = {});
// Every head's: [n_layers, n_heads].
RowMat token_copying_scores(const Model& m, const std::vector<std::vector<int>>& sequences, int bos,
                            const CircuitOptions& opt = {});

}  // namespace cs
