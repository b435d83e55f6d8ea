// Fuzz target: a safetensors file (io/safetensors.h): the header, the tensor
// table, then every float tensor converted whole and in a slice.
#include "fuzz_input.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cs::fuzz::refusing_cleanly([&] {
    const cs::StFile f = cs::parse_safetensors({data, size});
    for (const cs::StTensor& t : f.tensors)
      if (f.find(t.name) != &t) __builtin_trap();  // the table finds what it lists
    cs::fuzz::convert_float_tensors(f, /*slice=*/true);
  });
  return 0;
}
