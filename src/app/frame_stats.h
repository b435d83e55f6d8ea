// How long the page's frames take in C++ (main.cpp measures each frame()),
// for the benchmarks and automation (bridge: cs_frame_stats_json). The
// project's rule: no frame blocks the page for more than about 50 ms.
#pragma once
#include <cstdint>
#include <vector>

namespace cs::app {

class FrameStats {
 public:
  // One frame: its whole C++ time and the part spent stepping jobs (AppState::tick).
  void record(double frame_ms, double jobs_ms);
  // Starts a new measurement window (the max and percentiles cover frames since).
  void reset();

  uint64_t frames() const { return frames_; }  // in the window
  double max_frame_ms() const { return max_frame_; }
  double max_jobs_ms() const { return max_jobs_; }
  double last_frame_ms() const { return last_frame_; }
  double total_frame_ms() const { return total_frame_; }
  // p in [0, 100] over the window's frame times (the last kKeep frames of it).
  double percentile(double p) const;
  uint64_t over_50ms() const { return over_50_; }  // frames in the window that took over 50 ms

  // performance.now() (ms since navigation start) when the first frame was drawn; 0 before.
  double first_frame_at = 0;

  static constexpr size_t kKeep = 4096;

 private:
  std::vector<float> recent_;  // ring buffer of frame times
  size_t next_ = 0;
  uint64_t frames_ = 0, over_50_ = 0;
  double max_frame_ = 0, max_jobs_ = 0, last_frame_ = 0, total_frame_ = 0;
};

FrameStats& frame_stats();

}  // namespace cs::app
