// Loading and saving whole models (model_io.h).
//
// Loading, in order; everything up to the allocation is cheap and happens in
// the ModelLoadJob constructor, so a bad file fails before any big work:
//  1. pick the weights: model.safetensors, else model_final.pth, else the
//     only *.safetensors / *.pth / *.pt;
//  2. parse its header (safetensors.cpp validates offsets, dtypes, shapes; a
//     PyTorch checkpoint's zip and pickle are read by pth.cpp);
//  3. config from config.json, else __metadata__ ("config" = config.json text,
//     or the config keys directly); fields it leaves out are inferred from the
//     tensor shapes where that is unambiguous;
//  4. every tensor the config needs must be present, float, and of the shape
//     the config implies (TransformerLens names and shapes, docs/model.md);
//  5. tokenizer.json (or __metadata__ "tokenizer"), its vocabulary <= d_vocab;
//  6. the memory the floats need, against LoadOptions::max_bytes.
// step() then allocates, converts tensors in slices, and applies the
// TransformerLens weight processing in slices (core/processing.h
// WeightProcessing: no unit touches more than about a million floats).
// When fold_ln applies, the model is allocated straight in the LNPre layout
// and the LayerNorm tensors are read aside, so fold_ln never builds the model
// a second time (the page's peak memory stays at file bytes + one model).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <new>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <utility>

#include "core/error.h"
#include "core/vocab_matrix.h"
#include "io/model_io.h"
#include "io/pth.h"
#include "io/safetensors.h"

