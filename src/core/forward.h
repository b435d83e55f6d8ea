// Forward pass of the attention-only transformer, exactly as TransformerLens
// computes it (docs/model.md, Forward pass): residual stream of row vectors [T, d_model].
//
//   x0 = W_E[tokens] (+ W_pos[0..T) if Standard)
//   block l:  y = norm(x_l)              (LN / LNPre / identity)
//             q_in = k_in = y (+ W_pos if Shortformer), v_in = y
//             q = q_in W_Q[h] + b_Q[h]   [T, d_head], likewise k, v
//             A = softmax(causal(q k^T / attn_scale))   [T(query), T(key)]
//             head_out[h] = (A v) W_O[h]  [T, d_model]
//             x_{l+1} = x_l + sum_h head_out[h] + b_O
//   logits = norm_final(x_L) W_U + b_U   [T, d_vocab_out]
#pragma once
#include <span>
#include <vector>

#include "core/model.h"
#include "core/sliced.h"

namespace cs {

struct ForwardCache {
  std::vector<RowMat> resid;     // n_layers + 1 entries: resid[0] = embedding, resid[l+1] after block l; [T, d_model]
  std::vector<RowMat> pattern;   // n_layers * n_heads, index l * n_heads + h: [T(query/destination), T(key/source)]
  std::vector<RowMat> head_out;  // n_layers * n_heads: that head's output z W_O, before b_O; [T, d_model]
  const RowMat& attn(int l, int h, int n_heads) const { return pattern[size_t(l) * n_heads + h]; }
};

struct ForwardOptions {
  bool keep_cache = true;
  // false: stop after the last block (logits left empty). The unembedding is
  // most of the work on a large vocabulary; attention statistics need none.
  bool logits = true;
  // Pattern-preserving ablation (docs/two-layer.md, "Ablation"): run once,
  // keep the patterns, then run again with them forced and some heads'
  // outputs zeroed, so only the ablated heads' own contributions go.
  // Heads whose outputs are zeroed: [n_layers * n_heads] (index l * n_heads + h),
  // or empty for none. Their patterns are still computed (or forced) and cached.
  std::vector<char> ablate;
  // Patterns to use instead of computing them: [n_layers * n_heads] of
  // [T(query), T(key)] (a ForwardCache's `pattern`), or empty to compute them.
  // Queries and keys are then not computed at all.
  std::vector<RowMat> frozen_patterns;
  // With logits: keep only a per-position LogitSummary of them (its top_k
  // largest) instead of [T, d_vocab_out] floats (ForwardResult::summary).
  bool summarize = false;
  int top_k = 10;
};

// What a view needs of the logits without holding [T, d_vocab_out] floats of
// them (198 MB for 1024 tokens of a 48,262-token vocabulary): per position
// the softmax's log-normalizer, the top_k largest logits and the logit of the
// next token. Built block by block of W_U's columns (add_block).
struct LogitSummary {
  int k = 0;                    // entries per position in top_ids / top_logits
  std::vector<float> log_norm;  // [T]: log sum_v exp(logits[t, v])
  std::vector<int> top_ids;     // [T * k]: position t's k largest, by decreasing logit (ties: lower id first)
  std::vector<float> top_logits;  // [T * k]
  std::vector<float> next_logit;  // [T - 1]: logits[t, tokens[t + 1]]

  // Starts an empty summary of T positions (k clamped to [0, d_vocab_out]).
  void reset(size_t T, int k, int d_vocab_out);
  // Folds in columns [c0, c0 + block.cols()) of the logits (every position's).
  void add_block(const Eigen::Ref<const RowMat>& block, Eigen::Index c0, std::span<const int> tokens);
  // Folds in another summary of the same positions and k over other columns
  // (one strand's share of the vocabulary), before finish().
  void merge(const LogitSummary& other);
  // After the last block: fills log_norm.
  void finish();
  size_t positions() const { return log_norm.size(); }
  // -log softmax(logits[t])[tokens[t + 1]], t in [0, T - 1): token_losses() without the logits.
  std::vector<float> losses() const;
  float loss() const;  // their mean (NaN for fewer than 2 tokens)
  int top_id(size_t t, int i) const { return top_ids[t * size_t(k) + size_t(i)]; }
  float top_logit(size_t t, int i) const { return top_logits[t * size_t(k) + size_t(i)]; }
  float top_log_prob(size_t t, int i) const { return top_logit(t, i) - log_norm[t]; }

