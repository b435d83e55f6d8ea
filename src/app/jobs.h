// The page's long computations (core/sliced.h: a model load, a reverse bigram
// lookup, later full-vocabulary scans), stepped from the main loop a slice per
// frame so that no frame blocks the page for long. Each job sits in a named
// slot; starting a job in a slot drops the one there (that is how a changed
// selection cancels a computation that is no longer wanted). Views read the
// progress of a slot from here. No ImGui here.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/sliced.h"

namespace cs::app {

class JobRunner {
 public:
  struct Job {
    std::string label;                              // what the views say, e.g. "reverse lookup"
    std::unique_ptr<SlicedComputation> work;
    std::function<void(SlicedComputation&)> done;   // once the work has finished; may start jobs
    std::function<void(const std::string&)> failed; // the work threw (cs::Error, out of memory); may start jobs
    std::shared_ptr<const void> keep;               // what the work reads (e.g. the model), kept alive until it ends
    int priority = 0;                               // lower runs first in a frame
  };
  struct Info {
    std::string slot, label, stage;
    float progress = 0.f;
    int frames = 0;   // frames it has been stepped in
    double ms = 0;    // time spent in its steps
  };

  // Starts `job` in `slot`, dropping a job already there.
  void start(const std::string& slot, Job job);
  void cancel(const std::string& slot);
  void cancel_all();
  bool running(const std::string& slot) const { return jobs_.count(slot) != 0; }
  bool idle() const { return jobs_.empty(); }
  // The slot's job, or nullptr.
  const Info* info(const std::string& slot) const;
  std::vector<Info> list() const;  // by priority

  // The longest single step since reset_longest_step() (for the benchmarks:
  // a step longer than the budget is one unit of work that is too big). stage
  // is what the job was at when the step began.
  struct StepRecord {
    double ms = 0;
    std::string label, stage;
  };
  const StepRecord& longest_step() const { return longest_; }
  void reset_longest_step() { longest_ = StepRecord{}; }

  // Steps the jobs by priority (then age) until budget_ms is spent; each job
  // makes at least one unit of progress per tick, so none starves. Jobs
  // started by callbacks during a tick first run in the next one.
  void tick(double budget_ms);

 private:
  struct Entry {
    Job job;
    Info info;
    uint64_t serial = 0;
  };
  std::map<std::string, Entry> jobs_;
  uint64_t serial_ = 0;
  StepRecord longest_;
};

}  // namespace cs::app
