// The page's job runner (src/app/jobs.h): typed completion, a newer job in a
// slot drops the older one, failures, and one budget per tick shared by all
// jobs (on a clock the test advances itself: no timing here).
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "app/jobs.h"
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

}  // namespace
}  // namespace cs::app
