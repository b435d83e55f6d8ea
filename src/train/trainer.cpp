// The training loop (trainer.h): config, schedule, AdamW, initialisation,
// data curriculum, evaluation, checkpoints and the JSON-lines log.
#include "train/trainer.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numbers>
#include <ostream>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "io/json_out.h"
#include "io/safetensors.h"

namespace cs::train {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

// Seeds of the independent random streams derived from TrainConfig::seed.
constexpr uint64_t kInitStream = 0x1D3A5C7E9B2F4861ull;
constexpr uint64_t kDataStream = 0x5E2B8C4D1F6A9307ull;
// Fixed seed of the evaluation's repeated random tokens: the same sequences at
// every evaluation and in every run, so scores are comparable.
constexpr uint64_t kEvalSeed = 20220308;
// Previous-token score: on this many held-out windows.
constexpr int kPrevTokenWindows = 8;

const char* const kSources[] = {"text", "repeated-random"};

bool is_source(const std::string& s) { return s == kSources[0] || s == kSources[1]; }

// In wasm the threads' groups of sequences run one after the other on the
// calling thread (backward.h), so a config's thread count keeps its
// arithmetic there too; 0 means 1.
int resolve_threads(int t) {
#ifdef __EMSCRIPTEN__
  return t > 0 ? t : 1;
#else
  if (t > 0) return t;
  return int(std::max(1u, std::thread::hardware_concurrency()));
#endif
}

// Gaussian N(0, 1) by Box-Muller from two uniforms in (0, 1].
double gaussian(Rng& rng) {
  const double u1 = 1.0 - rng.uniform(), u2 = rng.uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

// Rounded to `digits` significant digits, for compact log lines.
double round_sig(double x, int digits = 6) {
  if (!std::isfinite(x) || x == 0) return x;
  const double scale = std::pow(10.0, digits - 1 - int(std::floor(std::log10(std::fabs(x)))));
  return std::round(x * scale) / scale;
}

ojson heads_json(const RowMat& s) {
  ojson a = ojson::array();
  for (Eigen::Index l = 0; l < s.rows(); ++l) {
    ojson row = ojson::array();
    for (Eigen::Index h = 0; h < s.cols(); ++h) row.push_back(round_sig(s(l, h), 4));
    a.push_back(std::move(row));
  }
  return a;
}

// ---- config <-> JSON ------------------------------------------------------

// The shared config schema (io/json_out.h), re-read as this file's JSON type
// (through the text, so floats keep their short decimals).
ojson model_to_json(const ModelConfig& c) { return ojson::parse(dump_json(config_json(c))); }

// Reads j[key] into dst when present, with a one-line message naming the key
// on a wrong type.
template <class T>
void take(const ojson& j, const char* key, T& dst, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) return;
  try {
    if constexpr (std::is_same_v<T, float>) {
      dst = float(it->template get<double>());
    } else if constexpr (std::is_integral_v<T>) {
      if (!it->is_number_integer()) throw Error("");
      dst = it->template get<T>();
    } else {
      dst = it->template get<T>();
    }
  } catch (const std::exception&) {
    throw Error(where + ": '" + key + "' has the wrong type (" + std::string(it->type_name()) + ")");
  }
}

void check_keys(const ojson& j, std::initializer_list<const char*> keys, const std::string& where) {
  if (!j.is_object()) throw Error(where + ": must be a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool known = false;
    for (const char* k : keys) known |= it.key() == k;
    if (!known) throw Error(where + ": unknown key '" + it.key() + "'");
  }
}

// Reads the shared config schema (config_json), and hand-written model
// sections with only some of its keys (positional / normalization / name, or
// their TransformerLens spellings). Defaults: LN, Shortformer positions.
ModelConfig model_from_json(const ojson& j) {
  const std::string w = "train config: model";
  check_keys(j, {"model_name", "n_layers", "d_model", "n_heads", "d_head", "n_ctx", "d_vocab", "d_vocab_out",
                 "attn_only", "attn_scale", "use_attn_scale", "normalization_type", "positional_embedding_type", "eps",
                 "tokenizer_name", "positional", "normalization", "name", "n_params"},
             w);
  ModelConfig c;
  c.normalization = Norm::LN;
  c.positional = PosEmbed::Shortformer;
  take(j, "n_layers", c.n_layers, w);
  take(j, "d_model", c.d_model, w);
  take(j, "n_heads", c.n_heads, w);
  take(j, "d_head", c.d_head, w);
  take(j, "n_ctx", c.n_ctx, w);
  take(j, "d_vocab", c.d_vocab, w);
  take(j, "d_vocab_out", c.d_vocab_out, w);
  take(j, "attn_scale", c.attn_scale, w);
  take(j, "eps", c.eps, w);
  take(j, "model_name", c.name, w);
  take(j, "name", c.name, w);
  take(j, "tokenizer_name", c.tokenizer_name, w);
  if (auto it = j.find("attn_only"); it != j.end() && *it != true)
    throw Error(w + ": 'attn_only' must be true (only attention-only models)");
  std::string pos = to_string(c.positional), norm = to_string(c.normalization);
  take(j, "positional_embedding_type", pos, w);
  take(j, "positional", pos, w);
  if (auto it = j.find("normalization_type"); it != j.end()) {
    if (it->is_null())
      norm = to_string(Norm::None);
    else
      take(j, "normalization_type", norm, w);
  }
  take(j, "normalization", norm, w);
  if (auto p = pos_embed_from_string(pos))
    c.positional = *p;
  else
    throw Error(w + ": 'positional' is '" + pos + "', not standard, shortformer or none");
  if (auto n = norm_from_string(norm))
    c.normalization = *n;
  else
    throw Error(w + ": 'normalization' is '" + norm + "', not LN, LNPre or none");
  return c;
}

bool same_model(const ModelConfig& a, const ModelConfig& b) {
  return a.n_layers == b.n_layers && a.d_model == b.d_model && a.n_heads == b.n_heads && a.d_head == b.d_head &&
         a.n_ctx == b.n_ctx && a.d_vocab == b.d_vocab && a.vocab_out() == b.vocab_out() &&
         a.attn_scale == b.attn_scale && a.positional == b.positional && a.normalization == b.normalization &&
         a.eps == b.eps;
}

const std::vector<uint8_t>& need_file(const FileSet& files, const std::string& name) {
  auto it = files.find(name);
  if (it == files.end()) throw Error("checkpoint: " + name + " is missing");
  return it->second;
}

// Copies a flat F32 tensor of a checkpoint into dst (exact sizes, F32 only:
// resuming bit-identically needs the weights exactly as they were).
void read_exact(const StFile& f, const std::string& file, const std::string& name, std::span<float> dst) {
  const StTensor* t = f.find(name);
  if (!t) throw Error("checkpoint: " + file + " has no tensor '" + name + "'");
  if (t->dtype != "F32")
    throw Error("checkpoint: " + file + " tensor '" + name + "' is " + t->dtype +
                "; resuming needs the F32 values a checkpoint holds");
  if (uint64_t(t->numel()) != dst.size())
    throw Error("checkpoint: " + file + " tensor '" + name + "' has " + std::to_string(t->numel()) +
                " values, expected " + std::to_string(dst.size()));
  tensor_to_float(f, *t, dst.data());
}

std::string step_folder_name(int64_t step) {
  std::string n = std::to_string(step);
  if (n.size() < 7) n.insert(0, 7 - n.size(), '0');
  return "step-" + n;
}

void write_bytes(const fs::path& p, const std::vector<uint8_t>& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  if (!f) throw Error("cannot write " + p.string());
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  f.close();
  if (!f) throw Error("cannot write " + p.string() + " (disk full?)");
}

}  // namespace

