// Loading and saving whole models (model_io.h): config.json parsing (TransformerLens
// and toy-model keys), inference from tensor shapes, one test per bad input,
// bit-exact round trips, and the sliced ModelLoadJob.
// Files are built in memory; safetensors files with unusual dtypes are
// assembled byte by byte here, independently of the writer under test.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/model.h"
#include "core/processing.h"
#include "io/model_io.h"
#include "io/safetensors.h"
#include "test_models.h"

namespace {

using cs::Error;
using cs::FileSet;
using cs::Model;
using cs::ModelConfig;
using cs::Norm;
using cs::PosEmbed;

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "message: " << (haystack)

std::vector<uint8_t> bytes_of(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

ModelConfig tiny_config(Norm norm = Norm::LN, PosEmbed pos = PosEmbed::Standard) {
  ModelConfig c;
  c.n_layers = 2;
  c.d_model = 8;
  c.n_heads = 2;
  c.d_head = 4;
  c.n_ctx = 6;
  c.d_vocab = 11;
  c.normalization = norm;
  c.positional = pos;
  c.name = "tiny";
  return c;
}

Model tiny_model(Norm norm = Norm::LN, PosEmbed pos = PosEmbed::Standard, uint64_t seed = 7) {
  Model m(tiny_config(norm, pos));
  cs::randomize(m, seed);
  return m;
}

// The message of the cs::Error load_model throws, or "" if it loads.
std::string load_error(const FileSet& files, const cs::LoadOptions& opt = {}) {
  try {
    cs::load_model(files, opt);
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << "error must be one line: " << m;
    return m;
  }
  return "";
}

cs::LoadOptions raw() {
  cs::LoadOptions o;
  o.process = false;
  return o;
}

// Every tensor of `want` is in `got` with the same shape and the same bits.
void expect_same_tensors(const Model& want, const Model& got) {
  ASSERT_EQ(want.tensors().size(), got.tensors().size());
  for (const cs::TensorSpec& s : want.tensors()) {
    const cs::TensorSpec* g = got.find(s.name);
    ASSERT_NE(g, nullptr) << s.name;
    ASSERT_EQ(g->shape, s.shape) << s.name;
    EXPECT_EQ(std::memcmp(want.data() + s.offset, got.data() + g->offset, s.numel * sizeof(float)), 0) << s.name;
  }
}

// The same for processed weights, up to float rounding: Eigen's reductions sum
// in an order that depends on the buffer's address alignment, so two runs of
// the same processing on different allocations can differ in the last bit.
void expect_close_tensors(const Model& want, const Model& got) {
  ASSERT_EQ(want.tensors().size(), got.tensors().size());
  for (const cs::TensorSpec& s : want.tensors()) {
    const cs::TensorSpec* g = got.find(s.name);
    ASSERT_NE(g, nullptr) << s.name;
    ASSERT_EQ(g->shape, s.shape) << s.name;
    for (size_t i = 0; i < s.numel; ++i) {
      const float a = want.data()[s.offset + i], b = got.data()[g->offset + i];
      ASSERT_NEAR(a, b, 1e-6f * (1.f + std::fabs(a))) << s.name << "[" << i << "]";
    }
  }
}

// A tensor of a hand-built safetensors file: raw little-endian bytes.
struct RawTensor {
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

RawTensor f32(const std::string& name, std::vector<int64_t> shape, const float* v) {
  size_t n = 1;
  for (int64_t d : shape) n *= size_t(d);
  RawTensor t{name, "F32", shape, std::vector<uint8_t>(n * 4)};
  std::memcpy(t.bytes.data(), v, n * 4);
  return t;
}

std::vector<uint8_t> raw_safetensors(const std::vector<RawTensor>& ts,
                                     const std::map<std::string, std::string>& meta = {}) {
  nlohmann::json h = nlohmann::json::object();
  if (!meta.empty()) h["__metadata__"] = meta;
  uint64_t off = 0;
  for (const RawTensor& t : ts) {
    h[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {off, off + t.bytes.size()}}};
    off += t.bytes.size();
  }
  const std::string text = h.dump();
  std::vector<uint8_t> out(8);
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out[size_t(i)] = uint8_t(n >> (8 * i));
  out.insert(out.end(), text.begin(), text.end());
  for (const RawTensor& t : ts) out.insert(out.end(), t.bytes.begin(), t.bytes.end());
  return out;
}

// The model's tensors as raw F32, optionally leaving some out or adding others.
std::vector<RawTensor> raw_tensors(const Model& m, const std::vector<std::string>& skip = {}) {
  std::vector<RawTensor> out;
  for (const cs::TensorSpec& s : m.tensors()) {
    if (std::find(skip.begin(), skip.end(), s.name) != skip.end()) continue;
    out.push_back(f32(s.name, s.shape, m.data() + s.offset));
  }
  return out;
}

using cs::testmodels::wordlevel_tokenizer;

// ---- config.json ----------------------------------------------------------------

TEST(ConfigJson, ToyModelKeys) {
  // attn-only-2l-demo style: no normalization, shortformer positions, extra keys ignored.
  const char* demo = R"({"d_model": 512, "n_layers": 2, "d_mlp": 2048, "d_head": 64, "n_heads": 8, "n_ctx": 1024,
    "d_vocab": 50277, "tokenizer_name": "EleutherAI/gpt-neox-20b", "act_fn": "solu_ln", "attn_only": true,
    "normalization": null, "shortformer_pos": true, "lr": 0.001, "seed": 5})";
  bool pos = false, norm = false;
  ModelConfig c = cs::parse_config_json(demo, &pos, &norm);
  EXPECT_TRUE(pos);
  EXPECT_TRUE(norm);
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.d_model, 512);
  EXPECT_EQ(c.d_head, 64);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_ctx, 1024);
  EXPECT_EQ(c.d_vocab, 50277);
  EXPECT_EQ(c.vocab_out(), 50277);
  EXPECT_EQ(c.tokenizer_name, "EleutherAI/gpt-neox-20b");
  EXPECT_EQ(c.normalization, Norm::None);
  EXPECT_EQ(c.positional, PosEmbed::Shortformer);
  EXPECT_EQ(c.scale(), 8.0f);  // sqrt(d_head) = 8, as the toy models use
  EXPECT_EQ(c.eps, 1e-5f);

  // attn-only-3l style: "normalization": "LN", standard positions.
  c = cs::parse_config_json(R"({"n_layers": 3, "normalization": "LN", "shortformer_pos": false, "d_vocab": 48262})");
  EXPECT_EQ(c.normalization, Norm::LN);
  EXPECT_EQ(c.positional, PosEmbed::Standard);
  EXPECT_EQ(c.n_layers, 3);
  c = cs::parse_config_json(R"({"normalization": "None"})");
  EXPECT_EQ(c.normalization, Norm::None);
}

