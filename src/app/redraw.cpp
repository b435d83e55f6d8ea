// Frame pacing while jobs run (redraw.h).
#include "app/redraw.h"

namespace cs::app {

bool RedrawPacer::should_draw(double now_ms, bool input, bool wanted, const JobRunner& jobs) {
  const bool quiet = !input && !wanted && !jobs.idle() && jobs.ended() == ended_seen_;
  if (quiet && drawn_ && now_ms - last_drawn_ms_ < kQuietFrameMs) return false;
  drawn_ = true;
  last_drawn_ms_ = now_ms;
  ended_seen_ = jobs.ended();
  return true;
}

}  // namespace cs::app