// ---- TrainConfig --------------------------------------------------------------

double TrainConfig::pos_init_value() const {
  if (pos_init_std >= 0) return pos_init_std;
  return model.positional == PosEmbed::Shortformer ? 1.0 : init_std;
}

void TrainConfig::validate() const {
  model.validate();
  const auto bad = [](const std::string& what) { throw Error("train config: " + what); };
  if (model.n_ctx < 2) bad("n_ctx must be >= 2 to have a next token to predict");
  if (batch < 1) bad("batch must be >= 1");
  if (steps < 1) bad("steps must be >= 1");
  if (!(lr > 0) || !std::isfinite(lr)) bad("lr must be a positive number");
  if (min_lr >= 0 && min_lr > lr) bad("min_lr must be <= lr");
  if (warmup < 0) bad("warmup must be >= 0");
  if (schedule != "cosine" && schedule != "constant") bad("schedule '" + schedule + "' is not cosine or constant");
  if (!(weight_decay >= 0)) bad("weight_decay must be >= 0");
  if (!(beta1 >= 0 && beta1 < 1)) bad("beta1 must be in [0, 1)");
  if (!(beta2 >= 0 && beta2 < 1)) bad("beta2 must be in [0, 1)");
  if (!(adam_eps > 0)) bad("adam_eps must be > 0");
  if (!(grad_clip >= 0)) bad("grad_clip must be >= 0");
  if (threads < 0) bad("threads must be >= 0");
  if (log_every < 0 || eval_every < 0 || save_every < 0) bad("log_every, eval_every and save_every must be >= 0");
  if (keep_checkpoints < 0) bad("keep_checkpoints must be >= 0");
  if (!(init_std >= 0)) bad("init_std must be >= 0");
  if (bos >= model.d_vocab) bad("bos " + std::to_string(bos) + " is outside [0, d_vocab = " + std::to_string(model.d_vocab) + ")");
  if (eval_windows < 1 || eval_examples < 1) bad("eval_windows and eval_examples must be >= 1");
  int64_t before_last = 0;
  for (size_t i = 0; i < curriculum.size(); ++i) {
    const DataPhase& p = curriculum[i];
    const std::string at = "curriculum phase " + std::to_string(i + 1);
    if (!is_source(p.source)) bad(at + ": source '" + p.source + "' is not text or repeated-random");
    if (p.steps < 0) bad(at + ": steps must be >= 0");
    if (i + 1 < curriculum.size()) {
      if (p.steps < 1) bad(at + ": steps must be >= 1 (only the last phase may leave them open)");
      before_last += p.steps;
    }
    if (p.min_len < 0 || p.max_len < 0 || (p.max_len > 0 && p.min_len > p.max_len))
      bad(at + ": bad segment length range [" + std::to_string(p.min_len) + ", " + std::to_string(p.max_len) + "]");
  }
  if (!curriculum.empty() && before_last >= steps)
    bad("the curriculum's phases before the last take " + std::to_string(before_last) +
        " steps, so the last phase would never run in " + std::to_string(steps) + " steps");
}