namespace cs {

namespace {

using nlohmann::json;

constexpr const char* kProcessingKey = "circuitscope.processing";  // __metadata__ key written by save_model
// Floats converted per slice: 1 MB of output. Each slice writes memory the
// model was just given, and in the page the first touch of fresh wasm memory
// costs page faults (4 MB slices took 52-102 ms there, 1 MB ones a quarter).
constexpr int64_t kChunk = int64_t(1) << 18;

std::string base_name(const std::string& path) {
  const size_t slash = path.find_last_of("/\\");
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

const std::vector<uint8_t>* find_file(const FileSet& files, const std::string& name, std::string* key = nullptr) {
  for (const auto& [k, v] : files)
    if (base_name(k) == name) {
      if (key) *key = k;
      return &v;
    }
  return nullptr;
}

std::string as_text(const std::vector<uint8_t>& bytes) { return std::string(bytes.begin(), bytes.end()); }

std::string mb(uint64_t bytes) {
  char buf[32];
  const double m = double(bytes) / 1e6;
  std::snprintf(buf, sizeof buf, m < 10 ? "%.2f" : "%.0f", m);
  return buf;
}

bool is_ln_tensor(const std::string& name) {
  return name.rfind("ln_final.", 0) == 0 || name.ends_with(".ln1.w") || name.ends_with(".ln1.b");
}

// "blocks.12.attn.W_Q" -> 12; -1 if not a block tensor.
int block_index(const std::string& name) {
  if (name.rfind("blocks.", 0) != 0) return -1;
  size_t i = 7, n = 0;
  int v = 0;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9' && n < 9) {
    v = v * 10 + (name[i] - '0');
    ++i;
    ++n;
  }
  if (n == 0 || i >= name.size() || name[i] != '.') return -1;
  return v;
}

// TransformerLens' buffers of the attention module: not weights, ignored.
bool is_tl_buffer(const std::string& name) {
  return block_index(name) >= 0 && (name.ends_with(".attn.IGNORE") || name.ends_with(".attn.mask"));
}

// One tensor the config requires: TransformerLens name, shape, and the config
// field each dimension comes from (to name it when the file disagrees).
struct Need {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<const char*> fields;
};

// The tensors of an attention-only model (docs/model.md, Tensors), x @ W convention:
//   embed.W_E [d_vocab, d_model], pos_embed.W_pos [n_ctx, d_model],
//   blocks.l.attn.W_Q/W_K/W_V [n_heads, d_model, d_head], W_O [n_heads, d_head, d_model],
//   b_Q/b_K/b_V [n_heads, d_head], b_O [d_model], blocks.l.ln1.w/b [d_model] (LN),
//   ln_final.w/b [d_model] (LN), unembed.W_U [d_model, d_vocab_out], unembed.b_U [d_vocab_out].
std::vector<Need> needed_tensors(const ModelConfig& c) {
  const int64_t V = c.d_vocab, D = c.d_model, H = c.n_heads, Dh = c.d_head, C = c.n_ctx, Vo = c.vocab_out();
  const char* vo = c.d_vocab_out > 0 ? "d_vocab_out" : "d_vocab";
  std::vector<Need> n;
  n.push_back({"embed.W_E", {V, D}, {"d_vocab", "d_model"}});
  if (c.has_pos()) n.push_back({"pos_embed.W_pos", {C, D}, {"n_ctx", "d_model"}});
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string b = "blocks." + std::to_string(l) + ".";
    if (c.has_ln_weights()) {
      n.push_back({b + "ln1.w", {D}, {"d_model"}});
      n.push_back({b + "ln1.b", {D}, {"d_model"}});
    }
    for (const char* w : {"W_Q", "W_K", "W_V"})
      n.push_back({b + "attn." + w, {H, D, Dh}, {"n_heads", "d_model", "d_head"}});
    n.push_back({b + "attn.W_O", {H, Dh, D}, {"n_heads", "d_head", "d_model"}});
    for (const char* w : {"b_Q", "b_K", "b_V"}) n.push_back({b + "attn." + w, {H, Dh}, {"n_heads", "d_head"}});
    n.push_back({b + "attn.b_O", {D}, {"d_model"}});
  }
  if (c.has_ln_weights()) {
    n.push_back({"ln_final.w", {D}, {"d_model"}});
    n.push_back({"ln_final.b", {D}, {"d_model"}});
  }
  n.push_back({"unembed.W_U", {D, Vo}, {"d_model", vo}});
  n.push_back({"unembed.b_U", {Vo}, {vo}});
  return n;
}

// Config from __metadata__ without a "config" entry: the config keys directly,
// each value JSON text ("512", "true", "null") or a plain string ("LN").
std::string flat_metadata_config(const std::map<std::string, std::string>& meta) {
  json j = json::object();
  for (const auto& [k, v] : meta) {
    if (k == "format" || k == "tokenizer" || k == "config" || k == kProcessingKey) continue;
    json parsed = json::parse(v, nullptr, /*allow_exceptions=*/false);
    j[k] = (parsed.is_discarded() || parsed.is_structured()) ? json(v) : parsed;
  }
  return j.dump();
}

ProcessingState parse_processing(const std::string& s) {
  ProcessingState p;
  p.fold_ln = s.find("fold_ln") != std::string::npos;
  p.center_writing_weights = s.find("center_writing_weights") != std::string::npos;
  p.center_unembed = s.find("center_unembed") != std::string::npos;
  p.fold_value_biases = s.find("fold_value_biases") != std::string::npos;
  return p;
}

// The loader proper. Borrows the files (load_model) or is given owned ones
// (ModelLoadJob keeps them alive beside it).
class Loader {
 public:
  Loader(const FileSet& files, const LoadOptions& opt) : files_(files), opt_(opt) { check(); }

  bool step(double budget_ms);
  float progress() const;
  const std::string& stage() const { return stage_; }
  LoadedModel take();

 private:
  void check();
  void choose_weights();
  void read_config();
  void check_tensors();
  void read_tokenizer();
  void allocate();
  void convert_slice();

  const StTensor* tensor(const std::string& name) const { return st_.find(name); }
  float* destination(const std::string& name);

  const FileSet& files_;
  LoadOptions opt_;
  std::string weights_file_;
  StFile st_;
  ModelConfig cfg_;
  std::vector<Need> needs_;
  std::vector<const StTensor*> sources_;  // parallel to needs_
  std::optional<Tokenizer> tokenizer_;
  std::string tokenizer_json_;
  std::vector<std::string> warnings_;
  ProcessingState stored_processing_;
  uint64_t total_floats_ = 0;

