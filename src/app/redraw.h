// Which animation frames the page draws, and how long each frame may step the
// jobs (main.cpp asks once a frame, before stepping them). Every frame draws,
// except while jobs run and nothing happens on the page: then a few frames a
// second are enough to show the progress. Without a GPU (software WebGL, as
// in headless tests and on some school machines) drawing a frame of this page
// costs 35-60 ms of a core whatever is on it, so the frames not drawn give
// that time to the work: in the single-threaded page they step the jobs for
// longer (kUndrawnJobBudgetMs), in the threaded page the workers get the
// core. Input, a finished job or a picture being captured draws at once.
// docs/speed.md, "Frames while the page computes".
#pragma once
#include <cstdint>

#include "app/jobs.h"

namespace cs::app {

class RedrawPacer {
 public:
  // The longest a quiet page waits between drawn frames while jobs run.
  static constexpr double kQuietFrameMs = 200.0;
  // Per frame for the jobs stepped on the page's thread: a drawn frame keeps
  // most of its time for drawing (near 60 frames a second with a GPU); a
  // frame not drawn is all jobs. A job's unit of work (about a million
  // floats) may overrun either by a few ms, which keeps both under 50 ms.
  static constexpr double kDrawnJobBudgetMs = 10.0;
  static constexpr double kUndrawnJobBudgetMs = 25.0;

  // Called at the start of a frame, before the jobs are stepped. now_ms: a
  // monotonic clock; input: the frame had input events; wanted: something
  // needs this frame drawn (e.g. a plot's picture is captured). A job that
  // ends in a frame not drawn is drawn by the next one.
  bool should_draw(double now_ms, bool input, bool wanted, const JobRunner& jobs);
  // The budget for this frame's jobs, given should_draw's answer.
  static double job_budget_ms(bool drawn) { return drawn ? kDrawnJobBudgetMs : kUndrawnJobBudgetMs; }

 private:
  bool drawn_ = false;
  double last_drawn_ms_ = 0;
  uint64_t ended_seen_ = 0;
};

}  // namespace cs::app
