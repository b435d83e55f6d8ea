// Sliced computations (sliced.h).
#include "core/sliced.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <limits>
#include <vector>
#include <mutex>
#include <thread>

#include "core/error.h"

#if defined(__EMSCRIPTEN_PTHREADS__)
#include <emscripten/threading.h>
#endif

namespace cs {

namespace {
#if defined(__EMSCRIPTEN__) && !defined(__EMSCRIPTEN_PTHREADS__)
int g_threads = 1;
#else
// Natively every core; in the page's threaded build navigator.hardwareConcurrency.
std::atomic<int> g_threads{int(std::max(1u, std::thread::hardware_concurrency()))};
#endif
}  // namespace

int analysis_threads() {
#if defined(__EMSCRIPTEN_PTHREADS__)
  // The page's main thread must never wait on workers (a browser's main thread
  // cannot block): what runs to the end there stays on it. Background jobs
  // pass their own thread count (app/jobs.h).
  if (emscripten_is_main_browser_thread()) return 1;
#endif
  return g_threads;
}

void set_analysis_threads(int n) {
#if defined(__EMSCRIPTEN__) && !defined(__EMSCRIPTEN_PTHREADS__)
  (void)n;
#else
  g_threads = std::clamp(n, 1, 1024);
#endif
}

void SlicedComputation::run_concurrently(int /*threads*/, RunControl* ctl) {
  // Stepped in slices of a few ms when someone watches, so a stop is seen soon.
  const double budget = ctl ? 20.0 : std::numeric_limits<double>::infinity();
  while (!(ctl && ctl->stopped())) {
    const bool finished = step(budget);
    if (ctl) ctl->report();
    if (finished) return;
  }
}

void WorkPlan::add_units_of(SlicedComputation* sub, size_t units, const std::string& stage, double cost_each) {
  auto* plan = dynamic_cast<WorkPlan*>(sub);
  if (plan && plan != this && units == plan->units() && plan->next_ == 0 && !plan->spliced_ && units > 0) {
    plan->spliced_ = true;
    fence();
    for (size_t i = 0; i < units; ++i) {
      const Unit& u = plan->units_[i];
      push(Unit{stage, cost_each, [plan, i] { plan->run_spliced(i); }, u.concurrent, u.continues && i > 0, u.fenced});
    }
    fence();
    return;
  }
  for (size_t i = 0; i < units; ++i) add(stage, cost_each, [sub] { sub->step(0.0); });
}

void WorkPlan::run_spliced(size_t i) {
  units_[i].work();
  units_[i].work = nullptr;  // release what it captured
  ++spliced_done_;
}

void WorkPlan::push(Unit u) {
  if (!(u.cost > 0)) u.cost = 1;
  u.fenced = u.fenced || fence_next_;
  fence_next_ = false;
  cost_total_ += u.cost;
  units_.push_back(std::move(u));
}

void WorkPlan::add(std::string stage, double cost, std::function<void()> work, bool concurrent) {
  push(Unit{std::move(stage), cost, std::move(work), concurrent, false, false});
}

void WorkPlan::add_to_strand(std::string stage, double cost, std::function<void()> work, bool new_strand) {
  const bool joins = !new_strand && !units_.empty() && units_.back().concurrent;
  push(Unit{std::move(stage), cost, std::move(work), new_strand || joins, joins, false});
}

void WorkPlan::run_concurrently(int threads, RunControl* ctl) {
  if (failed_) throw Error("sliced computation: stepped again after it failed");
  if (spliced_) throw Error("sliced computation: run by itself after another plan took its units");
  auto progressed = [ctl] {
    if (ctl) ctl->report();
  };
  while (next_ < units_.size()) {
    if (ctl && ctl->stopped()) {
      failed_ = true;  // spent: stopped part way
      return;
    }
#if defined(__EMSCRIPTEN__) && !defined(__EMSCRIPTEN_PTHREADS__)
    (void)threads;
    step(0.0);  // one thread in the page without workers
    progressed();
#else
    // The stretch [next_, end): consecutive concurrent units up to a fence;
    // its strands start at next_ and at each unit not continuing the one before.
    size_t end = next_;
    std::vector<size_t> starts;
    while (end < units_.size() && units_[end].concurrent && (end == next_ || !units_[end].fenced)) {
      if (end == next_ || !units_[end].continues) starts.push_back(end);
      ++end;
    }
    if (threads < 2 || starts.size() < 2) {
      step(0.0);  // one unit
      progressed();
      continue;
    }
    starts.push_back(end);
    stretch_cost_ = 0;
    for (size_t i = next_; i < end; ++i) stretch_cost_ += units_[i].cost;
    stretch_units_ = end - next_;
    stretch_done_ = 0;
    // Each thread takes the next strand not taken and runs its units in order.
    const size_t strands = starts.size() - 1;
    std::atomic<size_t> take{0};
    std::exception_ptr error;
    std::mutex error_mutex;
    auto worker = [&](bool caller) {
      for (size_t k; (k = take.fetch_add(1)) < strands;) {
        try {
          for (size_t i = starts[k]; i < starts[k + 1]; ++i) {
            if (ctl && ctl->stopped()) {
              take = strands;
              return;
            }
            units_[i].work();
            ++stretch_done_;
            if (caller) progressed();  // on the thread that called run_concurrently
          }
        } catch (...) {
          const std::lock_guard<std::mutex> lock(error_mutex);
          if (!error) error = std::current_exception();
          take = strands;
        }
      }
    };
    std::vector<std::thread> pool;
    const size_t n = std::min<size_t>(size_t(threads), strands);
    for (size_t t = 1; t < n; ++t) pool.emplace_back(worker, false);
    worker(true);
    for (std::thread& t : pool) t.join();
    stretch_units_ = 0;
    if (error) {
      failed_ = true;
      std::rethrow_exception(error);
    }
    if (ctl && ctl->stopped()) {
      failed_ = true;
      return;
    }
    for (size_t i = next_; i < end; ++i) {
      cost_done_ += units_[i].cost;
      units_[i].work = nullptr;
    }
    next_ = end;
    progressed();
#endif
  }
}

bool WorkPlan::step(double budget_ms) {
  if (failed_) throw Error("sliced computation: stepped again after it failed");
  if (spliced_) throw Error("sliced computation: stepped by itself after another plan took its units");
  const auto t0 = std::chrono::steady_clock::now();
  while (next_ < units_.size()) {
    Unit& u = units_[next_];
    try {
      u.work();
    } catch (...) {
      failed_ = true;
      throw;
    }
    cost_done_ += u.cost;
    u.work = nullptr;  // release what it captured
    ++next_;
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (ms >= budget_ms) break;
  }
  return done();
}

float WorkPlan::progress() const {
  if (done()) return 1.f;
  double c = cost_done_;
  if (stretch_units_ > 0)  // run_concurrently is in a stretch: its finished units, as a share of its cost
    c += stretch_cost_ * double(stretch_done_.load(std::memory_order_relaxed)) / double(stretch_units_);
  return cost_total_ > 0 ? float(c / cost_total_) : 0.f;
}

std::string WorkPlan::stage() const {
  if (done()) return "done";
  return units_[next_].stage;
}


void PlanChain::then_erased(std::string stage, double weight, std::function<std::unique_ptr<SlicedComputation>()> make,
                            std::function<void(SlicedComputation&)> finish) {
  if (!(weight > 0)) weight = 1;
  weight_total_ += weight;
  stages_.push_back(Stage{std::move(stage), weight, std::move(make), std::move(finish)});
}

bool PlanChain::ensure_current() {
  while (!current_ && next_ < stages_.size()) {
    current_ = stages_[next_].make();
    if (!current_) {  // nothing to do in this stage
      weight_done_ += stages_[next_].weight;
      stages_[next_] = Stage{};
      ++next_;
    }
  }
  return current_ != nullptr;
}

void PlanChain::finish_current() {
  Stage& s = stages_[next_];
  s.finish(*current_);
  current_.reset();
  weight_done_ += s.weight;
  s = Stage{};  // release what make and finish captured
  ++next_;
}

bool PlanChain::step(double budget_ms) {
  if (failed_) throw Error("sliced computation: stepped again after it failed");
  const auto t0 = std::chrono::steady_clock::now();
  try {
    while (ensure_current()) {
      const double used = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      // The first call always makes progress (step(0) runs one unit).
      if (current_->step(std::max(0.0, budget_ms - used))) finish_current();
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (ms >= budget_ms) break;
    }
    ensure_current();  // a stage with nothing to do after the last one run counts as done now
  } catch (...) {
    failed_ = true;
    throw;
  }
  return done();
}

void PlanChain::run_concurrently(int threads, RunControl* ctl) {
  if (failed_) throw Error("sliced computation: stepped again after it failed");
  try {
    while (ensure_current()) {
      current_->run_concurrently(threads, ctl);
      if (ctl && ctl->stopped() && !current_->done()) {
        failed_ = true;  // spent: stopped part way
        return;
      }
      finish_current();
      if (ctl) ctl->report();
    }
  } catch (...) {
    failed_ = true;
    throw;
  }
}

float PlanChain::progress() const {
  if (done()) return 1.f;
  double w = weight_done_;
  if (current_) w += stages_[next_].weight * double(current_->progress());
  return weight_total_ > 0 ? float(w / weight_total_) : 0.f;
}

std::string PlanChain::stage() const {
  if (done()) return "done";
  if (current_) {
    const std::string inner = current_->stage();
    return inner.empty() || inner == "done" ? stages_[next_].name : stages_[next_].name + ": " + inner;
  }
  return stages_[next_].name;
}

}  // namespace cs
