// Zero-layer circuit: the direct path, a bigram table.
// Paper [F]: T = W_U W_E (column vectors). TransformerLens convention (row
// vectors): bigram_logits = norm_final(W_E) W_U + b_U, shape [d_vocab, d_vocab_out],
// row = current (source) token, column = predicted next token. Positional
// embeddings are left out (the direct path of a token alone). norm_final is
// the final LayerNorm applied to each row of W_E (identity without norm).
// The full matrix is never formed: rows and columns are computed on demand.
#pragma once
#include <span>
#include <vector>

#include "core/model.h"

namespace cs {

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

// The final normalization applied to one d_model row vector (LN with ln_final
// weights, LNPre, or identity), as the forward pass does it.
Vec normalize_final(const Model& m, const Vec& x);

}  // namespace cs
