// Shared by the fuzz targets (tests/fuzz/README.md): splitting one fuzz input
// into the several files a target reads, and the rule for what counts as a
// finding.
//
// A target's input is one byte string; a target that reads several files
// (a model folder, a token file and its sidecar, a tokenizer and the text it
// encodes) takes them in a fixed order, separated by kFileSeparator (a line of
// its own, in each dictionary so the fuzzer can make and move it).
//
// Finding: anything but a clean cs::Error (a crash, a sanitizer report, a
// hang, another exception type escaping, an allocation beyond libFuzzer's
// -malloc_limit_mb). A parser must refuse bad input with a one-line reason,
// so cs::Error is caught here and every other exception is left to escape.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"

namespace cs::fuzz {

inline constexpr std::string_view kFileSeparator = "\n--next-file--\n";

// The input's first `n` files (fewer when it has fewer separators; the last
// one takes the rest of the input, separators included).
inline std::vector<std::string_view> split_files(const uint8_t* data, size_t size, size_t n) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> out;
  while (out.size() + 1 < n) {
    const size_t at = rest.find(kFileSeparator);
    if (at == std::string_view::npos) break;
    out.push_back(rest.substr(0, at));
    rest.remove_prefix(at + kFileSeparator.size());
  }
  out.push_back(rest);
  return out;
}

inline std::span<const uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Runs f; a cs::Error (the parser's clean refusal) is checked to be one
// non-empty line and then ignored. Any other exception escapes (a finding).
template <class F>
void refusing_cleanly(F&& f) {
  try {
    f();
  } catch (const cs::Error& e) {
    const std::string_view w = e.what();
    if (w.empty() || w.find('\n') != std::string_view::npos) __builtin_trap();  // not a one-line reason
  }
}

// Converts every float tensor of a parsed file whole, and (slice) once more
// without its first element: what a loader reads of it.
inline void convert_float_tensors(const cs::StFile& f, bool slice) {
  std::vector<float> out;
  for (const cs::StTensor& t : f.tensors) {
    if (!cs::is_float_dtype(t.dtype)) continue;
    const int64_t n = t.numel();
    out.resize(size_t(n));
    cs::tensor_to_float(f, t, out.data());
    if (slice && n > 1) cs::tensor_to_float(f, t, 1, n - 1, out.data());
  }
}

}  // namespace cs::fuzz
