// Fuzz target: a safetensors file (io/safetensors.h): the header, the tensor
// table, then every float tensor converted whole and in a slice.
#include <vector>

#include "fuzz_input.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cs::fuzz::refusing_cleanly([&] {
    const cs::StFile f = cs::parse_safetensors({data, size});
    std::vector<float> out;
    for (const cs::StTensor& t : f.tensors) {
      if (f.find(t.name) != &t) __builtin_trap();  // the table finds what it lists
      if (!cs::is_float_dtype(t.dtype)) continue;
      const int64_t n = t.numel();
      out.resize(size_t(n));
      cs::tensor_to_float(f, t, out.data());
      if (n > 1) cs::tensor_to_float(f, t, 1, n - 1, out.data());
    }
  });
  return 0;
}