TEST(ConfigJson, TransformerLensKeys) {
  bool pos = true, norm = true;
  ModelConfig c = cs::parse_config_json(
      R"({"n_layers": 1, "d_model": 16, "n_heads": 2, "d_head": 8, "n_ctx": 32, "d_vocab": 100,
          "d_vocab_out": 90, "attn_scale": 2.5, "normalization_type": "LNPre",
          "positional_embedding_type": "standard", "eps": 1e-6, "model_name": "m1", "attn_only": true,
          "n_key_value_heads": null})",
      &pos, &norm);
  EXPECT_TRUE(pos);
  EXPECT_TRUE(norm);
  EXPECT_EQ(c.d_vocab_out, 90);
  EXPECT_EQ(c.attn_scale, 2.5f);
  EXPECT_EQ(c.normalization, Norm::LNPre);
  EXPECT_EQ(c.positional, PosEmbed::Standard);
  EXPECT_EQ(c.eps, 1e-6f);
  EXPECT_EQ(c.name, "m1");
  c = cs::parse_config_json(R"({"layer_norm_eps": 0.001, "normalization_type": null, "d_vocab": -1,
                                "attn_scale": -1.0, "positional_embedding_type": "shortformer"})",
                            &pos, &norm);
  EXPECT_EQ(c.eps, 0.001f);
  EXPECT_EQ(c.normalization, Norm::None);
  EXPECT_EQ(c.d_vocab, 0);        // -1: to be inferred
  EXPECT_EQ(c.attn_scale, 0.f);   // -1: sqrt(d_head)
  EXPECT_EQ(c.positional, PosEmbed::Shortformer);
  c = cs::parse_config_json(R"({"use_attn_scale": false, "d_head": 64})");
  EXPECT_EQ(c.scale(), 1.0f);
  // nothing given: the flags say so, fields stay at their defaults
  c = cs::parse_config_json("{}", &pos, &norm);
  EXPECT_FALSE(pos);
  EXPECT_FALSE(norm);
  EXPECT_EQ(c.d_model, 0);
}

