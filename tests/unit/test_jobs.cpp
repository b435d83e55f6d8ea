// The page's job runner (src/app/jobs.h): typed completion, a newer job in a
// slot drops the older one, failures, and one budget per tick shared by all
// jobs (on a clock the test advances itself: no timing here).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <new>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "app/jobs.h"
#include "app/redraw.h"
#include "core/error.h"

namespace cs::app {
namespace {

// A clock the work advances: each unit of work "takes" unit_ms.
struct FakeClock {
  double now = 0;
};

// `units` units of unit_ms each; step(budget) runs units until the budget is
// spent (always at least one), as core/sliced.h asks of every computation.
class FakeWork final : public SlicedComputation {
 public:
  FakeWork(FakeClock& clock, int units, double unit_ms, std::string tag, int* destroyed = nullptr)
      : tag(std::move(tag)), clock_(clock), units_(units), unit_ms_(unit_ms), destroyed_(destroyed) {}
  ~FakeWork() override {
    if (destroyed_) ++*destroyed_;
  }
  bool step(double budget_ms) override {
    budgets.push_back(budget_ms);
    const double start = clock_.now;
    do {
      if (throw_at >= 0 && done_ == throw_at) throw Error("fake work: unit " + std::to_string(done_) + " failed");
      clock_.now += unit_ms_;
      ++done_;
    } while (done_ < units_ && clock_.now - start < budget_ms);
    return done();
  }
  bool done() const override { return done_ >= units_; }
  float progress() const override { return float(done_) / float(units_); }
  std::string stage() const override { return tag + " unit " + std::to_string(done_); }
  int units_done() const { return done_; }

  std::string tag;
  std::vector<double> budgets;  // the budget of each step
  int throw_at = -1;

