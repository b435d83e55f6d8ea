// safetensors reader/writer and half-precision conversions.
// Bad files are built byte by byte here (header length, JSON text, data), so
// each validation rule is exercised on its own; numbers are checked against
// bit-level formulas written in this file.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"

namespace {

using cs::Error;

// 8-byte little-endian length, the header text, then the data bytes.
std::vector<uint8_t> file_of(const std::string& header, const std::vector<uint8_t>& data, uint64_t n_override = 0,
                             bool override_n = false) {
  const uint64_t n = override_n ? n_override : header.size();
  std::vector<uint8_t> out;
  for (int i = 0; i < 8; ++i) out.push_back(uint8_t(n >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::vector<uint8_t> zeros(size_t n) { return std::vector<uint8_t>(n, 0); }

// The message of the cs::Error thrown by parse_safetensors, or "" if none.
std::string parse_error(const std::vector<uint8_t>& bytes) {
  try {
    cs::parse_safetensors(bytes);
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << "error must be one line: " << m;
    return m;
  }
  return "";
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "message: " << (haystack)

// ---- valid files ---------------------------------------------------------------

TEST(Safetensors, ParsesHandBuiltFile) {
  // b is first in the data although the JSON names a first.
  const std::string h =
      R"({"__metadata__":{"format":"pt","k":"v"},)"
      R"("a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},)"
      R"("b":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})";
  std::vector<uint8_t> data(12);
  const uint16_t halves[2] = {0x3C00, 0xC000};  // 1, -2
  std::memcpy(data.data(), halves, 4);
  const float floats[2] = {0.5f, -3.25f};
  std::memcpy(data.data() + 4, floats, 8);
  const auto bytes = file_of(h, data);
  const cs::StFile f = cs::parse_safetensors(bytes);
  ASSERT_EQ(f.tensors.size(), 2u);
  EXPECT_EQ(f.tensors[0].name, "b");  // data-offset order
  EXPECT_EQ(f.tensors[1].name, "a");
  EXPECT_EQ(f.metadata.at("format"), "pt");
  EXPECT_EQ(f.metadata.at("k"), "v");
  EXPECT_EQ(f.data.size(), 12u);
  const cs::StTensor* a = f.find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->numel(), 2);
  EXPECT_EQ(f.find("zzz"), nullptr);
  float out[2];
  cs::tensor_to_float(f, *a, out);
  EXPECT_EQ(out[0], 0.5f);
  EXPECT_EQ(out[1], -3.25f);
  cs::tensor_to_float(f, *f.find("b"), out);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -2.0f);
}

TEST(Safetensors, EmptyHeaderAndZeroSizedTensors) {
  EXPECT_TRUE(cs::parse_safetensors(file_of("{}", {})).tensors.empty());
  // A [0]-shaped tensor takes no bytes and may sit at any boundary (e.g. TransformerLens' (0,0) mask).
  const std::string h =
      R"({"m":{"dtype":"BOOL","shape":[0,0],"data_offsets":[0,0]},"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  const auto f = cs::parse_safetensors(file_of(h, zeros(4)));
  EXPECT_EQ(f.tensors.size(), 2u);
}

TEST(Safetensors, ConvertsEveryFloatDtypeAndRanges) {
  const std::string h =
      R"({"d":{"dtype":"F64","shape":[3],"data_offsets":[0,24]},)"
      R"("bf":{"dtype":"BF16","shape":[3],"data_offsets":[24,30]},)"
      R"("i":{"dtype":"I64","shape":[1],"data_offsets":[30,38]}})";
  std::vector<uint8_t> data(38, 0);
  const double dv[3] = {1.5, -0.1, 1e300};
  std::memcpy(data.data(), dv, 24);
  const uint16_t bv[3] = {0x3F80, 0x4049, 0xFF80};  // 1.0, 3.140625, -inf
  std::memcpy(data.data() + 24, bv, 6);
  const auto bytes = file_of(h, data);
  const auto f = cs::parse_safetensors(bytes);
  float out[3];
  cs::tensor_to_float(f, *f.find("d"), out);
  EXPECT_EQ(out[0], 1.5f);
  EXPECT_EQ(out[1], float(-0.1));
  EXPECT_TRUE(std::isinf(out[2]));  // a double beyond float range becomes inf
  cs::tensor_to_float(f, *f.find("bf"), out);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], 3.140625f);
  EXPECT_EQ(out[2], -std::numeric_limits<float>::infinity());
  // a slice: elements [1, 3)
  float part[2];
  cs::tensor_to_float(f, *f.find("bf"), 1, 2, part);
  EXPECT_EQ(part[0], 3.140625f);
  EXPECT_EQ(part[1], -std::numeric_limits<float>::infinity());
  try {
    cs::tensor_to_float(f, *f.find("i"), out);
    FAIL() << "I64 converted to float";
  } catch (const Error& e) {
    EXPECT_CONTAINS(e.what(), "'i'");
    EXPECT_CONTAINS(e.what(), "I64");
  }
  EXPECT_THROW(cs::tensor_to_float(f, *f.find("bf"), 2, 2, part), Error);
}