size_t TrainConfig::phase_at(int64_t s) const {
  int64_t end = 0;
  for (size_t i = 0; i + 1 < curriculum.size(); ++i) {
    end += curriculum[i].steps;
    if (s < end) return i;
  }
  return curriculum.empty() ? 0 : curriculum.size() - 1;
}

namespace {
int64_t curriculum_int(const std::string& text, const std::string& what, int64_t lo, int64_t hi) {
  int64_t v = 0;
  const char* end = text.data() + text.size();
  const auto r = std::from_chars(text.data(), end, v);
  if (text.empty() || r.ec != std::errc() || r.ptr != end || v < lo || v > hi)
    throw Error(what + " '" + text + "' is not a whole number from " + std::to_string(lo) + " to " + std::to_string(hi));
  return v;
}
}  // namespace

std::vector<DataPhase> parse_curriculum(std::string_view spec) {
  std::vector<DataPhase> out;
  std::stringstream ss{std::string(spec)};
  std::string item;
  while (std::getline(ss, item, ',')) {
    std::vector<std::string> f;
    std::stringstream is(item);
    std::string part;
    while (std::getline(is, part, ':')) f.push_back(part);
    if (f.size() < 2 || f.size() > 3)
      throw Error("curriculum item '" + item + "' is not SOURCE:STEPS or SOURCE:STEPS:MIN-MAX");
    DataPhase p;
    if (f[0] == "repeat" || f[0] == "repeated-random" || f[0] == "random") p.source = "repeated-random";
    else if (f[0] == "text") p.source = "text";
    else throw Error("curriculum source '" + f[0] + "' is not repeat or text");
    p.steps = curriculum_int(f[1], "curriculum steps of '" + item + "':", 1, INT64_MAX / 4);
    if (f.size() == 3) {
      const auto dash = f[2].find('-');
      if (dash == std::string::npos) throw Error("curriculum lengths '" + f[2] + "' are not MIN-MAX");
      p.min_len = int(curriculum_int(f[2].substr(0, dash), "curriculum min length", 1, 1 << 20));
      p.max_len = int(curriculum_int(f[2].substr(dash + 1), "curriculum max length", 1, 1 << 20));
      if (p.source != "repeated-random") throw Error("curriculum lengths apply to repeat phases only");
    }
    out.push_back(p);
  }
  if (out.empty()) throw Error("curriculum is empty");
  return out;
}

std::string train_config_to_json(const TrainConfig& c, int indent) {
  ojson cur = ojson::array();
  for (const DataPhase& p : c.curriculum)
    cur.push_back(ojson{{"source", p.source}, {"steps", p.steps}, {"min_len", p.min_len}, {"max_len", p.max_len}});
  const ojson j{{"model", model_to_json(c.model)},
                {"batch", c.batch},
                {"steps", c.steps},
                {"lr", c.lr},
                {"min_lr", c.min_lr},
                {"warmup", c.warmup},
                {"schedule", c.schedule},
                {"weight_decay", c.weight_decay},
                {"beta1", c.beta1},
                {"beta2", c.beta2},
                {"adam_eps", c.adam_eps},
                {"grad_clip", c.grad_clip},
                {"seed", c.seed},
                {"threads", c.threads},
                {"log_every", c.log_every},
                {"eval_every", c.eval_every},
                {"save_every", c.save_every},
                {"keep_checkpoints", c.keep_checkpoints},
                {"curriculum", cur},
                {"init_std", c.init_std},
                {"pos_init_std", c.pos_init_std},
                {"bos", c.bos},
                {"eval_windows", c.eval_windows},
                {"eval_examples", c.eval_examples},
                {"data_path", c.data_path},
                {"heldout_path", c.heldout_path},
                {"tokenizer_path", c.tokenizer_path}};
  return j.dump(indent);
}

TrainConfig train_config_from_json(std::string_view text) {
  ojson j;
  try {
    j = ojson::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(std::string("train config: not valid JSON (") + e.what() + ")");
  }
  const std::string w = "train config";
  check_keys(j, {"model", "batch", "steps", "lr", "min_lr", "warmup", "schedule", "weight_decay", "beta1", "beta2",
                 "adam_eps", "grad_clip", "seed", "threads", "log_every", "eval_every", "save_every",
                 "keep_checkpoints", "curriculum", "init_std", "pos_init_std", "bos", "eval_windows",
                 "eval_examples", "data_path", "heldout_path", "tokenizer_path"},
             w);
  TrainConfig c;
  if (j.contains("model")) c.model = model_from_json(j["model"]);
  take(j, "batch", c.batch, w);
  take(j, "steps", c.steps, w);
  take(j, "lr", c.lr, w);
  take(j, "min_lr", c.min_lr, w);
  take(j, "warmup", c.warmup, w);
  take(j, "schedule", c.schedule, w);
  take(j, "weight_decay", c.weight_decay, w);
  take(j, "beta1", c.beta1, w);
  take(j, "beta2", c.beta2, w);
  take(j, "adam_eps", c.adam_eps, w);
  take(j, "grad_clip", c.grad_clip, w);
  take(j, "seed", c.seed, w);
  take(j, "threads", c.threads, w);
  take(j, "log_every", c.log_every, w);
  take(j, "eval_every", c.eval_every, w);
  take(j, "save_every", c.save_every, w);
  take(j, "keep_checkpoints", c.keep_checkpoints, w);
  take(j, "init_std", c.init_std, w);
  take(j, "pos_init_std", c.pos_init_std, w);
  take(j, "bos", c.bos, w);
  take(j, "eval_windows", c.eval_windows, w);
  take(j, "eval_examples", c.eval_examples, w);
  take(j, "data_path", c.data_path, w);
  take(j, "heldout_path", c.heldout_path, w);
  take(j, "tokenizer_path", c.tokenizer_path, w);
  if (j.contains("curriculum")) {
    const ojson& cur = j["curriculum"];
    if (!cur.is_array()) throw Error(w + ": 'curriculum' must be an array");
    for (size_t i = 0; i < cur.size(); ++i) {
      const std::string at = w + ": curriculum[" + std::to_string(i) + "]";
      check_keys(cur[i], {"source", "steps", "min_len", "max_len"}, at);
      DataPhase p;
      take(cur[i], "source", p.source, at);
      take(cur[i], "steps", p.steps, at);
      take(cur[i], "min_len", p.min_len, at);
      take(cur[i], "max_len", p.max_len, at);
      c.curriculum.push_back(p);
    }
  }
  return c;
}

