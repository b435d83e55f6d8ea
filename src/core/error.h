// One error type for the whole project: a one-line reason that names the
// field or tensor at fault. Parsers and loaders throw it; the page and the CLI
// catch it at their edge, show the message, and keep the previous model.
#pragma once
#include <stdexcept>
#include <string>
#include <string_view>

namespace cs {

// Text from a file or a link quoted in a message: at most `max` bytes (then
// "..."), control characters shown as '?', so a reason stays one line.
inline std::string message_text(std::string_view s, size_t max) {
  std::string out;
  for (unsigned char c : s.substr(0, max)) out += c < 0x20 || c == 0x7f ? '?' : char(c);
  return s.size() > max ? out + "..." : out;
}

// The reason is kept to one line whatever it quotes: a name read from a file
// (a tensor named with a newline in it) has its control characters shown as
// '?' here, so no message built from it can break the line.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(message_text(what, std::string::npos)) {}
};

}  // namespace cs