std::string config_error(const std::string& text) {
  try {
    cs::parse_config_json(text);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ConfigJson, RejectsUnsupportedAndWrongTypes) {
  EXPECT_EQ(config_error(R"({"attn_only": false})"),
            "config: attn_only is false, only attention-only models are supported");
  EXPECT_CONTAINS(config_error(R"({"positional_embedding_type": "rotary"})"), "positional_embedding_type 'rotary'");
  EXPECT_CONTAINS(config_error(R"({"normalization_type": "RMS"})"), "normalization_type 'RMS'");
  EXPECT_CONTAINS(config_error(R"({"normalization": 3})"), "normalization must be");
  EXPECT_CONTAINS(config_error(R"({"d_model": "512"})"), "d_model must be an integer");
  EXPECT_CONTAINS(config_error(R"({"n_heads": 2.5})"), "n_heads must be an integer");
  EXPECT_CONTAINS(config_error(R"({"n_ctx": -3})"), "n_ctx");
  EXPECT_CONTAINS(config_error(R"({"eps": "small"})"), "eps must be a number");
  EXPECT_CONTAINS(config_error(R"({"shortformer_pos": "yes"})"), "shortformer_pos");
  EXPECT_CONTAINS(config_error(R"({"n_heads": 8, "n_key_value_heads": 2})"), "n_key_value_heads");
  EXPECT_CONTAINS(config_error(R"({"d_model": 5)"), "config: not valid JSON");
  EXPECT_CONTAINS(config_error(R"([1])"), "config: not a JSON object");
}

TEST(ConfigJson, WriteThenReadGivesTheSameConfig) {
  for (Norm n : {Norm::None, Norm::LN, Norm::LNPre})
    for (PosEmbed p : {PosEmbed::Standard, PosEmbed::Shortformer, PosEmbed::None}) {
      ModelConfig c = tiny_config(n, p);
      c.d_vocab_out = 13;
      c.eps = 1e-5f;
      c.attn_scale = 3.3f;
      c.tokenizer_name = "tok";
      const std::string text = cs::config_to_json(c);
      // TransformerLens keys in the text
      const auto j = nlohmann::json::parse(text);
      EXPECT_EQ(j.at("d_vocab_out"), 13);
      EXPECT_EQ(j.at("attn_only"), true);
      EXPECT_EQ(j.at("eps").get<double>(), 1e-5);  // written as the short decimal
      bool pos = false, norm = false;
      const ModelConfig r = cs::parse_config_json(text, &pos, &norm);
      EXPECT_TRUE(pos && norm);
      EXPECT_EQ(r.n_layers, c.n_layers);
      EXPECT_EQ(r.d_model, c.d_model);
      EXPECT_EQ(r.n_heads, c.n_heads);
      EXPECT_EQ(r.d_head, c.d_head);
      EXPECT_EQ(r.n_ctx, c.n_ctx);
      EXPECT_EQ(r.d_vocab, c.d_vocab);
      EXPECT_EQ(r.d_vocab_out, 13);
      EXPECT_EQ(r.attn_scale, 3.3f);
      EXPECT_EQ(r.eps, 1e-5f);
      EXPECT_EQ(r.normalization, n);
      EXPECT_EQ(r.positional, p);
      EXPECT_EQ(r.name, "tiny");
      EXPECT_EQ(r.tokenizer_name, "tok");
    }
}

// ---- round trips --------------------------------------------------------------------

TEST(ModelIo, SaveThenLoadIsBitExact) {
  for (Norm n : {Norm::LN, Norm::None})
    for (PosEmbed p : {PosEmbed::Standard, PosEmbed::Shortformer, PosEmbed::None}) {
      const Model m = tiny_model(n, p);
      const FileSet files = cs::save_model(m);
      EXPECT_TRUE(files.count("model.safetensors"));
      EXPECT_TRUE(files.count("config.json"));
      EXPECT_FALSE(files.count("tokenizer.json"));
      const cs::LoadedModel r = cs::load_model(files, raw());
      EXPECT_EQ(r.weights_file, "model.safetensors");
      EXPECT_TRUE(r.warnings.empty()) << r.warnings.front();
      EXPECT_FALSE(r.tokenizer.has_value());
      EXPECT_FALSE(r.model.processing.any());
      const ModelConfig& c = r.model.config();
      EXPECT_EQ(c.normalization, n);
      EXPECT_EQ(c.positional, p);
      EXPECT_EQ(c.n_ctx, 6);
      EXPECT_EQ(c.scale(), 2.0f);
      EXPECT_EQ(c.name, "tiny");
      expect_same_tensors(m, r.model);
    }
}

// The loader's last stage: the mean and variance of every row of the final
// W_E (after processing, which centres it), for the circuits' row and column
// queries; they refer to the returned model's own storage.
TEST(ModelIo, LoadedModelCarriesTheRowStatisticsOfItsFinalEmbedding) {
  const FileSet files = cs::save_model(tiny_model());
  for (bool process : {false, true}) {
    cs::LoadOptions opt = raw();
    opt.process = process;
    cs::ModelLoadJob job(files, opt);
    while (!job.step(0.0)) {
    }
    const cs::LoadedModel r = job.take();
    ASSERT_TRUE(r.embed_stats) << "process " << process;
    const cs::ConstMatMap E = r.model.W_E();
    EXPECT_EQ(r.embed_stats->data, E.data());
    ASSERT_EQ(r.embed_stats->mean.size(), E.rows());
    for (Eigen::Index i = 0; i < E.rows(); ++i) {
      double sum = 0, sq = 0;
      for (Eigen::Index k = 0; k < E.cols(); ++k) sum += E(i, k);
      const double mu = sum / double(E.cols());
      for (Eigen::Index k = 0; k < E.cols(); ++k) sq += (E(i, k) - mu) * (E(i, k) - mu);
      EXPECT_NEAR(r.embed_stats->mean[i], mu, 1e-6) << "process " << process << " row " << i;
      EXPECT_NEAR(r.embed_stats->var[i], sq / double(E.cols()), 1e-6) << "process " << process << " row " << i;
    }
    // and circuit_options hands them on
    EXPECT_EQ(cs::circuit_options(r, false).embed_stats, r.embed_stats);
    EXPECT_FALSE(cs::circuit_options(r, false).normalize_embed);
  }
}

TEST(ModelIo, SaveF16StoresTheNearestHalves) {
  const Model m = tiny_model();
  const FileSet files = cs::save_model(m, {}, true);
  const cs::StFile st = cs::parse_safetensors(files.at("model.safetensors"));
  for (const cs::StTensor& t : st.tensors) EXPECT_EQ(t.dtype, "F16") << t.name;
  const cs::LoadedModel r = cs::load_model(files, raw());
  for (const cs::TensorSpec& s : m.tensors())
    for (size_t i = 0; i < s.numel; ++i) {
      const float v = m.data()[s.offset + i];
      const float back = r.model.data()[r.model.find(s.name)->offset + i];
      // within half an ulp of binary16 (relative 2^-11) for these normal-range values
      ASSERT_LE(std::fabs(back - v), std::fabs(v) * std::ldexp(1.0f, -11) + std::ldexp(1.0f, -25)) << s.name;
    }
}

TEST(ModelIo, SavesProcessedModelAndItsState) {
  Model m = tiny_model();
  cs::process_weights(m);
  ASSERT_EQ(m.config().normalization, Norm::LNPre);
  const FileSet files = cs::save_model(m, wordlevel_tokenizer(5));
  const cs::LoadedModel r = cs::load_model(files, raw());
  EXPECT_EQ(r.model.config().normalization, Norm::LNPre);
  EXPECT_TRUE(r.model.processing.fold_ln);
  EXPECT_TRUE(r.model.processing.center_unembed);
  EXPECT_TRUE(r.model.processing.fold_value_biases);
  EXPECT_EQ(r.model.find("blocks.0.ln1.w"), nullptr);
  expect_same_tensors(m, r.model);
  ASSERT_TRUE(r.tokenizer.has_value());
  EXPECT_EQ(r.tokenizer->vocab_size(), 5);
}

TEST(ModelIo, SingleFileWithConfigInMetadata) {
  const Model m = tiny_model(Norm::None, PosEmbed::Shortformer);
  ModelConfig c = m.config();
  c.name.clear();
  FileSet files;
  files["tiny-model.safetensors"] = raw_safetensors(raw_tensors(m), {{"config", cs::config_to_json(c)}});
  const cs::LoadedModel r = cs::load_model(files, raw());
  EXPECT_EQ(r.weights_file, "tiny-model.safetensors");
  EXPECT_EQ(r.model.config().name, "tiny-model");  // from the file name when the config has none
  EXPECT_EQ(r.model.config().positional, PosEmbed::Shortformer);
  EXPECT_EQ(r.model.config().normalization, Norm::None);
  expect_same_tensors(m, r.model);

  // The config keys directly in __metadata__ (strings, as safetensors requires),
  // and a tokenizer there too.
  files.clear();
  files["x.safetensors"] = raw_safetensors(raw_tensors(m), {{"shortformer_pos", "true"},
                                                            {"normalization_type", "None"},
                                                            {"attn_scale", "1.5"},
                                                            {"n_layers", "2"},
                                                            {"tokenizer", wordlevel_tokenizer(4)}});
  const cs::LoadedModel r2 = cs::load_model(files, raw());
  EXPECT_EQ(r2.model.config().positional, PosEmbed::Shortformer);
  EXPECT_EQ(r2.model.config().attn_scale, 1.5f);
  ASSERT_TRUE(r2.tokenizer.has_value());
  EXPECT_EQ(r2.tokenizer->vocab_size(), 4);
  expect_same_tensors(m, r2.model);
}

TEST(ModelIo, InfersConfigFromShapesWithoutConfigJson) {
  ModelConfig want = tiny_config(Norm::LN, PosEmbed::Standard);
  want.d_vocab_out = 9;
  Model m(want);
  cs::randomize(m, 3);
  FileSet files{{"model.safetensors", raw_safetensors(raw_tensors(m))}};
  cs::LoadedModel r = cs::load_model(files, raw());
  const ModelConfig& c = r.model.config();
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.d_model, 8);
  EXPECT_EQ(c.n_heads, 2);
  EXPECT_EQ(c.d_head, 4);
  EXPECT_EQ(c.n_ctx, 6);
  EXPECT_EQ(c.d_vocab, 11);
  EXPECT_EQ(c.vocab_out(), 9);
  EXPECT_EQ(c.normalization, Norm::LN);          // ln1.w present
  EXPECT_EQ(c.positional, PosEmbed::Standard);   // pos_embed present, no config
  EXPECT_EQ(c.scale(), 2.0f);
  expect_same_tensors(m, r.model);

  // without ln tensors and pos_embed: no normalization, no positions
  const Model m2 = tiny_model(Norm::None, PosEmbed::None);
  files = {{"model.safetensors", raw_safetensors(raw_tensors(m2))}};
  r = cs::load_model(files, raw());
  EXPECT_EQ(r.model.config().normalization, Norm::None);
  EXPECT_EQ(r.model.config().positional, PosEmbed::None);
  expect_same_tensors(m2, r.model);
}

