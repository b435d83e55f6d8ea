// Loading and saving whole models from byte buffers (no file system here:
// the CLI reads files, the page gets them from the browser).
//
// A model is either
//  - a folder in Hugging Face layout: model.safetensors + config.json
//    (+ optional tokenizer.json), or
//  - a single .safetensors whose __metadata__ carries the config (key
//    "config" holding config.json text, or the config keys directly),
//    optionally with a tokenizer.json beside it (or in __metadata__ "tokenizer"),
//  - or a PyTorch state dict (model_final.pth, or any .pth / .pt, as
//    torch.save writes it; io/pth.h) with its config.json (+ tokenizer.json).
// Tensor names are TransformerLens' (docs/model.md). Every check happens before
// anything is returned, so a failure leaves the caller's current model alone.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/model.h"
#include "core/vocab_matrix.h"
#include "core/processing.h"
#include "io/tokenizer.h"

namespace cs {

// Files by base name ("model.safetensors", "config.json", "tokenizer.json", "x.safetensors").
using FileSet = std::map<std::string, std::vector<uint8_t>>;

// The most one buffer holds in wasm, in bytes: a file's bytes are one buffer
// and a model's floats another, and wasm32's allocator gives no block of
// 2 GiB or more (measured: a 2,147,335,888-byte model loaded, one of
// 2,148,941,920 bytes ran out of memory). Both also share the 4 GB address
// space with each other and with the previous model while a new one loads
// (README, "Limits"). The page refuses a larger file before reading it
// (app/session.h), and the wasm builds, by default, a model whose floats
// need more, from its header.
inline constexpr uint64_t kPageMaxBytes = (uint64_t(1) << 31) - (uint64_t(1) << 20);  // 2 GiB - 1 MiB

// Default limits on a file's size and on the model's float parameters, in
// bytes: kPageMaxBytes in wasm; natively none.
#ifdef __EMSCRIPTEN__
inline constexpr uint64_t kMaxFileBytes = kPageMaxBytes;
inline constexpr uint64_t kDefaultMaxModelBytes = kPageMaxBytes;
#else
inline constexpr uint64_t kMaxFileBytes = UINT64_MAX;
inline constexpr uint64_t kDefaultMaxModelBytes = UINT64_MAX;
#endif

struct LoadOptions {
  bool process = true;  // apply TransformerLens weight processing
  ProcessOptions steps;
  // Refuse (cs::Error "model needs N MB of memory, more than is available")
  // before allocating when the model's floats would exceed this many bytes.
  uint64_t max_bytes = kDefaultMaxModelBytes;
};

struct LoadedModel {
  Model model;                              // processed unless LoadOptions::process is false
  std::optional<Tokenizer> tokenizer;
  std::vector<std::string> warnings;        // e.g. "blocks.0.attn.W_Q has 3 NaN/Inf values"
  std::string weights_file;                 // which file the tensors came from
  // Mean and variance of each row of model.W_E() (core/vocab_matrix.h): pass
  // them as CircuitOptions::embed_stats. They refer to model's storage: a
  // copy of `model` needs its own.
  std::shared_ptr<const RowStats> embed_stats;
  std::string tokenizer_json;  // the tokenizer's tokenizer.json text ("" without one)
};

// A prompt's token ids as TransformerLens makes them by default: the
// tokenizer's BOS (when it has one and `bos`), then the text's tokens.
// Throws cs::Error without a tokenizer or when nothing comes out.
std::vector<int> encode_prompt(const LoadedModel& m, std::string_view text, bool bos = true);
// A prompt longer than n_ctx (positional models) as windows of n_ctx tokens:
// the first n_ctx ids, then the rest n_ctx - 1 at a time, each after `bos`
// (when >= 0; n_ctx at a time without). Windows of fewer than 2 tokens are
// dropped (nothing to predict). A prompt that fits is one window.
std::vector<std::vector<int>> prompt_windows(const std::vector<int>& ids, const ModelConfig& c, int bos);
// The tokenizer's BOS id, or -1 (no tokenizer, or none with a BOS).
int bos_or_none(const LoadedModel& m);

// CircuitOptions for a loaded model: W_E normalized or not, with its embed_stats.
CircuitOptions circuit_options(const LoadedModel& m, bool normalize_embed);

// Parses config.json text (TransformerLens keys and the public toy models' keys:
// n_layers, d_model, n_heads, d_head, n_ctx, d_vocab, d_vocab_out, attn_scale,
// normalization_type | normalization, positional_embedding_type | shortformer_pos,
// attn_only, eps, tokenizer_name, model_name). Fields not given stay 0 / default.
// Throws cs::Error naming the field on wrong types or unsupported values.
ModelConfig parse_config_json(std::string_view json_text, bool* has_positional = nullptr,
                              bool* has_normalization = nullptr);
// config.json text for a config (TransformerLens keys).
std::string config_to_json(const ModelConfig& cfg);

// A weights file's name: *.safetensors, or a PyTorch checkpoint (*.pth, *.pt).
bool is_weights_name(const std::string& name);

// Loads in slices so the page can show progress and stay responsive: the
// constructor checks everything that is cheap (safetensors headers, config,
// tensor names/shapes/dtypes, tokenizer); step() converts tensors and applies
// processing a slice at a time. Every method may throw cs::Error.
class ModelLoadJob {
 public:
  ModelLoadJob(FileSet files, const LoadOptions& opt = {});
  // Shares the file bytes with the caller instead of taking them (the page
  // keeps them to reload the raw weights; no second copy of a 200 MB file).
  ModelLoadJob(std::shared_ptr<const FileSet> files, const LoadOptions& opt = {});
  ~ModelLoadJob();
  ModelLoadJob(ModelLoadJob&&) noexcept;
  ModelLoadJob& operator=(ModelLoadJob&&) noexcept;
  // Works for about budget_ms; returns true once the model is complete.
  bool step(double budget_ms);
  float progress() const;     // 0..1
  std::string stage() const;  // e.g. "converting blocks.1.attn.W_V", "fold_ln"
  LoadedModel take();         // after step() returned true
 private:
  struct State;
  std::unique_ptr<State> s_;
};

// All at once (CLI, tests).
LoadedModel load_model(const FileSet& files, const LoadOptions& opt = {});

// Hugging Face layout files for a model: model.safetensors (F32, or F16 when
// f16), config.json, and tokenizer.json if given (its JSON text). The
// safetensors' metadata always holds the config; with embed_tokenizer also
// the tokenizer (key "tokenizer"), so that file alone is the whole model.
FileSet save_model(const Model& m, const std::string& tokenizer_json = {}, bool f16 = false,
                   bool embed_tokenizer = false);

}  // namespace cs
