// A one-line summary of every attention head: copying (OV and QK
// eigenvalues), the OV diagonal test, how positional its scores are, and how
// much it attends to the current and the previous token. Definitions and
// formulas: docs/one-layer.md. TransformerLens convention (row vectors, x @ W).
#pragma once
#include <complex>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/circuits.h"
#include "core/model.h"
#include "core/sliced.h"

namespace cs {

// ---- OV diagonal test (docs/one-layer.md, "Diagonal test") -------------------
//
// Row s of the OV circuit E W_V W_O W_U ([d_vocab, d_vocab_out]) is the logit
// effect of attending to source s. top1 = fraction of source tokens s whose
// largest entry is at out = s; top5 = fraction whose 5 largest entries
// (min(5, d_vocab_out)) include s. Ranking: value descending, ties smaller id
// first. Sources s >= d_vocab_out cannot match and count as misses.
struct OvDiagonal {
  double top1 = 0, top5 = 0;
};

// The full scan (top-5 of every OV row) as a sliced computation; the model
// must outlive it. Throws cs::Error for a bad layer / head.
class OvDiagonalScan final : public WorkPlan {
 public:
  OvDiagonalScan(const Model& m, int layer, int head, const CircuitOptions& opt = {});
  ~OvDiagonalScan() override;
  const OvDiagonal& result() const;  // once done()
 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  OvDiagonal result_;
};
OvDiagonal ov_diagonal(const Model& m, int layer, int head, const CircuitOptions& opt = {});

// ---- attention to the current and the previous token ------------------------
//
// `sequences` token sequences of min(n_ctx, length) tokens (no BOS), ids
// uniform in [0, d_vocab) from Rng(seed) (core/induction.h), drawn sequence
// after sequence, token after token, with below(d_vocab).
std::vector<std::vector<int>> random_token_sequences(const ModelConfig& c, uint64_t seed, int sequences, int length);

// From forward()'s patterns A [query, key] on those sequences, every head
// ([n_layers, n_heads]):
//   current  = mean of A[i, i]     over destinations i >= 1 of every sequence,
//   previous = mean of A[i, i - 1] over destinations i >= 1 of every sequence
// (i = 0 can only attend to itself, so it is left out of both). NaN when no
// sequence has 2 tokens.
struct AttentionShares {
  RowMat current, previous;  // [n_layers, n_heads]
};
AttentionShares attention_current_previous(const Model& m, const std::vector<std::vector<int>>& sequences);
AttentionShares attention_current_previous(const Model& m, uint64_t seed, int sequences = 4, int length = 64);

// ---- the summary ----------------------------------------------------------------

struct HeadSummary {
  int layer = 0, head = 0;
  double ov_copying_score = 0;  // copying_score(ov_eigenvalues); NaN when d_vocab != d_vocab_out
  double qk_copying_score = 0;  // copying_score(qk_eigenvalues)
  std::vector<std::complex<double>> ov_eigenvalues;  // d_head, descending modulus (empty when not square)
  std::vector<std::complex<double>> qk_eigenvalues;  // d_head, descending modulus
  double positional_share = 0;  // positional_share(m, l, h, seed, share_samples); 0 without positions
  double ov_diagonal_top1 = 0;  // OvDiagonal (NaN when the diagonal test is off)
  double ov_diagonal_top5 = 0;
  double attn_current = 0;      // AttentionShares (NaN when no sequence has 2 tokens)
  double attn_previous = 0;
};

struct HeadSummaryOptions {
  CircuitOptions circuit;      // how E is formed (normalize_embed)
  uint64_t seed = 0;           // for the positional-share samples and the attention sequences
  int share_samples = 2048;    // positional_share samples per head
  int attn_sequences = 4;      // attention_current_previous
  int attn_length = 64;        //   (capped at n_ctx)
  bool diagonal = true;        // run the OV diagonal test (one full vocab x vocab scan per head)
  // The vocabulary sums of this model and circuit options, when computed
  // before (another plan's grams()): no pass over W_E then.
  std::shared_ptr<const EmbedGrams> grams;
};

// Every head, in order (layer, head). Units: the vocabulary sums (row chunks),
// one per eigen-problem (OV, QK of each head), the positional shares (chunks
// of samples), one forward pass per attention sequence, and the diagonal scans
// (many units each). Same numbers however it is sliced. The model must
// outlive the plan. A model without layers gives an empty result. Throws
// cs::Error for share_samples, attn_sequences or attn_length < 1.
class HeadSummaryPlan final : public WorkPlan {
 public:
  explicit HeadSummaryPlan(const Model& m, const HeadSummaryOptions& opt = {});
  ~HeadSummaryPlan() override;
  const std::vector<HeadSummary>& result() const;  // once done()
  std::shared_ptr<const EmbedGrams> grams() const;  // once done(): the vocabulary sums it used (null without heads)
 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::vector<HeadSummary> result_;
  std::shared_ptr<const EmbedGrams> grams_;
};
std::vector<HeadSummary> head_summaries(const Model& m, const HeadSummaryOptions& opt = {});

}  // namespace cs
