// The JSON the page writes (state for tests and automation, selections,
// results) is the CLI's (io/json_out.h: insertion-ordered keys, floats printed
// as the shortest decimal that reads back to the same float), plus the
// selection-field readers every view uses.
#pragma once
#include <cstdint>
#include <string>

#include "core/error.h"
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

}  // namespace cs::app
