// PyTorch checkpoints (io/pth.h, io/zip.h, io/pickle.h) against files torch.save
// wrote (tests/fixtures/pth, made by make_fixtures.py with Debian's torch):
// every tensor equals its safetensors twin (written from the same numbers by
// that script, not by the code under test); F16/BF16 within their rounding;
// hostile files and every truncation of the real ones are refused with one
// line; hand-made pickles for the opcodes and globals a state dict never uses.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/model_io.h"
#include "io/pickle.h"
#include "io/pth.h"
#include "io/safetensors.h"
#include "io/zip.h"

namespace {

using cs::Error;
using cs::FileSet;

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "message: " << (haystack)

const std::string kDir = std::string(CS_SOURCE_DIR) + "/tests/fixtures/pth/";

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << path;
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// config.json + the given weights file (as the CLI and the page hand them over).
FileSet files_with(const std::string& folder, const std::string& weights) {
  FileSet f;
  f["config.json"] = read_bytes(kDir + folder + "/config.json");
  f[weights] = read_bytes(kDir + folder + "/" + weights);
  return f;
}

cs::LoadedModel load_raw(const FileSet& f) {
  cs::LoadOptions o;
  o.process = false;
  return cs::load_model(f, o);
}

std::string error_of(const FileSet& f) {
  try {
    load_raw(f);
  } catch (const Error& e) {
    return e.what();
  }
  return "(loaded)";
}

// Every float of `got` against the twin's, |a - b| <= rel |b| + abs.
void expect_same_weights(const cs::Model& got, const cs::Model& twin, double rel, double abs) {
  ASSERT_EQ(got.size(), twin.size());
  ASSERT_EQ(got.tensors().size(), twin.tensors().size());
  for (const cs::TensorSpec& s : twin.tensors()) {
    const cs::TensorSpec* g = got.find(s.name);
    ASSERT_NE(g, nullptr) << s.name;
    ASSERT_EQ(g->shape, s.shape) << s.name;
    size_t bad = 0;
    for (size_t i = 0; i < s.numel; ++i) {
      const double a = got.data()[g->offset + i], b = twin.data()[s.offset + i];
      if (!(std::fabs(a - b) <= rel * std::fabs(b) + abs)) ++bad;
    }
    EXPECT_EQ(bad, 0u) << s.name << ": " << bad << " of " << s.numel << " values differ";
  }
}

TEST(Pth, ZipCheckpointEqualsItsSafetensorsTwin) {
  const cs::LoadedModel twin = load_raw(files_with("tiny-2l-safetensors", "model.safetensors"));
  const cs::LoadedModel m = load_raw(files_with("tiny-2l", "model_final.pth"));
  EXPECT_EQ(m.weights_file, "model_final.pth");
  EXPECT_EQ(m.model.config().name, "tiny-2l-pth");  // config.json's model_name
  EXPECT_EQ(m.model.config().n_layers, 2);
  expect_same_weights(m.model, twin.model, 0, 0);
  EXPECT_TRUE(m.warnings.empty()) << m.warnings[0];  // mask and IGNORE are buffers, not weights
}

TEST(Pth, LegacyFormatEqualsTwin) {
  const cs::LoadedModel twin = load_raw(files_with("tiny-2l-safetensors", "model.safetensors"));
  expect_same_weights(load_raw(files_with("checkpoints", "legacy.pth")).model, twin.model, 0, 0);
}

TEST(Pth, HalfAndBfloat16WithinTheirRounding) {
  const cs::LoadedModel twin = load_raw(files_with("tiny-2l-safetensors", "model.safetensors"));
  const cs::LoadedModel h = load_raw(files_with("checkpoints", "f16.pth"));
  EXPECT_EQ(h.model.config().name, "tiny-2l-pth");
  expect_same_weights(h.model, twin.model, std::ldexp(1.0, -11), std::ldexp(1.0, -24));
  expect_same_weights(load_raw(files_with("checkpoints", "bf16.pth")).model, twin.model, std::ldexp(1.0, -8), 0);
}

TEST(Pth, ProcessedModelsAgreeToo) {
  // The default load (TransformerLens weight processing) of the checkpoint and of its twin.
  FileSet a = files_with("tiny-2l", "model_final.pth"), b = files_with("tiny-2l-safetensors", "model.safetensors");
  // (Sums over d_model may round differently with the data's alignment: 1e-6.)
  expect_same_weights(cs::load_model(a).model, cs::load_model(b).model, 1e-6, 1e-7);
}

TEST(Pth, ParsesBuffersWithTheirTypes) {
  const std::vector<uint8_t> bytes = read_bytes(kDir + "tiny-2l/model_final.pth");
  const cs::StFile f = cs::parse_pth(bytes);
  const cs::StTensor* mask = f.find("blocks.0.attn.mask");
  ASSERT_NE(mask, nullptr);
  EXPECT_EQ(mask->dtype, "BOOL");
  EXPECT_EQ(mask->shape, (std::vector<int64_t>{32, 32}));
  // The causal mask as torch.tril wrote it: row i has i + 1 ones.
  for (int i = 0; i < 32; ++i)
    for (int j = 0; j < 32; ++j) ASSERT_EQ(f.data[mask->begin + size_t(32 * i + j)], j <= i ? 1 : 0);
  const cs::StTensor* ignore = f.find("blocks.1.attn.IGNORE");
  ASSERT_NE(ignore, nullptr);
  EXPECT_TRUE(ignore->shape.empty());
  float v = 0;
  cs::tensor_to_float(f, *ignore, &v);
  EXPECT_EQ(v, -1e5f);
}

TEST(Pth, ChoosesTheWeightsFile) {
  FileSet f = files_with("checkpoints", "f16.pth");
  f["bf16.pth"] = read_bytes(kDir + "checkpoints/bf16.pth");
  EXPECT_CONTAINS(error_of(f), "several weights files (bf16.pth, f16.pth)");
  f["model_final.pth"] = read_bytes(kDir + "tiny-2l/model_final.pth");
  EXPECT_EQ(load_raw(f).weights_file, "model_final.pth");
  f["model.safetensors"] = read_bytes(kDir + "tiny-2l-safetensors/model.safetensors");
  EXPECT_EQ(load_raw(f).weights_file, "model.safetensors");
  FileSet none;
  none["config.json"] = f["config.json"];
  EXPECT_CONTAINS(error_of(none), "no weights file (.safetensors, .pth)");
}

TEST(Pth, HostileFilesAreRefusedNamingWhy) {
  struct Case {
    const char* file;
    const char* says;
  };
  for (const Case& c : {Case{"global_os_system.pth", "global 'posix.system' at byte"},
                        Case{"reduce_storage.pth", "REDUCE at byte"},
                        Case{"offset_beyond.pth", "tensor 'embed.W_E' spans elements [3, 3 + 4) beyond its storage '0' of 4"},
                        Case{"storage_short.pth", "storage '0' should hold 400 elements of F32 but its entry has 16 bytes"},
                        Case{"zip_bomb.pth", "is compressed (method 8)"}}) {
    const std::string m = error_of(files_with("hostile", c.file));
    EXPECT_CONTAINS(m, c.file);  // the loader names the file first
    EXPECT_CONTAINS(m, c.says);
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
}

// Every cut of a real checkpoint is refused with one line (never a crash, a
// hang or a model built from half a file).
void expect_every_cut_refused(const std::string& folder, const std::string& file) {
  const std::vector<uint8_t> whole = read_bytes(kDir + folder + "/" + file);
  const size_t step = whole.size() / 97 + 1;
  int refused = 0;
  for (size_t n = 0; n < whole.size(); n += step) {
    FileSet f = files_with(folder, file);
    f[file].resize(n);
    const std::string m = error_of(f);
    EXPECT_NE(m, "(loaded)") << "cut at " << n;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    ++refused;
  }
  EXPECT_GT(refused, 90);
}

TEST(Pth, TruncatedZipIsRefusedAtEveryCut) { expect_every_cut_refused("tiny-2l", "model_final.pth"); }
TEST(Pth, TruncatedLegacyIsRefusedAtEveryCut) { expect_every_cut_refused("checkpoints", "legacy.pth"); }

TEST(Pth, CorruptedBytesNeverCrash) {
  // Bytes of data.pkl and of the zip directories overwritten: either a clean
  // error or a model (a changed weight is still a model); no crash.
  const std::vector<uint8_t> whole = read_bytes(kDir + "tiny-2l/model_final.pth");
  uint64_t state = 12345;
  auto next = [&] { return state = state * 6364136223846793005ull + 1442695040888963407ull; };
  for (int trial = 0; trial < 300; ++trial) {
    FileSet f = files_with("tiny-2l", "model_final.pth");
    std::vector<uint8_t>& b = f["model_final.pth"];
    // first 3 KB (local header + data.pkl) or last 3 KB (directories)
    const size_t region = 3000;
    for (int k = 0; k < 4; ++k) {
      const size_t at = (trial % 2 ? b.size() - region : 0) + size_t(next() >> 33) % region;
      b[at] = uint8_t(next() >> 56);
    }
    const std::string m = error_of(f);
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
}

// ---- the unpickler on hand-made pickles ---------------------------------------

std::vector<uint8_t> pk(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

using namespace std::string_literals;

std::string unpickle_error(const std::string& s) {
  try {
    cs::unpickle_state_dict(pk(s), "data.pkl");
  } catch (const Error& e) {
    return e.what();
  }
  return "(read)";
}

TEST(Pickle, EmptyOrderedDictIsAnEmptyStateDict) {
  // PROTO 2, GLOBAL collections.OrderedDict, EMPTY_TUPLE, REDUCE, BINPUT 0, STOP
  EXPECT_TRUE(cs::unpickle_state_dict(pk("\x80\x02" "ccollections\nOrderedDict\nq\x00)Rq\x01."s), "x").empty());
  EXPECT_TRUE(cs::unpickle_state_dict(pk("}."), "x").empty());  // a plain dict
}

TEST(Pickle, RefusesWhatAStateDictNeverHolds) {
  EXPECT_CONTAINS(unpickle_error("cbuiltins\neval\n(X\x03\x00\x00\x00" "1+1tR."s), "global 'builtins.eval' at byte 0 is not allowed");
  EXPECT_CONTAINS(unpickle_error("(ios\nsystem\n."), "opcode 0x69 (INST) at byte 1 is not allowed");
  EXPECT_CONTAINS(unpickle_error("\x80\x02}\x81."), "NEWOBJ");
  EXPECT_CONTAINS(unpickle_error("ctorch\nFloatStorage\nK\x04\x85R."), "REDUCE at byte 23 calls 'torch.FloatStorage'");
  EXPECT_CONTAINS(unpickle_error("K\x01."), "holds a int, not a state dict");
  EXPECT_CONTAINS(unpickle_error("}X\x01\x00\x00\x00kK\x01s."s), "entry 'k' is a int, not a tensor");
  EXPECT_CONTAINS(unpickle_error("h\x05."), "BINGET at byte 0 reads memo 5, never stored");
  EXPECT_CONTAINS(unpickle_error("}"), "ends without STOP");
  EXPECT_CONTAINS(unpickle_error("X\xff\xff\xff\x7f"), "needs 2147483647 more bytes");
  EXPECT_CONTAINS(unpickle_error("s."), "SETITEM at byte 0 finds nothing to take");
  EXPECT_CONTAINS(unpickle_error("K\x01K\x02u."), "SETITEMS at byte 4 has no MARK");
  EXPECT_CONTAINS(unpickle_error("]}b."), "BUILD at byte 2 sets the state of a list");
}

TEST(Pickle, DeepNestingAndLongInputsStayLinear) {
  // 200000 nested tuples (each MARK ... TUPLE wraps the previous one), then a
  // dict: no recursion, so no stack overflow; the result is simply refused.
  const std::string s = std::string(200000, '(') + "N" + std::string(200000, 't') + ".";
  EXPECT_CONTAINS(unpickle_error(s), "holds a tuple, not a state dict");
  // A memoized list appended to itself: a cycle, harmless in the arena.
  EXPECT_CONTAINS(unpickle_error("]q\x00h\x00" "a."s), "holds a list");
}

TEST(Zip, RefusesMalformedArchives) {
  auto zip_error = [](std::vector<uint8_t> b) {
    try {
      cs::read_zip(b);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(read)");
  };
  EXPECT_CONTAINS(zip_error(pk("PK\x03\x04")), "too short for a zip archive");
  EXPECT_CONTAINS(zip_error(std::vector<uint8_t>(100, 0)), "no end-of-central-directory record");
  // An empty archive is fine.
  std::vector<uint8_t> empty = pk(std::string("PK\x05\x06", 4) + std::string(18, '\0'));
  EXPECT_TRUE(cs::read_zip(empty).entries.empty());
  // One entry claimed, a directory pointing past the end.
  std::vector<uint8_t> past = empty;
  past[10] = 1;   // entries on disk
  past[12] = 46;  // directory size
  past[16] = 200; // directory offset
  EXPECT_CONTAINS(zip_error(past), "lies outside the file");
  // The real file's stored entries.
  const std::vector<uint8_t> real = read_bytes(kDir + "tiny-2l/model_final.pth");
  const cs::ZipArchive z = cs::read_zip(real);
  ASSERT_NE(z.find("model_final/data.pkl"), nullptr);
  EXPECT_EQ(z.find("model_final/version")->data.size(), 2u);
}

}  // namespace
