// Long computations done in slices of bounded time. The page advances them a
// slice per frame, so no frame blocks it for long, shows their progress, and
// drops them when the user asks for something else; the CLI and the tests run
// the same code to the end. No UI here.
//
// A full-vocabulary scan (a bigram column over 48262 rows of W_E, a processing
// step over W_U) takes 50-200 ms in wasm; split into units of about a million
// floats each, a unit takes a few milliseconds.
#pragma once
#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

namespace cs {

// Floats a unit of sliced work should touch at most (a few ms in wasm).
inline constexpr size_t kSliceFloats = size_t(1) << 20;

// Threads a computation run to the end (run()) uses natively: every core by
// default; the command line's --threads sets it. Results do not depend on it
// (units marked concurrent write disjoint outputs; see WorkPlan::add). In wasm
// 1 (the page steps plans a slice per frame), except in the threaded build
// (-pthread): the browser's core count on worker threads, 1 on the page's
// main thread (which must never wait on workers).
int analysis_threads();
void set_analysis_threads(int n);  // n >= 1 (clamped)

// What a computation run to the end on a thread of its own (the page's
// background jobs, when it has worker threads) shares with the thread that
// started it: `stop` asks it to stop between units (it is then spent: done()
// stays false and it must not be stepped or run again), and `progressed`, if
// set, is called on the running thread between units, where it may read the
// computation's progress() and stage() (and publish them for other threads).
struct RunControl {
  std::atomic<bool> stop{false};
  std::function<void()> progressed;
  bool stopped() const { return stop.load(std::memory_order_relaxed); }
  void report() const {
    if (progressed) progressed();
  }
};

// A computation advanced a slice at a time.
class SlicedComputation {
 public:
  virtual ~SlicedComputation() = default;
  // Works for about budget_ms, always at least one unit of work (so every call
  // makes progress), and returns true once finished. Throws cs::Error as the
  // one-shot function would; after a throw the computation is spent.
  virtual bool step(double budget_ms) = 0;
  virtual bool done() const = 0;
  virtual float progress() const = 0;     // 0..1
  virtual std::string stage() const = 0;  // what it does now, e.g. "bigram column"
  // Runs to the end (what the one-shot functions do); WorkPlans and chains of
  // them run their concurrent units on analysis_threads() threads.
  void run() { run_concurrently(analysis_threads()); }
  // Runs to the end, or until ctl->stop, on up to `threads` threads where the
  // computation has concurrent units (WorkPlan, PlanChain); the same arithmetic
  // as step(). This default steps it on the calling thread.
  virtual void run_concurrently(int threads, RunControl* ctl = nullptr);
};

// A plan of small units of work run in order. Each unit has a cost (in any
// consistent measure, e.g. floats touched) that weighs progress(). The units
// are fixed when the plan is built, so running it in slices of any size does
// exactly the same arithmetic as running it at once.
//
// Units usually capture `this` of a derived class: plans are neither copied
// nor moved (hold them by unique_ptr).
class WorkPlan : public SlicedComputation {
 public:
  WorkPlan() = default;
  WorkPlan(const WorkPlan&) = delete;
  WorkPlan& operator=(const WorkPlan&) = delete;

  // Appends a unit. `stage` is shown while it runs; `cost` > 0. `concurrent`:
  // the unit touches nothing its concurrent neighbours write (its own output
  // entries, its own scratch), so run_concurrently may run a stretch of
  // such units at the same time.
  void add(std::string stage, double cost, std::function<void()> work, bool concurrent = false);
  // Appends a unit to the strand of the unit before it (a concurrent one or
  // another such unit), or with `new_strand` the first unit of a new strand
  // (a concurrent unit): run_concurrently runs a strand's units one after the
  // other, never two at once, while other strands of the stretch run beside
  // them. A strand owns its scratch (a row chunk of a scan, one head's
  // eigen-problem) and its units stay small for the page's frame slices.
  void add_to_strand(std::string stage, double cost, std::function<void()> work, bool new_strand = false);
  // The next unit starts a new stretch: concurrent units after it do not run
  // beside those before it (they read what those wrote).
  void fence() { fence_next_ = true; }
  // Appends `units` units, each running exactly one unit of `sub` (step(0)
  // runs one unit and stops): a plan made of other plans. `sub` must outlive
  // this plan's run; pass sub's units() for all of it. A WorkPlan not yet
  // started, taken whole, keeps its concurrency: its units become this plan's
  // (fenced from the units before and after them), and `sub` is done once
  // they have all run; it must not be stepped by itself.
  void add_units_of(SlicedComputation* sub, size_t units, const std::string& stage, double cost_each);

