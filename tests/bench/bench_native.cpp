// Native benchmarks (Google Benchmark) on a random model of the public toy
// models' shape (bench_common.h). The same operations, under the same names,
// are timed under Node by bench_wasm.cpp; scripts/bench prints both in one table.
//   load_f32, load_f16      load_model() from safetensors bytes, with TransformerLens processing
//   forward_1024            forward() of 1024 tokens, keeping the cache (patterns) as the page does
//   bigram_top_next_k10     bigram_top_next(source, 10)
//   bigram_top_sources_k10  bigram_top_sources(next, 10), the reverse query
// Timings are reported, never asserted.
#include <benchmark/benchmark.h>

#include "bench_common.h"
#include "core/direct_path.h"
#include "core/forward.h"

namespace {

using namespace cs;

const Model& raw_model() {
  static const Model m = bench::random_model(bench::toy_config());
  return m;
}

const Model& processed_model() {
  static const Model m = [] {
    return load_model(bench::model_files(raw_model(), false)).model;
  }();
  return m;
}

void load(benchmark::State& state, bool f16) {
  FileSet files = bench::model_files(raw_model(), f16);
  for (auto _ : state) {
    LoadedModel lm = load_model(files);
    benchmark::DoNotOptimize(lm.model.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(files.at("model.safetensors").size()));
}

void forward_1024(benchmark::State& state) {
  const Model& m = processed_model();
  std::vector<int> ids = bench::token_sequence(m.config(), 1024);
  for (auto _ : state) {
    ForwardResult r = forward(m, ids);
    benchmark::DoNotOptimize(r.logits.data());
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

}  // namespace

int main(int argc, char** argv) {
  benchmark::RegisterBenchmark("load_f32", load, false)->Unit(benchmark::kMillisecond)->MinTime(2.0);
  benchmark::RegisterBenchmark("load_f16", load, true)->Unit(benchmark::kMillisecond)->MinTime(2.0);
  benchmark::RegisterBenchmark("forward_1024", forward_1024)->Unit(benchmark::kMillisecond)->MinTime(2.0);
  benchmark::RegisterBenchmark("bigram_top_next_k10", top_next)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("bigram_top_sources_k10", top_sources)->Unit(benchmark::kMicrosecond);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
