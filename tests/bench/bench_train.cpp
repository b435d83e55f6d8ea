// Training throughput (Google Benchmark, part of bench_native): one
// cs::train::loss_and_grad step (forward + backward) on a random model of the
// size the trainer is meant for, set against the GEMM throughput of this
// machine measured in the same run on the same shapes, so that the target of
// issue 3 ("at least 40% of the GEMM throughput") can be read off:
//   train_step/threads:N           loss_and_grad on a [16, 256] batch, N worker threads.
//                                  Counters: tokens/s, GFLOP/s (train_flops(), analytic),
//                                  gemm_GFLOP/s (the reference below, measured once
//                                  per N in this process), frac_of_gemm (their ratio).
//   train_gemm_reference/threads:N the plain Eigen products of one step, with the
//                                  step's shapes, N threads each doing its share of
//                                  the batch (attention products dense, counted dense).
//   train_eval/threads:N           batch_loss (forward only) on the same batch.
// Model: 2 layers, d_model 256, 8 heads of 32, n_ctx 256, d_vocab 4096, LN,
// Shortformer positions. Timings are reported, never asserted.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <thread>
#include <vector>

#include "core/model.h"
#include "train/backward.h"

namespace {

using namespace cs;
using Clock = std::chrono::steady_clock;

constexpr int kBatch = 16, kCtx = 256;

ModelConfig train_config() {
  ModelConfig c;
  c.n_layers = 2;
  c.d_model = 256;
  c.n_heads = 8;
  c.d_head = 32;
  c.n_ctx = kCtx;
  c.d_vocab = 4096;
  c.positional = PosEmbed::Shortformer;
  c.normalization = Norm::LN;
  c.name = "bench-train";
  return c;
}

const Model& model() {
  static const Model m = [] {
    Model m(train_config());
    randomize(m, 7, 0.05f);
    return m;
  }();
  return m;
}

const std::vector<int>& batch_tokens() {
  static const std::vector<int> t = [] {
    std::vector<int> t(size_t(kBatch) * kCtx);
    uint64_t s = 12345;
    for (int& id : t) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      id = int((s >> 33) % 4096);
    }
    return t;
  }();
  return t;
}

// ---- the GEMM reference ------------------------------------------------------------

// One product dst = a * b, with its operands allocated once.
struct Product {
  RowMat a, b, dst;
  double flops() const { return 2.0 * double(a.rows()) * double(a.cols()) * double(b.cols()); }
  void run() { dst.noalias() = a * b; }
};

Product product(Eigen::Index m, Eigen::Index k, Eigen::Index n) {
  Product p{RowMat::Random(m, k), RowMat::Random(k, n), RowMat(m, n)};
  return p;
}

// The products of one worker's share (rows = sequences * T) of one step:
// forward, d input, d weight of the Q/K/V and W_O projections and of the
// unembedding, and the attention products per sequence and head (dense).
std::vector<Product> step_products(const ModelConfig& c, int sequences, int T) {
  const Eigen::Index N = Eigen::Index(sequences) * T, D = c.d_model, HD = Eigen::Index(c.n_heads) * c.d_head,
                     V = c.vocab_out();
  std::vector<Product> p;
  for (int l = 0; l < c.n_layers; ++l) {
    p.push_back(product(N, D, 3 * HD));  // qkv = y Wqkv
    p.push_back(product(D, N, 3 * HD));  // dWqkv = y^T dqkv
    p.push_back(product(N, 3 * HD, D));  // dy = dqkv Wqkv^T
    p.push_back(product(N, HD, D));      // z W_O
    p.push_back(product(HD, N, D));      // dW_O = z^T dx
    p.push_back(product(N, D, HD));      // dz = dx W_O^T
  }
  p.push_back(product(N, D, V));  // logits
  p.push_back(product(D, N, V));  // dW_U
  p.push_back(product(N, V, D));  // dxf
  return p;
}

// Attention products of one sequence and head, dense: q k^T, dA = dz v^T
// ([T, d_head] x [d_head, T]) and A v, A^T dz, dS k, dS^T q ([T, T] x [T, d_head]).
std::vector<Product> head_products(const ModelConfig& c, int T) {
  std::vector<Product> p;
  for (int i = 0; i < 2; ++i) p.push_back(product(T, c.d_head, T));
  for (int i = 0; i < 4; ++i) p.push_back(product(T, T, c.d_head));
  return p;
}

