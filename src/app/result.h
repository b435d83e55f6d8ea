// A view's result and the one freshness rule every view uses for it.
//
// A result is computed by a job for one input (the view's selection, e.g. a
// token id) on one shown model (Session::generation()). While the view wants
// another input, or the model changed, the result is STALE: it belongs to
// something else and is drawn faded (or not at all). While a job in the
// result's slot runs, it is PENDING: a newer result is on its way. A result
// that is neither is current. No ImGui here.
#pragma once
#include <cstdint>
#include <string>
#include <utility>

#include "app/jobs.h"
#include "app/json.h"

namespace cs::app {

struct Freshness {
  bool has = false;      // a result is held
  bool stale = false;    // it belongs to another input or model than the one wanted now
  bool pending = false;  // a job computes a newer one
  int pending_frames = 0;  // frames that job has run (0: started this frame)
  // Drawn faded: while a newer computation has taken more than a frame, or
  // when the result belongs to another input and none is coming (cancelled).
  // A job done within its first frame (most queries) shows no flicker.
  bool faded() const {
    if (!has) return false;
    return pending ? pending_frames > 0 : stale;
  }
  // Held, for the wanted input and model, and nothing newer coming: nothing to recompute.
  bool current() const { return has && !stale && !pending; }
  // "none" | "current" | "stale" | "pending" (stale wins over pending).
  const char* label() const {
    if (!has) return pending ? "pending" : "none";
    if (stale) return "stale";
    return pending ? "pending" : "current";
  }
};

// {"freshness": label(), "stale", "pending"}: how every view reports a result's freshness.
inline Json freshness_json(const Freshness& f) {
  return Json{{"freshness", f.label()}, {"stale", f.stale}, {"pending", f.pending}};
}

template <class Key, class Value>
class Result {
 public:
  explicit Result(std::string slot) : slot_(std::move(slot)) {}

  const std::string& slot() const { return slot_; }  // the job slot that computes it
  bool has() const { return has_; }
  const Key& key() const { return key_; }             // the input it belongs to (once has())
  uint64_t generation() const { return generation_; } // the shown model it belongs to
  const Value& value() const { return value_; }

  void set(Key key, uint64_t generation, Value value) {
    key_ = std::move(key);
    generation_ = generation;
    value_ = std::move(value);
    has_ = true;
  }
  // True when it belongs to `wanted` on model `generation`, whether or not a
  // job runs in its slot (freshness() adds that).
  bool holds(const Key& wanted, uint64_t generation) const {
    return has_ && generation_ == generation && key_ == wanted;
  }
  void clear() {
    has_ = false;
    key_ = Key{};
    value_ = Value{};
  }

  // The rule: stale when it belongs to another input or model than `wanted`
  // on model `generation`; pending while a job runs in its slot of `jobs`.
  Freshness freshness(const Key& wanted, uint64_t generation, const JobRunner& jobs) const {
    Freshness f;
    f.has = has_;
    f.stale = has_ && !holds(wanted, generation);
    if (const JobRunner::Info* j = jobs.info(slot_)) {
      f.pending = true;
      f.pending_frames = j->frames;
    }
    return f;
  }

 private:
  std::string slot_;
  bool has_ = false;
  Key key_{};
  uint64_t generation_ = 0;
  Value value_{};
};

}  // namespace cs::app
