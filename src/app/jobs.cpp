// The page's job runner (jobs.h).
#include "app/jobs.h"

#include <algorithm>
#include <chrono>
#include <new>
#include <stdexcept>
#include <tuple>
#include <utility>

#include "core/error.h"

namespace cs::app {

namespace {

double steady_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

JobRunner::JobRunner() : now_(steady_ms) {}
JobRunner::JobRunner(Clock clock) : now_(clock ? std::move(clock) : Clock(steady_ms)) {}

void JobRunner::start_erased(const std::string& slot, std::unique_ptr<SlicedComputation> work,
                             std::function<void()> done, JobOptions opt) {
  jobs_.erase(slot);
  if (!work) return;
  Entry e;
  e.info.slot = slot;
  e.info.label = opt.label;
  e.info.stage = work->stage();
  e.work = std::move(work);
  e.done = std::move(done);
  e.opt = std::move(opt);
  e.serial = ++serial_;
  jobs_.emplace(slot, std::move(e));
}

void JobRunner::cancel(const std::string& slot) { jobs_.erase(slot); }

void JobRunner::cancel_all() { jobs_.clear(); }

void JobRunner::cancel_prefix(const std::string& prefix) {
  for (auto it = jobs_.lower_bound(prefix); it != jobs_.end() && it->first.rfind(prefix, 0) == 0;) it = jobs_.erase(it);
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

void JobRunner::tick(double budget_ms) {
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
    const double start = now_();
    bool finished = false;
    std::string error;
    try {
      // What is left of the frame's budget (0 once spent: one unit).
      finished = e.work->step(std::max(0.0, budget_ms - (start - t0)));
    } catch (const Error& ex) {
      error = ex.what();
    } catch (const std::bad_alloc&) {
      error = "not enough browser memory for " + e.info.label;
    } catch (const std::exception& ex) {
      error = e.info.label + ": " + ex.what();
    }
    const double took = now_() - start;
    if (took > longest_.ms) longest_ = StepRecord{took, e.info.label, e.info.stage};
    e.info.ms += took;
    ++e.info.frames;
    if (error.empty()) {
      e.info.progress = e.work->progress();
      e.info.stage = e.work->stage();
    }
    if (!finished && error.empty()) continue;
    // Out of the table before the callback, which may start a job in this slot.
    Entry ended = std::move(e);
    jobs_.erase(it);
    if (!error.empty()) {
      if (ended.opt.failed) ended.opt.failed(error);
    } else if (ended.done) {
      const double d0 = now_();
      ended.done();
      const JobRecord r{ended.info.ms, now_() - d0, ended.info.frames, ended.info.label};
      if (r.ms > longest_job_.ms) longest_job_ = r;
      if (r.done_ms > slowest_done_.done_ms) slowest_done_ = r;
    }
  }
}

}  // namespace cs::app