struct Reference {
  std::vector<Product> step, head;
  int heads_times_seqs = 0;
  double flops() const {
    double f = 0;
    for (const auto& p : step) f += p.flops();
    for (const auto& p : head) f += p.flops() * heads_times_seqs;
    return f;
  }
  void run() {
    for (auto& p : step) p.run();
    for (int i = 0; i < heads_times_seqs; ++i)
      for (auto& p : head) p.run();
  }
};

// n_threads workers, each with its share of the batch, run concurrently;
// returns the wall time of one round.
struct ReferenceSet {
  std::vector<Reference> workers;
  double flops = 0;
  explicit ReferenceSet(int n_threads) {
    const ModelConfig c = train_config();
    for (int i = 0; i < n_threads; ++i) {
      const int seqs = kBatch / n_threads + (i < kBatch % n_threads ? 1 : 0);
      Reference r{step_products(c, seqs, kCtx), head_products(c, kCtx), seqs * c.n_heads * c.n_layers};
      flops += r.flops();
      workers.push_back(std::move(r));
    }
  }
  double seconds() {
    const auto t0 = Clock::now();
    std::vector<std::thread> threads;
    for (size_t i = 1; i < workers.size(); ++i) threads.emplace_back([this, i] { workers[i].run(); });
    workers[0].run();
    for (auto& t : threads) t.join();
    return std::chrono::duration<double>(Clock::now() - t0).count();
  }
};

// Best of a few rounds, measured once per thread count in this process.
double gemm_gflops(int n_threads) {
  static std::map<int, double> cache;
  auto it = cache.find(n_threads);
  if (it != cache.end()) return it->second;
  ReferenceSet set(n_threads);
  double best = 1e30;
  for (int i = 0; i < 4; ++i) best = std::min(best, set.seconds());
  return cache[n_threads] = set.flops / best * 1e-9;
}

// ---- benchmarks -----------------------------------------------------------------------

void train_step(benchmark::State& state) {
  const int threads = int(state.range(0));
  const Model& m = model();
  const std::vector<int>& tokens = batch_tokens();
  const train::BatchView batch{tokens, kBatch, kCtx, {}};
  std::vector<float> grads(m.size());
  train::Workspace ws;
  const double gemm = gemm_gflops(threads);            // measured before, not during, the timed loop
  train::loss_and_grad(m, batch, grads, ws, threads);  // warm the workspace
  double seconds = 0;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    const float loss = train::loss_and_grad(m, batch, grads, ws, threads);
    seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    benchmark::DoNotOptimize(loss);
    benchmark::DoNotOptimize(grads.data());
  }
  const double flops = train::train_flops(m.config(), kBatch, kCtx);
  const double achieved = seconds > 0 ? flops * double(state.iterations()) / seconds * 1e-9 : 0;
  state.counters["tokens/s"] = benchmark::Counter(double(kBatch) * kCtx, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOP/s"] = achieved;
  state.counters["gemm_GFLOP/s"] = gemm;
  state.counters["frac_of_gemm"] = gemm > 0 ? achieved / gemm : 0;
}

void train_eval(benchmark::State& state) {
  const int threads = int(state.range(0));
  const Model& m = model();
  const std::vector<int>& tokens = batch_tokens();
  const train::BatchView batch{tokens, kBatch, kCtx, {}};
  train::Workspace ws;
  train::batch_loss(m, batch, ws, threads);
  for (auto _ : state) benchmark::DoNotOptimize(train::batch_loss(m, batch, ws, threads));
  state.counters["tokens/s"] = benchmark::Counter(double(kBatch) * kCtx, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOP/s"] = benchmark::Counter(train::train_flops(m.config(), kBatch, kCtx) / 3 * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

void train_gemm_reference(benchmark::State& state) {
  ReferenceSet set(int(state.range(0)));
  for (auto _ : state) state.SetIterationTime(set.seconds());
  state.counters["GFLOP/s"] = benchmark::Counter(set.flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

const int kMaxThreads = int(std::max(1u, std::min(2u, std::thread::hardware_concurrency())));

void thread_args(benchmark::internal::Benchmark* b) {
  b->ArgName("threads");
  for (int t = 1; t <= kMaxThreads; ++t) b->Arg(t);
}

BENCHMARK(train_gemm_reference)->Apply(thread_args)->UseManualTime()->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(train_step)->Apply(thread_args)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(3.0);
BENCHMARK(train_eval)->Apply(thread_args)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(2.0);

}  // namespace