  // progress of step()
  Model model_;
  bool allocated_ = false, finished_ = false, taken_ = false;
  size_t job_ = 0;              // index into needs_
  int64_t job_done_ = 0;        // floats of needs_[job_] converted
  int64_t job_nonfinite_ = 0;   // NaN/Inf values seen in needs_[job_]
  uint64_t floats_done_ = 0;
  bool fold_aside_ = false;  // LN tensors go to ln_, the model is allocated as LNPre
  LayerNormWeights ln_;
  std::unique_ptr<WeightProcessing> processing_;
  std::unique_ptr<RowStatsPlan> stats_;  // of W_E's rows, last
  std::string stage_ = "checked";
};

void Loader::check() {
  choose_weights();
  const std::vector<uint8_t>& bytes = files_.at(weights_file_);
  try {
    st_ = is_pth_name(base_name(weights_file_)) ? parse_pth(bytes) : parse_safetensors(bytes);
  } catch (const Error& e) {
    std::string m = e.what();
    const std::string prefix = "safetensors: ";
    if (m.rfind(prefix, 0) == 0) m = m.substr(prefix.size());
    throw Error(base_name(weights_file_) + ": " + m);
  }
  read_config();
  check_tensors();
  read_tokenizer();

  total_floats_ = 0;
  for (const Need& n : needs_) {
    uint64_t k = 1;
    for (int64_t d : n.shape) k *= uint64_t(d);
    total_floats_ += k;
  }
  const uint64_t bytes_needed = total_floats_ * sizeof(float);
  if (bytes_needed > opt_.max_bytes)
    throw Error("model needs " + mb(bytes_needed) + " MB of memory, more than is available (limit " +
                mb(opt_.max_bytes) + " MB)");

  // Where process_weights would fold LayerNorm (processing.h).
  fold_aside_ = opt_.process && opt_.steps.fold_ln && cfg_.normalization == Norm::LN &&
                cfg_.positional != PosEmbed::Shortformer;
}

void Loader::choose_weights() {
  std::vector<std::string> candidates;
  std::string names;
  for (const auto& [k, v] : files_) {
    names += (names.empty() ? "" : ", ") + base_name(k);
    if (is_weights_name(base_name(k))) candidates.push_back(k);
  }
  // The names Hugging Face folders and the public toy models use, then the only one.
  for (const char* preferred : {"model.safetensors", "model_final.pth"})
    for (const std::string& k : candidates)
      if (base_name(k) == preferred) {
        weights_file_ = k;
        return;
      }
  if (candidates.size() == 1) {
    weights_file_ = candidates[0];
    return;
  }
  if (candidates.empty())
    throw Error("no weights file (.safetensors, .pth) among the files given (" + (names.empty() ? "none" : names) + ")");
  std::string list;
  for (const std::string& k : candidates) list += (list.empty() ? "" : ", ") + base_name(k);
  throw Error("several weights files (" + list + ") and none is named model.safetensors or model_final.pth: give one");
}

void Loader::read_config() {
  bool pos_given = false, norm_given = false;
  std::string key;
  if (const auto* cj = find_file(files_, "config.json", &key)) {
    cfg_ = parse_config_json(as_text(*cj), &pos_given, &norm_given);
  } else if (auto it = st_.metadata.find("config"); it != st_.metadata.end()) {
    cfg_ = parse_config_json(it->second, &pos_given, &norm_given);
  } else {
    cfg_ = parse_config_json(flat_metadata_config(st_.metadata), &pos_given, &norm_given);
  }
  if (auto it = st_.metadata.find(kProcessingKey); it != st_.metadata.end())
    stored_processing_ = parse_processing(it->second);

  // Infer what the config leaves out from the shapes (docs/model.md, Tensors).
  auto dims = [&](const char* name, size_t rank, const char* layout) -> const StTensor* {
    const StTensor* t = tensor(name);
    if (t && t->shape.size() != rank)
      throw Error(std::string("tensor '") + name + "' has shape " + shape_str(t->shape) + " but should be " + layout);
    return t;
  };
  const StTensor* W_E = dims("embed.W_E", 2, "[d_vocab, d_model]");
  if (!W_E) throw Error("missing tensor 'embed.W_E'");
  if (cfg_.d_vocab == 0) cfg_.d_vocab = int(W_E->shape[0]);
  if (cfg_.d_model == 0) cfg_.d_model = int(W_E->shape[1]);

  const StTensor* W_pos = dims("pos_embed.W_pos", 2, "[n_ctx, d_model]");
  if (!pos_given) cfg_.positional = W_pos ? PosEmbed::Standard : PosEmbed::None;
  if (cfg_.has_pos() && !W_pos) throw Error(std::string("missing tensor 'pos_embed.W_pos' (config positional_embedding_type is ") + to_string(cfg_.positional) + ")");
  if (cfg_.n_ctx == 0) {
    if (cfg_.has_pos()) {
      cfg_.n_ctx = int(W_pos->shape[0]);
    } else {
      cfg_.n_ctx = 1024;
      warnings_.push_back("config gives no n_ctx and the model has no positional embedding: using n_ctx = 1024");
    }
  }

  int blocks = 0;
  std::string last_block_tensor;
  for (const StTensor& t : st_.tensors) {
    const int b = block_index(t.name);
    if (b >= 0 && !is_tl_buffer(t.name) && b + 1 > blocks) {
      blocks = b + 1;
      last_block_tensor = t.name;
    }
  }
  if (cfg_.n_layers == 0) cfg_.n_layers = blocks;
  if (blocks > cfg_.n_layers)
    throw Error("tensor '" + last_block_tensor + "' is in the file but config n_layers = " +
                std::to_string(cfg_.n_layers));

  if (cfg_.n_layers > 0) {
    const StTensor* W_Q = dims("blocks.0.attn.W_Q", 3, "[n_heads, d_model, d_head]");
    if (!W_Q) throw Error("missing tensor 'blocks.0.attn.W_Q'");
    if (cfg_.n_heads == 0) cfg_.n_heads = int(W_Q->shape[0]);
    if (cfg_.d_head == 0) cfg_.d_head = int(W_Q->shape[2]);
  } else {
    // No attention at all (a zero-layer model): head sizes mean nothing.
    if (cfg_.n_heads == 0) cfg_.n_heads = 1;
    if (cfg_.d_head == 0) cfg_.d_head = std::max(1, cfg_.d_model);
  }

  if (cfg_.d_vocab_out == 0)
    if (const StTensor* W_U = dims("unembed.W_U", 2, "[d_model, d_vocab_out]"); W_U && W_U->shape[1] != cfg_.d_vocab)
      cfg_.d_vocab_out = int(W_U->shape[1]);

  if (!norm_given)
    cfg_.normalization = (tensor("blocks.0.ln1.w") || tensor("ln_final.w")) ? Norm::LN : Norm::None;

  if (const std::string n = base_name(weights_file_);
      cfg_.name.empty() && n != "model.safetensors" && n != "model_final.pth")
    cfg_.name = n.substr(0, n.find_last_of('.'));
  cfg_.validate();
}

void Loader::check_tensors() {
  needs_ = needed_tensors(cfg_);
  sources_.clear();
  for (const Need& n : needs_) {
    const StTensor* t = tensor(n.name);
    if (!t) throw Error("missing tensor '" + n.name + "'");
    if (t->shape.size() != n.shape.size())
      throw Error("tensor '" + n.name + "' has shape " + shape_str(t->shape) + " but config gives " +
                  shape_str(n.shape));
    for (size_t i = 0; i < n.shape.size(); ++i)
      if (t->shape[i] != n.shape[i])
        throw Error("tensor '" + n.name + "' has shape " + shape_str(t->shape) + " but config " + n.fields[i] +
                    " = " + std::to_string(n.shape[i]));
    if (!is_float_dtype(t->dtype))
      throw Error("tensor '" + n.name + "' has dtype " + t->dtype + ", not a float type (F32, F16, BF16, F64)");
    sources_.push_back(t);
  }

  // Tensors the model does not use.
  std::vector<std::string> extra;
  for (const StTensor& t : st_.tensors) {
    if (is_tl_buffer(t.name)) continue;
    if (std::any_of(needs_.begin(), needs_.end(), [&](const Need& n) { return n.name == t.name; })) continue;
    if (t.name.find(".mlp.") != std::string::npos)
      throw Error("tensor '" + t.name + "' is an MLP weight: only attention-only models are supported");
    if (t.name.find("rotary") != std::string::npos)
      throw Error("tensor '" + t.name + "' belongs to rotary positions, which are not supported");
    extra.push_back(t.name);
  }
  if (!extra.empty()) {
    std::string w = "ignored " + std::to_string(extra.size()) + " tensor" + (extra.size() > 1 ? "s" : "") +
                    " this model does not use: ";
    for (size_t i = 0; i < extra.size() && i < 8; ++i) w += (i ? ", " : "") + extra[i];
    if (extra.size() > 8) w += ", ...";
    warnings_.push_back(w);
  }
}

void Loader::read_tokenizer() {
  std::string text;
  if (const auto* tj = find_file(files_, "tokenizer.json"))
    text = as_text(*tj);
  else if (auto it = st_.metadata.find("tokenizer"); it != st_.metadata.end())
    text = it->second;
  else
    return;
  try {
    tokenizer_ = Tokenizer::from_json(text);
    tokenizer_json_ = std::move(text);
  } catch (const std::bad_alloc&) {
    throw;  // memory, not the file
  } catch (const std::exception& e) {  // cs::Error, or anything else the parser lets through
    throw Error(std::string("tokenizer.json: ") + e.what());
  }
  const int n = tokenizer_->vocab_size();
  if (n > cfg_.d_vocab)
    throw Error("tokenizer.json has " + std::to_string(n) + " tokens but the model's d_vocab is " +
                std::to_string(cfg_.d_vocab));
}

void Loader::allocate() {
  stage_ = "allocating";
  ModelConfig layout = cfg_;
  if (fold_aside_) {
    layout.normalization = Norm::LNPre;
    ln_.ln1_w.assign(size_t(cfg_.n_layers), Vec(cfg_.d_model));
    ln_.ln1_b.assign(size_t(cfg_.n_layers), Vec(cfg_.d_model));
    ln_.ln_final_w.resize(cfg_.d_model);
    ln_.ln_final_b.resize(cfg_.d_model);
  }
  // Unfilled: the conversion writes every float (checked below), a slice at a
  // time. Memory running out throws std::bad_alloc, as anywhere else in the
  // load (the page says "loading <file>: ran out of memory"; app/jobs.cpp).
  model_ = Model(layout, Model::Uninitialized{});
  // The model's layout must be the one checked above (same names and shapes),
  // and the tensors converted into it must cover all of it.
  size_t covered = 0;
  for (const Need& n : needs_) {
    if (fold_aside_ && is_ln_tensor(n.name)) continue;
    const TensorSpec* s = model_.find(n.name);
    if (!s || s->shape != n.shape)
      throw Error("internal: model layout has no tensor '" + n.name + "' of shape " + shape_str(n.shape));
    covered += s->numel;
  }
  if (covered != model_.size())
    throw Error("internal: the tensors read cover " + std::to_string(covered) + " of the model's " +
                std::to_string(model_.size()) + " floats");
  model_.processing = stored_processing_;
  allocated_ = true;
}

// Where tensor `name` is converted to: its place in the model, or in ln_.
float* Loader::destination(const std::string& name) {
  if (fold_aside_ && is_ln_tensor(name)) {
    if (name == "ln_final.w") return ln_.ln_final_w.data();
    if (name == "ln_final.b") return ln_.ln_final_b.data();
    const size_t l = size_t(block_index(name));
    return name.ends_with(".w") ? ln_.ln1_w.at(l).data() : ln_.ln1_b.at(l).data();
  }
  const TensorSpec* s = model_.find(name);
  if (!s) throw Error("internal: model layout has no tensor '" + name + "'");
  return model_.data() + s->offset;
}

void Loader::convert_slice() {
  const Need& n = needs_[job_];
  const StTensor& t = *sources_[job_];
  const int64_t count = std::min<int64_t>(kChunk, t.numel() - job_done_);
  stage_ = "converting " + n.name;
  float* out = destination(n.name) + size_t(job_done_);
  tensor_to_float(st_, t, job_done_, count, out);
  for (int64_t i = 0; i < count; ++i)
    if (!std::isfinite(out[i])) ++job_nonfinite_;
  job_done_ += count;
  floats_done_ += uint64_t(count);
  if (job_done_ == t.numel()) {
    if (job_nonfinite_)
      warnings_.push_back(n.name + " has " + std::to_string(job_nonfinite_) + " NaN/Inf values");
    ++job_;
    job_done_ = 0;
    job_nonfinite_ = 0;
  }
}

bool Loader::step(double budget_ms) {
  if (taken_) throw Error("model load: the model was already taken");
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed_ms = [&] {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  while (!finished_) {
    if (!allocated_) {
      allocate();
    } else if (job_ < needs_.size()) {
      convert_slice();
    } else if (opt_.process) {
      // Each step is recorded in model_.processing (on top of what the file recorded) as it completes.
      if (!processing_)
        processing_ = fold_aside_ ? std::make_unique<WeightProcessing>(model_, opt_.steps, std::move(ln_))
                                  : std::make_unique<WeightProcessing>(model_, opt_.steps);
      processing_->step(budget_ms - elapsed_ms());
      stage_ = processing_->stage();
    }
    if (allocated_ && job_ == needs_.size() && (!opt_.process || (processing_ && processing_->done()))) {
      // W_E as final: its row statistics (core/vocab_matrix.h), for the circuits' row and column queries.
      if (!stats_) stats_ = std::make_unique<RowStatsPlan>(VocabSide::rows_of(std::as_const(model_).W_E()));
      if (stats_->step(budget_ms - elapsed_ms())) {
        finished_ = true;
        stage_ = "done";
      } else {
        stage_ = stats_->stage();
      }
    }
    if (elapsed_ms() >= budget_ms) break;
  }
  return finished_;
}

float Loader::progress() const {
  if (finished_) return 1.f;
  const double conv = total_floats_ ? double(floats_done_) / double(total_floats_) : 1.0;
  const double stats = stats_ ? double(stats_->progress()) : 0.0;
  if (!opt_.process) return float(0.97 * conv + 0.02 * stats);
  return float(0.83 * conv + 0.14 * (processing_ ? double(processing_->progress()) : 0.0) + 0.02 * stats);
}

LoadedModel Loader::take() {
  if (!finished_) throw Error("model load: take() called before step() returned true");
  if (taken_) throw Error("model load: the model was already taken");
  taken_ = true;
  LoadedModel r;
  r.model = std::move(model_);
  r.tokenizer = std::move(tokenizer_);
  r.tokenizer_json = std::move(tokenizer_json_);
  r.warnings = std::move(warnings_);
  r.weights_file = base_name(weights_file_);
  r.embed_stats = stats_->result();  // refers to W_E's storage, which moved into r.model unchanged
  return r;
}

}  // namespace

// ---- ModelLoadJob ----------------------------------------------------------------

bool is_weights_name(const std::string& name) { return name.ends_with(".safetensors") || is_pth_name(name); }

struct ModelLoadJob::State {
  std::shared_ptr<const FileSet> files;  // the loader's safetensors view borrows these bytes
  std::unique_ptr<Loader> loader;
};

std::vector<int> encode_prompt(const LoadedModel& m, std::string_view text, bool bos) {
  if (!m.tokenizer) throw Error("text needs a tokenizer.json with the model (give token ids instead)");
  std::vector<int> ids;
  if (bos)
    if (auto b = m.tokenizer->bos_id()) ids.push_back(*b);
  const std::vector<int> enc = m.tokenizer->encode(text);
  ids.insert(ids.end(), enc.begin(), enc.end());
  if (ids.empty()) throw Error("the text encodes to no tokens (and the tokenizer has no BOS)");
  return ids;
}

std::vector<std::vector<int>> prompt_windows(const std::vector<int>& ids, const ModelConfig& c, int bos) {
  std::vector<std::vector<int>> out;
  if (!c.has_pos() || ids.size() <= size_t(c.n_ctx)) {
    out.push_back(ids);
  } else {
    out.emplace_back(ids.begin(), ids.begin() + c.n_ctx);
    const size_t per = bos >= 0 ? size_t(c.n_ctx) - 1 : size_t(c.n_ctx);
    for (size_t i = size_t(c.n_ctx); i < ids.size() && per > 0; i += per) {
      std::vector<int> w;
      if (bos >= 0) w.push_back(bos);
      w.insert(w.end(), ids.begin() + std::ptrdiff_t(i), ids.begin() + std::ptrdiff_t(std::min(ids.size(), i + per)));
      out.push_back(std::move(w));
    }
  }
  std::erase_if(out, [](const std::vector<int>& w) { return w.size() < 2; });
  return out;
}

int bos_or_none(const LoadedModel& m) {
  if (!m.tokenizer) return -1;
  const auto b = m.tokenizer->bos_id();
  return b ? *b : -1;
}

CircuitOptions circuit_options(const LoadedModel& m, bool normalize_embed) {
  CircuitOptions o;
  o.normalize_embed = normalize_embed;
  o.embed_stats = m.embed_stats;
  return o;
}

ModelLoadJob::ModelLoadJob(FileSet files, const LoadOptions& opt)
    : ModelLoadJob(std::make_shared<const FileSet>(std::move(files)), opt) {}

ModelLoadJob::ModelLoadJob(std::shared_ptr<const FileSet> files, const LoadOptions& opt)
    : s_(std::make_unique<State>()) {
  if (!files) throw Error("model load: no files given");
  s_->files = std::move(files);
  s_->loader = std::make_unique<Loader>(*s_->files, opt);
}
ModelLoadJob::~ModelLoadJob() = default;
ModelLoadJob::ModelLoadJob(ModelLoadJob&&) noexcept = default;
ModelLoadJob& ModelLoadJob::operator=(ModelLoadJob&&) noexcept = default;

bool ModelLoadJob::step(double budget_ms) { return s_->loader->step(budget_ms); }
float ModelLoadJob::progress() const { return s_->loader->progress(); }
std::string ModelLoadJob::stage() const { return s_->loader->stage(); }
LoadedModel ModelLoadJob::take() { return s_->loader->take(); }

LoadedModel load_model(const FileSet& files, const LoadOptions& opt) {
  Loader loader(files, opt);  // borrows: no copy of the file bytes
  while (!loader.step(1e30)) {
  }
  return loader.take();
}

// ---- saving ----------------------------------------------------------------------

FileSet save_model(const Model& m, const std::string& tokenizer_json, bool f16, bool embed_tokenizer) {
  const ModelConfig& c = m.config();
  std::vector<StWriteTensor> tensors;
  for (const TensorSpec& s : m.tensors()) {
    // After fold_ln (LN -> LNPre) the layout keeps the ln weights, which no longer mean anything.
    const bool ln = s.name.ends_with("ln1.w") || s.name.ends_with("ln1.b") || s.name.rfind("ln_final.", 0) == 0;
    if (ln && !c.has_ln_weights()) continue;
    tensors.push_back({s.name, s.shape, std::span<const float>(m.data() + s.offset, s.numel)});
  }
  std::map<std::string, std::string> meta{{"format", "pt"}, {"config", config_to_json(c)}};
  if (m.processing.any()) meta[kProcessingKey] = m.processing.describe();
  if (embed_tokenizer && !tokenizer_json.empty()) meta["tokenizer"] = tokenizer_json;
  FileSet out;
  out["model.safetensors"] = write_safetensors(tensors, meta, f16);
  const std::string cfg = config_to_json(c);
  out["config.json"] = std::vector<uint8_t>(cfg.begin(), cfg.end());
  if (!tokenizer_json.empty()) out["tokenizer.json"] = std::vector<uint8_t>(tokenizer_json.begin(), tokenizer_json.end());
  return out;
}

}  // namespace cs
