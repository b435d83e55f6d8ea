// Small hand-built models the unit tests share.
#pragma once
#include <Eigen/Core>
#include <nlohmann/json.hpp>
#include <cstdint>
#include <string>

#include "core/model.h"

namespace cs::testmodels {

// One head on 6 tokens with W_E = W_V = W_O = I (d_model = d_head = d_vocab = 6)
// and W_U a chosen matrix P: the full OV circuit is P itself.
inline Model identity_head(const Eigen::MatrixXf& P) {
  ModelConfig c;
  c.n_layers = 1;
  c.d_model = 6;
  c.n_heads = 1;
  c.d_head = 6;
  c.n_ctx = 4;
  c.d_vocab = 6;
  c.normalization = Norm::None;
  c.positional = PosEmbed::None;
  Model m(c);
  m.W_E().setIdentity();
  m.W_V(0, 0).setIdentity();
  m.W_O(0, 0).setIdentity();
  m.W_U() = P;
  return m;
}

// The small random models the view tests load: d_model 12, 3 heads of 4,
// d_vocab 30, LayerNorm, Shortformer positions; weights from `seed` at `scale`.
inline Model small_ln_model(int layers, int n_ctx, uint64_t seed, float scale) {
  ModelConfig c;
  c.n_layers = layers;
  c.d_model = 12;
  c.n_heads = 3;
  c.d_head = 4;
  c.n_ctx = n_ctx;
  c.d_vocab = 30;
  c.normalization = Norm::LN;
  c.positional = PosEmbed::Shortformer;
  Model m(c);
  randomize(m, seed, scale);
  return m;
}

// A WordLevel tokenizer.json with n tokens "t0".."t{n-1}" (split on whitespace; no BOS).
inline std::string wordlevel_tokenizer(int n) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int i = 0; i < n; ++i) vocab["t" + std::to_string(i)] = i;
  nlohmann::json j = {{"version", "1.0"},
                      {"added_tokens", nlohmann::json::array()},
                      {"normalizer", nullptr},
                      {"pre_tokenizer", {{"type", "WhitespaceSplit"}}},
                      {"post_processor", nullptr},
                      {"decoder", nullptr},
                      {"model", {{"type", "WordLevel"}, {"vocab", vocab}, {"unk_token", "t0"}}}};
  return j.dump();
}

}  // namespace cs::testmodels
