// Native benchmarks (Google Benchmark) on a random model of the public toy
// models' shape (bench_common.h). The same operations, under the same names,
// are timed under Node by bench_wasm.cpp; scripts/bench prints both in one table.
//   load_f32, load_f16      load_model() from safetensors bytes, with TransformerLens processing
//   forward_1024            forward() of 1024 tokens, keeping the cache (patterns) as the page does
//   forward_1024_all_cores  the same on every core (analysis_threads(): the CLI's default)
//   prompt_forward_1024     what the Prompt view computes: the same with the logits summarized
//                           (top 10, log-normalizer and next-token logit per position), and
//                           prompt_forward_1024_all_cores
//   (every benchmark runs on one thread, as the page in wasm does, unless its name says otherwise)
//   bigram_top_next_k10     bigram_top_next(source, 10)
//   bigram_top_sources_k10  bigram_top_sources(next, 10), the reverse query
//   ov_top_entries_n100     VocabMatrix::top_entries(100) of head 0.0's full OV circuit
//                           (48262 x 48262 entries, rank 64), with its GFLOP/s
//   ov_top_k_per_row_k10    VocabMatrix::top_k_per_row(10) of the same matrix, with its GFLOP/s
//   eigen_gemm_48262x64x48262/B/C  a plain Eigen GEMM of the same shapes in blocks of
//                           B x C entries of the product (the scans' baseline), with its GFLOP/s
//   gemm_2048x512x48262     kernels::gemm at the unembedding's shape (2048 positions), with its GFLOP/s
//   gemm_2048x512x48262_all_cores  the same on every core (a thread per core, each taking
//                           every n-th block of 4096 columns into a block of its own)
//   gemm_double_64x512x512  kernels::matmul in double at a head's small matrix's first
//                           product, W_O [64, 512] (W_U E) [512, 512], with its GFLOP/s
//   ov_row, ov_column       one row / one column of head 0.0's full OV circuit
//   qk_row, qk_column       one row / one column of head 0.0's full QK circuit
//                           (with W_E's row statistics from the load, as the page queries)
//   *_no_stats              the same without them (every W_E row's mean and variance recomputed)
//   embed_row_stats         the load's pass computing those statistics
//   composition_4l          Q-, K- and V-composition of every pair of a 4-layer, 8-head,
//                           d_model 512 model (random baseline excluded), on every core
//                           as the CLI computes it (WorkPlan::run_concurrently)
//   composition_4l_1thread  the same on one thread
//   composition_baseline    the random baseline (32 pairs of 512 x 64 x 512 products)
//   embed_grams             the one vocabulary pass (EmbedGrams) the small matrices use
//   *_all_cores             ov_top_entries_n100, ov_top_k_per_row_k10, embed_grams on every core
//   copying_scores_16_heads embed_grams + the OV and QK copying scores of all 16 heads
//                           (ov_small_matrix / qk_small_matrix, small_eigenvalues, copying_score)
//   copying_eigen_16_heads  the same without the vocabulary pass (grams given): the
//                           32 d_head x d_head products and eigenvalue solves alone
//   copying_*_16_heads_all_cores  the same on every core, as the CLI's head summary runs them
//                           (embed_grams on every core, each eigen-problem a strand of one
//                           WorkPlan run on every core)
// Timings are reported, never asserted.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <thread>
#include <vector>

#include "bench_common.h"
#include "core/circuits.h"
#include "core/composition.h"
#include "core/memory.h"
#include "core/direct_path.h"
#include "core/forward.h"
#include "core/kernels.h"
#include "core/sliced.h"
#include "core/vocab_matrix.h"

