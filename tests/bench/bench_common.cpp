// Shared benchmark setup (bench_common.h).
#include "bench_common.h"

namespace cs::bench {

ModelConfig toy_config() {
  ModelConfig c;
  c.n_layers = 2;
  c.d_model = 512;
  c.n_heads = 8;
  c.d_head = 64;
  c.n_ctx = 1024;
  c.d_vocab = 48262;
  c.positional = PosEmbed::Standard;
  c.normalization = Norm::LN;
  c.name = "bench: random, attn-only-2l shape";
  return c;
}

Model random_model(const ModelConfig& cfg) {
  Model m(cfg);
  randomize(m, 1234, 0.05f);
  return m;
}

FileSet model_files(const Model& m, bool f16) { return save_model(m, {}, f16); }

std::vector<int> token_sequence(const ModelConfig& cfg, int n) {
  std::vector<int> ids(static_cast<size_t>(n));
  uint64_t s = 0x9E3779B97F4A7C15ull;
  for (auto& id : ids) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    id = int(s % uint64_t(cfg.d_vocab));
  }
  return ids;
}

}  // namespace cs::bench
