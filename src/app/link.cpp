// Links (link.h).
#include "app/link.h"

#include <optional>

#include "app/app.h"
#include "core/error.h"

namespace cs::app {

namespace {

bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~' || c == ',' || c == ':';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "L.H": a head as the selections write it.
bool head_text_like(const std::string& t) {
  const size_t dot = t.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == t.size()) return false;
  for (size_t i = 0; i < t.size(); ++i)
    if (i != dot && (t[i] < '0' || t[i] > '9')) return false;
  return true;
}

// How a field is written: a string as it is, anything else as JSON text.
std::string field_text(const Json& value) { return value.is_string() ? value.get<std::string>() : value.dump(); }

// The field's value from its text, by its baseline's kind; nullopt with `why`
// set when it is not of that kind. A field whose baseline is null (a head
// "L.H", a position or a token id, or none) is a head when it reads like
// one, else JSON, else the text.
std::optional<Json> field_value(const std::string& text, const Json& baseline, std::string& why) {
  if (baseline.is_string()) return Json(text);
  if (baseline.is_null()) {
    if (head_text_like(text)) return Json(text);
    const Json v = Json::parse(text, nullptr, /*allow_exceptions=*/false);
    return v.is_discarded() ? Json(text) : v;
  }
  const Json v = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (v.is_discarded()) {
    why = "is not " + std::string(baseline.is_boolean() ? "true or false" : baseline.is_number() ? "a number" : "JSON");
    return std::nullopt;
  }
  return v;
}

// A parameter's text for a message.
std::string shown(std::string_view s) { return message_text(s, 40); }

}  // namespace

std::string url_encode(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (unreserved(c)) {
      out += char(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string url_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out += char(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string link_query(const App& app) {
  const ActiveModel* a = app.session().active();
  if (!a) return "";
  std::string q = "model=" + url_encode(a->id);
  const auto& views = app.views();
  if (!app.open_view().empty() && !views.empty() && app.open_view() != views.front()->id())
    q += "&view=" + url_encode(app.open_view());
  for (const auto& v : views) {
    const Json sel = v->selection_json();
    const Json base = app.baseline_selection(v->id());
    if (!sel.is_object()) continue;
    for (const auto& [field, value] : sel.items()) {
      const Json b = base.is_object() && base.contains(field) ? base.at(field) : Json(nullptr);
      if (value == b) continue;
      q += "&" + url_encode(std::string(v->id()) + "." + field) + "=" + url_encode(field_text(value));
    }
  }
  return q;
}

Link parse_link(std::string_view query, const App& app) {
  Link link;
  if (!query.empty() && query.front() == '?') query.remove_prefix(1);
  if (query.size() > kMaxLinkBytes) {
    link.problems.push_back("link: " + std::to_string(query.size()) + " bytes, more than " +
                            std::to_string(kMaxLinkBytes) + ": ignored");
    return link;
  }
  size_t start = 0;
  while (start <= query.size()) {
    const size_t amp = query.find('&', start);
    const std::string_view part = query.substr(start, amp == std::string_view::npos ? std::string_view::npos : amp - start);
    start = amp == std::string_view::npos ? query.size() + 1 : amp + 1;
    if (part.empty()) continue;
    const size_t eq = part.find('=');
    const std::string key = url_decode(part.substr(0, eq));
    const std::string text = eq == std::string_view::npos ? "" : url_decode(part.substr(eq + 1));
    if (key == "model") {
      link.model = text;
      continue;
    }
    if (key == "view") {
      if (app.find(text)) link.view = text;
      else link.problems.push_back("link: view \"" + shown(text) + "\" is not a view of this page: the first tab is shown");
      continue;
    }
    const size_t dot = key.find('.');
    View* v = dot == std::string::npos ? nullptr : app.find(std::string_view(key).substr(0, dot));
    if (!v) {
      link.problems.push_back("link: \"" + shown(key) + "\" is not a setting of this page: ignored");
      continue;
    }
    const std::string field = key.substr(dot + 1);
    const Json base = app.baseline_selection(v->id());
    if (!base.is_object() || !base.contains(field)) {
      link.problems.push_back("link: " + std::string(v->id()) + " has no setting \"" + shown(field) + "\": ignored");
      continue;
    }
    std::string why;
    const auto value = field_value(text, base.at(field), why);
    if (!value) {
      link.problems.push_back("link: " + shown(key) + " \"" + shown(text) + "\" " + why + ": ignored");
      continue;
    }
    link.selections[v->id()][field] = *value;
  }
  return link;
}

void apply_link(App& app, const Link& link, std::vector<std::string>& problems) {
  // Every view: its baseline with the link's fields over it (a view the link
  // does not name goes back to its baseline: back in the history undoes it).
  for (const auto& v : app.views()) {
    const std::string id = v->id();
    Json sel = app.baseline_selection(id);
    if (!sel.is_object()) continue;
    if (link.selections.contains(id))
      for (const auto& [field, value] : link.selections.at(id).items()) sel[field] = value;
    if (sel == v->selection_json()) continue;  // nothing to change, nothing to restart
    // A tab the link does not open starts its work when it is shown.
    const std::string open = link.view.empty() && !app.views().empty() ? app.views().front()->id() : link.view;
    v->hold_work(id != open);
    try {
      v->set_selection_json(app.session(), sel);
    } catch (const Error& e) {
      problems.push_back(std::string("link: ") + e.what() + " (" + v->title() + " shown as without the link)");
      try {
        v->set_selection_json(app.session(), app.baseline_selection(id));
      } catch (const Error&) {
      }
    }
    v->hold_work(false);
  }
  if (!link.view.empty()) app.request_tab(link.view);
  else if (!app.views().empty()) app.request_tab(app.views().front()->id());
}

}  // namespace cs::app
