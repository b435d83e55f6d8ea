// The one JSON writer of each thing the command line, the page's bridge and
// the trainer print: the model config, ranked token lists, tokens, per-head
// [layer][head] matrices and complex numbers. Keys are written in insertion
// order; numbers are floats, printed as the shortest decimal that reads back
// to the same float (at most 9 significant digits), so every value round-trips.
#pragma once
#include <complex>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "core/composition.h"
#include "core/direct_path.h"
#include "core/head_summary.h"
#include "core/skip_trigrams.h"
#include "core/model.h"

namespace cs {

using Json = nlohmann::basic_json<nlohmann::ordered_map, std::vector, std::string, bool, std::int64_t,
                                  std::uint64_t, float>;

// Text of a token id as shown to people (a tokenizer's display, or "#id").
using TokenDisplay = std::function<std::string(int)>;

// j as text (compact when indent < 0); invalid UTF-8 in strings (partial byte
// tokens) is replaced rather than thrown on.
std::string dump_json(const Json& j, int indent = -1);

// The model config, one schema for every writer: TransformerLens' keys
// (model_name, n_layers, d_model, n_heads, d_head, n_ctx, d_vocab,
// d_vocab_out, attn_only, attn_scale, use_attn_scale, normalization_type
// (null for none), positional_embedding_type, eps, tokenizer_name), followed
// by the same enums and name under circuitscope's short keys (positional,
// normalization ("none" | "LN" | "LNPre"), name). d_vocab_out and attn_scale
// are the effective values (their defaults resolved). parse_config_json
// (io/model_io.h) and the trainer read it back.
Json config_json(const ModelConfig& c);
// config_json(m.config()) plus "n_params": m.parameter_count().
Json config_json(const Model& m);

// "processed" (any TransformerLens weight processing applied) or "raw": the
// "weights" field of every JSON the CLI, the page and the exports write.
const char* weights_kind(const Model& m);

// {"id": id, "token": display(id)}
Json token_json(int id, const TokenDisplay& display);

// [{"id","token","logit","prob"}] in the list's order (bigram top-k lists).
Json ranked_json(std::span<const Ranked> list, const TokenDisplay& display);

// One token with a value (an entry of a circuit matrix, a score).
struct TokenValue {
  int id = 0;
  float value = 0.f;
};
// [{"id","token","value"}] in the list's order.
Json token_values_json(std::span<const TokenValue> list, const TokenDisplay& display);

// A matrix as arrays of rows (NaN -> null): per-head [layer][head] scores, a heatmap block.
Json matrix_json(const RowMat& m);

// [re, im]
Json complex_json(std::complex<double> z);
// [[re, im], ...]
Json complex_list_json(std::span<const std::complex<double>> zs);

// One head's summary (core/head_summary.h), as `circuitscope heads --json`
// and the page's Heads view write it: {"layer","head","ov_copying_score",
// "qk_copying_score","ov_eigenvalues":[[re,im]],"qk_eigenvalues",
// "positional_share","ov_diagonal_top1","ov_diagonal_top5","attn_current",
// "attn_previous"}; a score that does not apply (NaN) is null.
Json head_summary_json(const HeadSummary& h);
// [l1][h1][l2][h2] from a [n_layers * n_heads, n_layers * n_heads] matrix of
// head pairs (row l1 * n_heads + h1, column l2 * n_heads + h2): composition scores.
Json head_pairs_json(const Eigen::MatrixXd& M, int n_layers, int n_heads);
// [F]'s induction scatter: {"previous_head": {"layer","head"}, "heads": [{"layer","head",
// "ov_positivity" (null when not square), "k_term_positivity", "k_term_eigenvalues": [[re,im]..]}]}
Json induction_scatter_json(int prev_layer, int prev_head, std::span<const InductionScatterPoint> points);

// One skip-trigram: {"source":{id,token},"destination","out","score","qk","ov"}.
Json skip_trigram_json(const SkipTrigram& t, const TokenDisplay& display);

}  // namespace cs
