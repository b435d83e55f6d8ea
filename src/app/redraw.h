// Which animation frames the page draws (main.cpp asks once a frame, after
// stepping the jobs). Every frame draws, except in the threaded page while
// all the work runs on worker threads and nothing happens on the page: then
// a few frames a second are enough to show the progress, and the core that
// drawing takes (most of one without a GPU: software WebGL) goes to the
// workers. Input, a finished job or a picture being captured draws at once.
// docs/speed.md, "Threads in the page".
#pragma once
#include <cstdint>

#include "app/jobs.h"

namespace cs::app {

class RedrawPacer {
 public:
  // The longest a quiet page waits between frames while workers compute.
  static constexpr double kBackgroundFrameMs = 200.0;

  // now_ms: a monotonic clock; input: the frame had input events; wanted:
  // something needs this frame drawn (e.g. a plot's picture is captured).
  bool should_draw(double now_ms, bool input, bool wanted, const JobRunner& jobs);

 private:
  bool drawn_ = false;
  double last_drawn_ms_ = 0;
  uint64_t ended_seen_ = 0;
};

}  // namespace cs::app
