// Fuzz target: a PyTorch checkpoint (io/pth.h): the zip container (or the
// legacy format), the restricted unpickler, the storages; every float tensor
// is then converted.
#include "fuzz_input.h"
#include "io/pth.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cs::fuzz::refusing_cleanly([&] {
    const cs::StFile f = cs::parse_pth({data, size});
    cs::fuzz::convert_float_tensors(f, /*slice=*/false);
  });
  return 0;
}
