// One error type for the whole project: a one-line reason that names the
// field or tensor at fault. Parsers and loaders throw it; the page and the CLI
// catch it at their edge, show the message, and keep the previous model.
#pragma once
#include <stdexcept>
#include <string>

namespace cs {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace cs