// ---- one test per bad input ----------------------------------------------------

TEST(SafetensorsBad, TruncatedFileShorterThanLength) {
  const auto m = parse_error({1, 0, 0, 0, 0});
  EXPECT_CONTAINS(m, "5 bytes");
  EXPECT_CONTAINS(m, "header length");
}

TEST(SafetensorsBad, TruncatedData) {
  // The header promises 16 bytes of data; the file was cut after 8.
  const std::string h = R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})";
  const auto m = parse_error(file_of(h, zeros(8)));
  EXPECT_CONTAINS(m, "'w'");
  EXPECT_CONTAINS(m, "data_offsets [0, 16] out of range (data is 8 bytes)");
}

TEST(SafetensorsBad, HeaderLengthBeyondFile) {
  const auto m = parse_error(file_of("{}", {}, 1000, true));
  EXPECT_CONTAINS(m, "header length 1000");
  EXPECT_CONTAINS(m, "beyond the end of the file");
}

TEST(SafetensorsBad, HeaderOver100MB) {
  const auto m = parse_error(file_of("{}", {}, 100'000'001, true));
  EXPECT_CONTAINS(m, "header length 100000001");
  EXPECT_CONTAINS(m, "100 MB");
  // exactly at the limit it is only "beyond the file", not "too large"
  EXPECT_EQ(parse_error(file_of("{}", {}, 100'000'000, true)).find("100 MB"), std::string::npos);
}

TEST(SafetensorsBad, InvalidJson) {
  EXPECT_CONTAINS(parse_error(file_of(R"({"w": {"dtype": )", {})), "header is not valid JSON");
  EXPECT_CONTAINS(parse_error(file_of("\x01\x02", {})), "header is not valid JSON");
}

TEST(SafetensorsBad, HeaderNotAnObject) {
  EXPECT_CONTAINS(parse_error(file_of("[1, 2]", {})), "header is not a JSON object");
}