// ---- schedule, optimizer, init ------------------------------------------------

double lr_at(const TrainConfig& c, int64_t s) {
  if (s < c.warmup) return c.lr * double(s + 1) / double(c.warmup);
  if (c.schedule == "constant") return c.lr;
  const double lo = c.min_lr_value();
  const double span = double(std::max<int64_t>(1, c.steps - c.warmup));
  const double p = std::clamp(double(s - c.warmup) / span, 0.0, 1.0);
  return lo + 0.5 * (c.lr - lo) * (1.0 + std::cos(std::numbers::pi * p));
}

bool decays(const std::string& n) {
  for (const char* suffix : {".W_Q", ".W_K", ".W_V", ".W_O", ".W_U"})
    if (n.ends_with(suffix)) return true;
  return false;
}

void adamw_step(std::span<float> p, std::span<const float> g, std::span<float> m, std::span<float> v, int64_t t,
                double lr, const AdamParams& a, bool decay) {
  if (g.size() != p.size() || m.size() != p.size() || v.size() != p.size())
    throw Error("adamw_step: parameter, gradient and moment sizes differ");
  if (t < 1) throw Error("adamw_step: t must be >= 1");
  const float b1 = float(a.beta1), b2 = float(a.beta2);
  const double bc1 = 1.0 - std::pow(a.beta1, double(t)), bc2 = 1.0 - std::pow(a.beta2, double(t));
  const float step_size = float(lr / bc1);
  const float inv_sqrt_bc2 = float(1.0 / std::sqrt(bc2));
  const float eps = float(a.eps);
  const float shrink = decay ? float(1.0 - lr * a.weight_decay) : 1.f;
  for (size_t i = 0; i < p.size(); ++i) {
    const float gi = g[i];
    m[i] = b1 * m[i] + (1.f - b1) * gi;
    v[i] = b2 * v[i] + (1.f - b2) * gi * gi;
    const float denom = std::sqrt(v[i]) * inv_sqrt_bc2 + eps;
    p[i] = p[i] * shrink - step_size * (m[i] / denom);
  }
}

void init_weights(Model& m, double init_std, double pos_std, Rng& rng) {
  float* d = m.data();
  for (const TensorSpec& s : m.tensors()) {
    const std::string& n = s.name;
    double stdev = 0, fill = 0;
    if (n == "pos_embed.W_pos") stdev = pos_std;
    else if (n.find(".W_") != std::string::npos) stdev = init_std;  // W_E, W_Q, W_K, W_V, W_O, W_U
    else if (n.ends_with("ln1.w") || n == "ln_final.w") fill = 1;   // LayerNorm scale 1, biases 0
    for (size_t i = 0; i < s.numel; ++i) d[s.offset + i] = stdev > 0 ? float(stdev * gaussian(rng)) : float(fill);
  }
}

// ---- Trainer ------------------------------------------------------------------

Trainer::Trainer(TrainConfig cfg, TrainData data) : cfg_(std::move(cfg)) {
  cfg_.threads = resolve_threads(cfg_.threads);
  if (cfg_.curriculum.empty()) cfg_.curriculum.push_back(DataPhase{data.train.empty() ? "repeated-random" : "text"});
  cfg_.validate();
  model_ = Model(cfg_.model);
  Rng init_rng(cfg_.seed ^ kInitStream);
  init_weights(model_, cfg_.init_std, cfg_.pos_init_value(), init_rng);
  data_rng_ = Rng(cfg_.seed ^ kDataStream);
  setup(std::move(data));
}

