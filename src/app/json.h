// The JSON type the page writes (state for tests and automation, selections,
// results): as the CLI's JSON, insertion-ordered keys and floats printed as
// the shortest decimal that reads back to the same float.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace cs::app {

using Json = nlohmann::basic_json<nlohmann::ordered_map, std::vector, std::string, bool, std::int64_t,
                                  std::uint64_t, float>;

// Compact text; invalid UTF-8 (a byte-level token) is replaced, not thrown on.
inline std::string dump(const Json& j) {
  return j.dump(-1, ' ', false, nlohmann::detail::error_handler_t::replace);
}

}  // namespace cs::app
