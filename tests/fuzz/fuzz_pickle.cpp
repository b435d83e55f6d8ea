// Fuzz target: the restricted unpickler alone (io/pickle.h), which the zip
// container of fuzz_pth hides behind its checksums: a state dict pickle, the
// legacy header and a pickled list of strings.
#include "fuzz_input.h"
#include "io/pickle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> b(data, size);
  cs::fuzz::refusing_cleanly([&] {
    size_t end = 0;
    const auto tensors = cs::unpickle_state_dict(b, "data.pkl", 0, &end);
    if (end > size) __builtin_trap();
  });
  cs::fuzz::refusing_cleanly([&] {
    const size_t at = cs::read_legacy_header(b);
    if (at > size) __builtin_trap();
    size_t end = 0;
    (void)cs::unpickle_state_dict(b, "legacy", at, &end);
    if (end > size) __builtin_trap();
    size_t after = 0;
    (void)cs::unpickle_string_list(b, "storage keys", end, &after);
    if (after > size) __builtin_trap();
  });
  return 0;
}
