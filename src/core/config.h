// Configuration of an attention-only transformer, in TransformerLens terms
// (see docs/model.md, Config). Dimensions are validated by validate().
#pragma once
#include <cmath>
#include <optional>
#include <string>
#include <string_view>

namespace cs {

// Where positions enter. Standard: W_pos[pos] is added to the residual stream
// once, after the embedding. Shortformer: the residual stream starts as
// W_E[token] only; W_pos[pos] is added to the query and key inputs of every
// block (after ln1), never to values. None: no positional information.
enum class PosEmbed { Standard, Shortformer, None };

// LN: x - mean, / sqrt(mean(x^2) + eps), * w + b (with learned w and b).
// LNPre: the same without w and b (what LN becomes after fold_ln).
enum class Norm { None, LN, LNPre };

const char* to_string(PosEmbed p);  // "standard" | "shortformer" | "none"
const char* to_string(Norm n);      // "none" | "LN" | "LNPre"
// The inverses of to_string (exact names); nullopt for any other text.
std::optional<PosEmbed> pos_embed_from_string(std::string_view s);
std::optional<Norm> norm_from_string(std::string_view s);

struct ModelConfig {
  int n_layers = 0;
  int d_model = 0;
  int n_heads = 0;
  int d_head = 0;
  int n_ctx = 0;
  int d_vocab = 0;
  int d_vocab_out = 0;     // 0 means d_vocab
  float attn_scale = 0.f;  // 0 means sqrt(d_head)
  PosEmbed positional = PosEmbed::Standard;
  Norm normalization = Norm::None;
  float eps = 1e-5f;
  std::string name;            // free text, shown on the model card
  std::string tokenizer_name;  // free text from config.json, if any

  int vocab_out() const { return d_vocab_out > 0 ? d_vocab_out : d_vocab; }
  float scale() const { return attn_scale > 0.f ? attn_scale : std::sqrt(float(d_head)); }
  bool has_ln_weights() const { return normalization == Norm::LN; }
  bool normalizes() const { return normalization != Norm::None; }
  bool has_pos() const { return positional != PosEmbed::None; }

  // Throws cs::Error naming the first bad field (e.g. "config: d_head must be > 0").
  void validate() const;
};

}  // namespace cs