Trainer::Trainer(const FileSet& files, TrainData data, const std::function<void(TrainConfig&)>& adjust) {
  ojson st;
  try {
    const auto& bytes = need_file(files, "trainer_state.json");
    st = ojson::parse(bytes.begin(), bytes.end());
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("checkpoint: trainer_state.json is not valid JSON (") + e.what() + ")");
  }
  if (!st.is_object() || !st.contains("config") || !st.contains("step") || !st.contains("rng"))
    throw Error("checkpoint: trainer_state.json lacks config, step or rng");
  cfg_ = train_config_from_json(st["config"].dump());
  const ModelConfig saved_model = cfg_.model;
  if (adjust) adjust(cfg_);
  if (!same_model(saved_model, cfg_.model)) throw Error("resume: the model's configuration cannot change");
  cfg_.threads = resolve_threads(cfg_.threads);
  if (cfg_.curriculum.empty()) throw Error("checkpoint: trainer_state.json has an empty curriculum");
  cfg_.validate();
  try {
    step_ = st["step"].get<int64_t>();
    data_rng_ = Rng(std::stoull(st["rng"].get<std::string>()));
    elapsed_before_ = st.value("elapsed_s", 0.0);
  } catch (const std::exception&) {
    throw Error("checkpoint: trainer_state.json has a bad step, rng or elapsed_s");
  }
  if (step_ < 0) throw Error("checkpoint: trainer_state.json step is negative");

  model_ = Model(cfg_.model);
  const auto& weights = need_file(files, "model.safetensors");
  const StFile wf = parse_safetensors(weights);
  for (const TensorSpec& s : model_.tensors())
    read_exact(wf, "model.safetensors", s.name, std::span<float>(model_.data() + s.offset, s.numel));
  m_.assign(model_.size(), 0.f);
  v_.assign(model_.size(), 0.f);
  const StFile of = parse_safetensors(need_file(files, "optimizer.safetensors"));
  read_exact(of, "optimizer.safetensors", "adam.m", m_);
  read_exact(of, "optimizer.safetensors", "adam.v", v_);
  if (data.tokenizer_json.empty())
    if (auto it = files.find("tokenizer.json"); it != files.end())
      data.tokenizer_json.assign(it->second.begin(), it->second.end());
  setup(std::move(data));
}

void Trainer::setup(TrainData data) {
  data_ = std::move(data);
  const int T = cfg_.model.n_ctx, V = cfg_.model.d_vocab;
  const int64_t body = T - (cfg_.bos >= 0 ? 1 : 0);
  bool reads_text = false;
  for (const DataPhase& p : cfg_.curriculum) reads_text |= p.source == "text";
  if (reads_text && data_.train.empty()) throw Error("training data: a curriculum phase reads text but there is none");
  if (!data_.train.empty()) check_token_ids(data_.train, V, body, "training data");
  if (!data_.heldout.empty()) {
    check_token_ids(data_.heldout, V, body, "held-out data");
    heldout_windows_ = fixed_windows(data_.heldout, cfg_.eval_windows, T, cfg_.bos);
  }
  // Check every repeated-random phase's lengths now rather than mid-run.
  for (const DataPhase& p : cfg_.curriculum)
    if (p.source == "repeated-random") {
      RepeatedRandomSpec spec{V, cfg_.bos, p.min_len, p.max_len, {}};
      spec.resolve(T);
    }
  const size_t N = model_.size();
  grads_.assign(N, 0.f);
  if (m_.size() != N) m_.assign(N, 0.f);
  if (v_.size() != N) v_.assign(N, 0.f);
  decay_.assign(N, 0);
  for (const TensorSpec& s : model_.tensors())
    if (decays(s.name)) std::fill_n(decay_.begin() + ptrdiff_t(s.offset), s.numel, uint8_t(1));
  // The evaluator's random tokens: never BOS, and never ids the training text
  // lacks (untrained embeddings say nothing about induction); all ids when
  // that would leave too few.
  eval_exclude_.clear();
  if (!data_.train.empty()) {
    std::vector<char> seen(size_t(V), 0);
    for (int id : data_.train) seen[size_t(id)] = 1;
    int n_seen = 0;
    for (int i = 0; i < V; ++i) n_seen += seen[size_t(i)];
    if (n_seen > 30)
      for (int i = 0; i < V; ++i)
        if (!seen[size_t(i)]) eval_exclude_.push_back(i);
  }
}

const std::string& Trainer::phase_source() const { return cfg_.curriculum[cfg_.phase_at(step_)].source; }

void Trainer::draw_batch() {
  const int B = cfg_.batch, T = cfg_.model.n_ctx;
  const DataPhase& phase = cfg_.curriculum[cfg_.phase_at(step_)];
  if (phase.source == "text") {
    sample_text_batch(data_.train, B, T, cfg_.bos, data_rng_, batch_);
  } else {
    RepeatedRandomSpec spec{cfg_.model.d_vocab, cfg_.bos, phase.min_len, phase.max_len, {}};
    spec.resolve(T);
    sample_repeated_batch(spec, B, T, data_rng_, batch_);
  }
}

StepResult Trainer::train_step() {
  if (group_ >= 0) throw Error("train_step: an update begun by update_unit() is not finished");
  const Rng before = data_rng_;
  draw_batch();
  const float loss =
      loss_and_grad(model_, BatchView{batch_, cfg_.batch, cfg_.model.n_ctx, {}}, grads_, ws_, cfg_.threads);
  return finish_update(loss, before);
}

