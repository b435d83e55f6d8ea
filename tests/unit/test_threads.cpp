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

#include "core/circuits.h"
#include "core/direct_path.h"
#include "core/forward.h"
#include "core/head_summary.h"
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

// A one-layer LayerNorm model with 2 heads and a vocabulary large enough for
// several units or chunks per vocabulary pass.
Model wide_vocab_model(int d_model, int d_head, int d_vocab, uint64_t seed) {
  ModelConfig c;
  c.n_layers = 1;
  c.d_model = d_model;
  c.n_heads = 2;
  c.d_head = d_head;
  c.n_ctx = 8;
  c.d_vocab = d_vocab;
  c.normalization = Norm::LN;
  Model m(c);
  randomize(m, seed, 0.5f);
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
  const Model m = wide_vocab_model(16, 4, 20000, 5);  // several units per query
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

// Full-vocabulary scans: each chunk of rows is a strand with its own scratch;
// the top entries of the chunks merged so far raise the others' threshold, in
// whatever order they finish: the result is still exactly the top n.
TEST(Threads, FullVocabularyScansAreTheSameOnAnyNumberOfThreads) {
  const Model m = wide_vocab_model(24, 6, 3000, 9);  // 12 chunks of 256 rows
  for (const VocabMatrix& M : {ov_circuit_matrix(m, 0, 1), direct_path_matrix(m)}) {
    auto entries = [&](int threads, int n) {
      ThreadsScope s(threads);
      VocabTopEntries q(M, n);
      q.run();
      return q.result();
    };
    auto per_row = [&](int threads) {
      ThreadsScope s(threads);
      VocabTopKPerRow q(M, 7);
      q.run();
      return q.result();
    };
    auto same = [](const std::vector<MatrixEntry>& a, const std::vector<MatrixEntry>& b) {
      if (a.size() != b.size()) return false;
      for (size_t i = 0; i < a.size(); ++i)
        if (a[i].row != b[i].row || a[i].col != b[i].col || !(a[i].value == b[i].value)) return false;
      return true;
    };
    auto same_rows = [](const std::vector<std::vector<IdValue>>& a, const std::vector<std::vector<IdValue>>& b) {
      if (a.size() != b.size()) return false;
      for (size_t i = 0; i < a.size(); ++i) {
        if (a[i].size() != b[i].size()) return false;
        for (size_t j = 0; j < a[i].size(); ++j)
          if (a[i][j].id != b[i][j].id || !(a[i][j].value == b[i][j].value)) return false;
      }
      return true;
    };
    for (int n : {1, 100, 5000}) {
      const auto one = entries(1, n);
      ASSERT_EQ(one.size(), size_t(n));
      for (int threads : {2, 7}) EXPECT_TRUE(same(entries(threads, n), one)) << "top " << n << ", threads " << threads;
    }
    const auto rows1 = per_row(1);
    for (int threads : {3, 8}) EXPECT_TRUE(same_rows(per_row(threads), rows1)) << "threads " << threads;
  }
}

// The vocabulary sums: a fixed number of strands (not the thread count) each
// sum their share of the rows; the parts are added in order.
TEST(Threads, VocabularySumsAreTheSameOnAnyNumberOfThreads) {
  // rows_per_unit(64) is 2^26 / 64^2: 16384 natively, so 2 units; 2^12 in wasm
  const Model m = wide_vocab_model(64, 8, 20000, 13);
  auto sums = [&](int threads) {
    ThreadsScope s(threads);
    return embed_grams(m, {}, /*want_UUt=*/true);
  };
  const EmbedGrams one = sums(1);
  for (int threads : {2, 5}) {
    const EmbedGrams g = sums(threads);
    EXPECT_TRUE((g.NtN.array() == one.NtN.array()).all()) << threads;
    EXPECT_TRUE((g.UN.array() == one.UN.array()).all()) << threads;
    EXPECT_TRUE((g.UUt.array() == one.UUt.array()).all()) << threads;
    EXPECT_TRUE((g.N_sum.array() == one.N_sum.array()).all()) << threads;
    EXPECT_TRUE((g.U_sum.array() == one.U_sum.array()).all()) << threads;
  }
}

// Head summaries: eigen-problems and positional-share samples per head as
// strands, the diagonal scans and the forward passes taken whole.
TEST(Threads, HeadSummariesAreTheSameOnAnyNumberOfThreads) {
  const Model m = model(PosEmbed::Standard, Norm::LN);
  HeadSummaryOptions opt;
  opt.share_samples = 600;
  opt.attn_sequences = 3;
  auto summary = [&](int threads) {
    ThreadsScope s(threads);
    return head_summaries(m, opt);
  };
  const auto one = summary(1);
  ASSERT_EQ(one.size(), 6u);
  for (int threads : {2, 6}) {
    const auto many = summary(threads);
    ASSERT_EQ(many.size(), one.size());
    for (size_t i = 0; i < one.size(); ++i) {
      EXPECT_EQ(many[i].ov_eigenvalues, one[i].ov_eigenvalues) << i;
      EXPECT_EQ(many[i].qk_eigenvalues, one[i].qk_eigenvalues) << i;
      EXPECT_EQ(many[i].ov_copying_score, one[i].ov_copying_score) << i;
      EXPECT_EQ(many[i].positional_share, one[i].positional_share) << i;
      EXPECT_EQ(many[i].ov_diagonal_top1, one[i].ov_diagonal_top1) << i;
      EXPECT_EQ(many[i].ov_diagonal_top5, one[i].ov_diagonal_top5) << i;
      EXPECT_EQ(many[i].attn_current, one[i].attn_current) << i;
      EXPECT_EQ(many[i].attn_previous, one[i].attn_previous) << i;
    }
  }
}

}  // namespace
}  // namespace cs
