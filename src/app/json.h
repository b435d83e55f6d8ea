// The JSON type the page writes (state for tests and automation, selections,
// results): as the CLI's JSON, insertion-ordered keys and floats printed as
// the shortest decimal that reads back to the same float.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"

namespace cs::app {

using Json = nlohmann::basic_json<nlohmann::ordered_map, std::vector, std::string, bool, std::int64_t,
                                  std::uint64_t, float>;

// Compact text; invalid UTF-8 (a byte-level token) is replaced, not thrown on.
inline std::string dump(const Json& j) {
  return j.dump(-1, ' ', false, nlohmann::detail::error_handler_t::replace);
}

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