std::optional<StepResult> Trainer::update_unit() {
  try {
    if (group_ < 0) {
      rng_before_ = data_rng_;
      draw_batch();
      groups_ = begin_loss_and_grad(model_, BatchView{batch_, cfg_.batch, cfg_.model.n_ctx, {}}, grads_, ws_,
                                    cfg_.threads);
      group_ = 0;
    }
    loss_and_grad_group(ws_, group_++);
    if (group_ < groups_) return std::nullopt;
    group_ = -1;
    return finish_update(finish_loss_and_grad(ws_), rng_before_);
  } catch (...) {
    if (group_ >= 0) data_rng_ = rng_before_;  // as if this update never began
    group_ = -1;
    throw;
  }
}

StepResult Trainer::finish_update(float loss, const Rng& before) {
  const int64_t s = step_;
  StepResult r;
  r.lr = lr_at(cfg_, s);
  r.loss = loss;
  double sq = 0;
  for (float g : grads_) sq += double(g) * double(g);
  r.grad_norm = std::sqrt(sq);
  if (!std::isfinite(r.loss) || !std::isfinite(r.grad_norm)) {
    data_rng_ = before;  // as if this step never began
    r.step = step_;
    r.finite = false;
    return r;
  }
  if (cfg_.grad_clip > 0 && r.grad_norm > cfg_.grad_clip) {
    const float k = float(cfg_.grad_clip / (r.grad_norm + 1e-6));
    for (float& g : grads_) g *= k;
  }
  const AdamParams a{cfg_.beta1, cfg_.beta2, cfg_.adam_eps, cfg_.weight_decay};
  for (const TensorSpec& ts : model_.tensors()) {
    const size_t o = ts.offset, n = ts.numel;
    adamw_step({model_.data() + o, n}, {grads_.data() + o, n}, {m_.data() + o, n}, {v_.data() + o, n}, s + 1, r.lr,
               a, decay_[o] != 0);
  }
  r.step = ++step_;
  return r;
}

Evaluation Trainer::evaluate() const {
  if (group_ >= 0) throw Error("evaluate: an update begun by update_unit() is not finished");
  Evaluation e;
  e.step = step_;
  const ModelConfig& c = model_.config();
  const int T = c.n_ctx, bos = cfg_.bos;
  // Held-out loss over the fixed windows, in batches of cfg_.batch rows.
  if (!heldout_windows_.empty()) {
    std::vector<int> buf;
    double sum = 0;
    size_t rows = 0;
    for (size_t i = 0; i < heldout_windows_.size(); i += size_t(cfg_.batch)) {
      const size_t n = std::min(heldout_windows_.size() - i, size_t(cfg_.batch));
      buf.clear();
      for (size_t k = 0; k < n; ++k) buf.insert(buf.end(), heldout_windows_[i + k].begin(), heldout_windows_[i + k].end());
      sum += double(batch_loss(model_, BatchView{buf, int(n), T, {}}, ws_, cfg_.threads)) * double(n);
      rows += n;
    }
    e.heldout_loss = sum / double(rows);
    if (T >= 4) {
      const IclPositions p = icl_positions(T);
      e.icl_score = in_context_learning_score(model_, heldout_windows_, p.early, p.late, std::max(0, T / 64));
    }
  }
  const EvalInputs in = eval_inputs();
  e.pm_tokens = in.pm_tokens;
  e.pm_repeats = in.pm_repeats;
  if (!in.repeated.empty()) {
    e.prefix_matching = prefix_matching_scores(model_, in.repeated, bos);
    e.repeat = repeat_loss(model_, in.repeated, e.pm_tokens, e.pm_repeats, bos >= 0);
  }
  if (!in.prev_token_windows.empty()) {
    e.prev_token = previous_token_scores(model_, in.prev_token_windows);
    e.prev_token_on = in.prev_token_on;
  }
  return e;
}

EvalInputs Trainer::eval_inputs() const {
  EvalInputs in;
  const ModelConfig& c = model_.config();
  const int T = c.n_ctx, bos = cfg_.bos;
  // [I]'s repeated random tokens: 25 x 4 after a BOS, shorter when n_ctx is.
  const int room = T - (bos >= 0 ? 1 : 0);
  in.pm_repeats = 4;
  in.pm_tokens = std::min(25, room / in.pm_repeats);
  if (in.pm_tokens >= 1)
    in.repeated = repeated_random_tokens(c.d_vocab, in.pm_tokens, in.pm_repeats, cfg_.eval_examples, kEvalSeed, bos,
                                         eval_exclude_);
  in.heldout_windows = heldout_windows_;
  if (!heldout_windows_.empty()) {
    const size_t n = std::min<size_t>(heldout_windows_.size(), kPrevTokenWindows);
    in.prev_token_windows.assign(heldout_windows_.begin(), heldout_windows_.begin() + ptrdiff_t(n));
    in.prev_token_on = "held-out text";
  } else if (!data_.train.empty()) {
    in.prev_token_windows = fixed_windows(data_.train, kPrevTokenWindows, T, bos);
    in.prev_token_on = "training text";
  } else if (!in.repeated.empty()) {
    in.prev_token_windows = in.repeated;
    in.prev_token_on = "repeated random tokens";
  }
  return in;
}

