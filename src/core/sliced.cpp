// Sliced computations (sliced.h).
#include "core/sliced.h"

#include <chrono>
#include <limits>

#include "core/error.h"

namespace cs {

void SlicedComputation::run() {
  while (!step(std::numeric_limits<double>::infinity())) {
  }
}

void WorkPlan::add_units_of(SlicedComputation* sub, size_t units, const std::string& stage, double cost_each) {
  for (size_t i = 0; i < units; ++i) add(stage, cost_each, [sub] { sub->step(0.0); });
}

void WorkPlan::add(std::string stage, double cost, std::function<void()> work) {
  if (!(cost > 0)) cost = 1;
  cost_total_ += cost;
  units_.push_back(Unit{std::move(stage), cost, std::move(work)});
}

bool WorkPlan::step(double budget_ms) {
  if (failed_) throw Error("sliced computation: stepped again after it failed");
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
  return cost_total_ > 0 ? float(cost_done_ / cost_total_) : 0.f;
}

std::string WorkPlan::stage() const {
  if (done()) return "done";
  return units_[next_].stage;
}

}  // namespace cs
