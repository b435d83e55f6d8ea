// safetensors reader and writer (docs/model.md, Files). The layout:
//   bytes [0, 8)        header length N, unsigned 64-bit little-endian
//   bytes [8, 8 + N)    JSON object {name: {dtype, shape, data_offsets: [begin, end]},
//                       "__metadata__": {str: str}} (padded with spaces)
//   bytes [8 + N, end)  the data section; offsets are relative to its start
// Every check of the reference implementation is made here, each failure a
// one-line cs::Error that names the tensor and the field.
#include "io/safetensors.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/error.h"

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; this reader copies it as is");

namespace cs {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}


using nlohmann::json;

namespace {


std::string offsets_str(uint64_t b, uint64_t e) {
  return "[" + std::to_string(b) + ", " + std::to_string(e) + "]";
}

// nlohmann's messages can quote the offending input; keep the reason on one line.
std::string one_line(std::string s, size_t max_len = 200) {
  for (char& c : s)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  if (s.size() > max_len) s = s.substr(0, max_len) + "...";
  return s;
}

[[noreturn]] void fail(const std::string& msg) { throw Error("safetensors: " + msg); }
[[noreturn]] void fail_tensor(const std::string& name, const std::string& msg) {
  fail("tensor '" + name + "': " + msg);
}

// A JSON integer that fits in int64 (shape entries may be negative in bad files).
bool as_int64(const json& j, int64_t& out) {
  if (j.is_number_integer()) {  // signed or unsigned
    if (j.is_number_unsigned()) {
      uint64_t u = j.get<uint64_t>();
      if (u > uint64_t(std::numeric_limits<int64_t>::max())) return false;
      out = int64_t(u);
    } else {
      out = j.get<int64_t>();
    }
    return true;
  }
  return false;
}

StTensor parse_entry(const std::string& name, const json& e) {
  if (!e.is_object()) fail_tensor(name, "entry is not a JSON object");
  StTensor t;
  t.name = name;

  auto dt = e.find("dtype");
  if (dt == e.end()) fail_tensor(name, "missing 'dtype'");
  if (!dt->is_string()) fail_tensor(name, "'dtype' is not a string");
  t.dtype = dt->get<std::string>();
  if (dtype_size(t.dtype) == 0) fail_tensor(name, "unknown dtype '" + one_line(t.dtype, 40) + "'");

  auto sh = e.find("shape");
  if (sh == e.end()) fail_tensor(name, "missing 'shape'");
  if (!sh->is_array()) fail_tensor(name, "'shape' is not an array");
  for (const json& d : *sh) {
    int64_t v = 0;
    if (!as_int64(d, v)) fail_tensor(name, "'shape' entry " + one_line(d.dump(), 40) + " is not an integer");
    t.shape.push_back(v);
  }
  for (int64_t v : t.shape)
    if (v < 0) fail_tensor(name, "'shape' " + shape_str(t.shape) + " has a negative dimension");

  auto off = e.find("data_offsets");
  if (off == e.end()) fail_tensor(name, "missing 'data_offsets'");
  if (!off->is_array() || off->size() != 2)
    fail_tensor(name, "'data_offsets' must be an array [begin, end], got " + one_line(off->dump(), 60));
  for (int i = 0; i < 2; ++i) {
    const json& v = (*off)[size_t(i)];
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
      fail_tensor(name, "'data_offsets' " + one_line(off->dump(), 60) + " must hold two non-negative integers");
  }
  t.begin = (*off)[0].get<uint64_t>();
  t.end = (*off)[1].get<uint64_t>();
  if (t.end < t.begin)
    fail_tensor(name, "data_offsets " + offsets_str(t.begin, t.end) + " end before begin");

  // numel * dtype size, with overflow checks (a hostile shape could wrap around).
  uint64_t bytes = dtype_size(t.dtype);
  for (int64_t v : t.shape) {
    if (v != 0 && bytes > std::numeric_limits<uint64_t>::max() / uint64_t(v))
      fail_tensor(name, "'shape' " + shape_str(t.shape) + " is too large");
    bytes *= uint64_t(v);
  }
  if (t.end - t.begin != bytes)
    fail_tensor(name, "data_offsets " + offsets_str(t.begin, t.end) + " hold " + std::to_string(t.end - t.begin) +
                          " bytes but shape " + shape_str(t.shape) + " of " + t.dtype + " needs " +
                          std::to_string(bytes));
  return t;
}

void check_float(const StTensor& t) {
  if (!is_float_dtype(t.dtype))
    throw Error("tensor '" + t.name + "': dtype " + t.dtype + " is not a float type (F32, F16, BF16, F64)");
}

// std::bit_cast is missing from the libc++ of Emscripten 3.1.6.
template <typename To, typename From>
To bits_as(const From& f) {
  static_assert(sizeof(To) == sizeof(From));
  To t;
  std::memcpy(&t, &f, sizeof(To));
  return t;
}

template <typename T>
T load_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace

int64_t StTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

const StTensor* StFile::find(const std::string& name) const {
  for (const StTensor& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

size_t dtype_size(const std::string& d) {
  if (d == "BOOL" || d == "U8" || d == "I8" || d == "F8_E5M2" || d == "F8_E4M3") return 1;
  if (d == "I16" || d == "U16" || d == "F16" || d == "BF16") return 2;
  if (d == "I32" || d == "U32" || d == "F32") return 4;
  if (d == "I64" || d == "U64" || d == "F64") return 8;
  return 0;
}

bool is_float_dtype(const std::string& d) { return d == "F32" || d == "F16" || d == "BF16" || d == "F64"; }

StFile parse_safetensors(std::span<const uint8_t> bytes) {
  if (bytes.size() < 8)
    fail("file is " + std::to_string(bytes.size()) + " bytes, too short for the 8-byte header length");
  const uint64_t n = load_le<uint64_t>(bytes.data());
  if (n > kSafetensorsMaxHeader)
    fail("header length " + std::to_string(n) + " is over the " + std::to_string(kSafetensorsMaxHeader / 1'000'000) +
         " MB limit");
  if (n > bytes.size() - 8)
    fail("header length " + std::to_string(n) + " goes beyond the end of the file (" + std::to_string(bytes.size()) +
         " bytes)");

  const char* text = reinterpret_cast<const char*>(bytes.data() + 8);
  json header;
  try {
    header = json::parse(text, text + n);
  } catch (const json::exception& e) {
    fail("header is not valid JSON: " + one_line(e.what()));
  }
  if (!header.is_object()) fail("header is not a JSON object");

  StFile f;
  f.data = bytes.subspan(size_t(8 + n));
  const uint64_t data_size = f.data.size();
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (it.value().is_null()) continue;
      if (!it.value().is_object()) fail("'__metadata__' is not a JSON object");
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string()) fail("'__metadata__' value of '" + m.key() + "' is not a string");
        f.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    StTensor t = parse_entry(it.key(), it.value());
    if (t.end > data_size)
      fail_tensor(t.name, "data_offsets " + offsets_str(t.begin, t.end) + " out of range (data is " +
                              std::to_string(data_size) + " bytes)");
    f.tensors.push_back(std::move(t));
  }

  // Tensors, in data order, must tile the data section exactly.
  std::sort(f.tensors.begin(), f.tensors.end(), [](const StTensor& a, const StTensor& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  const StTensor* prev = nullptr;
  for (const StTensor& t : f.tensors) {
    if (t.begin < covered)
      fail_tensor(t.name, "data_offsets " + offsets_str(t.begin, t.end) + " overlap tensor '" + prev->name + "' " +
                              offsets_str(prev->begin, prev->end));
    if (t.begin > covered)
      fail_tensor(t.name, "data_offsets " + offsets_str(t.begin, t.end) + " leave bytes [" + std::to_string(covered) +
                              ", " + std::to_string(t.begin) + ") of the data section unused");
    covered = t.end;
    prev = &t;
  }
  if (covered != data_size)
    fail("data section is " + std::to_string(data_size) + " bytes but the tensors cover only " +
         std::to_string(covered) + (prev ? " (the last is '" + prev->name + "')" : std::string()));
  return f;
}

float f16_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  const uint32_t mant = h & 0x3FFu;
  if (exp == 0) {
    // zero or subnormal: mant * 2^-24, exact in float
    float v = std::ldexp(float(mant), -24);
    return sign ? -v : v;
  }
  uint32_t bits;
  if (exp == 0x1F)
    bits = sign | 0x7F800000u | (mant << 13);  // inf, or NaN keeping the payload
  else
    bits = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  return bits_as<float>(bits);
}

uint16_t float_to_f16(float f) {
  const uint32_t x = bits_as<uint32_t>(f);
  const uint16_t sign = uint16_t((x >> 16) & 0x8000u);
  const uint32_t a = x & 0x7FFFFFFFu;
  if (a >= 0x7F800000u) {  // inf or NaN (NaN stays NaN: keep the top payload bits, force quiet)
    if (a == 0x7F800000u) return sign | 0x7C00u;
    return uint16_t(sign | 0x7E00u | ((a >> 13) & 0x3FFu));
  }
  if (a >= 0x477FF000u) return sign | 0x7C00u;  // >= 65520 rounds (to even) past the largest half, 65504
  if (a < 0x38800000u) {                        // below 2^-14: half subnormal or zero
    // The half value is round(|f| * 2^24) units of 2^-24; scaling by 2^24 is exact,
    // nearbyint rounds half to even. 1024 units carry into the smallest normal, 0x0400.
    const float units = std::nearbyint(std::ldexp(bits_as<float>(a), 24));
    return uint16_t(sign | uint16_t(units));
  }
  const uint32_t exp = (a >> 23) - 127 + 15;
  const uint32_t mant = a & 0x7FFFFFu;
  uint32_t h = (exp << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1FFFu;  // the 13 bits dropped
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // nearest, ties to even; may carry into exp
  return uint16_t(sign | h);
}

float bf16_to_float(uint16_t b) { return bits_as<float>(uint32_t(b) << 16); }

void tensor_to_float(const StFile& f, const StTensor& t, int64_t first, int64_t count, float* out) {
  check_float(t);
  if (first < 0 || count < 0 || first > t.numel() || count > t.numel() - first)
    throw Error("tensor '" + t.name + "': elements [" + std::to_string(first) + ", " + std::to_string(first + count) +
                ") out of range (numel " + std::to_string(t.numel()) + ")");
  const size_t es = dtype_size(t.dtype);
  if (t.end > f.data.size() || t.end - t.begin != uint64_t(t.numel()) * es)
    throw Error("tensor '" + t.name + "': data_offsets do not match the file");
  const uint8_t* p = f.data.data() + t.begin + size_t(first) * es;
  const size_t n = size_t(count);
  if (n == 0) return;  // (out and p may be null then)
  if (t.dtype == "F32") {
    std::memcpy(out, p, n * 4);
  } else if (t.dtype == "F16") {
    for (size_t i = 0; i < n; ++i) out[i] = f16_to_float(load_le<uint16_t>(p + 2 * i));
  } else if (t.dtype == "BF16") {
    for (size_t i = 0; i < n; ++i) out[i] = bf16_to_float(load_le<uint16_t>(p + 2 * i));
  } else {  // F64
    for (size_t i = 0; i < n; ++i) out[i] = float(load_le<double>(p + 8 * i));
  }
}

void tensor_to_float(const StFile& f, const StTensor& t, float* out) { tensor_to_float(f, t, 0, t.numel(), out); }

std::vector<uint8_t> write_safetensors(const std::vector<StWriteTensor>& tensors,
                                       const std::map<std::string, std::string>& metadata, bool f16) {
  const std::string dtype = f16 ? "F16" : "F32";
  const size_t es = f16 ? 2 : 4;
  // Data in name order (as the reference orders tensors of one dtype), so
  // offsets increase and never overlap.
  std::vector<const StWriteTensor*> order;
  for (const StWriteTensor& t : tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->name < b->name; });

  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    const StWriteTensor& t = *order[i];
    if (t.name == "__metadata__") throw Error("safetensors: a tensor cannot be named '__metadata__'");
    if (i && order[i - 1]->name == t.name) throw Error("safetensors: tensor '" + t.name + "' given twice");
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0) throw Error("safetensors: tensor '" + t.name + "': shape " + shape_str(t.shape) + " is negative");
      numel *= uint64_t(d);
    }
    if (numel != t.values.size())
      throw Error("safetensors: tensor '" + t.name + "': shape " + shape_str(t.shape) + " needs " +
                  std::to_string(numel) + " values, got " + std::to_string(t.values.size()));
    header[t.name] = {{"dtype", dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + numel * es}}};
    offset += numel * es;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // header length a multiple of 8, as the reference pads

  std::vector<uint8_t> out(8 + text.size() + size_t(offset));
  const uint64_t n = text.size();
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, text.data(), text.size());
  uint8_t* p = out.data() + 8 + text.size();
  for (const StWriteTensor* t : order) {
    if (f16) {
      for (float v : t->values) {
        const uint16_t h = float_to_f16(v);
        std::memcpy(p, &h, 2);
        p += 2;
      }
    } else if (!t->values.empty()) {  // (an empty vector's data() may be null)
      std::memcpy(p, t->values.data(), t->values.size() * 4);
      p += t->values.size() * 4;
    }
  }
  return out;
}

}  // namespace cs
