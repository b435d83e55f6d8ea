// The page as a whole: one Session and one instance of every registered view
// (view.h). The tabs, the views' part of the state JSON and the model-change
// notifications all loop over the views. No ImGui here (built natively too).
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "app/analysis_report.h"
#include "app/json.h"
#include "app/link.h"
#include "app/session.h"
#include "app/view.h"

namespace cs::app {

class App {
 public:
  App();  // the session, and the registered views in tab order
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  Session& session() { return session_; }
  const Session& session() const { return session_; }
  const std::vector<std::unique_ptr<View>>& views() const { return views_; }
  // The model panel's whole-model report (analysis_report.h).
  AnalysisReport& analysis_report() { return analysis_report_; }
  const AnalysisReport& analysis_report() const { return analysis_report_; }
  View* find(std::string_view id) const;
  // The view of a given class, or nullptr.
  template <class V>
  V* view() const {
    for (const auto& v : views_)
      if (auto* p = dynamic_cast<V*>(v.get())) return p;
    return nullptr;
  }

  struct Tab {
    std::string id, title;
  };
  std::vector<Tab> tabs() const;  // in order
  // {id: {"selection": ..., "results": ...}} for every view.
  Json views_json() const;
  // Each view's legacy top-level keys (View::legacy_state_json) added to root.
  void legacy_state_json(Json& root) const;
  // Sets views' selections from {id: selection} (views not named keep theirs);
  // throws cs::Error naming the view on an unknown id or a bad field.
  void set_selections(const Json& selections);

  // Tabs: a view asks for another to be shown (e.g. the Heads grid opens a
  // head); the tab bar selects it in the next frame and records which tab it
  // drew ("open_view" in the state JSON).
  void request_tab(std::string id) { requested_tab_ = std::move(id); }
  std::string take_requested_tab() { return std::exchange(requested_tab_, std::string()); }
  void set_open_view(std::string id) { open_view_ = std::move(id); }
  // What the tab bar does for the tab it draws, without drawing (native
  // tests): records it as open and runs the view's deferred work (View::shown).
  void show(View& v) {
    set_open_view(v.id());
    v.shown(session_);
  }
  const std::string& open_view() const { return open_view_; }

  // ---- links (link.h) ----
  // What a fresh page shows in a view for the shown model with no link (its
  // selection right after the model loaded, with the fields it kept from an
  // earlier model at their fresh defaults, and any View::computed_default):
  // what a link leaves out.
  Json baseline_selection(std::string_view id) const;
  // Applies a link once its model is shown (at once when it is, or when it
  // names none); its problems (Link::problems) and those of applying it go to
  // the session's error banner then. A newer link replaces one still waiting.
  void open_link(Link link);
  // The model a link waits for ("" when none waits), e.g. "file:model.safetensors".
  const std::string& link_waiting_for() const;

 private:
  void record_baselines();
  void apply_pending_link();
  void report(const std::vector<std::string>& problems);  // one banner line, "; " between them

  Session session_;
  AnalysisReport analysis_report_;
  std::vector<std::unique_ptr<View>> views_;
  std::string requested_tab_, open_view_;
  std::map<std::string, Json, std::less<>> baselines_, fresh_;
  std::optional<Link> pending_link_;
};

// The page's one App (main loop, views and the JS bridge share it).
App& app();
// Frames drawn so far (main.cpp; 0 natively).
uint64_t frame_count();
// The page's WebGL context: lost now (nothing is drawn until the browser
// restores it), and how many times it was restored (main.cpp; false and 0 natively).
bool gl_context_lost();
int gl_context_restores();

}  // namespace cs::app
