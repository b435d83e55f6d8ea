// Fuzz target: a PyTorch checkpoint (io/pth.h): the zip container (or the
// legacy format), the restricted unpickler, the storages; every float tensor
// is then converted.
#include <vector>

#include "fuzz_input.h"
#include "io/pth.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cs::fuzz::refusing_cleanly([&] {
    const cs::StFile f = cs::parse_pth({data, size});
    std::vector<float> out;
    for (const cs::StTensor& t : f.tensors) {
      if (!cs::is_float_dtype(t.dtype)) continue;
      out.resize(size_t(t.numel()));
      cs::tensor_to_float(f, t, out.data());
    }
  });
  return 0;
}
