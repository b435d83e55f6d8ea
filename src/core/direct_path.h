// Zero-layer circuit: the direct path, a bigram table.
// Paper [F]: T = W_U W_E (column vectors). TransformerLens convention (row
// vectors): bigram_logits = norm_final(W_E) W_U + b_U, shape [d_vocab, d_vocab_out],
// row = current (source) token, column = predicted next token. Positional
// embeddings are left out (the direct path of a token alone). norm_final is
// the final LayerNorm applied to each row of W_E (identity without norm).
// The full matrix is never formed: rows and columns are computed on demand.
#pragma once
#include <memory>
#include <span>
#include <vector>

#include "core/model.h"
#include "core/sliced.h"

namespace cs {

struct RowStats;  // core/vocab_matrix.h

struct Ranked {
  int id = 0;
  float logit = 0.f;
  float prob = 0.f;  // softmax over the row (next-token probability); 0 where not computed
};

// Logits of every next token after `source`: [d_vocab_out].
Vec bigram_row(const Model& m, int source);
// Logit of `next` for every source token: [d_vocab] (one column of the table).
Vec bigram_column(const Model& m, int next);

// Top-k next tokens after `source`, sorted by logit descending, with probabilities.
std::vector<Ranked> bigram_top_next(const Model& m, int source, int k);
// Reverse lookup: the k source tokens whose direct path gives `next` the
// highest logit, descending; prob = p(next | source) for each listed source.
std::vector<Ranked> bigram_top_sources(const Model& m, int next, int k);
// Submatrix of bigram logits for the chosen tokens: [rows.size(), cols.size()].
RowMat bigram_block(const Model& m, std::span<const int> rows, std::span<const int> cols);

// The two queries as sliced computations (core/sliced.h), for the page: the
// same units of work as the functions above (which run them to the end), so
// the results are identical however they are sliced. The model must outlive
// the computation. The constructors check the token like the functions do.
//
// Top-k next tokens: the row in blocks of W_U columns, then its top k.
class BigramTopNext final : public WorkPlan {
 public:
  BigramTopNext(const Model& m, int source, int k);
  int source() const { return source_; }
  const std::vector<Ranked>& result() const;  // once done()
 private:
  int source_, k_;
  Vec row_;
  std::vector<Ranked> result_;
};

// Reverse lookup: the column in chunks of W_E rows, its top k, then the k rows
// times W_U in blocks of columns (keeping only each row's log-sum-exp and its
// entry at `next`).
class BigramTopSources final : public WorkPlan {
 public:
  // embed_stats: row_stats of W_E (optional: the column pass reads W_E once).
  BigramTopSources(const Model& m, int next, int k, std::shared_ptr<const RowStats> embed_stats = nullptr);
  int next() const { return next_; }
  const std::vector<Ranked>& result() const;  // once done()
 private:
  const Model& m_;
  int next_, k_;
  Vec col_;
  std::vector<int> top_;
  RowMat X_;                  // normalized W_E rows of the top sources: [k, d_model]
  std::vector<double> max_, sum_;  // running log-sum-exp of each row: max and sum of exp(x - max)
  std::vector<float> at_next_;     // each row's logit at `next`
  std::vector<Ranked> result_;
};

// The final normalization applied to one d_model row vector (LN with ln_final
// weights, LNPre, or identity), as the forward pass does it.
Vec normalize_final(const Model& m, const Vec& x);

}  // namespace cs
