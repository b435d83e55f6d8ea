// safetensors (docs/model.md, Files): 8-byte little-endian header length N, N bytes of
// JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {..}},
// then the raw little-endian data. Parsing validates everything and throws
// cs::Error with a one-line reason naming the tensor or field.
#pragma once
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace cs {

constexpr uint64_t kSafetensorsMaxHeader = 100'000'000;  // as the reference implementation

struct StTensor {
  std::string name;
  std::string dtype;            // "F32", "F16", "BF16", "F64", "I64", "BOOL", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // relative to the start of the data section
  int64_t numel() const;
};

struct StFile {
  std::map<std::string, std::string> metadata;  // "__metadata__"
  std::vector<StTensor> tensors;                // in data-offset order
  std::span<const uint8_t> data;                // the data section (borrowed from the input bytes)
  const StTensor* find(const std::string& name) const;
};

// Validates: header length within file and <= 100 MB, JSON well formed,
// each tensor's dtype known, shape non-negative, end - begin == numel * dtype
// size, offsets in range, no overlaps, data fully covered.
StFile parse_safetensors(std::span<const uint8_t> bytes);

// Converts a float tensor (F32, F16, BF16, F64) to float into out[0..numel).
// Throws cs::Error naming the tensor for other dtypes.
void tensor_to_float(const StFile& f, const StTensor& t, float* out);
// The same for elements [first, first + count) of the tensor (row-major), into
// out[0..count): lets a loader convert a big tensor in slices.
void tensor_to_float(const StFile& f, const StTensor& t, int64_t first, int64_t count, float* out);

// Bytes per element of a safetensors dtype ("F32" -> 4), 0 if unknown.
size_t dtype_size(const std::string& dtype);
bool is_float_dtype(const std::string& dtype);  // F32, F16, BF16, F64

struct StWriteTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::span<const float> values;  // numel floats, row-major
};
// Writes F32 tensors (dtype "F16" when f16 = true) with the given metadata.
std::vector<uint8_t> write_safetensors(const std::vector<StWriteTensor>& tensors,
                                       const std::map<std::string, std::string>& metadata = {},
                                       bool f16 = false);

// "[2, 3, 4]": a shape as error messages print it.
std::string shape_str(const std::vector<int64_t>& shape);

// IEEE half / bfloat16 conversions (shared by reader, writer and tests).
float f16_to_float(uint16_t h);
uint16_t float_to_f16(float f);
float bf16_to_float(uint16_t b);

}  // namespace cs