TEST(ModelIo, PartialConfigJsonIsCompletedFromShapes) {
  const Model m = tiny_model(Norm::LN, PosEmbed::Shortformer);
  FileSet files{{"model.safetensors", raw_safetensors(raw_tensors(m))},
                {"config.json", bytes_of(R"({"shortformer_pos": true, "attn_only": true, "n_heads": 2})")}};
  const cs::LoadedModel r = cs::load_model(files, raw());
  const ModelConfig& c = r.model.config();
  EXPECT_EQ(c.positional, PosEmbed::Shortformer);
  EXPECT_EQ(c.normalization, Norm::LN);
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.d_head, 4);
  EXPECT_EQ(c.d_vocab, 11);
  expect_same_tensors(m, r.model);
}

TEST(ModelIo, WeightsFileChoice) {
  const Model m = tiny_model();
  const auto st = cs::save_model(m).at("model.safetensors");
  FileSet files{{"a.safetensors", st}, {"model.safetensors", st}};
  EXPECT_EQ(cs::load_model(files, raw()).weights_file, "model.safetensors");
  files = {{"a.safetensors", st}, {"b.safetensors", st}};
  EXPECT_CONTAINS(load_error(files), "several weights files (a.safetensors, b.safetensors)");
  files = {{"config.json", bytes_of("{}")}};
  EXPECT_CONTAINS(load_error(files), "no weights file (.safetensors, .pth)");
}

