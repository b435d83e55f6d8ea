// Sliced computations (core/sliced.h) and their users: a computation run one
// unit per step gives exactly the floats of the one-shot function, and those
// agree with naive loops written here (double precision, naive_reference.h).
// The models are large enough that every phase has several units
// (kSliceFloats = 2^20 floats per unit).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <mutex>
#include <utility>
#include <vector>

#include "core/direct_path.h"
#include "core/error.h"
#include "core/model.h"
#include "core/processing.h"
#include "core/sliced.h"
#include "io/model_io.h"
#include "naive_reference.h"

namespace cs {
namespace {

// Steps with a zero budget (one unit per call) until done; returns the number of calls.
int run_unit_by_unit(SlicedComputation& c) {
  int steps = 0;
  float last = -1.f;
  while (!c.done()) {
    const float p = c.progress();
    EXPECT_GE(p, last);
    EXPECT_LT(p, 1.f);
    EXPECT_FALSE(c.stage().empty());
    last = p;
    c.step(0.0);
    ++steps;
    if (steps > 100000) {
      ADD_FAILURE() << "does not finish";
      break;
    }
  }
  EXPECT_EQ(c.progress(), 1.f);
  return steps;
}

// The same floats up to rounding: two models live in different allocations,
// and Eigen's vectorized reductions (a row's mean) start at the first aligned
// element, so the order of a sum can differ by the allocation's alignment.
::testing::AssertionResult same_floats(const Model& a, const Model& b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << "sizes " << a.size() << " vs " << b.size();
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::abs(double(a.data()[i]) - double(b.data()[i])) / (1.0 + std::abs(double(b.data()[i])));
    if (!(d <= worst)) {
      worst = d;
      at = i;
    }
  }
  if (worst <= 1e-6) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "float " << at << ": " << a.data()[at] << " vs " << b.data()[at];
}

TEST(WorkPlan, RunsUnitsInOrderOnePerZeroBudgetStep) {
  WorkPlan p;
  std::vector<int> order;
  p.add("first", 1, [&] { order.push_back(1); });
  p.add("second", 3, [&] { order.push_back(2); });
  p.add("third", 4, [&] { order.push_back(3); });
  EXPECT_EQ(p.units(), 3u);
  EXPECT_EQ(p.stage(), "first");
  EXPECT_EQ(p.progress(), 0.f);
  EXPECT_FALSE(p.step(0));
  EXPECT_EQ(order, std::vector<int>{1});
  EXPECT_FLOAT_EQ(p.progress(), 1.f / 8.f);  // weighted by cost
  EXPECT_EQ(p.stage(), "second");
  EXPECT_FALSE(p.step(0));
  EXPECT_FLOAT_EQ(p.progress(), 4.f / 8.f);
  EXPECT_TRUE(p.step(0));
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
  EXPECT_TRUE(p.done());
  EXPECT_EQ(p.stage(), "done");
  EXPECT_TRUE(p.step(0));  // nothing left: no unit runs again
  EXPECT_EQ(order.size(), 3u);

  WorkPlan q;  // a large budget runs everything in one call
  int n = 0;
  for (int i = 0; i < 10; ++i) q.add("u", 1, [&] { ++n; });
  EXPECT_TRUE(q.step(1e9));
  EXPECT_EQ(n, 10);

  WorkPlan empty;
  EXPECT_TRUE(empty.done());
  EXPECT_TRUE(empty.step(0));
}

TEST(WorkPlan, AFailedUnitSpendsThePlan) {
  WorkPlan p;
  int runs = 0;
  p.add("ok", 1, [&] { ++runs; });
  p.add("bad", 1, [&] { throw Error("bad unit"); });
  p.add("after", 1, [&] { ++runs; });
  EXPECT_THROW(p.run(), Error);
  EXPECT_EQ(runs, 1);
  EXPECT_THROW(p.step(1e9), Error);
  EXPECT_EQ(runs, 1);
}

ModelConfig big_config(Norm norm) {
  ModelConfig c;
  c.n_layers = 1;
  c.d_model = 64;
  c.n_heads = 2;
  c.d_head = 8;
  c.n_ctx = 8;
  c.d_vocab = 20000;     // W_E: 1.28 M floats, two column units
  c.d_vocab_out = 5000;  // W_U: three row blocks of 2048 columns
  c.normalization = norm;
  return c;
}

// Naive bigram logits: norm_final(W_E[s]) . W_U[:, o] + b_U[o], in double.
struct NaiveBigram {
  const Model& m;
  naive::Tensor W_E, W_U, b_U;
  size_t D, V;
  explicit NaiveBigram(const Model& model)
      : m(model), W_E(naive::tensor(model, "embed.W_E")), W_U(naive::tensor(model, "unembed.W_U")),
        b_U(naive::tensor(model, "unembed.b_U")), D(size_t(model.config().d_model)),
        V(size_t(model.config().vocab_out())) {}
  std::vector<double> xf(int s) const {
    std::vector<double> x(D);
    for (size_t d = 0; d < D; ++d) x[d] = W_E[size_t(s) * D + d];
    return naive::norm_row(m, x, "ln_final");
  }
  std::vector<double> row(int s) const {
    const std::vector<double> x = xf(s);
    std::vector<double> out(V);
    for (size_t o = 0; o < V; ++o) {
      double v = b_U[o];
      for (size_t d = 0; d < D; ++d) v += x[d] * W_U[d * V + o];
      out[o] = v;
    }
    return out;
  }
  double at(int s, int o) const {
    const std::vector<double> x = xf(s);
    double v = b_U[size_t(o)];
    for (size_t d = 0; d < D; ++d) v += x[d] * W_U[d * V + size_t(o)];
    return v;
  }
};

double log_sum_exp(const std::vector<double>& v) {
  const double mx = *std::max_element(v.begin(), v.end());
  double s = 0;
  for (double x : v) s += std::exp(x - mx);
  return mx + std::log(s);
}

// Indices by value descending, ties by smaller index.
std::vector<int> ranking(const std::vector<double>& v) {
  std::vector<int> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return v[size_t(a)] > v[size_t(b)]; });
  return idx;
}

