// The page as a whole (app.h) and the view registry (view.h).
#include "app/app.h"

#include <algorithm>

#include "core/error.h"

namespace cs::app {

namespace {

// Function-local: registrars in other files run during static initialisation.
std::vector<ViewRegistration>& registry() {
  static std::vector<ViewRegistration> r;
  return r;
}

}  // namespace

bool register_view(int order, std::function<std::unique_ptr<View>()> make) {
  const std::string id = make()->id();
  auto& r = registry();
  std::erase_if(r, [&](const ViewRegistration& x) { return x.id == id; });
  r.push_back(ViewRegistration{order, id, std::move(make)});
  return true;
}

std::vector<ViewRegistration> registered_views() {
  std::vector<ViewRegistration> r = registry();
  std::stable_sort(r.begin(), r.end(), [](const ViewRegistration& a, const ViewRegistration& b) {
    return a.order != b.order ? a.order < b.order : a.id < b.id;
  });
  return r;
}

App::App() {
  for (const auto& reg : registered_views()) views_.push_back(reg.make());
  for (const auto& v : views_) fresh_[v->id()] = baselines_[v->id()] = v->selection_json();
  session_.set_model_listener([this](ModelChange change) {
    if (change == ModelChange::NewModel) record_baselines();
    analysis_report_.on_model(session_);
    for (auto& v : views_) v->on_model(session_, change);
    if (change == ModelChange::NewModel) apply_pending_link();
  });
}

// What a fresh page shows for the new model: each view's selection after
// on_model(NewModel) from its fresh selection. Found by running exactly that
// (the view's selection put back quietly afterwards; the real on_model, which
// follows, cancels whatever this one started), so a field the view chooses
// from the model (the Head view's familiar token) is in the baseline even
// when the previous model gave the same value.
void App::record_baselines() {
  for (const auto& v : views_) {
    const std::string id = v->id();
    const Json before = v->selection_json();
    v->replace_selection_quietly(fresh_.at(id));
    v->on_model(session_, ModelChange::NewModel);
    baselines_[id] = v->selection_json();
    v->replace_selection_quietly(before);
  }
}

Json App::baseline_selection(std::string_view id) const {
  if (const View* v = find(id))
    if (auto d = v->computed_default()) return *d;
  auto it = baselines_.find(id);
  return it == baselines_.end() ? Json() : it->second;
}

void App::open_link(Link link) {
  pending_link_ = std::move(link);
  apply_pending_link();
  if (pending_link_ && pending_link_->model.starts_with("file:"))
    session_.set_error("This link was made with a model from files dropped into the page (" +
                       pending_link_->model.substr(5) +
                       "), which a link cannot carry: drop the same files here and the rest of the link is restored.",
                       Session::ErrorKind::link);
}

const std::string& App::link_waiting_for() const {
  static const std::string none;
  return pending_link_ ? pending_link_->model : none;
}

void App::apply_pending_link() {
  if (!pending_link_) return;
  const ActiveModel* a = session_.active();
  if (!pending_link_->model.empty() && (!a || a->id != pending_link_->model)) return;  // its model is not shown yet
  // Its own problems with the applying's, said once its model is shown (a load clears the banner).
  std::vector<std::string> problems = pending_link_->problems;
  apply_link(*this, *pending_link_, problems);
  pending_link_.reset();
  report(problems);
}

void App::report(const std::vector<std::string>& problems) {
  std::string all;
  for (const std::string& p : problems) all += (all.empty() ? "" : "; ") + p;
  if (!all.empty()) session_.set_error(all, Session::ErrorKind::link);
}

View* App::find(std::string_view id) const {
  for (const auto& v : views_)
    if (id == v->id()) return v.get();
  return nullptr;
}

std::vector<App::Tab> App::tabs() const {
  std::vector<Tab> out;
  for (const auto& v : views_) out.push_back(Tab{v->id(), v->title()});
  return out;
}

Json App::views_json() const {
  Json j = Json::object();
  for (const auto& v : views_)
    j[v->id()] = Json{{"title", v->title()}, {"selection", v->selection_json()}, {"results", v->state_json(session_)}};
  return j;
}

void App::legacy_state_json(Json& root) const {
  for (const auto& v : views_) v->legacy_state_json(session_, root);
}

void App::set_selections(const Json& selections) {
  if (!selections.is_object()) throw Error("selections: expected an object {view id: selection}");
  for (const auto& [id, sel] : selections.items()) {
    View* v = find(id);
    if (!v) throw Error("selections: no view \"" + id + "\"");
    v->set_selection_json(session_, sel);
  }
}

App& app() {
  static App a;
  return a;
}

#ifndef CS_APP_DRAW
uint64_t frame_count() { return 0; }  // the page's are in main.cpp
bool gl_context_lost() { return false; }
int gl_context_restores() { return 0; }
#endif

}  // namespace cs::app