// ---- one test per bad input ---------------------------------------------------------

TEST(ModelIoBad, SafetensorsErrorsNameTheFile) {
  FileSet files{{"model.safetensors", {1, 2, 3}}};
  EXPECT_CONTAINS(load_error(files), "model.safetensors: file is 3 bytes");
}

TEST(ModelIoBad, MissingTensor) {
  const Model m = tiny_model();
  FileSet files = cs::save_model(m);
  files["model.safetensors"] = raw_safetensors(raw_tensors(m, {"blocks.1.attn.W_V"}));
  EXPECT_EQ(load_error(files), "missing tensor 'blocks.1.attn.W_V'");
  // LN in config.json but no ln tensors: report the first missing one, not a guess
  const Model plain = tiny_model(Norm::None);
  files["model.safetensors"] = raw_safetensors(raw_tensors(plain));
  EXPECT_EQ(load_error(files), "missing tensor 'blocks.0.ln1.w'");
  files = {{"model.safetensors", raw_safetensors(raw_tensors(m, {"embed.W_E"}))}};
  EXPECT_EQ(load_error(files), "missing tensor 'embed.W_E'");
}

TEST(ModelIoBad, ConfigContradictsShapes) {
  const Model m = tiny_model();  // d_model 8
  FileSet files = cs::save_model(m);
  ModelConfig c = m.config();
  c.d_model = 32;
  c.d_head = 16;
  const std::string text = cs::config_to_json(c);
  files["config.json"] = bytes_of(text);
  EXPECT_EQ(load_error(files), "tensor 'embed.W_E' has shape [11, 8] but config d_model = 32");
  c = m.config();
  c.n_ctx = 7;
  files["config.json"] = bytes_of(cs::config_to_json(c));
  EXPECT_EQ(load_error(files), "tensor 'pos_embed.W_pos' has shape [6, 8] but config n_ctx = 7");
  c = m.config();
  c.d_head = 2;
  c.n_heads = 4;
  files["config.json"] = bytes_of(cs::config_to_json(c));
  EXPECT_EQ(load_error(files), "tensor 'blocks.0.attn.W_Q' has shape [2, 8, 4] but config n_heads = 4");
  c = m.config();
  c.n_layers = 1;
  files["config.json"] = bytes_of(cs::config_to_json(c));
  EXPECT_CONTAINS(load_error(files), "tensor 'blocks.1.");
  EXPECT_CONTAINS(load_error(files), "config n_layers = 1");
  c = m.config();
  c.d_vocab_out = 12;
  files["config.json"] = bytes_of(cs::config_to_json(c));
  EXPECT_EQ(load_error(files), "tensor 'unembed.W_U' has shape [8, 11] but config d_vocab_out = 12");
}

