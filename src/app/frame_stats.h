// How long the page's frames take in C++ (main.cpp measures each frame()),
// for the benchmarks and automation (bridge: cs_frame_stats_json). The
// project's rule: no frame blocks the page for more than about 50 ms.
//
// A frame's time splits into the work (events, jobs, building the UI) and
// the WebGL calls that draw it (ImGui's OpenGL backend); the latter depend on
// the browser's GPU process (in headless tests: SwiftShader, a CPU renderer
// competing for the same cores), so both are reported.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace cs::app {

class FrameStats {
 public:
  // One drawn frame: its whole C++ time, the part spent stepping jobs
  // (Session::tick) and the part spent in WebGL calls.
  void record(double frame_ms, double jobs_ms, double gl_ms);
  // An animation frame not drawn (RedrawPacer: jobs run, the page is quiet),
  // which may have stepped the jobs for longer: counted in frames(), the
  // times and the maxima like a drawn one, and in skipped().
  void record_undrawn(double frame_ms, double jobs_ms) {
    record(frame_ms, jobs_ms, 0.0);
    ++skipped_;
  }
  // Starts a new measurement window (the max and percentiles cover frames since).
  void reset();

  uint64_t frames() const { return frames_; }    // animation frames in the window, drawn or not
  uint64_t skipped() const { return skipped_; }  // of those, the ones not drawn
  uint64_t drawn() const { return frames_ - skipped_; }
  double max_frame_ms() const { return max_frame_; }
  double max_work_ms() const { return max_work_; }  // frame minus WebGL calls
  double max_jobs_ms() const { return max_jobs_; }
  double max_gl_ms() const { return max_gl_; }
  double total_frame_ms() const { return total_frame_; }
  // p in [0, 100] over the window's frame (or work) times (the last kKeep frames of it).
  double percentile(double p) const { return percentile_of(frame_, p); }
  double work_percentile(double p) const { return percentile_of(work_, p); }
  uint64_t over_50ms() const { return over_50_; }  // frames in the window that took over 50 ms

  // performance.now() (ms since navigation start) when the first frame was drawn; 0 before.
  double first_frame_at = 0;

  static constexpr size_t kKeep = 4096;

 private:
  static double percentile_of(const std::vector<float>& ring, double p);
  std::vector<float> frame_, work_;  // ring buffers
  size_t next_ = 0;
  uint64_t frames_ = 0, over_50_ = 0, skipped_ = 0;
  double max_frame_ = 0, max_work_ = 0, max_jobs_ = 0, max_gl_ = 0, total_frame_ = 0;
};

FrameStats& frame_stats();

}  // namespace cs::app