 private:
  std::vector<float> max_, sum_;  // running max and sum of exp(logit - max) per position
};

// For attention statistics: the cache kept, no unembedding.
inline ForwardOptions patterns_only() {
  ForwardOptions o;
  o.keep_cache = true;
  o.logits = false;
  return o;
}
// Logits only, no cache.
inline ForwardOptions logits_only() {
  ForwardOptions o;
  o.keep_cache = false;
  return o;
}

struct ForwardResult {
  RowMat logits;       // [T, d_vocab_out] (empty with summarize)
  LogitSummary summary;  // with summarize
  ForwardCache cache;  // empty unless keep_cache
};

// Throws cs::Error if tokens is empty, longer than n_ctx (positional models),
// or has an id outside [0, d_vocab); or if opt.ablate / opt.frozen_patterns
// do not have the model's and the tokens' shapes.
ForwardResult forward(const Model& m, std::span<const int> tokens, const ForwardOptions& opt = {});

// The same pass as a plan of small units (core/sliced.h: about 2^24
// multiply-adds each, so the page spreads it over frames): the embedding; per
// block its normalization, per head q, k and v in blocks of rows, then the
// pattern and A v in blocks of query rows; the heads' outputs in blocks of
// rows; then the unembedding in blocks of W_U's columns. Those blocks are
// concurrent units (each writes its own rows or columns; an empty unit
// between q, k, v and the pattern, and after it), so forward() runs them on
// analysis_threads() threads with the same result as one. Checks the tokens
// like forward() (throws in the constructor). The model must outlive the plan.
class ForwardPlan final : public WorkPlan {
 public:
  // unit_macs: the size of a unit in multiply-adds (smaller in tests, to
  // exercise the blocks on small models). In the page a unit must fit a frame
  // slice (2^24: a few ms in wasm); natively nothing waits on frames, and
  // narrow blocks of W_U cost more in packing than in arithmetic (2^27;
  // tests/bench/RESULTS.md).
#ifdef __EMSCRIPTEN__
  static constexpr double kUnitMacs = double(1 << 24);
#else
  static constexpr double kUnitMacs = double(1 << 27);
#endif
  ForwardPlan(const Model& m, std::span<const int> tokens, const ForwardOptions& opt = {},
              double unit_macs = kUnitMacs);
  const ForwardResult& result() const;  // once done()
  ForwardResult take();                 // once done(): moves the result out
 private:
  // Strands of the unembedding with summarize (fixed: the result does not
  // depend on the thread count).
  static constexpr int kSummaryStrands = 8;
  const RowMat& qk_src() const;  // the q/k input: y, or y + W_pos (Shortformer)
  const Model& m_;
  std::vector<int> tokens_;
  ForwardOptions opt_;
  ForwardResult res_;
  RowMat x_, y_, qk_in_;   // residual stream, its normalization, Shortformer's q/k input [T, d_model]
  RowMat q_, k_, v_;       // one head's queries, keys, values [T, d_head]
  RowMat A_;               // one head's pattern [T(query), T(key)]
  RowMat z_;               // every head's A v side by side [T, n_heads * d_head]
  std::vector<LogitSummary> parts_;  // with summarize: each strand's share of the vocabulary
};

// Per-position next-token cross-entropy: out[t] = -log softmax(logits[t])[tokens[t+1]], t in [0, T-1).
std::vector<float> token_losses(const RowMat& logits, std::span<const int> tokens);
// Mean of token_losses (0 tokens -> NaN).
float mean_loss(const RowMat& logits, std::span<const int> tokens);

// Row-wise log-softmax (numerically stable), used by losses and views.
RowMat log_softmax_rows(const RowMat& logits);

// The normalization the forward pass applies, to each row of x [rows, d_model]
// in place: layer >= 0 uses blocks.{layer}.ln1, layer == -1 uses ln_final.
// LN: (x - mean) / sqrt(mean((x - mean)^2) + eps) * w + b; LNPre: without w, b;
// None: identity.
void normalize_rows(const Model& m, RowMat& x, int layer);

}  // namespace cs