TEST(ModelIoBad, DtypeMismatch) {
  const Model m = tiny_model();
  std::vector<RawTensor> ts = raw_tensors(m, {"unembed.b_U"});
  ts.push_back({"unembed.b_U", "I64", {11}, std::vector<uint8_t>(88, 0)});
  FileSet files{{"model.safetensors", raw_safetensors(ts)}};
  EXPECT_EQ(load_error(files), "tensor 'unembed.b_U' has dtype I64, not a float type (F32, F16, BF16, F64)");
}

TEST(ModelIoBad, RankMismatch) {
  const Model m = tiny_model();
  std::vector<RawTensor> ts = raw_tensors(m, {"embed.W_E"});
  ts.push_back(f32("embed.W_E", {88}, m.data()));
  FileSet files{{"model.safetensors", raw_safetensors(ts)}};
  EXPECT_CONTAINS(load_error(files), "tensor 'embed.W_E' has shape [88]");
}

TEST(ModelIoBad, NotAttentionOnly) {
  const Model m = tiny_model();
  FileSet files = cs::save_model(m);
  std::vector<RawTensor> ts = raw_tensors(m);
  const float w[8] = {};
  ts.push_back(f32("blocks.0.mlp.b_out", {8}, w));
  files["model.safetensors"] = raw_safetensors(ts);
  EXPECT_CONTAINS(load_error(files), "tensor 'blocks.0.mlp.b_out' is an MLP weight");
  files["config.json"] = bytes_of(R"({"attn_only": false})");
  EXPECT_EQ(load_error(files), "config: attn_only is false, only attention-only models are supported");
  files["config.json"] = bytes_of(R"({"positional_embedding_type": "rotary"})");
  EXPECT_CONTAINS(load_error(files), "positional_embedding_type 'rotary'");
}

