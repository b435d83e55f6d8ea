// Shared benchmark setup (bench_common.h).
#include "bench_common.h"

#include <algorithm>

#include "core/kernels.h"
#include "core/sliced.h"

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

ForwardOptions prompt_options() {
  ForwardOptions o;
  o.keep_cache = true;
  o.summarize = true;
  o.top_k = 10;
  return o;
}

Eigen::MatrixXd ov_qk_copying_scores(const Model& m, const EmbedGrams& g) {
  const ModelConfig& c = m.config();
  Eigen::MatrixXd out(2, c.n_layers * c.n_heads);
  for (int l = 0; l < c.n_layers; ++l)
    for (int h = 0; h < c.n_heads; ++h) {
      out(0, l * c.n_heads + h) = copying_score(small_eigenvalues(ov_small_matrix(m, l, h, g), "ov"));
      out(1, l * c.n_heads + h) = copying_score(small_eigenvalues(qk_small_matrix(m, l, h, g), "qk"));
    }
  return out;
}

Eigen::MatrixXd ov_qk_copying_scores_plan(const Model& m, const EmbedGrams& g, int threads) {
  const ModelConfig& c = m.config();
  std::vector<HeadEigen> eig(size_t(c.n_layers) * size_t(c.n_heads));
  WorkPlan plan;
  for (int l = 0; l < c.n_layers; ++l)
    for (int h = 0; h < c.n_heads; ++h)
      add_head_eigen_units(plan, m, l, h, [&g]() -> const EmbedGrams& { return g; }, &eig[size_t(l) * c.n_heads + h]);
  plan.run_concurrently(threads);
  Eigen::MatrixXd out(2, Eigen::Index(eig.size()));
  for (size_t i = 0; i < eig.size(); ++i) {
    out(0, Eigen::Index(i)) = eig[i].ov_score;
    out(1, Eigen::Index(i)) = eig[i].qk_score;
  }
  return out;
}

float gemm_unembedding(const Model& m, const RowMat& X, RowMat& block, int first, int step) {
  const Eigen::Index V = m.config().vocab_out(), cols = 4096;
  block.resize(X.rows(), cols);
  float sum = 0.f;
  for (Eigen::Index c0 = first * cols; c0 < V; c0 += step * cols) {
    const Eigen::Index n = std::min(cols, V - c0);
    kernels::gemm(kernels::view(X), kernels::view(m.W_U().middleCols(c0, n)), block.data(), cols);
    sum += block(0, 0);
  }
  return sum;
}

}  // namespace cs::bench
