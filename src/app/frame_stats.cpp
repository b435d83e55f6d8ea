// Frame timing (frame_stats.h).
#include "app/frame_stats.h"

#include <algorithm>
#include <cmath>

namespace cs::app {

FrameStats& frame_stats() {
  static FrameStats s;
  return s;
}

void FrameStats::record(double frame_ms, double jobs_ms) {
  if (recent_.size() < kKeep) {
    recent_.push_back(float(frame_ms));
  } else {
    recent_[next_] = float(frame_ms);
    next_ = (next_ + 1) % kKeep;
  }
  ++frames_;
  if (frame_ms > 50.0) ++over_50_;
  max_frame_ = std::max(max_frame_, frame_ms);
  max_jobs_ = std::max(max_jobs_, jobs_ms);
  last_frame_ = frame_ms;
  total_frame_ += frame_ms;
}

void FrameStats::reset() {
  recent_.clear();
  next_ = 0;
  frames_ = over_50_ = 0;
  max_frame_ = max_jobs_ = last_frame_ = total_frame_ = 0;
}

double FrameStats::percentile(double p) const {
  if (recent_.empty()) return 0;
  std::vector<float> v = recent_;
  std::sort(v.begin(), v.end());
  // Nearest rank.
  const double rank = std::ceil(std::clamp(p, 0.0, 100.0) / 100.0 * double(v.size()));
  const size_t i = size_t(std::max(1.0, rank)) - 1;
  return v[std::min(i, v.size() - 1)];
}

}  // namespace cs::app
