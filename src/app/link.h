// Links: the page's state as a URL query, so that a link opens exactly what
// its author saw (README, "Links"). No ImGui and no browser here (built and
// tested natively); the shell reads and writes location and history.
//
//   model=<id>          the shown model: a bundled id, or file:<name> for
//                       dropped files (which a link cannot carry: the page
//                       asks for them and restores the rest once they are in)
//   view=<id>           the open tab, left out for the first one
//   <view>.<field>=<v>  each field of a view's selection (view.h) that
//                       differs from what the page shows for this model with
//                       no link (the view's selection right after the model
//                       loaded: App::baseline_selection)
//
// Values are percent-encoded: a string as it is, anything else as JSON text
// (numbers, booleans, null, lists); read back by the baseline's kind (a field
// whose baseline is null, e.g. a head "L.H" or a position, is a head when it
// reads like one, else JSON). The fields come from the views' own selection
// JSON, so a view's new field is in links with no change here.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "app/json.h"

namespace cs::app {

class App;

// Percent-encoding of a query component (unreserved characters and
// ",:" kept) and its inverse ("+" decodes to a space; a bad escape is kept as
// it is).
std::string url_encode(std::string_view s);
std::string url_decode(std::string_view s);

// The query of the page's state now, "" with no model shown ("model=...&...",
// without the "?").
std::string link_query(const App& app);

// A link's query parsed against the registered views: the model, the tab and
// the selections it names, and a one-line reason for each parameter it
// drops (an unknown view or field, a value that is not of the field's kind,
// more than kMaxLinkBytes). Nothing is applied.
inline constexpr size_t kMaxLinkBytes = size_t(1) << 17;
struct Link {
  std::string model;  // "" when the link names none
  std::string view;   // "" when it names none
  Json selections = Json::object();  // {view id: {field: value}}
  std::vector<std::string> problems;
};
Link parse_link(std::string_view query, const App& app);

// Applies a parsed link's tab (the first when it names none) and selections
// to the views: each view gets its baseline selection with the link's fields
// over it (so a view the link does not name goes back to its baseline); a
// view that refuses its fields keeps the baseline and adds the reason to
// `problems`. The model is the caller's to load first (the shell fetches it).
void apply_link(App& app, const Link& link, std::vector<std::string>& problems);

}  // namespace cs::app