class SlicedBigrams : public ::testing::TestWithParam<Norm> {};

TEST_P(SlicedBigrams, TopNextSlicedEqualsOneShotAndNaive) {
  Model m(big_config(GetParam()));
  randomize(m, 41, 0.5f);
  const NaiveBigram naive(m);
  for (int s : {0, 777, 19999}) {
    BigramTopNext q(m, s, 12);
    EXPECT_EQ(q.source(), s);
    EXPECT_THROW(q.result(), Error);  // not finished
    EXPECT_EQ(run_unit_by_unit(q), 4);  // three row blocks, then the top k
    const std::vector<Ranked> once = bigram_top_next(m, s, 12);
    ASSERT_EQ(q.result().size(), 12u);
    ASSERT_EQ(once.size(), 12u);
    for (size_t i = 0; i < 12; ++i) {
      EXPECT_EQ(q.result()[i].id, once[i].id);
      EXPECT_EQ(q.result()[i].logit, once[i].logit);
      EXPECT_EQ(q.result()[i].prob, once[i].prob);
    }
    const std::vector<double> row = naive.row(s);
    const std::vector<int> want = ranking(row);
    const double lse = log_sum_exp(row);
    for (size_t i = 0; i < 12; ++i) {
      EXPECT_EQ(once[i].id, want[i]) << "source " << s << " rank " << i;
      EXPECT_NEAR(once[i].logit, row[size_t(want[i])], 1e-4);
      EXPECT_NEAR(once[i].prob, std::exp(row[size_t(want[i])] - lse), 5e-5);  // float logits: ~1e-5
    }
  }
}