TEST(SafetensorsBad, EntryMissingFields) {
  EXPECT_CONTAINS(parse_error(file_of(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", zeros(4))),
                  "tensor 'w': missing 'dtype'");
  EXPECT_CONTAINS(parse_error(file_of(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", zeros(4))),
                  "tensor 'w': missing 'shape'");
  EXPECT_CONTAINS(parse_error(file_of(R"({"w":{"dtype":"F32","shape":[1]}})", zeros(4))),
                  "tensor 'w': missing 'data_offsets'");
  EXPECT_CONTAINS(parse_error(file_of(R"({"w":[1,2]})", zeros(4))), "tensor 'w': entry is not a JSON object");
}

TEST(SafetensorsBad, EntryWrongTypes) {
  EXPECT_CONTAINS(parse_error(file_of(R"({"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", zeros(4))),
                  "tensor 'w': 'dtype' is not a string");
  EXPECT_CONTAINS(parse_error(file_of(R"({"w":{"dtype":"F32","shape":"1","data_offsets":[0,4]}})", zeros(4))),
                  "tensor 'w': 'shape' is not an array");
  EXPECT_CONTAINS(parse_error(file_of(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", zeros(4))),
                  "tensor 'w': 'shape' entry 1.5 is not an integer");
  EXPECT_CONTAINS(parse_error(file_of(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", zeros(4))),
                  "tensor 'w': 'data_offsets' must be an array [begin, end]");
  EXPECT_CONTAINS(parse_error(file_of(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,"4"]}})", zeros(4))),
                  "tensor 'w': 'data_offsets'");
  EXPECT_CONTAINS(parse_error(file_of(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", zeros(4))),
                  "non-negative");
  EXPECT_CONTAINS(parse_error(file_of(R"({"__metadata__":{"k":1}})", {})), "'__metadata__' value of 'k'");
  EXPECT_CONTAINS(parse_error(file_of(R"({"__metadata__":[1]})", {})), "'__metadata__' is not a JSON object");
}

TEST(SafetensorsBad, UnknownDtype) {
  EXPECT_CONTAINS(parse_error(file_of(R"({"w":{"dtype":"F7","shape":[1],"data_offsets":[0,4]}})", zeros(4))),
                  "tensor 'w': unknown dtype 'F7'");
}

TEST(SafetensorsBad, NegativeShape) {
  EXPECT_CONTAINS(parse_error(file_of(R"({"w":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,4]}})", zeros(4))),
                  "tensor 'w': 'shape' [2, -1] has a negative dimension");
}

TEST(SafetensorsBad, DtypeOrShapeSizeMismatch) {
  // [2, 2] F32 needs 16 bytes; the offsets hold 12.
  const auto m = parse_error(file_of(R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})", zeros(12)));
  EXPECT_CONTAINS(m, "tensor 'w'");
  EXPECT_CONTAINS(m, "data_offsets [0, 12] hold 12 bytes but shape [2, 2] of F32 needs 16");
  // the same bytes as F16 would need 8
  EXPECT_CONTAINS(parse_error(file_of(R"({"w":{"dtype":"F16","shape":[2,2],"data_offsets":[0,12]}})", zeros(12))),
                  "of F16 needs 8");
  // a shape whose byte count overflows 64 bits
  EXPECT_CONTAINS(
      parse_error(file_of(R"({"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", zeros(8))),
      "too large");
}

TEST(SafetensorsBad, OffsetsOutOfRange) {
  const auto m = parse_error(file_of(R"({"blocks.0.attn.W_Q":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})",
                                     zeros(8)));
  EXPECT_CONTAINS(m, "safetensors: tensor 'blocks.0.attn.W_Q': data_offsets [0, 12] out of range (data is 8 bytes)");
  EXPECT_CONTAINS(parse_error(file_of(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", zeros(8))),
                  "end before begin");
}

// A name read from the file with a newline in it (JSON "\n") stays on the
// reason's one line: the fuzzer found such a tensor name breaking it.
TEST(SafetensorsBad, ANameWithANewlineStaysOnOneLine) {
  const auto m = parse_error(file_of(R"({"blocks.0\n  W_Q":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})", zeros(8)));
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  EXPECT_CONTAINS(m, "tensor 'blocks.0?  W_Q': data_offsets [0, 12] out of range");
  EXPECT_EQ(std::string(Error("a\tb\r\nc\x7f").what()), "a?b??c?");
}

TEST(SafetensorsBad, OverlappingTensors) {
  const std::string h =
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  const auto m = parse_error(file_of(h, zeros(12)));
  EXPECT_CONTAINS(m, "tensor 'b'");
  EXPECT_CONTAINS(m, "overlap tensor 'a' [0, 8]");
}

TEST(SafetensorsBad, GapInData) {
  const std::string h =
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})";
  const auto m = parse_error(file_of(h, zeros(20)));
  EXPECT_CONTAINS(m, "tensor 'b'");
  EXPECT_CONTAINS(m, "bytes [8, 12)");
}

TEST(SafetensorsBad, DataNotFullyCovered) {
  const auto m = parse_error(file_of(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", zeros(12)));
  EXPECT_CONTAINS(m, "data section is 12 bytes but the tensors cover only 8");
}

// ---- half precision: against an independent formula ------------------------------

// IEEE 754 binary16 by definition: (-1)^s * 2^(e-15) * (1 + m/1024), subnormal 2^-14 * m/1024.
double half_by_definition(uint16_t h) {
  const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v;
  if (e == 31)
    v = m ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else if (e == 0)
    v = std::pow(2.0, -14) * (m / 1024.0);
  else
    v = std::pow(2.0, e - 15) * (1.0 + m / 1024.0);
  return s ? -v : v;
}

TEST(Half, KnownValues) {
  EXPECT_EQ(cs::f16_to_float(0x3C00), 1.0f);
  EXPECT_EQ(cs::f16_to_float(0xC000), -2.0f);
  EXPECT_EQ(cs::f16_to_float(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(cs::f16_to_float(0xFC00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(cs::f16_to_float(0x7E00)));
  EXPECT_TRUE(std::isnan(cs::f16_to_float(0xFC01)));
  EXPECT_EQ(cs::f16_to_float(0x0001), 5.9604644775390625e-08f);  // 2^-24, the smallest subnormal
  EXPECT_EQ(cs::f16_to_float(0x03FF), 6.09755516052246094e-05f);  // largest subnormal, 1023 * 2^-24
  EXPECT_EQ(cs::f16_to_float(0x0400), 6.103515625e-05f);          // 2^-14, smallest normal
  EXPECT_EQ(cs::f16_to_float(0x7BFF), 65504.0f);
  EXPECT_EQ(cs::f16_to_float(0x3555), 0.333251953125f);
  const float negzero = cs::f16_to_float(0x8000);
  EXPECT_EQ(negzero, 0.0f);
  EXPECT_TRUE(std::signbit(negzero));
}

TEST(Half, AllBitPatternsMatchDefinition) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const double want = half_by_definition(uint16_t(h));
    const float got = cs::f16_to_float(uint16_t(h));
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << std::hex << h;
    } else {
      ASSERT_EQ(double(got), want) << std::hex << h;
      ASSERT_EQ(std::signbit(got), bool(h & 0x8000)) << std::hex << h;
      // every non-NaN half survives float -> half exactly
      ASSERT_EQ(cs::float_to_f16(got), uint16_t(h)) << std::hex << h;
    }
  }
}

TEST(Half, FloatToHalfRoundsToNearestEven) {
  const float u = std::ldexp(1.0f, -11);  // half an ulp of 1.0 in binary16
  EXPECT_EQ(cs::float_to_f16(1.0f + u), 0x3C00);          // tie -> even (1.0)
  EXPECT_EQ(cs::float_to_f16(1.0f + 3 * u), 0x3C02);      // tie -> even (1 + 2^-9)
  EXPECT_EQ(cs::float_to_f16(1.0f + 1.5f * u), 0x3C01);   // above the tie
  EXPECT_EQ(cs::float_to_f16(65519.0f), 0x7BFF);          // below the tie with 65536
  EXPECT_EQ(cs::float_to_f16(65520.0f), 0x7C00);          // tie rounds to even: infinity
  EXPECT_EQ(cs::float_to_f16(1e10f), 0x7C00);
  EXPECT_EQ(cs::float_to_f16(-1e10f), 0xFC00);
  EXPECT_EQ(cs::float_to_f16(std::ldexp(1.0f, -25)), 0x0000);      // half the smallest subnormal: tie -> 0
  EXPECT_EQ(cs::float_to_f16(std::ldexp(3.0f, -25)), 0x0002);      // 1.5 units -> 2
  EXPECT_EQ(cs::float_to_f16(std::ldexp(1.0f, -14) - std::ldexp(1.0f, -26)), 0x0400);  // rounds up into the normals
  EXPECT_EQ(cs::float_to_f16(1e-10f), 0x0000);
  EXPECT_EQ(cs::float_to_f16(-1e-10f), 0x8000);
  EXPECT_EQ(cs::float_to_f16(std::numeric_limits<float>::infinity()), 0x7C00);
  const uint16_t nan = cs::float_to_f16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7C00, 0x7C00);
  EXPECT_NE(nan & 0x03FF, 0);
}

TEST(Half, BFloat16) {
  EXPECT_EQ(cs::bf16_to_float(0x3F80), 1.0f);
  EXPECT_EQ(cs::bf16_to_float(0xC000), -2.0f);
  EXPECT_EQ(cs::bf16_to_float(0x7F80), std::numeric_limits<float>::infinity());
  EXPECT_EQ(cs::bf16_to_float(0x0001), std::ldexp(1.0f, -133));  // smallest bf16 subnormal: 2^-126 * 2^-7
  EXPECT_TRUE(std::isnan(cs::bf16_to_float(0x7FC0)));
}

// ---- writer -----------------------------------------------------------------------

TEST(SafetensorsWrite, RoundTripIsBitExact) {
  std::vector<float> a(35), b(6), c;
  for (size_t i = 0; i < a.size(); ++i) a[i] = std::sin(float(i) * 1.7f) * 100.f;
  b = {0.f, -0.f, std::numeric_limits<float>::denorm_min(), -std::numeric_limits<float>::infinity(),
       std::numeric_limits<float>::max(), std::nanf("")};
  const std::vector<cs::StWriteTensor> ts = {
      {"zeta", {5, 7}, a}, {"alpha", {2, 3}, b}, {"empty", {0, 4}, c}};
  const auto bytes = cs::write_safetensors(ts, {{"config", "{\"d_model\": 4}"}, {"format", "pt"}});

  // header length: little-endian, a multiple of 8, padded with spaces
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(bytes[size_t(i)]) << (8 * i);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + n + 4 * (35 + 6));
  const std::string header(bytes.begin() + 8, bytes.begin() + 8 + long(n));
  EXPECT_EQ(header.front(), '{');
  const size_t close = header.find_last_of('}');
  for (size_t i = close + 1; i < header.size(); ++i) EXPECT_EQ(header[i], ' ');

  const cs::StFile f = cs::parse_safetensors(bytes);
  EXPECT_EQ(f.metadata.at("config"), "{\"d_model\": 4}");
  EXPECT_EQ(f.metadata.at("format"), "pt");
  ASSERT_EQ(f.tensors.size(), 3u);
  for (const auto& w : ts) {
    const cs::StTensor* t = f.find(w.name);
    ASSERT_NE(t, nullptr) << w.name;
    EXPECT_EQ(t->dtype, "F32");
    EXPECT_EQ(t->shape, w.shape);
    std::vector<float> back(w.values.size());
    cs::tensor_to_float(f, *t, back.data());
    if (!back.empty())  // (memcmp of an empty vector's null data is undefined)
      EXPECT_EQ(std::memcmp(back.data(), w.values.data(), back.size() * 4), 0) << w.name;
  }
}

TEST(SafetensorsWrite, F16) {
  const std::vector<float> v = {1.0f, -2.0f, 0.1f, 70000.f, std::ldexp(1.0f, -24), 1.0f + std::ldexp(1.0f, -11)};
  const auto bytes = cs::write_safetensors({{"w", {2, 3}, v}}, {}, true);
  const cs::StFile f = cs::parse_safetensors(bytes);
  EXPECT_TRUE(f.metadata.empty());
  ASSERT_EQ(f.tensors.size(), 1u);
  EXPECT_EQ(f.tensors[0].dtype, "F16");
  EXPECT_EQ(f.data.size(), 12u);
  // raw bits: the nearest binary16 values, worked out by hand
  const uint16_t want[6] = {0x3C00, 0xC000, 0x2E66, 0x7C00, 0x0001, 0x3C00};
  for (int i = 0; i < 6; ++i) {
    uint16_t got;
    std::memcpy(&got, f.data.data() + 2 * i, 2);
    EXPECT_EQ(got, want[i]) << i;
  }
}

TEST(SafetensorsWrite, RejectsBadInput) {
  const std::vector<float> v(4);
  EXPECT_THROW(cs::write_safetensors({{"w", {2, 2}, v}, {"w", {4}, v}}), Error);
  try {
    cs::write_safetensors({{"w", {3}, v}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_CONTAINS(e.what(), "'w'");
    EXPECT_CONTAINS(e.what(), "needs 3 values, got 4");
  }
}

}  // namespace
