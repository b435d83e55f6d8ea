// `circuitscope make-random OUTDIR [--layers N] [--d-model N] [--heads N] [--d-head N] [--ctx N]
//   [--vocab N] [--pos standard|shortformer|none] [--norm none|LN] [--seed S] [--std X] [--f16]`
// Writes a model with cs::randomize weights (no tokenizer) in Hugging Face
// layout (model.safetensors + config.json), for tests and benchmarks.
#include <iostream>

#include "cli/cli_common.h"

namespace cs::cli {

namespace {

PosEmbed parse_pos(const std::string& s) {
  if (auto p = pos_embed_from_string(s)) return *p;
  throw UsageError("--pos '" + s + "' is not standard, shortformer or none");
}

Norm parse_norm(const std::string& s) {
  if (auto n = norm_from_string(s)) return *n;
  throw UsageError("--norm '" + s + "' is not none, LN or LNPre");
}

}  // namespace

int cmd_make_random(const std::vector<std::string>& words) {
  Args args(words, {{"--f16"},
                    {"--layers", "--d-model", "--heads", "--d-head", "--ctx", "--vocab", "--pos", "--norm",
                     "--seed", "--std"}});
  args.expect_positional(1, "OUTDIR");
  constexpr int64_t kBig = 1 << 20;
  ModelConfig cfg;
  cfg.n_layers = int(args.integer("--layers", 0, 64).value_or(2));
  cfg.d_model = int(args.integer("--d-model", 1, kBig).value_or(64));
  cfg.n_heads = int(args.integer("--heads", 1, 1024).value_or(4));
  cfg.d_head = int(args.integer("--d-head", 1, kBig).value_or(16));
  cfg.n_ctx = int(args.integer("--ctx", 1, kBig).value_or(64));
  cfg.d_vocab = int(args.integer("--vocab", 1, kBig).value_or(100));
  cfg.positional = parse_pos(args.value("--pos").value_or("standard"));
  cfg.normalization = parse_norm(args.value("--norm").value_or("LN"));
  uint64_t seed = uint64_t(args.integer("--seed", 0, INT64_MAX).value_or(1));
  float stdev = float(args.number("--std").value_or(0.1));
  if (!(stdev >= 0.f)) throw UsageError("--std must be >= 0");
  cfg.name = "random (seed " + std::to_string(seed) + ")";
  cfg.validate();

  Model m(cfg);
  randomize(m, seed, stdev);
  FileSet files = save_model(m, {}, args.has("--f16"));
  write_files(args.positional()[0], files);
  std::cout << "wrote " << args.positional()[0] << ": " << m.parameter_count() << " parameters, " << cfg.n_layers
            << " layers, " << to_string(cfg.positional) << " positions, " << to_string(cfg.normalization)
            << "\n";
  return 0;
}

}  // namespace cs::cli