  bool step(double budget_ms) override;
  // Runs to the end like step(), each stretch of consecutive concurrent units
  // (a non-concurrent unit, even an empty one, ends a stretch: the barrier
  // between units that read what others write) on up to `threads` threads
  // (natively and in the page's threaded build; one after the other in the
  // single-threaded one). The CLI's one-shot analyses use all cores this way,
  // and so do the page's background jobs; the page without threads steps the
  // same plan a unit at a time. Same arithmetic either way.
  void run_concurrently(int threads, RunControl* ctl = nullptr) override;
  bool done() const override { return next_ == units_.size() || spliced_done_ == units_.size(); }
  float progress() const override;
  std::string stage() const override;
  size_t units() const { return units_.size(); }
  size_t units_done() const { return next_; }

 private:
  struct Unit {
    std::string stage;
    double cost = 0;
    std::function<void()> work;
    bool concurrent = false;  // may run beside the other strands of its stretch
    bool continues = false;   // of the previous unit's strand (add_to_strand)
    bool fenced = false;      // starts a new stretch (fence())
  };
  void push(Unit u);
  // Runs unit i of a plan whose units another plan took (add_units_of).
  void run_spliced(size_t i);
  std::vector<Unit> units_;
  size_t next_ = 0;
  double cost_done_ = 0, cost_total_ = 0;
  bool failed_ = false;
  bool fence_next_ = false;
  bool spliced_ = false;                 // its units run as another plan's
  std::atomic<size_t> spliced_done_{0};  // how many of them have run
  // The stretch run_concurrently runs now: its cost and units, and how many
  // of them have finished (progress() counts them while it runs).
  double stretch_cost_ = 0;
  size_t stretch_units_ = 0;
  std::atomic<size_t> stretch_done_{0};
};


// Plans that need each other's results, run one after the other: each stage's
// plan is made when the stages before it have finished (its units depend on
// their results: the virtual heads to list come from the composition scores),
// and its `finish` takes the result out before the next stage is made.
// Progress weighs each stage by its fixed `weight`. run_concurrently runs the
// stages that are WorkPlans with theirs (the same arithmetic as step()).
class PlanChain final : public SlicedComputation {
 public:
  // `make` may return nullptr: the stage has nothing to do (it still calls
  // nothing and counts as done).
  template <class Plan>
  void then(std::string stage, double weight, std::function<std::unique_ptr<Plan>()> make,
            std::function<void(Plan&)> finish) {
    static_assert(std::is_base_of_v<SlicedComputation, Plan>, "a stage is a SlicedComputation");
    then_erased(std::move(stage), weight, [make = std::move(make)] { return std::unique_ptr<SlicedComputation>(make()); },
                [finish = std::move(finish)](SlicedComputation& p) {
                  if (finish) finish(static_cast<Plan&>(p));
                });
  }
  bool step(double budget_ms) override;
  void run_concurrently(int threads, RunControl* ctl = nullptr) override;
  bool done() const override { return next_ == stages_.size(); }
  float progress() const override;
  std::string stage() const override;

 private:
  struct Stage {
    std::string name;
    double weight = 1;
    std::function<std::unique_ptr<SlicedComputation>()> make;
    std::function<void(SlicedComputation&)> finish;
  };
  void then_erased(std::string stage, double weight, std::function<std::unique_ptr<SlicedComputation>()> make,
                   std::function<void(SlicedComputation&)> finish);
  // Makes the next stage's plan when none is current; false when the chain is done.
  bool ensure_current();
  void finish_current();
  std::vector<Stage> stages_;
  std::unique_ptr<SlicedComputation> current_;
  size_t next_ = 0;
  double weight_done_ = 0, weight_total_ = 0;
  bool failed_ = false;
};

}  // namespace cs
