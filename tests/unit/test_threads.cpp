// Thread counts (core/sliced.h): run() runs a plan's concurrent units on
// analysis_threads() threads, and what the forward pass and the vocabulary
// queries compute does not depend on the count, to the bit (each unit does
// the same arithmetic on its own outputs). Correctness against loops written
// in the tests is in test_forward.cpp and test_vocab_matrix.cpp, which run on
// every core by default.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "core/forward.h"
#include "core/model.h"
#include "core/rng.h"
#include "core/sliced.h"
#include "core/vocab_matrix.h"

namespace cs {
namespace {

// Sets the thread count for one test and puts the old one back.
struct ThreadsScope {
  int old = analysis_threads();
  explicit ThreadsScope(int n) { set_analysis_threads(n); }
  ~ThreadsScope() { set_analysis_threads(old); }
};

#ifdef __EMSCRIPTEN__
TEST(Threads, OneThreadInWasm) {
  const ThreadsScope t(3);
  EXPECT_EQ(analysis_threads(), 1) << "the page steps plans on its one thread";
}
#else
TEST(Threads, RunSpreadsConcurrentUnitsOverTheThreads) {
  EXPECT_GE(analysis_threads(), 1);
  {
    ThreadsScope t(3);
    EXPECT_EQ(analysis_threads(), 3);
    WorkPlan p;
    std::mutex mu;
    std::set<std::thread::id> ids;
    std::atomic<int> arrived{0};
    for (int i = 0; i < 6; ++i)
      p.add("u", 1, [&] {
        {
          const std::lock_guard<std::mutex> lock(mu);
          ids.insert(std::this_thread::get_id());
        }
        // Wait (at most 10 s) for a second unit to start: with one thread it never would.
        ++arrived;
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (arrived < 2 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
      }, /*concurrent=*/true);
    p.run();
    EXPECT_TRUE(p.done());
    EXPECT_GE(ids.size(), 2u) << "the units ran on more than one thread";
  }
  {
    ThreadsScope t(1);
    WorkPlan p;
    std::set<std::thread::id> ids;
    for (int i = 0; i < 4; ++i) p.add("u", 1, [&] { ids.insert(std::this_thread::get_id()); }, true);
    p.run();
    EXPECT_EQ(ids, std::set<std::thread::id>{std::this_thread::get_id()}) << "one thread: the caller's";
  }
  ThreadsScope t(0);
  EXPECT_EQ(analysis_threads(), 1) << "clamped";
}
#endif

Model model(PosEmbed pos, Norm norm) {
  ModelConfig c;
  c.n_layers = 2;
  c.d_model = 32;
  c.n_heads = 3;
  c.d_head = 8;
  c.n_ctx = 96;
  c.d_vocab = 700;
  c.normalization = norm;
  c.positional = pos;
  Model m(c);
  randomize(m, 41, 0.5f);
  return m;
}

std::vector<int> tokens(int n, int vocab) {
  Rng rng(7);
  std::vector<int> t(static_cast<size_t>(n));
  for (int& x : t) x = int(rng.below(uint64_t(vocab)));
  return t;
}

// Small units (many of them per stage) so every stage has concurrent units.
ForwardResult run_forward(const Model& m, const std::vector<int>& t, const ForwardOptions& o, int threads) {
  ThreadsScope s(threads);
  ForwardPlan p(m, t, o, /*unit_macs=*/4096);
  p.run();
  return p.take();
}

void expect_bitwise(const RowMat& a, const RowMat& b, const std::string& what) {
  ASSERT_EQ(a.rows(), b.rows()) << what;
  ASSERT_EQ(a.cols(), b.cols()) << what;
  for (Eigen::Index i = 0; i < a.size(); ++i)
    if (!(a.data()[i] == b.data()[i])) {
      ADD_FAILURE() << what << ": entry " << i << " " << a.data()[i] << " vs " << b.data()[i];
      return;
    }
}

TEST(Threads, ForwardPassIsTheSameOnAnyNumberOfThreads) {
  for (PosEmbed pos : {PosEmbed::Standard, PosEmbed::Shortformer})
    for (Norm norm : {Norm::LN, Norm::None}) {
      const Model m = model(pos, norm);
      const std::vector<int> t = tokens(90, m.config().d_vocab);
      ForwardOptions cached;  // the cache and the logits
      ForwardOptions ablated = logits_only();
      ablated.ablate.assign(6, 0);
      ablated.ablate[1] = ablated.ablate[4] = 1;
      ForwardOptions summary = logits_only();
      summary.summarize = true;
      for (const ForwardOptions* o : {&cached, &ablated, &summary}) {
        const ForwardResult one = run_forward(m, t, *o, 1);
        for (int threads : {2, 5}) {
          const ForwardResult many = run_forward(m, t, *o, threads);
          const std::string what = "threads " + std::to_string(threads);
          expect_bitwise(many.logits, one.logits, what + " logits");
          ASSERT_EQ(many.cache.pattern.size(), one.cache.pattern.size());
          for (size_t i = 0; i < one.cache.pattern.size(); ++i) {
            expect_bitwise(many.cache.pattern[i], one.cache.pattern[i], what + " pattern");
            expect_bitwise(many.cache.head_out[i], one.cache.head_out[i], what + " head output");
          }
          for (size_t i = 0; i < one.cache.resid.size(); ++i)
            expect_bitwise(many.cache.resid[i], one.cache.resid[i], what + " residual");
          EXPECT_EQ(many.summary.top_ids, one.summary.top_ids);
          EXPECT_EQ(many.summary.log_norm, one.summary.log_norm);
        }
        if (o == &cached) {  // frozen patterns: the cached ones given back
          ForwardOptions frozen = logits_only();
          frozen.frozen_patterns = one.cache.pattern;
          expect_bitwise(run_forward(m, t, frozen, 4).logits, run_forward(m, t, frozen, 1).logits, "frozen");
        }
      }
    }
}

TEST(Threads, VocabularyQueriesAreTheSameOnAnyNumberOfThreads) {
  ModelConfig c;
  c.n_layers = 1;
  c.d_model = 16;
  c.n_heads = 2;
  c.d_head = 4;
  c.n_ctx = 8;
  c.d_vocab = 20000;  // several units per query
  c.normalization = Norm::LN;
  Model m(c);
  randomize(m, 5, 0.5f);
  const VocabMatrix bigram = direct_path_matrix(m);
  auto row = [&](int threads) {
    ThreadsScope s(threads);
    VocabRowQuery q(bigram, 123);
    q.run();
    return q.result();
  };
  auto column = [&](int threads) {
    ThreadsScope s(threads);
    VocabColumnQuery q(bigram, 77);
    q.run();
    return q.result();
  };
  auto stats = [&](int threads) {
    ThreadsScope s(threads);
    return row_stats(VocabSide::rows_of(m.W_E(), 0));
  };
  const Vec r1 = row(1), c1 = column(1);
  const auto s1 = stats(1);
  for (int threads : {2, 7}) {
    EXPECT_TRUE(row(threads) == r1) << threads;
    EXPECT_TRUE(column(threads) == c1) << threads;
    const auto s = stats(threads);
    EXPECT_TRUE(s->mean == s1->mean && s->var == s1->var) << threads;
  }
}

}  // namespace
}  // namespace cs
