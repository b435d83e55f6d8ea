// ModelConfig helpers: names of the enums and validation (config.h).
#include "core/config.h"

#include <cmath>
#include <string>

#include "core/error.h"

namespace cs {

const char* to_string(PosEmbed p) {
  switch (p) {
    case PosEmbed::Standard: return "standard";
    case PosEmbed::Shortformer: return "shortformer";
    case PosEmbed::None: return "none";
  }
  return "?";
}

const char* to_string(Norm n) {
  switch (n) {
    case Norm::None: return "none";
    case Norm::LN: return "LN";
    case Norm::LNPre: return "LNPre";
  }
  return "?";
}

std::optional<PosEmbed> pos_embed_from_string(std::string_view s) {
  for (PosEmbed p : {PosEmbed::Standard, PosEmbed::Shortformer, PosEmbed::None})
    if (s == to_string(p)) return p;
  return std::nullopt;
}

std::optional<Norm> norm_from_string(std::string_view s) {
  for (Norm n : {Norm::None, Norm::LN, Norm::LNPre})
    if (s == to_string(n)) return n;
  return std::nullopt;
}

namespace {
void require_positive(int v, const char* field) {
  if (v <= 0) throw Error(std::string("config: ") + field + " must be > 0 (got " + std::to_string(v) + ")");
}
}  // namespace

void ModelConfig::validate() const {
  if (n_layers < 0) throw Error("config: n_layers must be >= 0 (got " + std::to_string(n_layers) + ")");
  require_positive(d_model, "d_model");
  require_positive(n_heads, "n_heads");
  require_positive(d_head, "d_head");
  require_positive(n_ctx, "n_ctx");
  require_positive(d_vocab, "d_vocab");
  if (d_vocab_out < 0)
    throw Error("config: d_vocab_out must be >= 0 (0 means d_vocab; got " + std::to_string(d_vocab_out) + ")");
  if (!(attn_scale >= 0.f) || !std::isfinite(attn_scale))
    throw Error("config: attn_scale must be finite and >= 0 (0 means sqrt(d_head); got " +
                std::to_string(attn_scale) + ")");
  if (!(eps > 0.f) || !std::isfinite(eps))
    throw Error("config: eps must be finite and > 0 (got " + std::to_string(eps) + ")");
}

}  // namespace cs
