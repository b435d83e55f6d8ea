// `circuitscope convert IN OUT [--f16] [--name NAME] [--json]`
// Copies a model (a folder in Hugging Face layout, e.g. a training checkpoint
// step-NNNNNNN/, or one .safetensors) to OUT as model.safetensors (F32, or F16
// with --f16) + config.json + tokenizer.json: the files the page and the
// loader read, and nothing else (a checkpoint's optimizer.safetensors and
// trainer_state.json stay behind). The weights are read raw (no weight
// processing), so OUT holds the same model as IN up to F16 rounding.
// config.json and tokenizer.json are IN's bytes unchanged when IN has them
// (--name rewrites config.json's "model_name"); otherwise config.json is
// written from the loaded config.
// Checks, each one stderr line and exit 1: a value outside F16's range with
// --f16, OUT being IN; the written files are read back and compared with IN's
// weights (the largest difference is printed).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <limits>

#include "cli/cli_common.h"
#include "core/error.h"

namespace cs::cli {

namespace {

constexpr float kF16Max = 65504.f;

std::string text_of(const std::vector<uint8_t>& b) { return std::string(b.begin(), b.end()); }

}  // namespace

int cmd_convert(const std::vector<std::string>& words) {
  Args args(words, {{"--f16", "--json"}, {"--name"}});
  args.expect_positional(2, args.positional().empty() ? "IN (a model folder or .safetensors)" : "OUT (a folder)");
  const std::string in = args.positional()[0], out = args.positional()[1];
  const bool f16 = args.has("--f16");
  std::error_code ec;
  if (std::filesystem::exists(out, ec) && std::filesystem::equivalent(in, out, ec))
    throw Error("convert: OUT '" + out + "' is IN itself; choose another folder");

  const FileSet in_files = read_model_files(in);
  LoadOptions raw;
  raw.process = false;
  const LoadedModel lm = load_model(in_files, raw);
  const Model& m = lm.model;

  if (f16) {
    for (const TensorSpec& t : m.tensors()) {
      const float* p = m.data() + t.offset;
      for (size_t i = 0; i < t.numel; ++i)
        if (std::isfinite(p[i]) && std::fabs(p[i]) > kF16Max)
          throw Error("convert: tensor '" + t.name + "' has the value " + std::to_string(p[i]) +
                      ", outside F16's range (65504); convert without --f16");
    }
  }

  std::string tokenizer_json;
  if (auto it = in_files.find("tokenizer.json"); it != in_files.end()) tokenizer_json = text_of(it->second);
  FileSet files = save_model(m, tokenizer_json, f16);
  if (auto it = in_files.find("config.json"); it != in_files.end()) files["config.json"] = it->second;
  if (auto name = args.value("--name")) {
    nlohmann::ordered_json cfg = nlohmann::ordered_json::parse(text_of(files.at("config.json")));
    if (!cfg.is_object()) throw Error("convert: config.json: expected a JSON object");
    cfg["model_name"] = *name;
    const std::string text = cfg.dump(2) + "\n";
    files["config.json"] = std::vector<uint8_t>(text.begin(), text.end());
  }

  // Read back what will be written and compare it with IN's weights.
  const LoadedModel back = load_model(files, raw);
  if (back.model.size() != m.size()) throw Error("convert: the written model has a different parameter count");
  double max_abs = 0, max_rel = 0;
  for (size_t i = 0; i < m.size(); ++i) {
    const double a = m.data()[i], b = back.model.data()[i];
    const double d = std::fabs(a - b);
    max_abs = std::max(max_abs, d);
    if (std::fabs(a) > 1e-4) max_rel = std::max(max_rel, d / std::fabs(a));
  }
  write_files(out, files);

  uint64_t bytes = 0;
  for (const auto& [name, b] : files) bytes += b.size();
  const uint64_t weights_bytes = files.at("model.safetensors").size();
  if (args.has("--json")) {
    Json j;
    j["in"] = in;
    j["out"] = out;
    j["dtype"] = f16 ? "F16" : "F32";
    j["parameters"] = m.parameter_count();
    j["model_safetensors_bytes"] = weights_bytes;
    j["total_bytes"] = bytes;
    Json names = Json::array();
    for (const auto& [name, b] : files) names.push_back(name);
    j["files"] = names;
    j["max_abs_diff"] = max_abs;
    j["max_rel_diff"] = max_rel;
    print_json(std::cout, j, 2);
    return 0;
  }
  char line[512];
  std::snprintf(line, sizeof line,
                "converted %s -> %s: %lld parameters as %s, model.safetensors %llu bytes (%llu with config and "
                "tokenizer); largest change %.3g (relative %.3g)\n",
                in.c_str(), out.c_str(), static_cast<long long>(m.parameter_count()), f16 ? "F16" : "F32",
                static_cast<unsigned long long>(weights_bytes), static_cast<unsigned long long>(bytes), max_abs,
                max_rel);
  std::cout << line;
  return 0;
}

}  // namespace cs::cli