TEST_P(SlicedBigrams, TopSourcesSlicedEqualsOneShotAndNaive) {
  Model m(big_config(GetParam()));
  randomize(m, 43, 0.5f);
  const NaiveBigram naive(m);
  for (int next : {0, 2500, 4999}) {
    for (int k : {1, 7, 40}) {
      BigramTopSources q(m, next, k);
      EXPECT_EQ(q.next(), next);
      const int steps = run_unit_by_unit(q);
      // column units (2 of 16384 rows), top k, W_U blocks (3 of 2048 columns, or 7 of 768 for k = 40:
      // smaller blocks for more rows), probabilities
      EXPECT_EQ(steps, 2 + 1 + (k <= 16 ? 3 : 7) + 1) << "k " << k;
      const std::vector<Ranked> once = bigram_top_sources(m, next, k);
      ASSERT_EQ(q.result().size(), size_t(k));
      ASSERT_EQ(once.size(), size_t(k));
      for (size_t i = 0; i < size_t(k); ++i) {
        EXPECT_EQ(q.result()[i].id, once[i].id);
        EXPECT_EQ(q.result()[i].logit, once[i].logit);
        EXPECT_EQ(q.result()[i].prob, once[i].prob);
      }
      if (k != 7) continue;  // naive checks for one k (each row is a full naive pass)
      std::vector<double> col(size_t(m.config().d_vocab));
      for (int s = 0; s < m.config().d_vocab; ++s) col[size_t(s)] = naive.at(s, next);
      const std::vector<int> want = ranking(col);
      for (size_t i = 0; i < size_t(k); ++i) {
        EXPECT_EQ(once[i].id, want[i]) << "next " << next << " rank " << i;
        EXPECT_NEAR(once[i].logit, col[size_t(want[i])], 1e-4);
        const std::vector<double> row = naive.row(want[i]);
        EXPECT_NEAR(once[i].prob, std::exp(row[size_t(next)] - log_sum_exp(row)), 5e-5);  // p(next | source)
      }
    }
  }
  BigramTopSources none(m, 3, 0);
  none.run();
  EXPECT_TRUE(none.result().empty());
  EXPECT_THROW(BigramTopSources(m, 5000, 3), Error);  // d_vocab_out is 5000
  EXPECT_THROW(BigramTopSources(m, -1, 3), Error);
  EXPECT_THROW(BigramTopNext(m, 20000, 3), Error);
}

INSTANTIATE_TEST_SUITE_P(AllNorms, SlicedBigrams, ::testing::Values(Norm::None, Norm::LN, Norm::LNPre),
                         [](const auto& info) { return std::string(to_string(info.param)); });

ModelConfig processing_config(PosEmbed pos) {
  ModelConfig c = big_config(Norm::LN);
  c.n_layers = 2;
  c.d_vocab_out = 20000;  // W_U: 1.28 M floats, several units in fold_ln and center_unembed
  c.positional = pos;
  return c;
}

TEST(SlicedProcessing, UnitByUnitEqualsProcessWeights) {
  for (PosEmbed pos : {PosEmbed::Standard, PosEmbed::Shortformer}) {
    Model one_shot(processing_config(pos));
    randomize(one_shot, 7, 0.4f);
    Model sliced = one_shot;
    process_weights(one_shot);
    WeightProcessing p(sliced);
    EXPECT_GT(run_unit_by_unit(p), 10);
    EXPECT_TRUE(same_floats(sliced, one_shot)) << to_string(pos);
    EXPECT_EQ(sliced.config().normalization, one_shot.config().normalization);
    EXPECT_EQ(sliced.processing.describe(), one_shot.processing.describe());
  }
}

TEST(SlicedProcessing, StepsAreRecordedOnlyWhenComplete) {
  Model m(processing_config(PosEmbed::Standard));
  randomize(m, 9, 0.4f);
  WeightProcessing p(m);
  p.step(0);  // fold_ln's first unit (the new layout) only
  EXPECT_FALSE(m.processing.fold_ln);
  while (p.stage() == "fold_ln") p.step(0);
  EXPECT_TRUE(m.processing.fold_ln);
  EXPECT_FALSE(m.processing.center_writing_weights);
  p.run();
  EXPECT_EQ(m.processing.describe(), "processed: fold_ln, center_writing_weights, center_unembed, fold_value_biases");
}

// The loader's path: an LN model read straight into the LNPre layout with its
// LayerNorm weights aside gives the floats of process_weights on the LN model.
TEST(SlicedProcessing, LayerNormAsideEqualsFoldingTheLNModel) {
  Model ln_model(processing_config(PosEmbed::Standard));
  randomize(ln_model, 13, 0.4f);
  ModelConfig pre = ln_model.config();
  pre.normalization = Norm::LNPre;
  Model aside(pre);
  for (const TensorSpec& s : aside.tensors())
    std::copy_n(ln_model.data() + ln_model.find(s.name)->offset, s.numel, aside.data() + s.offset);
  LayerNormWeights ln;
  for (int l = 0; l < 2; ++l) {
    ln.ln1_w.push_back(ln_model.ln1_w(l));
    ln.ln1_b.push_back(ln_model.ln1_b(l));
  }
  ln.ln_final_w = ln_model.ln_final_w();
  ln.ln_final_b = ln_model.ln_final_b();
  LayerNormWeights bad = ln;
  bad.ln1_w.pop_back();

  process_weights(ln_model);
  WeightProcessing p(aside, ProcessOptions{}, ln);
  run_unit_by_unit(p);
  EXPECT_TRUE(same_floats(aside, ln_model));
  EXPECT_EQ(aside.processing.describe(), ln_model.processing.describe());

  Model other(pre);
  EXPECT_THROW(WeightProcessing(other, ProcessOptions{}, bad), Error);
  ProcessOptions no_fold;
  no_fold.fold_ln = false;
  EXPECT_THROW(WeightProcessing(other, no_fold, ln), Error);
  Model still_ln(processing_config(PosEmbed::Standard));
  EXPECT_THROW(WeightProcessing(still_ln, ProcessOptions{}, ln), Error);  // not in the LNPre layout
}

