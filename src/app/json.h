// The JSON the page writes (state for tests and automation, selections,
// results) is the CLI's (io/json_out.h: insertion-ordered keys, floats printed
// as the shortest decimal that reads back to the same float), plus the
// selection-field readers every view uses.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "core/error.h"
#include "core/model.h"
#include "io/json_out.h"

namespace cs::app {

using cs::Json;

// Compact text; invalid UTF-8 (a byte-level token) is replaced, not thrown on.
inline std::string dump(const Json& j) { return dump_json(j); }

// A field of a view's selection: `fallback` when absent; cs::Error naming the
// view and the field when it has the wrong type.
inline int json_int(const Json& j, const char* view, const char* name, int fallback) {
  if (!j.contains(name)) return fallback;
  const Json& v = j.at(name);
  if (!v.is_number_integer()) throw Error(std::string(view) + " selection: \"" + name + "\" must be an integer");
  return int(v.get<std::int64_t>());
}
inline bool json_bool(const Json& j, const char* view, const char* name, bool fallback) {
  if (!j.contains(name)) return fallback;
  const Json& v = j.at(name);
  if (!v.is_boolean()) throw Error(std::string(view) + " selection: \"" + name + "\" must be true or false");
  return v.get<bool>();
}

// A text a view reads (a prompt, a sample): at most this many bytes (the
// model reads n_ctx tokens of it; the rest only costs tokenizing).
inline constexpr size_t kMaxTextBytes = size_t(1) << 16;
// `text` if it is not longer than that; cs::Error naming the view and the field otherwise.
inline std::string checked_text(std::string text, const char* view, const char* name) {
  if (text.size() > kMaxTextBytes)
    throw Error(std::string(view) + " selection: \"" + name + "\" has " + std::to_string(text.size()) +
                " bytes, more than " + std::to_string(kMaxTextBytes));
  return text;
}
// A text field of a selection: `fallback` when absent; cs::Error naming the
// view and the field when it is not a string or too long.
inline std::string json_text(const Json& j, const char* view, const char* name, std::string fallback) {
  if (!j.contains(name)) return fallback;
  const Json& v = j.at(name);
  if (!v.is_string()) throw Error(std::string(view) + " selection: \"" + name + "\" must be a string");
  return checked_text(v.get<std::string>(), view, name);
}

// A head as the page writes it, "layer.head" (e.g. "1.4").
inline std::string head_text(int layer, int head) { return std::to_string(layer) + "." + std::to_string(head); }
inline Json head_json(int layer, int head) { return head_text(layer, head); }
// A head field of a selection: "L.H" (digits), or null / absent (nullopt);
// cs::Error naming the view and the field on anything else. The range against
// a model is the view's to check.
inline std::optional<HeadId> json_head(const Json& j, const char* view, const char* name) {
  if (!j.contains(name) || j.at(name).is_null()) return std::nullopt;
  const Json& v = j.at(name);
  const std::string t = v.is_string() ? v.get<std::string>() : v.dump();
  const size_t dot = t.find('.');
  bool ok = v.is_string() && dot != std::string::npos && dot > 0 && dot + 1 < t.size() && t.size() <= 12;
  for (size_t i = 0; ok && i < t.size(); ++i) ok = i == dot || (t[i] >= '0' && t[i] <= '9');
  if (!ok)
    throw Error(std::string(view) + " selection: \"" + name + "\" '" + t.substr(0, 40) +
                "' is not LAYER.HEAD (e.g. 1.4) or null");
  return HeadId{std::stoi(t.substr(0, dot)), std::stoi(t.substr(dot + 1))};
}

}  // namespace cs::app