TEST(ModelIoBad, TokenizerVocabularyLargerThanDVocab) {
  const Model m = tiny_model();  // d_vocab 11
  FileSet files = cs::save_model(m, wordlevel_tokenizer(12));
  EXPECT_EQ(load_error(files), "tokenizer.json has 12 tokens but the model's d_vocab is 11");
  files = cs::save_model(m, wordlevel_tokenizer(11));
  EXPECT_EQ(load_error(files), "");
}

TEST(ModelIoBad, BrokenTokenizerJson) {
  FileSet files = cs::save_model(tiny_model(), "{\"model\": 5}");
  EXPECT_EQ(load_error(files).rfind("tokenizer.json: ", 0), 0u) << load_error(files);
}

TEST(ModelIoBad, NanAndInfWeightsLoadWithAWarning) {
  Model m = tiny_model();
  float* wq = m.data() + m.find("blocks.0.attn.W_Q")->offset;
  wq[0] = std::numeric_limits<float>::quiet_NaN();
  wq[5] = std::numeric_limits<float>::infinity();
  wq[9] = -std::numeric_limits<float>::infinity();
  m.data()[m.find("unembed.b_U")->offset + 2] = std::numeric_limits<float>::quiet_NaN();
  const cs::LoadedModel r = cs::load_model(cs::save_model(m), raw());
  ASSERT_EQ(r.warnings.size(), 2u);
  EXPECT_EQ(r.warnings[0], "blocks.0.attn.W_Q has 3 NaN/Inf values");
  EXPECT_EQ(r.warnings[1], "unembed.b_U has 1 NaN/Inf values");
  expect_same_tensors(m, r.model);
}

TEST(ModelIoBad, ModelTooLargeForMemory) {
  const Model m = tiny_model();
  cs::LoadOptions opt;
  opt.max_bytes = 1000;  // the model's floats need 4 * parameter_count bytes
  ASSERT_GT(uint64_t(m.parameter_count()) * 4, opt.max_bytes);
  const std::string e = load_error(cs::save_model(m), opt);
  EXPECT_CONTAINS(e, "model needs ");
  EXPECT_CONTAINS(e, " MB of memory, more than is available");
  opt.max_bytes = uint64_t(m.parameter_count()) * 4;  // exactly enough
  EXPECT_EQ(load_error(cs::save_model(m), opt), "");
}

TEST(ModelIo, UnexpectedTensorsWarnBuffersAreIgnored) {
  const Model m = tiny_model();
  std::vector<RawTensor> ts = raw_tensors(m);
  const float minus_inf = -std::numeric_limits<float>::infinity();
  ts.push_back(f32("blocks.0.attn.IGNORE", {}, &minus_inf));
  ts.push_back({"blocks.1.attn.mask", "BOOL", {6, 6}, std::vector<uint8_t>(36, 1)});
  ts.push_back({"blocks.0.attn.mask", "BOOL", {0, 0}, {}});
  const float extra[3] = {1, 2, 3};
  ts.push_back(f32("something.else", {3}, extra));
  FileSet files = cs::save_model(m);
  files["model.safetensors"] = raw_safetensors(ts);
  const cs::LoadedModel r = cs::load_model(files, raw());
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_CONTAINS(r.warnings[0], "something.else");
  EXPECT_EQ(r.warnings[0].find("IGNORE"), std::string::npos);
  EXPECT_EQ(r.warnings[0].find("mask"), std::string::npos);
  expect_same_tensors(m, r.model);
}