 private:
  FakeClock& clock_;
  int units_, done_ = 0;
  double unit_ms_;
  int* destroyed_;
};

TEST(Jobs, DoneReceivesTheConcreteWork) {
  FakeClock clock;
  JobRunner jobs([&] { return clock.now; });
  std::string seen;
  int units = 0;
  jobs.start<FakeWork>("a", std::make_unique<FakeWork>(clock, 3, 1.0, "alpha"), [&](FakeWork& w) {
    seen = w.tag;
    units = w.units_done();
  });
  EXPECT_TRUE(jobs.running("a"));
  jobs.tick(100);
  EXPECT_FALSE(jobs.running("a"));
  EXPECT_TRUE(jobs.idle());
  EXPECT_EQ(seen, "alpha");
  EXPECT_EQ(units, 3);
}

TEST(Jobs, ANewerJobInTheSlotDropsTheOlder) {
  FakeClock clock;
  JobRunner jobs([&] { return clock.now; });
  int destroyed = 0;
  std::vector<std::string> finished;
  auto record = [&](FakeWork& w) { finished.push_back(w.tag); };
  jobs.start<FakeWork>("q", std::make_unique<FakeWork>(clock, 5, 1.0, "old", &destroyed), record);
  jobs.tick(2);  // the old one is part way
  ASSERT_TRUE(jobs.running("q"));
  EXPECT_GT(jobs.info("q")->progress, 0.f);
  jobs.start<FakeWork>("q", std::make_unique<FakeWork>(clock, 5, 1.0, "new"), record);
  EXPECT_EQ(destroyed, 1) << "the older work is dropped at once";
  EXPECT_EQ(jobs.info("q")->frames, 0);
  for (int i = 0; i < 20 && !jobs.idle(); ++i) jobs.tick(1);
  EXPECT_EQ(finished, std::vector<std::string>{"new"});
  // cancel() drops a job without its callback.
  jobs.start<FakeWork>("q", std::make_unique<FakeWork>(clock, 5, 1.0, "cancelled"), record);
  jobs.cancel("q");
  jobs.tick(100);
  EXPECT_EQ(finished, std::vector<std::string>{"new"});
}

TEST(Jobs, OneBudgetPerTickForAllJobsAndNoneStarves) {
  FakeClock clock;
  JobRunner jobs([&] { return clock.now; });
  std::vector<FakeWork*> w;
  for (int i = 0; i < 3; ++i) {
    auto work = std::make_unique<FakeWork>(clock, 100, 1.0, "job" + std::to_string(i));
    w.push_back(work.get());
    JobOptions o;
    o.priority = i;
    jobs.start<FakeWork>("slot" + std::to_string(i), std::move(work), nullptr, std::move(o));
  }
  const double budget = 10;
  const double t0 = clock.now;
  jobs.tick(budget);
  // Priority order: the first job gets the whole budget, the others what is left (nothing),
  // and still one unit each.
  EXPECT_EQ(w[0]->budgets, std::vector<double>{budget});
  EXPECT_EQ(w[1]->budgets, std::vector<double>{0.0});
  EXPECT_EQ(w[2]->budgets, std::vector<double>{0.0});
  for (auto* x : w) EXPECT_GE(x->units_done(), 1);
  // The tick's time: the budget, plus at most one unit for each job that found it spent.
  EXPECT_LE(clock.now - t0, budget + 2 * 1.0);
  EXPECT_EQ(w[0]->units_done() + w[1]->units_done() + w[2]->units_done(), 12);
  // Every tick stays inside the same bound, and every job finishes.
  int ticks = 1;
  while (!jobs.idle() && ticks < 1000) {
    const double before = clock.now;
    const size_t running = jobs.list().size();
    jobs.tick(budget);
    EXPECT_LE(clock.now - before, budget + double(running - 1) * 1.0);
    ++ticks;
  }
  EXPECT_TRUE(jobs.idle());
  EXPECT_LT(ticks, 1000);
}

TEST(Jobs, AFailureCallsFailedNotDone) {
  FakeClock clock;
  JobRunner jobs([&] { return clock.now; });
  auto work = std::make_unique<FakeWork>(clock, 5, 1.0, "bad");
  work->throw_at = 2;
  bool done = false;
  std::string failed;
  JobOptions o;
  o.label = "bad job";
  o.failed = [&](const std::string& m) { failed = m; };
  jobs.start<FakeWork>("x", std::move(work), [&](FakeWork&) { done = true; }, std::move(o));
  for (int i = 0; i < 10 && !jobs.idle(); ++i) jobs.tick(1);
  EXPECT_FALSE(done);
  EXPECT_EQ(failed, "fake work: unit 2 failed");
  EXPECT_TRUE(jobs.idle());
}

// The done callback turns a result into what a view shows; running out of
// memory there fails the job with the page's one line, like a step would
// (an exception escaping tick() would stop the page's main loop).
TEST(Jobs, ACallbackRunningOutOfMemoryFailsTheJob) {
  FakeClock clock;
  JobRunner jobs([&] { return clock.now; });
  std::string failed;
  JobOptions o;
  o.label = "forward pass of the prompt";
  o.failed = [&](const std::string& m) { failed = m; };
  jobs.start<FakeWork>("x", std::make_unique<FakeWork>(clock, 1, 1.0, "w"), [](FakeWork&) { throw std::bad_alloc(); },
                       std::move(o));
  EXPECT_NO_THROW(jobs.tick(100));
  EXPECT_EQ(failed, "forward pass of the prompt: ran out of memory");
  EXPECT_TRUE(jobs.idle());
  EXPECT_EQ(jobs.ended(), 1u);
}

TEST(Jobs, ACallbackMayStartAJobThatRunsNextTick) {
  FakeClock clock;
  JobRunner jobs([&] { return clock.now; });
  std::vector<std::string> finished;
  jobs.start<FakeWork>("s", std::make_unique<FakeWork>(clock, 1, 1.0, "first"), [&](FakeWork& w) {
    finished.push_back(w.tag);
    jobs.start<FakeWork>("s", std::make_unique<FakeWork>(clock, 1, 1.0, "second"),
                         [&](FakeWork& v) { finished.push_back(v.tag); });
  });
  jobs.tick(100);
  EXPECT_EQ(finished, std::vector<std::string>{"first"});
  ASSERT_TRUE(jobs.running("s"));
  EXPECT_EQ(jobs.info("s")->frames, 0);
  jobs.tick(100);
  EXPECT_EQ(finished, (std::vector<std::string>{"first", "second"}));
}

TEST(Jobs, ListIsByPriorityThenAge) {
  FakeClock clock;
  JobRunner jobs([&] { return clock.now; });
  auto add = [&](const char* slot, int priority) {
    JobOptions o;
    o.label = slot;
    o.priority = priority;
    jobs.start<FakeWork>(slot, std::make_unique<FakeWork>(clock, 10, 1.0, slot), nullptr, std::move(o));
  };
  add("c", 1);
  add("a", 0);
  add("b", 1);
  std::vector<std::string> order;
  for (const auto& i : jobs.list()) order.push_back(i.slot);
  EXPECT_EQ(order, (std::vector<std::string>{"a", "c", "b"}));
}

// What the page benchmark reads: a finished job's total step time, its ticks
// and its done callback's time, on the test's clock.
TEST(Jobs, RecordsTheLongestFinishedJobAndTheSlowestCallback) {
  FakeClock clock;
  JobRunner jobs([&] { return clock.now; });
  auto start = [&](const char* slot, int units, double cb_ms) {
    JobOptions o;
    o.label = slot;
    jobs.start<FakeWork>(slot, std::make_unique<FakeWork>(clock, units, 1.0, slot),
                         [&clock, cb_ms](FakeWork&) { clock.now += cb_ms; }, std::move(o));
  };
  start("long", 7, 0.5);  // 7 units of 1 ms: 3 ticks of a 3 ms budget
  start("short", 1, 4.0);
  while (!jobs.idle()) jobs.tick(3.0);
  EXPECT_EQ(jobs.longest_job().label, "long");
  EXPECT_DOUBLE_EQ(jobs.longest_job().ms, 7.0);
  EXPECT_DOUBLE_EQ(jobs.longest_job().done_ms, 0.5);
  EXPECT_GE(jobs.longest_job().frames, 3);
  EXPECT_EQ(jobs.slowest_done().label, "short");
  EXPECT_DOUBLE_EQ(jobs.slowest_done().done_ms, 4.0);
  jobs.reset_longest_step();
  EXPECT_EQ(jobs.longest_job().label, "");
  EXPECT_EQ(jobs.longest_job().ms, 0.0);
}

// ---- background jobs (set_threads(n >= 2)) ---------------------------------
// Real threads here: each wait is bounded (a few seconds) and the assertions
// are about which thread ran what and what the results are, never how long.

// The single-threaded wasm build has no threads to start: these tests run
// natively (and the page's threaded build is tested in Chromium).
#if defined(__EMSCRIPTEN__) && !defined(__EMSCRIPTEN_PTHREADS__)
#define SKIP_WITHOUT_THREADS() GTEST_SKIP() << "no threads in this build"
#else
#define SKIP_WITHOUT_THREADS() (void)0
#endif

// Ticks until the runner is idle or `seconds` pass; false on timeout.
bool tick_until_idle(JobRunner& jobs, double seconds = 20.0) {
  const auto t0 = std::chrono::steady_clock::now();
  while (!jobs.idle()) {
    jobs.tick(5.0);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (std::chrono::steady_clock::now() - t0 > std::chrono::duration<double>(seconds)) return false;
  }
  return true;
}

// A plan of concurrent units, each writing its own entry and the thread it ran on.
// With `meet`, each unit first waits (up to 5 s) until units have started
// on two threads, so a quick plan cannot all run on the first thread.
struct ThreadedPlan final : WorkPlan {
  explicit ThreadedPlan(int n, std::atomic<int>* gate = nullptr, bool meet = false)
      : out(size_t(n)), ran_on(size_t(n)) {
    for (int i = 0; i < n; ++i)
      add("unit", 1, [this, i, gate, meet] {
        if (meet) {
          {
            const std::lock_guard<std::mutex> lock(m);
            started.insert(std::this_thread::get_id());
          }
          const auto t0 = std::chrono::steady_clock::now();
          while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5)) {
            {
              const std::lock_guard<std::mutex> lock(m);
              if (started.size() >= 2) break;
            }
            std::this_thread::sleep_for(std::chrono::microseconds(200));
          }
        }
        while (gate && gate->load() <= i) std::this_thread::sleep_for(std::chrono::microseconds(200));
        double x = 0;
        for (int k = 0; k < 20000; ++k) x += double((i * 7919 + k) % 101);  // some work
        out[size_t(i)] = x;
        ran_on[size_t(i)] = std::this_thread::get_id();
        ++units_run;
      }, /*concurrent=*/true);
  }
  std::vector<double> out;
  std::vector<std::thread::id> ran_on;
  std::atomic<int> units_run{0};
  std::mutex m;
  std::set<std::thread::id> started;  // under m
};

