// The native benchmarks' operations (bench_native.cpp, same names and model),
// timed under Node from the wasm build with a plain repeat-and-time loop
// (Google Benchmark is native-only). Prints one JSON object:
//   {"benchmarks":[{"name":..,"ms":mean,"min_ms":..,"reps":..}, ...]}
// Optional argument: a name filter (substring). Timings are never asserted.
#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "bench_common.h"
#include "core/direct_path.h"
#include "core/forward.h"

namespace {

using namespace cs;
using Clock = std::chrono::steady_clock;

volatile float g_sink = 0.f;  // keeps results observable

// Runs fn at least min_reps times and for at least min_seconds.
nlohmann::json time_it(const std::string& name, const std::function<void()>& fn, int min_reps,
                       double min_seconds) {
  fn();  // warm-up (page faults, first allocation)
  double total = 0, best = 1e300;
  int reps = 0;
  while (reps < min_reps || total < min_seconds * 1e3) {
    auto t0 = Clock::now();
    fn();
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    total += ms;
    best = std::min(best, ms);
    ++reps;
  }
  std::fprintf(stderr, "%-24s %10.3f ms (min %.3f, %d reps)\n", name.c_str(), total / reps, best, reps);
  return {{"name", name}, {"ms", total / reps}, {"min_ms", best}, {"reps", reps}};
}

}  // namespace

int main(int argc, char** argv) {
  std::string filter = argc > 1 ? argv[1] : "";
  auto wanted = [&](const std::string& n) { return filter.empty() || n.find(filter) != std::string::npos; };
  nlohmann::json out = nlohmann::json::array();
  try {
    Model raw = bench::random_model(bench::toy_config());
    for (bool f16 : {false, true}) {
      std::string name = f16 ? "load_f16" : "load_f32";
      if (!wanted(name)) continue;
      FileSet files = bench::model_files(raw, f16);
      out.push_back(time_it(name, [&] { g_sink = g_sink + load_model(files).model.data()[0]; }, 3, 2.0));
    }
    Model m = load_model(bench::model_files(raw, false)).model;
    raw = Model();  // free memory before the rest
    std::vector<int> ids = bench::token_sequence(m.config(), 1024);
    if (wanted("forward_1024"))
      out.push_back(time_it("forward_1024", [&] { g_sink = g_sink + forward(m, ids).logits(0, 0); }, 3, 2.0));
    size_t i = 0;
    if (wanted("bigram_top_next_k10"))
      out.push_back(time_it("bigram_top_next_k10",
                            [&] { g_sink = g_sink + bigram_top_next(m, ids[i++ % 64], 10)[0].logit; }, 20, 1.0));
    if (wanted("bigram_top_sources_k10"))
      out.push_back(time_it("bigram_top_sources_k10",
                            [&] { g_sink = g_sink + bigram_top_sources(m, ids[i++ % 64], 10)[0].logit; }, 20, 1.0));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_wasm: %s\n", e.what());
    return 1;
  }
  std::cout << nlohmann::json{{"benchmarks", out}}.dump() << "\n";
  return 0;
}