// ---- processing and the sliced job ---------------------------------------------------

TEST(ModelIo, LoadProcessesLikeProcessWeights) {
  const Model m = tiny_model();
  Model want = m;
  cs::process_weights(want);
  const cs::LoadedModel r = cs::load_model(cs::save_model(m));
  EXPECT_EQ(r.model.config().normalization, Norm::LNPre);
  EXPECT_TRUE(r.model.processing.fold_ln && r.model.processing.center_writing_weights &&
              r.model.processing.center_unembed && r.model.processing.fold_value_biases);
  expect_close_tensors(want, r.model);

  // only some steps
  cs::LoadOptions opt;
  opt.steps.fold_ln = false;
  opt.steps.fold_value_biases = false;
  Model want2 = m;
  cs::process_weights(want2, opt.steps);
  const cs::LoadedModel r2 = cs::load_model(cs::save_model(m), opt);
  EXPECT_FALSE(r2.model.processing.fold_ln);
  EXPECT_FALSE(r2.model.processing.fold_value_biases);
  EXPECT_TRUE(r2.model.processing.center_unembed);
  expect_close_tensors(want2, r2.model);
}

TEST(ModelLoadJob, TinyBudgetGivesTheSameModelAndMonotoneProgress) {
  // W_E of 4100 x 256 floats is more than one conversion slice (2^20 floats),
  // so at least one tensor is converted over several steps.
  ModelConfig c = tiny_config();
  c.d_vocab = 4100;
  c.d_model = 256;
  c.n_heads = 1;
  c.d_head = 4;
  c.n_layers = 1;
  Model m(c);
  cs::randomize(m, 11);
  const FileSet files = cs::save_model(m, {}, /*f16=*/true);
  const cs::LoadedModel whole = cs::load_model(files);

  // Conversion alone: bit-exact, whatever the slicing.
  {
    cs::ModelLoadJob raw_job(files, raw());
    int n = 0;
    while (!raw_job.step(0.0)) ASSERT_LT(++n, 10000);
    expect_same_tensors(cs::load_model(files, raw()).model, raw_job.take().model);
  }

  cs::ModelLoadJob job(files);
  EXPECT_EQ(job.progress(), 0.f);
  float last = job.progress();
  int steps = 0, we_steps = 0;
  bool saw_processing = false;
  while (!job.step(0.0)) {
    ++steps;
    ASSERT_LT(steps, 10000);
    const float p = job.progress();
    EXPECT_GE(p, last);
    EXPECT_LT(p, 1.f);
    last = p;
    if (job.stage() == "converting embed.W_E") ++we_steps;
    if (job.stage() == "fold_ln" || job.stage() == "center_unembed") saw_processing = true;
  }
  EXPECT_EQ(job.progress(), 1.f);
  EXPECT_GE(steps, int(m.tensors().size()));  // one tensor (or less) per step
  EXPECT_GE(we_steps, 2);
  EXPECT_TRUE(saw_processing);
  EXPECT_THROW(cs::ModelLoadJob(files).take(), Error);  // not finished
  cs::ModelLoadJob moved = std::move(job);
  const cs::LoadedModel sliced = moved.take();
  expect_close_tensors(whole.model, sliced.model);
  EXPECT_EQ(sliced.model.processing.describe(), whole.model.processing.describe());
  EXPECT_EQ(sliced.model.config().normalization, whole.model.config().normalization);
  EXPECT_THROW(moved.take(), Error);
}

TEST(ModelLoadJob, ConstructorChecksBeforeAnyWork) {
  FileSet files = cs::save_model(tiny_model());
  files["config.json"] = bytes_of(R"({"d_model": 9})");
  EXPECT_THROW(cs::ModelLoadJob job(files), Error);
}

}  // namespace
