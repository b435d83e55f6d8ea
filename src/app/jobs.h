// The page's long computations (core/sliced.h: a model load, a reverse bigram
// lookup, later full-vocabulary scans), stepped from the main loop a slice per
// frame so that no frame blocks the page for long. One slicing protocol for
// everything: a job's work is a SlicedComputation (the model load is adapted
// to it in session.cpp). Each job sits in a named slot; starting a job in a
// slot drops the one there (that is how a changed selection cancels a
// computation that is no longer wanted). Views read the progress of a slot
// from here. No ImGui here; built natively too (tests/unit/test_jobs.cpp).
#pragma once
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <type_traits>
#include <vector>

#include "core/sliced.h"

namespace cs::app {

// How a job is shown and scheduled, and what it does when it fails.
struct JobOptions {
  std::string label;                               // what the views say, e.g. "reverse lookup"
  int priority = 0;                                // lower runs first in a frame
  std::shared_ptr<const void> keep;                // what the work reads (e.g. the model), kept alive until it ends
  std::function<void(const std::string&)> failed;  // the work threw (cs::Error, out of memory); may start jobs
  // Stepped by tick() on the page's thread even with worker threads
  // (set_threads): for work whose state a view draws every frame while it
  // runs (the Train view's run), which a background thread would change under it.
  bool foreground = false;
};

// The one line the page shows when work labelled `label` (a job's label, e.g.
// "loading model.safetensors") runs out of memory.
inline std::string ran_out_of_memory(const std::string& label) { return label + ": ran out of memory"; }

// The one line for an exception out of work labelled `label`: ran_out_of_memory
// for std::bad_alloc, "<label>: <what>" otherwise.
inline std::string failure_reason(const std::string& label, const std::exception& ex) {
  if (dynamic_cast<const std::bad_alloc*>(&ex)) return ran_out_of_memory(label);
  return label + ": " + ex.what();
}

class JobRunner {
 public:
  struct Info {
    std::string slot, label, stage;
    float progress = 0.f;
    int frames = 0;   // ticks it has been stepped in
    double ms = 0;    // time spent in its steps
  };

  // Milliseconds from a monotonic clock; replaceable so tests can run the
  // budget logic on a clock they advance themselves (no timing in tests).
  using Clock = std::function<double()>;
  JobRunner();
  explicit JobRunner(Clock clock);

  // Starts `work` in `slot`, dropping a job already there. `done` gets the
  // finished work as its own type (no cast back from SlicedComputation); it
  // runs once, after the job has left its slot, and may start jobs.
  template <class Work>
  void start(const std::string& slot, std::unique_ptr<Work> work, std::function<void(Work&)> done,
             JobOptions opt = {}) {
    static_assert(std::is_base_of_v<SlicedComputation, Work>, "a job's work is a SlicedComputation");
    Work* w = work.get();
    std::function<void()> finish;
    if (done) finish = [w, done = std::move(done)] { done(*w); };
    start_erased(slot, std::unique_ptr<SlicedComputation>(std::move(work)), std::move(finish), std::move(opt));
  }
  void cancel(const std::string& slot);
  void cancel_prefix(const std::string& prefix);  // every slot starting with it
  void cancel_all();
  bool running(const std::string& slot) const { return jobs_.count(slot) != 0; }
  bool idle() const { return jobs_.empty(); }
  // Some jobs, every one on a thread of its own (set_threads): the frame has
  // nothing to step, only progress to show.
  bool only_background() const;
  // How many jobs have ended (done or failed) in ticks so far: a change means
  // a result the page has not drawn yet.
  uint64_t ended() const { return ended_; }
  // The slot's job, or nullptr.
  const Info* info(const std::string& slot) const;
  std::vector<Info> list() const;  // by priority, then age

  // The longest single step since reset_longest_step() (for the benchmarks:
  // a step longer than the budget is one unit of work that is too big). stage
  // is what the job was at when the step began.
  struct StepRecord {
    double ms = 0;
    std::string label, stage;
  };
  const StepRecord& longest_step() const { return longest_; }
  // The finished job with the most step time since reset_longest_step(): its
  // total over all its steps, the ticks it took and the time of its done
  // callback (which runs in the frame it finishes); and the slowest callback.
  struct JobRecord {
    double ms = 0, done_ms = 0;
    int frames = 0;
    std::string label;
  };
  const JobRecord& longest_job() const { return longest_job_; }
  const JobRecord& slowest_done() const { return slowest_done_; }
  void reset_longest_step() {
    longest_ = StepRecord{};
    longest_job_ = slowest_done_ = JobRecord{};
  }

  // One budget per frame for ALL jobs together: steps the jobs by priority
  // (then age), each getting what is left of budget_ms; a job that finds the
  // budget spent still makes one unit of progress (step(0)), so none starves.
  // Jobs started by callbacks during a tick first run in the next one.
  // Background jobs (set_threads) are not stepped here: tick() copies their
  // progress and, for those that have finished, calls done or failed.
  void tick(double budget_ms);

  // With n >= 2 worker threads (natively, and in the page's threaded build
  // when it is cross-origin isolated), each job started from now on runs in
  // the background: on a thread of its own, its concurrent units on n threads
  // (SlicedComputation::run_concurrently), so the page's main thread never
  // waits for it. Dropping such a job asks it to stop and lets it end by
  // itself. With 1 (the default) the jobs are stepped by tick(). The results
  // are the same either way (docs/speed.md).
  void set_threads(int n) { threads_ = n < 1 ? 1 : n; }
  int threads() const { return threads_; }
  // Waits for dropped background jobs that are still stopping (tests; the destructor).
  void wait_for_stopped();
  ~JobRunner();

 private:
  // A job running on a thread of its own: what it shares with that thread.
  struct Background;
  struct Entry {
    std::unique_ptr<SlicedComputation> work;
    std::function<void()> done;
    JobOptions opt;
    Info info;
    uint64_t serial = 0;
    std::shared_ptr<Background> bg;  // set while it runs in the background (it then owns the work)
  };
  using Table = std::map<std::string, Entry>;
  // Erases a job; one running in the background is asked to stop and kept in
  // stopping_ until its thread has ended.
  Table::iterator drop(Table::iterator it);
  void start_background(Entry& e);
  int threads_ = 1;
  std::vector<std::shared_ptr<Background>> stopping_;
  void start_erased(const std::string& slot, std::unique_ptr<SlicedComputation> work, std::function<void()> done,
                    JobOptions opt);
  Clock now_;
  Table jobs_;
  uint64_t serial_ = 0;
  uint64_t ended_ = 0;
  StepRecord longest_;
  JobRecord longest_job_, slowest_done_;
};

}  // namespace cs::app
