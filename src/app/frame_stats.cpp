// Frame timing (frame_stats.h).
#include "app/frame_stats.h"

#include <algorithm>
#include <cmath>

namespace cs::app {

FrameStats& frame_stats() {
  static FrameStats s;
  return s;
}

void FrameStats::record(double frame_ms, double jobs_ms, double gl_ms) {
  const double work_ms = frame_ms - gl_ms;
  if (frame_.size() < kKeep) {
    frame_.push_back(float(frame_ms));
    work_.push_back(float(work_ms));
  } else {
    frame_[next_] = float(frame_ms);
    work_[next_] = float(work_ms);
    next_ = (next_ + 1) % kKeep;
  }
  ++frames_;
  if (frame_ms > 50.0) ++over_50_;
  max_frame_ = std::max(max_frame_, frame_ms);
  max_work_ = std::max(max_work_, work_ms);
  max_jobs_ = std::max(max_jobs_, jobs_ms);
  max_gl_ = std::max(max_gl_, gl_ms);
  total_frame_ += frame_ms;
}

void FrameStats::reset() {
  frame_.clear();
  work_.clear();
  next_ = 0;
  frames_ = over_50_ = skipped_ = 0;
  max_frame_ = max_work_ = max_jobs_ = max_gl_ = total_frame_ = 0;
}

double FrameStats::percentile_of(const std::vector<float>& ring, double p) {
  if (ring.empty()) return 0;
  std::vector<float> v = ring;
  std::sort(v.begin(), v.end());
  // Nearest rank.
  const double rank = std::ceil(std::clamp(p, 0.0, 100.0) / 100.0 * double(v.size()));
  const size_t i = size_t(std::max(1.0, rank)) - 1;
  return v[std::min(i, v.size() - 1)];
}

}  // namespace cs::app
