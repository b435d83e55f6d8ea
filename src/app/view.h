// A view of the page: one tab, one file. Adding a view is one new file
// src/app/<name>_view.cpp with a class derived from View (or SelectionView)
// and one line, CS_REGISTER_VIEW(ClassName, order), in that file: the tabs,
// the state JSON the tests read ("views": {id: {"selection", "results"}}) and
// everything else that lists views loop over the registry.
//
// A view owns its selection (a serialisable struct: it is what a URL or an
// export would carry), its results (Result<Key, Value>, result.h, with the one
// freshness rule) and its widgets' state; the Session (session.h) owns the
// files, models, banner and jobs. draw() exists only in the page build (the
// macro CS_APP_DRAW, set by src/app/page.cmake): the rest of a view is built
// natively and tested with GoogleTest.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "app/export.h"
#include "app/json.h"
#include "app/session.h"

namespace cs::app {

class View {
 public:
  virtual ~View() = default;
  virtual const char* id() const = 0;     // key in the state JSON, prefix of its job slots
  virtual const char* title() const = 0;  // tab label
  // The selection as JSON, and back: set_selection_json replaces it (clamped
  // to the shown model) and restarts the view's jobs; throws cs::Error naming
  // the field on bad input.
  virtual Json selection_json() const = 0;
  virtual void set_selection_json(Session& s, const Json& j) = 0;
  // Puts back a selection this view gave (selection_json) or its fresh one,
  // without checks or restarting anything (App::record_baselines).
  virtual void replace_selection_quietly(const Json& j) = 0;
  // The shown model changed: reset (NewModel) or clamp (Weights) the
  // selection, drop results of the old model, restart jobs.
  virtual void on_model(Session& s, ModelChange change) = 0;
  // The results the view holds and draws, with their freshness (what the
  // browser tests read).
  virtual Json state_json(const Session& s) const = 0;
  // What the view shows, as tables to download (app/export.h): built from
  // the results it holds and draws, in the order and with the values drawn;
  // empty while nothing is computed.
  virtual std::vector<ExportTable> tables(const Session&) const { return {}; }
  // What the view shows for the shown model with no link, when a computation
  // chose part of it after the model loaded (the bigram view's next token:
  // the top one, once known); nullopt when its selection right after the load
  // is that (App::baseline_selection, app/link.h).
  virtual std::optional<Json> computed_default() const { return std::nullopt; }
  // Top-level keys of cs_state_json a view kept from before the registry
  // (the bigram view's "bigram"); none by default.
  virtual void legacy_state_json(const Session&, Json& /*root*/) const {}
#ifdef CS_APP_DRAW
  // ImGui: the view's tab contents.
  virtual void draw(Session& s) = 0;
#endif

  // ---- work that waits until the tab is shown ----
  // A view with heavy work (full-vocabulary scans) calls defer_until_shown()
  // in on_model instead of starting it, so nothing runs behind another tab.
  // The page calls shown() each frame the tab is drawn (App::show natively),
  // which runs start_deferred() once.
  void shown(Session& s) {
    if (!std::exchange(deferred_, false)) return;
    try {
      start_deferred(s);
    } catch (...) {  // e.g. out of memory starting the job: tried again as after a failed job
      failed_ = true;
      throw;
    }
  }
  bool deferred() const { return deferred_; }
  // After a job of this view failed (job_failed): its work starts again the
  // next time the tab is shown. The page calls this for each tab not drawn in
  // a frame, and for the open tab when the banner is dismissed; so a view
  // whose work ran out of memory is not left empty once memory is back.
  void retry_failed_work() {
    if (std::exchange(failed_, false)) deferred_ = true;
  }
  // While held, work a selection would start waits for the tab instead and
  // the view's running jobs stop (App's links: the tabs a link does not open
  // get their selections without starting their scans behind the open one).
  void hold_work(bool held) { held_ = held; }

 protected:
  // The first thing a view's function that starts its work does: false while
  // held (the work then waits for the tab, and the view's jobs, slots
  // "<id>.*", stop); true otherwise, and nothing waits any more.
  bool begin_work(Session& s) {
    if (held_) {
      deferred_ = true;
      s.jobs().cancel_prefix(std::string(id()) + ".");
      return false;
    }
    deferred_ = false;
    return true;
  }
  void defer_until_shown() { deferred_ = true; }
  // A job's `failed` handler (JobOptions::failed): the banner says why, and
  // the work is started again when the tab is next shown (retry_failed_work).
  std::function<void(const std::string&)> job_failed(Session& s) {
    return [this, &s](const std::string& message) {
      s.set_error(message);
      failed_ = true;
    };
  }
  // What a deferred model change starts (called once by shown()).
  virtual void start_deferred(Session&) {}

 private:
  bool deferred_ = false;
  bool failed_ = false;  // a job failed since the work last started
  bool held_ = false;
};

// A view whose selection is a struct Sel with
//   Json to_json() const;  static Sel from_json(const Json&);  (throws cs::Error)
// apply_selection() is called after the selection was replaced from JSON.
template <class Sel>
class SelectionView : public View {
 public:
  using Selection = Sel;
  const Sel& selection() const { return sel_; }
  Json selection_json() const override { return sel_.to_json(); }
  void replace_selection_quietly(const Json& j) override { sel_ = Sel::from_json(j); }
  // A selection refused (by from_json, or by apply_selection's checks against
  // the model, which come before it starts anything) leaves the old one.
  void set_selection_json(Session& s, const Json& j) override {
    Sel previous = std::exchange(sel_, Sel::from_json(j));
    try {
      apply_selection(s);
    } catch (...) {
      sel_ = std::move(previous);
      throw;
    }
  }

 protected:
  virtual void apply_selection(Session& s) = 0;
  Sel sel_;
};

// ---- registry ------------------------------------------------------------------
struct ViewRegistration {
  int order = 0;  // tab position (then id)
  std::string id;
  std::function<std::unique_ptr<View>()> make;
};
// Adds a view kind; returns true (for the static registrar). A second
// registration of the same id replaces the first.
bool register_view(int order, std::function<std::unique_ptr<View>()> make);
// Every registered view kind, by order then id.
std::vector<ViewRegistration> registered_views();

#define CS_VIEW_CONCAT_(a, b) a##b
#define CS_VIEW_CONCAT(a, b) CS_VIEW_CONCAT_(a, b)
// One line in the view's own file: CS_REGISTER_VIEW(BigramView, 0).
// (The app sources are linked as objects, never from a static library, so
// this registrar is kept.)
#define CS_REGISTER_VIEW(Class, order)                                                                       \
  [[maybe_unused]] static const bool CS_VIEW_CONCAT(cs_view_registered_, __LINE__) =                        \
      ::cs::app::register_view(order, [] { return std::unique_ptr<::cs::app::View>(std::make_unique<Class>()); })

}  // namespace cs::app
