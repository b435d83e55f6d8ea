// Shared setup of the native (Google Benchmark) and wasm (Node) benchmarks:
// a random model of the public toy models' shape (attn-only-2l:
// 2 layers, d_model 512, 8 heads of 64, n_ctx 1024, d_vocab 48262, LayerNorm,
// standard positions) and a fixed token sequence.
#pragma once
#include <cstdint>
#include <vector>

#include "core/circuits.h"
#include "core/forward.h"
#include "core/model.h"
#include "io/model_io.h"

namespace cs::bench {

// The toy-model shape above. Benchmarks that need a smaller model for a quick
// run can pass another config to random_model().
ModelConfig toy_config();

// cs::randomize weights (seed fixed), unprocessed.
Model random_model(const ModelConfig& cfg);

// model.safetensors + config.json bytes of the model (F32, or F16 when f16).
FileSet model_files(const Model& m, bool f16);

// n token ids in [0, d_vocab), a fixed pseudo-random sequence.
std::vector<int> token_sequence(const ModelConfig& cfg, int n);

// What the Prompt view's forward pass keeps: the cache and a summary of the
// logits (top 10, log-normalizer, next-token logit per position).
ForwardOptions prompt_options();

// The OV and QK copying scores of every head from one EmbedGrams, the way the
// head summaries compute them: ov_small_matrix / qk_small_matrix [d_head,
// d_head], small_eigenvalues, copying_score. [2, n_layers * n_heads]: row 0 OV,
// row 1 QK, column l * n_heads + h.
Eigen::MatrixXd ov_qk_copying_scores(const Model& m, const EmbedGrams& g);
// The same, as the CLI's head summary computes them: every eigen-problem a
// strand of one WorkPlan (add_head_eigen_units), run on `threads` threads.
Eigen::MatrixXd ov_qk_copying_scores_plan(const Model& m, const EmbedGrams& g, int threads);

// The unembedding's product at 2048 positions, the GEMM 2048 x 512 x 48262 of
// the toy shape: X [2048, d_model] @ W_U [d_model, d_vocab] through
// kernels::gemm (Eigen natively, the SIMD128 kernel in wasm), in blocks of
// 4096 columns written into `block` [2048, 4096] (kept between calls; the
// whole output would be 395 MB). Returns the sum of the blocks' first entries.
// first, step: only blocks first, first + step, ... (one thread's share).
constexpr int kGemmRows = 2048;
float gemm_unembedding(const Model& m, const RowMat& X, RowMat& block, int first = 0, int step = 1);
inline double gemm_unembedding_flops(const Model& m) {
  return 2.0 * kGemmRows * double(m.config().d_model) * double(m.config().vocab_out());
}

}  // namespace cs::bench
