// The page's job runner (jobs.h).
#include "app/jobs.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <new>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <utility>

#include "core/error.h"

namespace cs::app {

namespace {

double steady_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Runs f; "" if it returned, else the one-line reason the page shows.
template <class F>
std::string run_caught(const std::string& label, F&& f) {
  try {
    f();
  } catch (const Error& ex) {
    return ex.what();
  } catch (const std::exception& ex) {
    return failure_reason(label, ex);
  }
  return "";
}

}  // namespace

// What a background job's thread shares with the runner. The thread holds it
// (and so the work and what the work reads) until it ends.
struct JobRunner::Background {
  std::unique_ptr<SlicedComputation> work;
  std::shared_ptr<const void> keep;
  RunControl ctl;
  std::atomic<float> progress{0.f};
  std::atomic<bool> finished{false};  // set last, after error
  std::mutex m;
  std::string stage, error;  // under m
};

JobRunner::JobRunner() : now_(steady_ms) {}
JobRunner::JobRunner(Clock clock) : now_(clock ? std::move(clock) : Clock(steady_ms)) {}

JobRunner::~JobRunner() {
  cancel_all();
  wait_for_stopped();
}

void JobRunner::wait_for_stopped() {
  for (const auto& bg : stopping_)
    while (!bg->finished.load(std::memory_order_acquire)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  stopping_.clear();
}

JobRunner::Table::iterator JobRunner::drop(Table::iterator it) {
  const auto& bg = it->second.bg;
  if (bg && !bg->finished.load(std::memory_order_acquire)) {
    bg->ctl.stop = true;
    stopping_.push_back(bg);
  }
  return jobs_.erase(it);
}

void JobRunner::start_background(Entry& e) {
  auto bg = std::make_shared<Background>();
  bg->work = std::move(e.work);
  bg->keep = e.opt.keep;
  bg->stage = e.info.stage;
  Background* b = bg.get();
  bg->ctl.progressed = [b] {  // on the job's thread
    b->progress.store(b->work->progress(), std::memory_order_relaxed);
    std::string stage = b->work->stage();
    const std::lock_guard<std::mutex> lock(b->m);
    b->stage = std::move(stage);
  };
  e.bg = bg;
  std::thread([bg, threads = threads_, label = e.info.label] {
    std::string error = run_caught(label, [&] { bg->work->run_concurrently(threads, &bg->ctl); });
    if (bg->ctl.stopped()) {  // dropped: nobody reads it, free it here
      bg->work.reset();
      bg->keep.reset();
    }
    {
      const std::lock_guard<std::mutex> lock(bg->m);
      bg->error = std::move(error);
    }
    bg->finished.store(true, std::memory_order_release);
  }).detach();
}

void JobRunner::start_erased(const std::string& slot, std::unique_ptr<SlicedComputation> work,
                             std::function<void()> done, JobOptions opt) {
  if (auto it = jobs_.find(slot); it != jobs_.end()) drop(it);
  if (!work) return;
  Entry e;
  e.info.slot = slot;
  e.info.label = opt.label;
  e.info.stage = work->stage();
  e.work = std::move(work);
  e.done = std::move(done);
  e.opt = std::move(opt);
  e.serial = ++serial_;
  Entry& placed = jobs_.emplace(slot, std::move(e)).first->second;
  if (threads_ >= 2 && !placed.opt.foreground) start_background(placed);
}

void JobRunner::cancel(const std::string& slot) {
  if (auto it = jobs_.find(slot); it != jobs_.end()) drop(it);
}

void JobRunner::cancel_all() {
  for (auto it = jobs_.begin(); it != jobs_.end();) it = drop(it);
}

void JobRunner::cancel_prefix(const std::string& prefix) {
  for (auto it = jobs_.lower_bound(prefix); it != jobs_.end() && it->first.rfind(prefix, 0) == 0;) it = drop(it);
}

const JobRunner::Info* JobRunner::info(const std::string& slot) const {
  auto it = jobs_.find(slot);
  return it == jobs_.end() ? nullptr : &it->second.info;
}

std::vector<JobRunner::Info> JobRunner::list() const {
  std::vector<std::pair<std::pair<int, uint64_t>, Info>> v;
  for (const auto& [slot, e] : jobs_) v.push_back({{e.opt.priority, e.serial}, e.info});
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Info> out;
  for (auto& x : v) out.push_back(std::move(x.second));
  return out;
}

bool JobRunner::only_background() const {
  return !jobs_.empty() && std::all_of(jobs_.begin(), jobs_.end(), [](const auto& j) { return j.second.bg != nullptr; });
}

void JobRunner::tick(double budget_ms) {
  stopping_.erase(std::remove_if(stopping_.begin(), stopping_.end(),
                                 [](const auto& bg) { return bg->finished.load(std::memory_order_acquire); }),
                  stopping_.end());
  // This tick's jobs: (priority, serial, slot). The serial tells a job from a
  // newer one a callback may have put in the same slot meanwhile.
  std::vector<std::tuple<int, uint64_t, std::string>> order;
  for (const auto& [slot, e] : jobs_) order.emplace_back(e.opt.priority, e.serial, slot);
  std::sort(order.begin(), order.end());
  const double t0 = now_();
  for (const auto& [priority, serial, slot] : order) {
    auto it = jobs_.find(slot);
    if (it == jobs_.end() || it->second.serial != serial) continue;
    Entry& e = it->second;
    bool finished = false;
    std::string error;
    if (e.bg) {  // running on its own thread: collect its progress, or its end
      Background& bg = *e.bg;
      finished = bg.finished.load(std::memory_order_acquire);
      ++e.info.frames;
      e.info.progress = bg.progress.load(std::memory_order_relaxed);
      {
        const std::lock_guard<std::mutex> lock(bg.m);
        e.info.stage = bg.stage;
        if (finished) error = bg.error;
      }
      if (!finished) continue;
      if (error.empty()) {  // done on its thread: read it on this one
        e.info.progress = bg.work->progress();
        e.info.stage = bg.work->stage();
      }
    } else {
      const double start = now_();
      // What is left of the frame's budget (0 once spent: one unit).
      error = run_caught(e.info.label, [&] { finished = e.work->step(std::max(0.0, budget_ms - (start - t0))); });
      const double took = now_() - start;
      if (took > longest_.ms) longest_ = StepRecord{took, e.info.label, e.info.stage};
      e.info.ms += took;
      ++e.info.frames;
      if (error.empty()) {
        e.info.progress = e.work->progress();
        e.info.stage = e.work->stage();
      }
    }
    if (!finished && error.empty()) continue;
    // Out of the table before the callback, which may start a job in this slot.
    Entry ended = std::move(e);
    jobs_.erase(it);
    ++ended_;
    if (error.empty() && ended.done) {
      // The callback turns the result into what the view shows: it can run out
      // of memory too, which fails the job like a step would.
      const double d0 = now_();
      error = run_caught(ended.info.label, ended.done);
      const JobRecord r{ended.info.ms, now_() - d0, ended.info.frames, ended.info.label};
      if (r.ms > longest_job_.ms) longest_job_ = r;
      if (r.done_ms > slowest_done_.done_ms) slowest_done_ = r;
    }
    if (!error.empty() && ended.opt.failed) ended.opt.failed(error);
  }
}

}  // namespace cs::app