TEST(Jobs, BackgroundJobsRunOffTheCallingThreadAndFinishInATick) {
  SKIP_WITHOUT_THREADS();
  JobRunner jobs;
  jobs.set_threads(4);
  const std::thread::id main_id = std::this_thread::get_id();
  std::vector<double> got;
  std::set<std::thread::id> threads;
  std::thread::id done_on;
  jobs.start<ThreadedPlan>("scan", std::make_unique<ThreadedPlan>(64, nullptr, true), [&](ThreadedPlan& p) {
    got = p.out;
    threads.insert(p.ran_on.begin(), p.ran_on.end());
    done_on = std::this_thread::get_id();
  });
  ASSERT_TRUE(tick_until_idle(jobs));
  ThreadedPlan alone(64);  // the same plan stepped on this thread
  while (!alone.step(1e9)) {
  }
  EXPECT_EQ(got, alone.out);
  EXPECT_EQ(threads.count(main_id), 0u) << "a unit ran on the page's thread";
  EXPECT_GE(threads.size(), 2u) << "the units ran on one thread";
  EXPECT_EQ(done_on, main_id) << "done runs in tick(), on the calling thread";
}

TEST(Jobs, ABackgroundJobReportsProgressWhileItRuns) {
  SKIP_WITHOUT_THREADS();
  JobRunner jobs;
  jobs.set_threads(2);
  std::atomic<int> gate{0};
  bool done = false;
  jobs.start<ThreadedPlan>("scan", std::make_unique<ThreadedPlan>(40, &gate), [&](ThreadedPlan&) { done = true; });
  gate = 20;  // the first 20 units may run, then the rest wait
  const auto t0 = std::chrono::steady_clock::now();
  float seen = 0.f;
  while (seen < 0.45f && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(20)) {
    jobs.tick(5.0);
    seen = jobs.info("scan") ? jobs.info("scan")->progress : -1.f;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_GE(seen, 0.45f);
  EXPECT_LE(seen, 0.55f) << "no more than the gate lets through";
  EXPECT_FALSE(done);
  EXPECT_TRUE(jobs.running("scan"));
  gate = 40;
  ASSERT_TRUE(tick_until_idle(jobs));
  EXPECT_TRUE(done);
}

// A foreground job (the Train view's run, whose state the view draws every
// frame) is stepped by tick() on the calling thread even with worker threads,
// one budget at a time, and never runs between ticks.
TEST(Jobs, AForegroundJobIsSteppedByTickEvenWithThreads) {
  FakeClock clock;
  JobRunner jobs([&clock] { return clock.now; });
  jobs.set_threads(2);
  auto work = std::make_unique<FakeWork>(clock, 10, 1.0, "train");
  FakeWork* w = work.get();
  JobOptions o;
  o.foreground = true;
  jobs.start<FakeWork>("train", std::move(work), {}, o);
  EXPECT_FALSE(jobs.only_background());
  EXPECT_EQ(w->units_done(), 0);  // nothing runs until a tick
  jobs.tick(3.0);
  EXPECT_EQ(w->units_done(), 3);
  EXPECT_EQ(w->budgets, std::vector<double>{3.0});
  jobs.tick(3.0);
  EXPECT_EQ(w->units_done(), 6);
  while (!jobs.idle()) jobs.tick(3.0);
  EXPECT_EQ(clock.now, 10.0);
}

TEST(Jobs, DroppingABackgroundJobStopsItWithoutWaiting) {
  SKIP_WITHOUT_THREADS();
  JobRunner jobs;
  jobs.set_threads(2);
  std::atomic<int> gate{5};
  int destroyed = 0;
  struct Counted final : WorkPlan {
    explicit Counted(std::atomic<int>* g, int* d) : plan(200, g), destroyed(d) {
      add_units_of(&plan, plan.units(), "units", 1);
    }
    ~Counted() override { ++*destroyed; }
    ThreadedPlan plan;
    int* destroyed;
  };
  bool first_done = false, second_done = false;
  auto first = std::make_unique<Counted>(&gate, &destroyed);
  std::atomic<int>* first_run = &first->plan.units_run;
  jobs.start<Counted>("scan", std::move(first), [&](Counted&) { first_done = true; });
  const auto t0 = std::chrono::steady_clock::now();
  while (first_run->load() < 5 && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(20))
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_EQ(first_run->load(), 5);
  // A newer job in the slot: the old one is asked to stop; start() does not wait for it.
  jobs.start<ThreadedPlan>("scan", std::make_unique<ThreadedPlan>(8), [&](ThreadedPlan&) { second_done = true; });
  gate = 1000;  // let the old one's units go: it must stop, not finish
  ASSERT_TRUE(tick_until_idle(jobs));
  jobs.wait_for_stopped();
  EXPECT_TRUE(second_done);
  EXPECT_FALSE(first_done);
  EXPECT_EQ(destroyed, 1) << "the dropped work is freed once its thread ends";
}

TEST(Jobs, ABackgroundFailureCallsFailedOnTheCallingThread) {
  SKIP_WITHOUT_THREADS();
  JobRunner jobs;
  jobs.set_threads(3);
  const std::thread::id main_id = std::this_thread::get_id();
  auto plan = std::make_unique<ThreadedPlan>(16);
  plan->add("bad unit", 1, [] { throw Error("tensor blocks.0.attn.W_Q: bad shape"); });
  std::string failure;
  std::thread::id failed_on;
  bool done = false;
  JobOptions o;
  o.label = "scan";
  o.failed = [&](const std::string& why) {
    failure = why;
    failed_on = std::this_thread::get_id();
  };
  jobs.start<ThreadedPlan>("scan", std::move(plan), [&](ThreadedPlan&) { done = true; }, std::move(o));
  ASSERT_TRUE(tick_until_idle(jobs));
  EXPECT_FALSE(done);
  EXPECT_EQ(failure, "tensor blocks.0.attn.W_Q: bad shape");
  EXPECT_EQ(failed_on, main_id);
}

// The page's frame pacing (redraw.h): while jobs run and the page is quiet,
// frames closer than kQuietFrameMs to the last drawn one are not drawn, and
// they give the jobs stepped on the page's thread the longer budget; input, a
// capture or a job's end draws the next frame. Both for a job stepped in the
// frames (the single-threaded page) and one on a worker (the threaded page).
void expect_paced(RedrawPacer& pacer, JobRunner& jobs, double t0, const char* what) {
  SCOPED_TRACE(what);
  const double gap = RedrawPacer::kQuietFrameMs;
  EXPECT_TRUE(pacer.should_draw(t0, false, false, jobs)) << "long enough after the last drawn frame";
  EXPECT_FALSE(pacer.should_draw(t0 + 16, false, false, jobs));
  EXPECT_FALSE(pacer.should_draw(t0 + gap - 1, false, false, jobs));
  EXPECT_TRUE(pacer.should_draw(t0 + gap, false, false, jobs)) << "progress a few times a second";
  EXPECT_TRUE(pacer.should_draw(t0 + gap + 16, true, false, jobs)) << "input draws at once";
  EXPECT_TRUE(pacer.should_draw(t0 + gap + 32, false, true, jobs)) << "a capture draws at once";
  EXPECT_FALSE(pacer.should_draw(t0 + gap + 48, false, false, jobs));
}

TEST(Jobs, TheQuietPageDrawsAFewFramesASecondWhileJobsRun) {
  EXPECT_GT(RedrawPacer::job_budget_ms(false), RedrawPacer::job_budget_ms(true));
  EXPECT_LE(RedrawPacer::job_budget_ms(false), 30.0) << "a frame not drawn stays well under 50 ms";
  RedrawPacer pacer;
  JobRunner jobs;
  EXPECT_TRUE(pacer.should_draw(0, false, false, jobs));
  EXPECT_TRUE(pacer.should_draw(16, false, false, jobs)) << "no jobs: every frame";
  {  // a job stepped in the frames (one thread)
    bool done = false;
    jobs.start<ThreadedPlan>("fg", std::make_unique<ThreadedPlan>(4), [&](ThreadedPlan&) { done = true; });
    EXPECT_FALSE(jobs.only_background());
    EXPECT_FALSE(pacer.should_draw(32, false, false, jobs)) << "started in the frame just drawn: the next frames step it";
    EXPECT_EQ(jobs.info("fg")->progress, 0.f) << "nothing stepped yet";
    expect_paced(pacer, jobs, 300, "stepped in the frames");
    ASSERT_TRUE(tick_until_idle(jobs));
    EXPECT_TRUE(done);
    EXPECT_TRUE(pacer.should_draw(600, false, false, jobs)) << "a job's result draws at once";
  }
#if !defined(__EMSCRIPTEN__) || defined(__EMSCRIPTEN_PTHREADS__)  // the threaded page
  jobs.set_threads(2);
  std::atomic<int> gate{0};
  bool done = false;
  jobs.start<ThreadedPlan>("bg", std::make_unique<ThreadedPlan>(8, &gate), [&](ThreadedPlan&) { done = true; });
  EXPECT_TRUE(jobs.only_background());
  expect_paced(pacer, jobs, 1000, "on a worker");
  gate = 8;  // let the job finish; the frame after its end draws
  ASSERT_TRUE(tick_until_idle(jobs));
  EXPECT_TRUE(done);
  EXPECT_TRUE(pacer.should_draw(1500, false, false, jobs)) << "a job's result draws at once";
#endif
}

}  // namespace
}  // namespace cs::app