FileSet Trainer::checkpoint(double elapsed) const {
  if (group_ >= 0) throw Error("checkpoint: an update begun by update_unit() is not finished");
  FileSet files = save_model(model_, data_.tokenizer_json, false);
  const std::vector<int64_t> shape{int64_t(model_.size())};
  files["optimizer.safetensors"] =
      write_safetensors({{"adam.m", shape, m_}, {"adam.v", shape, v_}},
                        {{"format", "circuitscope AdamW moments, flat in the layout of model.safetensors' tensors in "
                                    "canonical order"},
                         {"step", std::to_string(step_)}});
  const ojson st{{"format", "circuitscope trainer state"},
                 {"version", 1},
                 {"step", step_},
                 {"tokens", tokens()},
                 {"rng", std::to_string(data_rng_.state())},
                 {"elapsed_s", round_sig(elapsed_before_ + elapsed, 9)},
                 {"config", ojson::parse(train_config_to_json(cfg_, -1))}};
  const std::string text = st.dump(2) + "\n";
  files["trainer_state.json"] = std::vector<uint8_t>(text.begin(), text.end());
  return files;
}

// ---- the loop -----------------------------------------------------------------

std::string log_line(const Trainer& t, const StepResult* s, double loss_mean, double tokens_per_s, double elapsed,
                     const Evaluation* e) {
  ojson j;
  j["step"] = t.step();
  j["phase"] = t.config().curriculum[t.config().phase_at(std::max<int64_t>(0, t.step() - 1))].source;
  j["tokens"] = t.tokens();
  if (s) {
    j["loss"] = round_sig(loss_mean);
    j["lr"] = round_sig(s->lr);
    j["grad_norm"] = round_sig(s->grad_norm, 4);
    j["tokens_per_s"] = std::round(tokens_per_s);
  }
  j["elapsed"] = round_sig(elapsed, 5);
  if (e) {
    if (e->heldout_loss) j["heldout_loss"] = round_sig(*e->heldout_loss);
    if (e->prev_token.size()) {
      j["prev_token"] = heads_json(e->prev_token);
      j["prev_token_on"] = e->prev_token_on;
    }
    if (e->pm_tokens > 0) {
      j["prefix_matching"] = heads_json(e->prefix_matching);
      j["prefix_matching_tokens"] = {e->pm_tokens, e->pm_repeats};
      j["repeat_loss_first"] = round_sig(e->repeat.first);
      j["repeat_loss_repeats"] = round_sig(e->repeat.repeats);
    }
    if (e->icl_score) j["icl_score"] = round_sig(*e->icl_score);
  }
  return j.dump();
}

namespace {

bool all_finite(const Model& m) {
  const float* d = m.data();
  for (size_t i = 0; i < m.size(); ++i)
    if (!std::isfinite(d[i])) return false;
  return true;
}

std::string fmt(double x, int prec) {
  std::ostringstream o;
  o.precision(prec);
  o << x;
  return o.str();
}

}  // namespace

RunResult run_training(Trainer& t, const RunOptions& opt) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  const auto run_secs = [&] { return std::chrono::duration<double>(clock::now() - t0).count(); };
  const int64_t start_step = t.step();
  const TrainConfig& c = t.config();
  const int64_t tokens_per_step = int64_t(c.batch) * c.model.n_ctx;
  RunResult res;
  int64_t saved_step = -1;

  const auto write_log = [&](const std::string& line) {
    if (!opt.log) return;
    *opt.log << line << '\n';
    opt.log->flush();
  };
  const auto no_checkpoint = [&] {
    return res.last_saved.empty() ? std::string("no checkpoint was saved in this run")
                                  : "the last good checkpoint is " + res.last_saved;
  };
  // Saves unless this step is saved already; a model with NaN/Inf weights is
  // never saved (returns false).
  const auto save = [&]() -> bool {
    if (!opt.save || saved_step == t.step()) return true;
    if (!all_finite(t.model())) return false;
    res.last_saved = opt.save(t.checkpoint(run_secs()), t.step());
    saved_step = t.step();
    return true;
  };

  if (t.step() == 0) {
    Evaluation e = t.evaluate();
    write_log(log_line(t, nullptr, 0, 0, 0, &e));
    res.last_eval = std::move(e);
  }

  double loss_sum = 0;
  int64_t loss_n = 0;
  while (!t.done()) {
    if (opt.stop && opt.stop->load()) {
      if (!save()) {
        res.status = RunStatus::Diverged;
        res.step = t.step();
        res.message = "interrupted at step " + std::to_string(t.step()) +
                      ", but the weights hold NaN/Inf, so nothing was saved; " + no_checkpoint();
        return res;
      }
      res.status = RunStatus::Interrupted;
      res.step = t.step();
      res.message = "interrupted at step " + std::to_string(t.step()) + " of " + std::to_string(c.steps) +
                    (res.last_saved.empty() ? std::string("") : "; checkpoint saved: " + res.last_saved);
      return res;
    }
    const StepResult r = t.train_step();
    if (!r.finite) {
      res.status = RunStatus::Diverged;
      res.step = t.step();
      const bool loss_bad = !std::isfinite(r.loss);
      const double bad = loss_bad ? double(r.loss) : r.grad_norm;
      res.message = std::string("training diverged: the ") + (loss_bad ? "loss" : "gradient norm") + " is " +
                    (std::isnan(bad) ? "NaN" : "Inf") + " at step " + std::to_string(t.step() + 1) + " (lr " +
                    fmt(r.lr, 3) + "); stopped, " + no_checkpoint();
      return res;
    }
    loss_sum += r.loss;
    ++loss_n;
    const int64_t s = t.step();
    const double secs = run_secs();
    const double tps = secs > 0 ? double((s - start_step) * tokens_per_step) / secs : 0;
    if (opt.progress) {
      Progress p;
      p.step = s;
      p.total = c.steps;
      p.loss = r.loss;
      p.tokens_per_s = tps;
      p.eta_s = s > start_step ? secs / double(s - start_step) * double(c.steps - s) : 0;
      p.phase = c.curriculum[c.phase_at(s - 1)].source;
      opt.progress(p);
    }
    const bool is_eval = (c.eval_every > 0 && s % c.eval_every == 0) || t.done();
    const bool is_log = is_eval || (c.log_every > 0 && s % c.log_every == 0);
    if (is_log) {
      std::optional<Evaluation> e;
      if (is_eval) e = t.evaluate();
      write_log(log_line(t, &r, loss_sum / double(loss_n), tps, t.elapsed_before() + run_secs(), e ? &*e : nullptr));
      if (e) res.last_eval = std::move(e);
      loss_sum = 0;
      loss_n = 0;
    }
    if ((c.save_every > 0 && s % c.save_every == 0) || t.done()) {
      if (!save()) {
        res.status = RunStatus::Diverged;
        res.step = s;
        res.message = "training diverged: the weights hold NaN/Inf after step " + std::to_string(s) +
                      "; stopped without saving them, " + no_checkpoint();
        return res;
      }
    }
  }
  res.status = RunStatus::Finished;
  res.step = t.step();
  res.message = "finished " + std::to_string(t.step()) + " steps" +
                (res.last_saved.empty() ? std::string("") : "; checkpoint: " + res.last_saved);
  return res;
}

