// config.json <-> ModelConfig (model_io.h). Reads TransformerLens' config keys
// and the public toy attention-only models' keys (docs/model.md, Config):
//   TransformerLens: normalization_type ("LN" | "LNPre" | null | "None"),
//                    positional_embedding_type ("standard" | "shortformer"),
//                    eps, d_vocab_out, attn_scale, use_attn_scale, ...
//   toy models:      normalization ("LN" | "None" | null), shortformer_pos (bool),
//                    layer_norm_eps
// TransformerLens writes -1 for "not set" in d_vocab, d_vocab_out and attn_scale;
// those read as "not given" (0) here.
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "io/json_out.h"
#include "io/model_io.h"

namespace cs {

using nlohmann::json;

namespace {

[[noreturn]] void fail(const std::string& msg) { throw Error("config: " + msg); }

std::string quoted(const json& v) {
  std::string s = v.dump();
  if (s.size() > 60) s = s.substr(0, 60) + "...";
  return s;
}

const json* field(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return nullptr;
  return &*it;
}

// An integer field; -1 means "not set" where TransformerLens uses it so.
void read_int(const json& j, const char* key, int& out, bool minus_one_unset = false) {
  const json* v = field(j, key);
  if (!v) return;
  double d = 0;
  if (v->is_number_integer() || v->is_number_unsigned()) {
    d = v->is_number_unsigned() ? double(v->get<uint64_t>()) : double(v->get<int64_t>());
  } else if (v->is_number_float() && std::isfinite(v->get<double>()) &&
             v->get<double>() == std::floor(v->get<double>())) {
    d = v->get<double>();
  } else {
    fail(std::string(key) + " must be an integer (got " + quoted(*v) + ")");
  }
  if (minus_one_unset && d == -1) return;
  if (d < 0 || d > double(std::numeric_limits<int>::max()))
    fail(std::string(key) + " = " + quoted(*v) + " is out of range");
  out = int(d);
}

bool read_float(const json& j, const char* key, float& out) {
  const json* v = field(j, key);
  if (!v) return false;
  if (!v->is_number()) fail(std::string(key) + " must be a number (got " + quoted(*v) + ")");
  out = v->get<float>();
  return true;
}

void read_string(const json& j, const char* key, std::string& out) {
  const json* v = field(j, key);
  if (!v) return;
  if (!v->is_string()) fail(std::string(key) + " must be a string (got " + quoted(*v) + ")");
  out = v->get<std::string>();
}

Norm parse_norm(const char* key, const json& v) {
  if (v.is_null()) return Norm::None;
  if (!v.is_string()) fail(std::string(key) + " must be a string or null (got " + quoted(v) + ")");
  const std::string s = v.get<std::string>();
  if (auto n = norm_from_string(s)) return *n;
  if (s == "None" || s.empty()) return Norm::None;  // TransformerLens writes Python's None as text
  fail(std::string(key) + " '" + s + "' is not supported (LN, LNPre or None)");
}

}  // namespace

ModelConfig parse_config_json(std::string_view json_text, bool* has_positional, bool* has_normalization) {
  json j;
  try {
    j = json::parse(json_text.begin(), json_text.end());
  } catch (const json::exception& e) {
    std::string w = e.what();
    for (char& c : w)
      if (c == '\n' || c == '\r') c = ' ';
    fail("not valid JSON: " + w.substr(0, 200));
  }
  if (!j.is_object()) fail("not a JSON object");

  ModelConfig c;
  if (const json* v = field(j, "attn_only")) {
    if (!v->is_boolean()) fail("attn_only must be true or false (got " + quoted(*v) + ")");
    if (!v->get<bool>()) fail("attn_only is false, only attention-only models are supported");
  }
  read_int(j, "n_layers", c.n_layers);
  read_int(j, "d_model", c.d_model);
  read_int(j, "n_heads", c.n_heads);
  read_int(j, "d_head", c.d_head);
  read_int(j, "n_ctx", c.n_ctx);
  read_int(j, "d_vocab", c.d_vocab, true);
  read_int(j, "d_vocab_out", c.d_vocab_out, true);
  int kv_heads = 0;
  read_int(j, "n_key_value_heads", kv_heads);
  if (kv_heads && c.n_heads && kv_heads != c.n_heads)
    fail("n_key_value_heads = " + std::to_string(kv_heads) + " differs from n_heads = " + std::to_string(c.n_heads) +
         " (grouped-query attention is not supported)");

  if (read_float(j, "attn_scale", c.attn_scale) && c.attn_scale < 0.f) c.attn_scale = 0.f;  // -1: sqrt(d_head)
  if (const json* v = field(j, "use_attn_scale")) {
    if (!v->is_boolean()) fail("use_attn_scale must be true or false (got " + quoted(*v) + ")");
    if (!v->get<bool>()) c.attn_scale = 1.f;  // TransformerLens then divides by 1
  }
  if (!read_float(j, "eps", c.eps)) read_float(j, "layer_norm_eps", c.eps);

  // Normalization: TransformerLens' key first, then the toy models' key. A
  // present key with null means "no normalization", so look at presence.
  bool norm_given = false;
  for (const char* key : {"normalization_type", "normalization"}) {
    auto it = j.find(key);
    if (it == j.end()) continue;
    c.normalization = parse_norm(key, *it);
    norm_given = true;
    break;
  }

  bool pos_given = false;
  if (const json* v = field(j, "positional_embedding_type")) {
    if (!v->is_string()) fail("positional_embedding_type must be a string (got " + quoted(*v) + ")");
    const std::string s = v->get<std::string>();
    if (auto p = pos_embed_from_string(s))
      c.positional = *p;
    else
      fail("positional_embedding_type '" + s + "' is not supported (standard, shortformer or none)");
    pos_given = true;
  } else if (const json* v = field(j, "shortformer_pos")) {
    if (!v->is_boolean()) fail("shortformer_pos must be true or false (got " + quoted(*v) + ")");
    c.positional = v->get<bool>() ? PosEmbed::Shortformer : PosEmbed::Standard;
    pos_given = true;
  }

  read_string(j, "tokenizer_name", c.tokenizer_name);
  read_string(j, "model_name", c.name);
  if (c.name.empty()) read_string(j, "name", c.name);

  if (has_positional) *has_positional = pos_given;
  if (has_normalization) *has_normalization = norm_given;
  return c;
}

// The shared config schema (io/json_out.h), pretty-printed.
std::string config_to_json(const ModelConfig& cfg) { return dump_json(config_json(cfg), 2) + "\n"; }

}  // namespace cs