namespace {

using namespace cs;

const Model& raw_model() {
  static const Model m = bench::random_model(bench::toy_config());
  return m;
}

// Loaded as the page and the CLI load it: processed, with W_E's row statistics.
const LoadedModel& processed() {
  static const LoadedModel lm = load_model(bench::model_files(raw_model(), false));
  return lm;
}
const Model& processed_model() { return processed().model; }

void load(benchmark::State& state, bool f16) {
  FileSet files = bench::model_files(raw_model(), f16);
  for (auto _ : state) {
    LoadedModel lm = load_model(files);
    benchmark::DoNotOptimize(lm.model.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(files.at("model.safetensors").size()));
}

// Sets the analyses' thread count (core/sliced.h) for one benchmark; the
// default here is one thread (main), to compare with wasm.
struct Threads {
  int old = analysis_threads();
  explicit Threads(int n) { set_analysis_threads(n); }
  ~Threads() { set_analysis_threads(old); }
};
int all_cores() { return int(std::max(1u, std::thread::hardware_concurrency())); }

void forward_1024(benchmark::State& state, int threads) {
  const Threads t(threads);
  const Model& m = processed_model();
  std::vector<int> ids = bench::token_sequence(m.config(), 1024);
  for (auto _ : state) {
    ForwardResult r = forward(m, ids);
    benchmark::DoNotOptimize(r.logits.data());
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * 1024);
}

void prompt_forward_1024(benchmark::State& state, int threads) {
  const Threads t(threads);
  const Model& m = processed_model();
  std::vector<int> ids = bench::token_sequence(m.config(), 1024);
  for (auto _ : state) {
    ForwardResult r = forward(m, ids, bench::prompt_options());
    benchmark::DoNotOptimize(r.summary.log_norm.data());
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * 1024);
}

void top_next(benchmark::State& state) {
  const Model& m = processed_model();
  std::vector<int> ids = bench::token_sequence(m.config(), 64);
  size_t i = 0;
  for (auto _ : state) {
    auto r = bigram_top_next(m, ids[i++ % ids.size()], 10);
    benchmark::DoNotOptimize(r.data());
  }
}

void top_sources(benchmark::State& state) {
  const Model& m = processed_model();
  std::vector<int> ids = bench::token_sequence(m.config(), 64);
  size_t i = 0;
  for (auto _ : state) {
    auto r = bigram_top_sources(m, ids[i++ % ids.size()], 10);
    benchmark::DoNotOptimize(r.data());
  }
}

// Multiply-adds x 2 of a full scan of a [rows x cols] matrix of rank k.
double scan_flops(Eigen::Index rows, Eigen::Index cols, Eigen::Index k) { return 2.0 * double(rows) * double(cols) * double(k); }

void ov_top_entries(benchmark::State& state, int threads) {
  const Threads t(threads);
  const Model& m = processed_model();
  const VocabMatrix M = ov_circuit_matrix(m, 0, 0);
  for (auto _ : state) {
    auto r = M.top_entries(100);
    benchmark::DoNotOptimize(r.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(scan_flops(M.n_rows(), M.n_cols(), M.inner_dim()) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

void ov_top_k_per_row(benchmark::State& state, int threads) {
  const Threads t(threads);
  const Model& m = processed_model();
  const VocabMatrix M = ov_circuit_matrix(m, 0, 0);
  for (auto _ : state) {
    auto r = M.top_k_per_row(10);
    benchmark::DoNotOptimize(r.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(scan_flops(M.n_rows(), M.n_cols(), M.inner_dim()) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

// kernels::gemm (Eigen here) at the unembedding's shape; the same name in wasm
// times the SIMD128 kernel.
void gemm_unembedding(benchmark::State& state) {
  const Model& m = processed_model();
  const RowMat X = RowMat::Random(bench::kGemmRows, m.config().d_model);
  RowMat block;
  for (auto _ : state) benchmark::DoNotOptimize(bench::gemm_unembedding(m, X, block));
  state.counters["GFLOP/s"] =
      benchmark::Counter(bench::gemm_unembedding_flops(m) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// The same on `threads` threads: thread t multiplies column blocks t, t + threads, ...
// into a [2048, 4096] block of its own (what the forward pass's unembedding does
// on every core, without the rest of the pass).
void gemm_unembedding_threads(benchmark::State& state, int threads) {
  const Model& m = processed_model();
  const RowMat X = RowMat::Random(bench::kGemmRows, m.config().d_model);
  std::vector<RowMat> blocks(static_cast<size_t>(threads));
  for (auto _ : state) {
    std::vector<std::thread> pool;
    std::vector<float> sums(size_t(threads), 0.f);
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] { sums[size_t(t)] = bench::gemm_unembedding(m, X, blocks[size_t(t)], t, threads); });
    for (auto& th : pool) th.join();
    benchmark::DoNotOptimize(sums.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(bench::gemm_unembedding_flops(m) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// The same shapes as the OV scan, [48262 x 64] x [64 x 48262], as a plain
// kernels::matmul in double (Eigen here) at a head's small matrix's first product.
void gemm_double_small(benchmark::State& state) {
  const Eigen::MatrixXd A = Eigen::MatrixXd::Random(64, 512), B = Eigen::MatrixXd::Random(512, 512);
  Eigen::MatrixXd C(64, 512);
  for (auto _ : state) {
    kernels::matmul(A, B, C);
    benchmark::DoNotOptimize(C.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * 64 * 512 * 512 * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// Eigen GEMM in blocks of range(0) x range(1) entries of the product, every
// block written out and its corner summed so nothing is optimised away.
void eigen_gemm(benchmark::State& state) {
  const Eigen::Index V = bench::toy_config().d_vocab, K = bench::toy_config().d_head;
  const Eigen::Index BR = state.range(0), BC = state.range(1);
  const RowMat L = RowMat::Random(V, K), R = RowMat::Random(V, K);
  RowMat blk(BR, BC);
  for (auto _ : state) {
    float sink = 0.f;
    for (Eigen::Index r0 = 0; r0 < V; r0 += BR) {
      const Eigen::Index nr = std::min(BR, V - r0);
      for (Eigen::Index c0 = 0; c0 < V; c0 += BC) {
        const Eigen::Index nc = std::min(BC, V - c0);
        blk.topLeftCorner(nr, nc).noalias() = L.middleRows(r0, nr) * R.middleRows(c0, nc).transpose();
        sink += blk(0, 0);
      }
    }
    benchmark::DoNotOptimize(sink);
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(scan_flops(V, V, K) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// One row or column of head 0.0's OV or QK circuit, 64 tokens in turn; with
// W_E's row statistics from the load (as the page and the CLI query) or
// without them (each normalized row's mean and variance recomputed).
void circuit_line(benchmark::State& state, bool ov, bool row, bool stats) {
  const Model& m = processed_model();
  CircuitOptions opt = circuit_options(processed(), true);
  if (!stats) opt.embed_stats = nullptr;
  const VocabMatrix M = ov ? ov_circuit_matrix(m, 0, 0, opt) : qk_circuit_matrix(m, 0, 0, opt);
  std::vector<int> ids = bench::token_sequence(m.config(), 64);
  size_t i = 0;
  for (auto _ : state) {
    const int t = ids[i++ % ids.size()];
    Vec r = row ? M.row(t) : M.column(t);
    benchmark::DoNotOptimize(r.data());
  }
}

// The toy shape with 4 layers (the vocabulary plays no part: 512 tokens).
const Model& four_layers() {
  static const Model m = [] {
    ModelConfig c = bench::toy_config();
    c.n_layers = 4;
    c.d_vocab = 512;
    return bench::random_model(c);
  }();
  return m;
}

void composition_4l(benchmark::State& state) {
  const Threads t(all_cores());
  const Model& m = four_layers();
  CompositionOptions opt;
  opt.baseline_samples = 1;  // the baseline is timed on its own below
  for (auto _ : state) {
    const CompositionScores s = composition_scores(m, opt);
    benchmark::DoNotOptimize(s.K.data());
  }
}

// The same on one thread (the plan run unit by unit, as the page does).
void composition_4l_1thread(benchmark::State& state) {
  const Model& m = four_layers();
  CompositionOptions opt;
  opt.baseline_samples = 1;
  for (auto _ : state) {
    CompositionPlan p(m, opt);
    p.run_concurrently(1);
    benchmark::DoNotOptimize(p.result().K.data());
  }
}

void composition_baseline_32(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(composition_baseline(512, 64, 0, 32));
}

void embed_row_stats(benchmark::State& state) {
  const Model& m = processed_model();
  for (auto _ : state) {
    auto st = row_stats(VocabSide::rows_of(m.W_E()));
    benchmark::DoNotOptimize(st->mean.data());
  }
}

void grams(benchmark::State& state, int threads) {
  const Threads t(threads);
  const Model& m = processed_model();
  for (auto _ : state) {
    EmbedGrams g = embed_grams(m);
    benchmark::DoNotOptimize(g.NtN.data());
  }
}

// Both on every core, as the CLI's head summary computes them.
void copying_scores_all_cores(benchmark::State& state) {
  const Threads t(all_cores());
  const Model& m = processed_model();
  for (auto _ : state) {
    double s = bench::ov_qk_copying_scores_plan(m, embed_grams(m), all_cores()).sum();
    benchmark::DoNotOptimize(s);
  }
}

void copying_eigen_all_cores(benchmark::State& state) {
  const Model& m = processed_model();
  const EmbedGrams g = embed_grams(m);
  for (auto _ : state) {
    double s = bench::ov_qk_copying_scores_plan(m, g, all_cores()).sum();
    benchmark::DoNotOptimize(s);
  }
}

void copying_scores_all(benchmark::State& state) {
  const Model& m = processed_model();
  for (auto _ : state) {
    double s = bench::ov_qk_copying_scores(m, embed_grams(m)).sum();
    benchmark::DoNotOptimize(s);
  }
}

void copying_eigen_all(benchmark::State& state) {
  const Model& m = processed_model();
  const EmbedGrams g = embed_grams(m);
  for (auto _ : state) {
    double s = bench::ov_qk_copying_scores(m, g).sum();
    benchmark::DoNotOptimize(s);
  }
}

}  // namespace

int main(int argc, char** argv) {
  cs::keep_freed_memory();  // as the CLI does
  cs::set_analysis_threads(1);
  benchmark::RegisterBenchmark("load_f32", load, false)->Unit(benchmark::kMillisecond)->MinTime(2.0);
  benchmark::RegisterBenchmark("load_f16", load, true)->Unit(benchmark::kMillisecond)->MinTime(2.0);
  benchmark::RegisterBenchmark("forward_1024", forward_1024, 1)->Unit(benchmark::kMillisecond)->MinTime(2.0);
  benchmark::RegisterBenchmark("forward_1024_all_cores", forward_1024, all_cores())
      ->Unit(benchmark::kMillisecond)
      ->MinTime(2.0);
  benchmark::RegisterBenchmark("prompt_forward_1024", prompt_forward_1024, 1)
      ->Unit(benchmark::kMillisecond)
      ->MinTime(2.0);
  benchmark::RegisterBenchmark("prompt_forward_1024_all_cores", prompt_forward_1024, all_cores())
      ->Unit(benchmark::kMillisecond)
      ->MinTime(2.0);
  benchmark::RegisterBenchmark("bigram_top_next_k10", top_next)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("bigram_top_sources_k10", top_sources)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("ov_top_entries_n100", ov_top_entries, 1)->Unit(benchmark::kSecond)->Iterations(2);
  benchmark::RegisterBenchmark("ov_top_entries_n100_all_cores", ov_top_entries, all_cores())
      ->Unit(benchmark::kSecond)
      ->Iterations(2);
  benchmark::RegisterBenchmark("ov_top_k_per_row_k10", ov_top_k_per_row, 1)->Unit(benchmark::kSecond)->Iterations(2);
  benchmark::RegisterBenchmark("ov_top_k_per_row_k10_all_cores", ov_top_k_per_row, all_cores())
      ->Unit(benchmark::kSecond)
      ->Iterations(2);
  benchmark::RegisterBenchmark("gemm_2048x512x48262", gemm_unembedding)->Unit(benchmark::kMillisecond)->MinTime(2.0);
  benchmark::RegisterBenchmark("gemm_2048x512x48262_all_cores", gemm_unembedding_threads, all_cores())
      ->UseRealTime()  // its threads are its own: the main thread's CPU time says nothing
      ->Unit(benchmark::kMillisecond)
      ->MinTime(2.0);
  benchmark::RegisterBenchmark("eigen_gemm_48262x64x48262", eigen_gemm)
      ->Args({2048, 2048})   // 16 MB blocks
      ->Args({256, 512})     // the scans' blocks (512 KB)
      ->Unit(benchmark::kSecond)
      ->Iterations(2);
  benchmark::RegisterBenchmark("gemm_double_64x512x512", gemm_double_small)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("ov_row", circuit_line, true, true, true)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("ov_column", circuit_line, true, false, true)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("qk_row", circuit_line, false, true, true)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("qk_column", circuit_line, false, false, true)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("ov_column_no_stats", circuit_line, true, false, false)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("qk_row_no_stats", circuit_line, false, true, false)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("qk_column_no_stats", circuit_line, false, false, false)
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("embed_row_stats", embed_row_stats)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("composition_4l", composition_4l)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("composition_4l_1thread", composition_4l_1thread)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("composition_baseline", composition_baseline_32)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("embed_grams", grams, 1)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("embed_grams_all_cores", grams, all_cores())->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("copying_scores_16_heads", copying_scores_all)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("copying_eigen_16_heads", copying_eigen_all)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("copying_scores_16_heads_all_cores", copying_scores_all_cores)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("copying_eigen_16_heads_all_cores", copying_eigen_all_cores)
      ->Unit(benchmark::kMillisecond);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