// ---- checkpoints on disk ----------------------------------------------------------

CheckpointDir::CheckpointDir(std::string dir, int keep) : dir_(std::move(dir)), keep_(keep) {}

std::string CheckpointDir::save(const FileSet& files, int64_t step) {
  const fs::path root(dir_);
  const std::string name = step_folder_name(step);
  const fs::path final_dir = root / name, tmp = root / (".tmp-" + name), old = root / (".old-" + name);
  try {
    fs::create_directories(root);
    fs::remove_all(tmp);
    fs::create_directory(tmp);
    for (const auto& [file, bytes] : files) write_bytes(tmp / file, bytes);
    // Only now does the complete folder take the checkpoint's name.
    if (fs::exists(final_dir)) {
      fs::remove_all(old);
      fs::rename(final_dir, old);
    }
    fs::rename(tmp, final_dir);
    fs::remove_all(old);
    const fs::path latest_tmp = root / ".LATEST.tmp";
    const std::string text = name + "\n";
    write_bytes(latest_tmp, std::vector<uint8_t>(text.begin(), text.end()));
    fs::rename(latest_tmp, root / "LATEST");
    if (keep_ > 0) {
      std::vector<std::string> steps;
      for (const auto& entry : fs::directory_iterator(root)) {
        const std::string n = entry.path().filename().string();
        if (entry.is_directory() && n.starts_with("step-")) steps.push_back(n);
      }
      std::sort(steps.begin(), steps.end());  // zero-padded: name order is step order
      for (size_t i = 0; i + size_t(keep_) < steps.size(); ++i)
        if (steps[i] != name) fs::remove_all(root / steps[i]);
    }
  } catch (const fs::filesystem_error& e) {
    throw Error("checkpoint: cannot write " + final_dir.string() + " (" + e.code().message() + ")");
  }
  return final_dir.string();
}

std::string resolve_checkpoint(const std::string& path) {
  const fs::path p(path);
  std::error_code ec;
  if (fs::is_regular_file(p / "trainer_state.json", ec)) return p.string();
  if (fs::is_regular_file(p / "LATEST", ec)) {
    std::ifstream f(p / "LATEST");
    std::string name;
    std::getline(f, name);
    while (!name.empty() && (name.back() == '\r' || name.back() == ' ')) name.pop_back();
    const fs::path ck = p / name;
    if (name.empty() || !fs::is_regular_file(ck / "trainer_state.json", ec))
      throw Error("resume: " + (p / "LATEST").string() + " names '" + name + "', which is not a checkpoint folder");
    return ck.string();
  }
  throw Error("resume: '" + path +
              "' is neither a checkpoint folder (no trainer_state.json) nor a run folder (no LATEST)");
}

FileSet read_checkpoint_files(const std::string& folder) {
  FileSet files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream f(entry.path(), std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (!f.good() && !f.eof()) throw Error("checkpoint: cannot read " + entry.path().string());
    files[entry.path().filename().string()] = std::move(bytes);
  }
  if (ec) throw Error("checkpoint: cannot read the folder " + folder + " (" + ec.message() + ")");
  return files;
}

void truncate_log(const std::string& path, int64_t step) {
  std::ifstream in(path);
  if (!in) return;  // no log yet
  std::string kept, line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      const ojson j = ojson::parse(line);
      if (j.contains("step") && j["step"].is_number_integer() && j["step"].get<int64_t>() > step) continue;
    } catch (const nlohmann::json::exception&) {
      continue;  // a torn last line of a killed run
    }
    kept += line + "\n";
  }
  in.close();
  const std::string tmp = path + ".tmp";
  write_bytes(tmp, std::vector<uint8_t>(kept.begin(), kept.end()));
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw Error("cannot rewrite the log " + path + " (" + ec.message() + ")");
}

}  // namespace cs::train
