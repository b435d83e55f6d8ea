// The native benchmarks' operations (bench_native.cpp, same names and model),
// timed under Node from the wasm build with a plain repeat-and-time loop
// (Google Benchmark is native-only). Prints one JSON object:
//   {"benchmarks":[{"name":..,"ms":mean,"min_ms":..,"reps":..}, ...]}
// Optional argument: a name filter, substrings separated by '|' (a name is run
// when it contains any of them; the same word list works as the native
// runner's --benchmark_filter regex). Timings are never asserted.
//
// Built with threads (build-wasm-mt, the page's threaded variant; main runs
// on a worker, PROXY_TO_PTHREAD) it runs only the rows whose analyses use
// every core, on navigator.hardwareConcurrency threads as the threaded page
// does, named like the native rows they compare with: forward_1024_all_cores,
// prompt_forward_1024_all_cores, ov_top_entries_n100_all_cores,
// embed_grams_all_cores, copying_scores_16_heads_all_cores and
// copying_eigen_16_heads_all_cores.
#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "bench_common.h"
#include "core/circuits.h"
#include "core/composition.h"
#include "core/direct_path.h"
#include "core/forward.h"
#include "core/kernels.h"
#include "core/sliced.h"
#include "core/vocab_matrix.h"

namespace {

using namespace cs;
using Clock = std::chrono::steady_clock;

volatile float g_sink = 0.f;  // keeps results observable

// Runs fn at least min_reps times and for at least min_seconds, after one
// warm-up call (page faults, first allocation) unless warm_up is false (the
// full scans, which take seconds).
nlohmann::json time_it(const std::string& name, const std::function<void()>& fn, int min_reps,
                       double min_seconds, bool warm_up = true) {
  if (warm_up) fn();
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
  const std::string filter = argc > 1 ? argv[1] : "";
  auto split = [](const std::string& f) {
    std::vector<std::string> words;
    for (size_t p = 0;;) {
      const size_t q = f.find('|', p);
      words.push_back(f.substr(p, q == std::string::npos ? std::string::npos : q - p));
      if (q == std::string::npos) return words;
      p = q + 1;
    }
  };
  auto matches = [](const std::vector<std::string>& words, const std::string& n) {
    for (const auto& w : words)
      if (!w.empty() && n.find(w) != std::string::npos) return true;
    return false;
  };
  const std::vector<std::string> words = split(filter);
#if defined(__EMSCRIPTEN_PTHREADS__)
  const std::string suffix = "_all_cores";
  const std::vector<std::string> threaded = split("forward_1024|ov_top_entries_n100|embed_grams|copying_");
  std::fprintf(stderr, "bench_wasm: threaded build, analyses on %d threads\n", analysis_threads());
  auto wanted = [&](const std::string& n) {
    return matches(threaded, n) && (filter.empty() || matches(words, n) || matches(words, n + suffix));
  };
#else
  const std::string suffix;
  auto wanted = [&](const std::string& n) { return filter.empty() || matches(words, n); };
#endif
  nlohmann::json out = nlohmann::json::array();
  try {
    Model raw = bench::random_model(bench::toy_config());
    for (bool f16 : {false, true}) {
      std::string name = f16 ? "load_f16" : "load_f32";
      if (!wanted(name)) continue;
      FileSet files = bench::model_files(raw, f16);
      out.push_back(time_it(name, [&] { g_sink = g_sink + load_model(files).model.data()[0]; }, 3, 2.0));
    }
    const LoadedModel lm = load_model(bench::model_files(raw, false));  // with W_E's row statistics
    const Model& m = lm.model;
    raw = Model();  // free memory before the rest
    std::vector<int> ids = bench::token_sequence(m.config(), 1024);
    // name_eigen: the same benchmark with every kernels::gemm product through
    // Eigen instead of the SIMD128 kernel, to compare the two in one run.
    auto with_eigen_twin = [&](const std::string& name, const std::function<void(const std::string&)>& run) {
      if (wanted(name)) run(name);
      if (!suffix.empty() || !wanted(name + "_eigen")) return;  // no Eigen twins with threads
      kernels::set_gemm_uses_eigen(true);
      run(name + "_eigen");
      kernels::set_gemm_uses_eigen(false);
    };
    with_eigen_twin("forward_1024", [&](const std::string& name) {
      out.push_back(time_it(name + suffix, [&] { g_sink = g_sink + forward(m, ids).logits(0, 0); }, 3, 2.0));
    });
    if (wanted("prompt_forward_1024"))
      out.push_back(time_it("prompt_forward_1024" + suffix, [&] {
        g_sink = g_sink + forward(m, ids, bench::prompt_options()).summary.log_norm[0];
      }, 3, 2.0));
    size_t i = 0;
    if (wanted("bigram_top_next_k10"))
      out.push_back(time_it("bigram_top_next_k10",
                            [&] { g_sink = g_sink + bigram_top_next(m, ids[i++ % 64], 10)[0].logit; }, 20, 1.0));
    if (wanted("bigram_top_sources_k10"))
      out.push_back(time_it("bigram_top_sources_k10",
                            [&] { g_sink = g_sink + bigram_top_sources(m, ids[i++ % 64], 10)[0].logit; }, 20, 1.0));
    // Head 0.0's full OV / QK circuits (factored, vocab_matrix.h).
    // Rows and columns with W_E's row statistics from the load (as the page
    // queries) and, *_no_stats, without (each row's mean and variance recomputed).
    const CircuitOptions page_opt = circuit_options(lm, true);
    const VocabMatrix ov = ov_circuit_matrix(m, 0, 0, page_opt), qk = qk_circuit_matrix(m, 0, 0, page_opt);
    const VocabMatrix ov_ns = ov_circuit_matrix(m, 0, 0), qk_ns = qk_circuit_matrix(m, 0, 0);
    with_eigen_twin("ov_top_entries_n100", [&](const std::string& name) {
      nlohmann::json r = time_it(name + suffix, [&] { g_sink = g_sink + ov.top_entries(100)[0].value; }, 1, 0.0, false);
      // 2 x rows x cols x rank, over wall time (a single-threaded run).
      const double flops = 2.0 * double(ov.n_rows()) * double(ov.n_cols()) * double(ov.inner_dim());
      r["gflops"] = flops * 1e-9 / (r["ms"].get<double>() * 1e-3);
      std::fprintf(stderr, "%s: %.1f GFLOP/s\n", name.c_str(), r["gflops"].get<double>());
      out.push_back(r);
    });
    with_eigen_twin("gemm_2048x512x48262", [&](const std::string& name) {
      RowMat X = RowMat::Random(bench::kGemmRows, m.config().d_model), block;
      nlohmann::json r = time_it(name, [&] { g_sink = g_sink + bench::gemm_unembedding(m, X, block); }, 2, 2.0);
      r["gflops"] = bench::gemm_unembedding_flops(m) * 1e-9 / (r["ms"].get<double>() * 1e-3);
      std::fprintf(stderr, "%s (%s): %.1f GFLOP/s\n", name.c_str(), kernels::gemm_backend(), r["gflops"].get<double>());
      out.push_back(r);
    });
    // The forward pass's and the scans' product shapes, through kernels::gemm
    // (gemm_*) and through Eigen (eigen_*), to see where the kernel pays in
    // wasm: q/k/v projections, scores q k^T (B read transposed), A v, the
    // heads' outputs z W_O, a block of the unembedding, a scan block L R^T.
    struct Shape {
      const char* name;
      Eigen::Index m, k, n;
      bool b_transposed;
    };
    const Shape shapes[] = {{"proj_256x512x64", 256, 512, 64, false},    {"scores_256x64x1024t", 256, 64, 1024, true},
                            {"av_256x1024x64", 256, 1024, 64, false},    {"wo_256x512x512", 256, 512, 512, false},
                            {"unembed_1024x512x4096", 1024, 512, 4096, false},
                            {"scan_256x64x512t", 256, 64, 512, true}};
    for (const Shape& sh : shapes) {
      for (bool eigen : {false, true}) {
        const std::string name = std::string(eigen ? "eigen_" : "gemm_") + sh.name;
        if (!wanted(name)) continue;
        const RowMat A = RowMat::Random(sh.m, sh.k);
        const RowMat B = sh.b_transposed ? RowMat::Random(sh.n, sh.k) : RowMat::Random(sh.k, sh.n);
        RowMat C(sh.m, sh.n);
        const kernels::MatView bv{B.data(), sh.k, sh.n, B.cols(), sh.b_transposed};
        nlohmann::json r = time_it(name, [&] {
          if (eigen)
            kernels::gemm_eigen(kernels::view(A), bv, C.data(), sh.n, false);
          else
            kernels::gemm_packed(kernels::view(A), bv, C.data(), sh.n, false);
          g_sink = g_sink + C(0, 0);
        }, 5, 0.5);
        r["gflops"] = 2.0 * double(sh.m) * double(sh.k) * double(sh.n) * 1e-9 / (r["ms"].get<double>() * 1e-3);
        std::fprintf(stderr, "%s: %.1f GFLOP/s\n", name.c_str(), r["gflops"].get<double>());
        out.push_back(r);
      }
    }
    // In double, the shape of a head's small matrix's products: W_O [64, 512] (W_U E) [512, 512].
    for (bool eigen : {false, true}) {
      const std::string name = std::string(eigen ? "eigen_" : "gemm_") + "double_64x512x512";
      if (!wanted(name)) continue;
      const Eigen::MatrixXd A = Eigen::MatrixXd::Random(64, 512), B = Eigen::MatrixXd::Random(512, 512);
      Eigen::MatrixXd C(64, 512);
      kernels::set_gemm_uses_eigen(eigen);
      nlohmann::json r = time_it(name, [&] {
        kernels::matmul(A, B, C);
        g_sink = g_sink + float(C(0, 0));
      }, 5, 0.5);
      kernels::set_gemm_uses_eigen(false);
      r["gflops"] = 2.0 * 64 * 512 * 512 * 1e-9 / (r["ms"].get<double>() * 1e-3);
      std::fprintf(stderr, "%s: %.1f GFLOP/s\n", name.c_str(), r["gflops"].get<double>());
      out.push_back(r);
    }
    const std::pair<const char*, std::function<float(int)>> lines[] = {
        {"ov_row", [&](int t) { return ov.row(t)(0); }},
        {"ov_column", [&](int t) { return ov.column(t)(0); }},
        {"qk_row", [&](int t) { return qk.row(t)(0); }},
        {"qk_column", [&](int t) { return qk.column(t)(0); }},
        {"ov_column_no_stats", [&](int t) { return ov_ns.column(t)(0); }},
        {"qk_row_no_stats", [&](int t) { return qk_ns.row(t)(0); }},
        {"qk_column_no_stats", [&](int t) { return qk_ns.column(t)(0); }},
        {"embed_row_stats", [&](int) { return row_stats(VocabSide::rows_of(m.W_E()))->mean(0); }},
    };
    for (const auto& [name, fn] : lines)
      if (wanted(name)) out.push_back(time_it(name, [&, f = fn] { g_sink = g_sink + f(ids[i++ % 64]); }, 20, 1.0));
    // Composition of every pair of a 4-layer toy-shaped model (composition.h); the baseline alone.
    if (wanted("composition_4l")) {
      ModelConfig c4 = bench::toy_config();
      c4.n_layers = 4;
      c4.d_vocab = 512;
      const Model m4 = bench::random_model(c4);
      CompositionOptions o;
      o.baseline_samples = 1;
      out.push_back(time_it("composition_4l", [&] { g_sink = g_sink + float(composition_scores(m4, o).K(0, 8)); }, 3, 1.0));
    }
    if (wanted("composition_baseline"))
      out.push_back(time_it("composition_baseline",
                            [&] { g_sink = g_sink + float(composition_baseline(512, 64, 0, 32)); }, 3, 1.0));
    // Copying scores (circuits.h): the vocabulary pass, then all 16 heads' OV and QK eigenvalues
    // (with threads each eigen-problem a strand, as the page's head summary runs them).
    auto copying_scores = [&](const EmbedGrams& g) {
      return suffix.empty() ? bench::ov_qk_copying_scores(m, g) : bench::ov_qk_copying_scores_plan(m, g, analysis_threads());
    };
    if (wanted("embed_grams"))
      out.push_back(time_it("embed_grams" + suffix, [&] { g_sink = g_sink + float(embed_grams(m).NtN(0, 0)); }, 3, 1.0));
    if (wanted("copying_scores_16_heads"))
      out.push_back(time_it("copying_scores_16_heads" + suffix,
                            [&] { g_sink = g_sink + float(copying_scores(embed_grams(m)).sum()); },
                            3, 1.0));
    if (wanted("copying_eigen_16_heads")) {
      const EmbedGrams g = embed_grams(m);
      out.push_back(time_it("copying_eigen_16_heads" + suffix,
                            [&] { g_sink = g_sink + float(copying_scores(g).sum()); }, 3, 1.0));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_wasm: %s\n", e.what());
    return 1;
  }
  std::cout << nlohmann::json{{"benchmarks", out}}.dump() << "\n";
  return 0;
}
