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
  session_.set_model_listener([this](ModelChange change) {
    for (auto& v : views_) v->on_model(session_, change);
  });
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
uint64_t frame_count() { return 0; }  // the page's is in main.cpp
#endif

}  // namespace cs::app