TEST(SlicedLoading, UninitializedModelHasTheSameLayout) {
  const ModelConfig c = processing_config(PosEmbed::Standard);
  const Model zero(c), unfilled(c, Model::Uninitialized{});
  ASSERT_EQ(unfilled.size(), zero.size());
  ASSERT_EQ(unfilled.tensors().size(), zero.tensors().size());
  for (size_t i = 0; i < zero.tensors().size(); ++i) {
    EXPECT_EQ(unfilled.tensors()[i].name, zero.tensors()[i].name);
    EXPECT_EQ(unfilled.tensors()[i].offset, zero.tensors()[i].offset);
    EXPECT_EQ(unfilled.tensors()[i].shape, zero.tensors()[i].shape);
  }
  EXPECT_TRUE(std::all_of(zero.data(), zero.data() + zero.size(), [](float x) { return x == 0.f; }));
}

TEST(SlicedLoading, StepByStepLoadEqualsProcessWeights) {
  ModelConfig c = processing_config(PosEmbed::Standard);
  c.d_vocab_out = 0;
  Model m(c);
  randomize(m, 17, 0.4f);
  auto files = std::make_shared<const FileSet>(save_model(m));
  Model want = m;
  process_weights(want);

  ModelLoadJob job(files);  // shares the bytes
  int steps = 0;
  while (!job.step(0.0)) ++steps;
  EXPECT_GT(steps, 20);
  const LoadedModel got = job.take();
  EXPECT_TRUE(same_floats(got.model, want));
  EXPECT_EQ(got.model.config().normalization, Norm::LNPre);
  EXPECT_EQ(got.model.processing.describe(), want.processing.describe());
  EXPECT_EQ(got.model.parameter_count(), want.parameter_count());

  // Raw: the LN layout, as stored.
  LoadOptions raw;
  raw.process = false;
  const LoadedModel r = load_model(*files, raw);
  EXPECT_TRUE(same_floats(r.model, m));
  EXPECT_EQ(r.model.config().normalization, Norm::LN);

  // fold_ln off: nothing is read aside.
  LoadOptions some;
  some.steps.fold_ln = false;
  Model want2 = m;
  process_weights(want2, some.steps);
  const LoadedModel s2 = load_model(*files, some);
  EXPECT_TRUE(same_floats(s2.model, want2));
  EXPECT_EQ(s2.model.config().normalization, Norm::LN);
}

}  // namespace
}  // namespace cs

namespace cs {
namespace {

// run_concurrently: every unit runs once, the non-concurrent ones in order
// between the stretches, with the same results as stepping; a failing
// concurrent unit's error comes out and spends the plan.
TEST(WorkPlan, RunConcurrentlyRunsEveryUnitOnceAndKeepsTheOrderAroundStretches) {
  for (int threads : {1, 2, 4}) {
    WorkPlan p;
    std::vector<int> out(200, 0);
    std::vector<int> order;  // the non-concurrent units, in the order run
    std::atomic<int> before_first{0};
    p.add("first", 1, [&] { order.push_back(0); });
    for (int i = 0; i < 100; ++i)
      p.add("a", 1, [&, i] {
        if (order.size() == 1) ++before_first;
        out[size_t(i)] += i + 1;
      }, true);
    p.add("middle", 1, [&] {
      // Every unit of the first stretch has run.
      for (int i = 0; i < 100; ++i) EXPECT_EQ(out[size_t(i)], i + 1);
      order.push_back(1);
    });
    for (int i = 100; i < 200; ++i) p.add("b", 1, [&, i] { out[size_t(i)] += i + 1; }, true);
    p.run_concurrently(threads);
    EXPECT_TRUE(p.done());
    EXPECT_FLOAT_EQ(p.progress(), 1.f);
    EXPECT_EQ(order, (std::vector<int>{0, 1}));
    EXPECT_EQ(before_first.load(), 100);
    for (int i = 0; i < 200; ++i) EXPECT_EQ(out[size_t(i)], i + 1) << "unit " << i << " threads " << threads;
  }
  WorkPlan bad;
  for (int i = 0; i < 10; ++i)
    bad.add("x", 1, [i] {
      if (i == 5) throw Error("unit 5 failed");
    }, true);
  EXPECT_THROW(bad.run_concurrently(2), Error);
  EXPECT_THROW(bad.step(1.0), Error) << "a failed plan is spent";
}

// Strands (add_to_strand) and fences: a strand's units run in order and never
// two at once; strands of one stretch run beside each other; nothing after a
// fence starts before everything before it has finished. Checked from a log
// of unit starts and ends, on several thread counts and stepping.
#ifdef __EMSCRIPTEN__
constexpr bool kThreads = false;  // wasm runs every plan on its one thread
#else
constexpr bool kThreads = true;
#endif

struct UnitLog {
  std::mutex mu;
  std::vector<std::pair<int, bool>> events;  // (unit id, started?)
  std::atomic<int> running{0}, most{0};
  void start(int id) {
    const int now = ++running;
    for (int m = most; now > m && !most.compare_exchange_weak(m, now);) {
    }
    const std::lock_guard<std::mutex> lock(mu);
    events.emplace_back(id, true);
  }
  void end(int id) {
    {
      const std::lock_guard<std::mutex> lock(mu);
      events.emplace_back(id, false);
    }
    --running;
  }
  size_t at(int id, bool started) const {
    for (size_t i = 0; i < events.size(); ++i)
      if (events[i] == std::make_pair(id, started)) return i;
    return size_t(-1);
  }
};

TEST(WorkPlan, StrandsRunInOrderAndFencesSeparateStretches) {
  constexpr int kStrands = 6, kLength = 4;
  for (int threads : {0, 1, 3, 8}) {  // 0: stepped unit by unit
    WorkPlan p;
    UnitLog log;
    // Units busy for a moment, so that strands overlap when they can.
    auto unit = [&log](int id) {
      return [&log, id] {
        log.start(id);
        const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(3);
        while (std::chrono::steady_clock::now() < until) std::this_thread::yield();
        log.end(id);
      };
    };
    // Stretch 1: strands s = 0..5, units 10 s + u. Stretch 2 (after a fence): 100 + s.
    for (int s = 0; s < kStrands; ++s)
      for (int u = 0; u < kLength; ++u) {
        if (u == 0)
          p.add("a", 1, unit(10 * s + u), true);
        else
          p.add_to_strand("a", 1, unit(10 * s + u));
      }
    p.fence();
    for (int s = 0; s < kStrands; ++s) p.add("b", 1, unit(100 + s), true);
    if (threads == 0) {
      while (!p.step(0.0)) {
      }
    } else {
      p.run_concurrently(threads);
    }
    ASSERT_TRUE(p.done());
    ASSERT_EQ(log.events.size(), size_t(2 * kStrands * (kLength + 1)));
    for (int s = 0; s < kStrands; ++s)
      for (int u = 1; u < kLength; ++u)
        EXPECT_LT(log.at(10 * s + u - 1, false), log.at(10 * s + u, true)) << "strand " << s << " unit " << u;
    size_t last_a_end = 0, first_b_start = size_t(-1);
    for (size_t i = 0; i < log.events.size(); ++i) {
      if (log.events[i].first < 100 && !log.events[i].second) last_a_end = i;
      if (log.events[i].first >= 100 && log.events[i].second) first_b_start = std::min(first_b_start, i);
    }
    EXPECT_LT(last_a_end, first_b_start) << "the fence";
    if (threads <= 1 || !kThreads)
      EXPECT_EQ(log.most.load(), 1);
    else
      EXPECT_GE(log.most.load(), 2) << "strands ran beside each other on " << threads << " threads";
    EXPECT_LE(log.most.load(), std::max(threads, 1));
  }
  // add_to_strand after a non-concurrent unit (no strand to join) runs alone.
  WorkPlan q;
  std::vector<int> order;
  q.add("x", 1, [&] { order.push_back(0); });
  q.add_to_strand("x", 1, [&] { order.push_back(1); });
  q.run_concurrently(4);
  EXPECT_EQ(order, (std::vector<int>{0, 1}));
}

// A plan whose units another plan takes (add_units_of) keeps its strands and
// stretches there, fenced from the taker's own units; it is done once they
// have run, and cannot be stepped by itself any more.
TEST(WorkPlan, APlanTakenWholeKeepsItsConcurrency) {
  for (int threads : {1, 4}) {
    WorkPlan sub;
    UnitLog log;
    for (int s = 0; s < 4; ++s) {
      sub.add("sub", 1, [&log, s] {
        log.start(s);
        const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(5);
        while (std::chrono::steady_clock::now() < until) std::this_thread::yield();
        log.end(s);
      }, true);
    }
    WorkPlan outer;
    std::atomic<int> before{0};
    outer.add("before", 1, [&] { ++before; }, true);
    outer.add("before", 1, [&] { ++before; }, true);
    outer.add_units_of(&sub, sub.units(), "taken", 1.0);
    bool sub_done_after = false;
    outer.add("after", 1, [&] { sub_done_after = sub.done(); });
    EXPECT_EQ(outer.units(), 7u);
    EXPECT_FALSE(sub.done());
    EXPECT_THROW(sub.step(0.0), Error) << "its units belong to the other plan now";
    outer.run_concurrently(threads);
    EXPECT_TRUE(outer.done());
    EXPECT_TRUE(sub.done());
    EXPECT_TRUE(sub_done_after);
    EXPECT_EQ(before.load(), 2);
    EXPECT_EQ(log.events.size(), 8u);
    if (threads > 1 && kThreads) {
      EXPECT_GE(log.most.load(), 2) << "the taken units still ran beside each other";
    }
  }
  // A plan already started, or a part of one, is stepped unit by unit as before.
  WorkPlan started;
  int n = 0;
  for (int i = 0; i < 3; ++i) started.add("s", 1, [&] { ++n; }, true);
  started.step(0.0);
  WorkPlan outer;
  outer.add_units_of(&started, 2, "rest", 1.0);
  outer.run_concurrently(4);
  EXPECT_EQ(n, 3);
  EXPECT_TRUE(started.done());
}

// RunControl (the page's background jobs): progressed is called on the
// running thread as units finish, with progress() rising; a stop between
// units leaves the plan (or the chain) spent and not done.
TEST(WorkPlan, RunControlReportsProgressAndStops) {
  for (int threads : {1, 3}) {
    WorkPlan p;
    std::atomic<int> ran{0};
    for (int i = 0; i < 40; ++i) p.add("u", 1, [&ran] { ++ran; }, /*concurrent=*/i % 10 != 0);
    RunControl ctl;
    std::vector<float> seen;
    const std::thread::id me = std::this_thread::get_id();
    bool elsewhere = false;
    ctl.progressed = [&] {
      elsewhere = elsewhere || std::this_thread::get_id() != me;
      seen.push_back(p.progress());
      if (p.progress() >= 0.5f) ctl.stop = true;
    };
    p.run_concurrently(threads, &ctl);
    EXPECT_FALSE(elsewhere) << threads << " threads";
    ASSERT_FALSE(seen.empty());
    EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end())) << threads << " threads";
    EXPECT_FALSE(p.done());
    EXPECT_GE(ran.load(), 20);
    EXPECT_LT(ran.load(), 40) << threads << " threads: stopped part way";
    EXPECT_THROW(p.step(1.0), Error) << "a stopped plan is spent";

    PlanChain chain;
    int finished = 0;
    for (int st = 0; st < 3; ++st)
      chain.then<WorkPlan>("stage", 1, [] {
        auto w = std::make_unique<WorkPlan>();
        for (int i = 0; i < 5; ++i) w->add("u", 1, [] {}, true);
        return w;
      }, [&finished](WorkPlan&) { ++finished; });
    RunControl stop_after_first;
    stop_after_first.progressed = [&] {
      if (finished == 1) stop_after_first.stop = true;
    };
    chain.run_concurrently(threads, &stop_after_first);
    EXPECT_EQ(finished, 1);
    EXPECT_FALSE(chain.done());
    EXPECT_THROW(chain.step(1.0), Error);
  }
}

}  // namespace
}  // namespace cs
