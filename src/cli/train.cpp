// `circuitscope train`: trains an attention-only transformer (src/train) and
// writes checkpoints in Hugging Face layout under --out:
//   OUT/step-NNNNNNN/  model.safetensors (F32, TransformerLens names), config.json,
//                      tokenizer.json, optimizer.safetensors, trainer_state.json
//   OUT/LATEST         the newest checkpoint's folder name
//   OUT/train_log.jsonl (or --log): one JSON object per log step
//   OUT/train_config.json: the resolved config of the run
// Progress goes to stderr (one \r-updated line on a terminal, plain lines at
// log steps otherwise); a summary to stdout at the end. Ctrl-C saves a
// checkpoint and exits 130; a loss that turns NaN/Inf stops the run with one
// line naming the step, keeps the last good checkpoint, and exits 1.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "cli/cli_common.h"
#include "core/error.h"
#include "io/tokenizer.h"
#include "train/bpe_train.h"
#include "train/data.h"
#include "train/trainer.h"

namespace cs::cli {

namespace {

namespace fs = std::filesystem;
using train::TrainConfig;

std::atomic<bool> g_stop{false};
// First Ctrl-C: finish the step, save, exit 130. A second one: the default action (exit at once).
extern "C" void on_sigint(int) {
  g_stop = true;
  std::signal(SIGINT, SIG_DFL);
}

// Options that define the run: fixed once it has started, so not accepted with --resume.
const char* const kRunDefining[] = {"--config", "--layers", "--d-model", "--heads", "--d-head", "--ctx", "--vocab",
                                    "--norm", "--pos", "--tokenizer", "--data-dtype", "--batch", "--lr", "--min-lr",
                                    "--warmup", "--schedule", "--weight-decay", "--beta1", "--beta2", "--grad-clip",
                                    "--seed", "--curriculum", "--bos", "--init-std", "--pos-std", "--name",
                                    "--eval-windows", "--eval-examples"};

struct Ids {
  std::vector<int> ids;
  int vocab_size = 0;        // from a token file's sidecar (0: unknown)
  std::optional<int> bos_id;  // likewise
};

// A token-id file: with a sidecar PATH.json (written by `circuitscope encode`)
// its dtype, vocabulary and BOS come from there; otherwise raw little-endian
// ids whose type is --data-dtype or the extension (.u16/.bin: uint16, .u32:
// uint32, .i32: int32).
Ids load_ids(const std::string& path, const std::optional<std::string>& dtype_flag, const std::string& what) {
  Ids out;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(what + " '" + path + "': no such file");
  if (fs::is_directory(path, ec)) throw Error(what + " '" + path + "': is a folder, not a token-id file");
  if (fs::exists(path + ".json", ec) && !dtype_flag) {
    train::TokenFile tf = train::read_token_file(path);
    out.ids = std::move(tf.ids);
    out.vocab_size = tf.vocab_size;
    out.bos_id = tf.bos_id;
  } else {
    train::TokenDtype dt;
    if (dtype_flag) {
      try {
        dt = train::parse_token_dtype(*dtype_flag);
      } catch (const Error& e) {
        throw UsageError(std::string("--data-dtype: ") + e.what());
      }
    } else {
      const std::string ext = fs::path(path).extension().string();
      if (ext == ".u16" || ext == ".bin") dt = train::TokenDtype::U16;
      else if (ext == ".u32") dt = train::TokenDtype::U32;
      else if (ext == ".i32") dt = train::TokenDtype::I32;
      else
        throw UsageError("cannot tell the token-id type of '" + path +
                         "': give --data-dtype uint16|uint32|int32, name it .u16/.bin/.u32/.i32, or write it with "
                         "`circuitscope encode` (which adds a .json sidecar)");
    }
    out.ids = train::decode_token_ids(read_file(path), dt, what + " '" + path + "'");
  }
  if (out.ids.empty()) throw Error(what + " '" + path + "': no token ids (the file is empty)");
  return out;
}

// The CLI's --curriculum: train::parse_curriculum, its errors as usage errors.
std::vector<train::DataPhase> parse_curriculum(const std::string& spec) {
  try {
    return train::parse_curriculum(spec);
  } catch (const Error& e) {
    throw UsageError("--" + std::string(e.what()));
  }
}

PosEmbed pos_of(const std::string& s) {
  if (auto p = pos_embed_from_string(s)) return *p;
  throw UsageError("--pos '" + s + "' is not standard, shortformer or none");
}

Norm norm_of(const std::string& s) {
  if (auto n = norm_from_string(s)) return *n;
  throw UsageError("--norm '" + s + "' is not LN, LNPre or none");
}

std::string duration(double s) {
  if (!(s >= 0) || s > 1e8) return "?";
  const long t = long(s + 0.5);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, t / 60 % 60);
  else if (t >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

std::string read_text(const std::string& path) {
  const std::vector<uint8_t> b = read_file(path);
  return std::string(b.begin(), b.end());
}

// The progress line: step/total, loss, tokens/s, ETA, phase.
class ProgressLine {
 public:
  ProgressLine(bool enabled, int64_t log_every)
      : enabled_(enabled), tty_(isatty(fileno(stderr)) != 0), log_every_(log_every) {}
  void operator()(const train::Progress& p) {
    if (!enabled_) return;
    char buf[200];
    std::snprintf(buf, sizeof buf, "step %lld/%lld  loss %.4f  %.0f tok/s  ETA %s  [%s]", (long long)p.step,
                  (long long)p.total, double(p.loss), p.tokens_per_s, duration(p.eta_s).c_str(), p.phase.c_str());
    if (tty_) {
      const auto now = std::chrono::steady_clock::now();
      if (p.step != p.total && now - last_ < std::chrono::milliseconds(100)) return;
      last_ = now;
      std::fprintf(stderr, "\r%-78s", buf);
      dirty_ = true;
    } else if (p.step == p.total || (log_every_ > 0 && p.step % log_every_ == 0)) {
      std::fprintf(stderr, "%s\n", buf);
    }
    std::fflush(stderr);
  }
  void finish() {
    if (dirty_) std::fprintf(stderr, "\n");
    dirty_ = false;
  }

 private:
  bool enabled_, tty_;
  int64_t log_every_;
  bool dirty_ = false;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace

int cmd_train(const std::vector<std::string>& words) {
  Args args(words, {{"--no-progress", "--json"},
                    {"--config", "--layers", "--d-model", "--heads", "--d-head", "--ctx", "--vocab", "--norm", "--pos",
                     "--data", "--heldout", "--tokenizer", "--data-dtype", "--steps", "--batch", "--lr", "--min-lr",
                     "--warmup", "--schedule", "--weight-decay", "--beta1", "--beta2", "--grad-clip", "--seed",
                     "--threads", "--out", "--resume", "--log", "--log-every", "--eval-every", "--save-every", "--keep",
                     "--curriculum", "--bos", "--init-std", "--pos-std", "--name", "--eval-windows",
                     "--eval-examples"}});
  args.expect_positional(0, "");
  constexpr int64_t kBig = 1 << 24;
  const auto dtype_flag = args.value("--data-dtype");

  std::unique_ptr<train::Trainer> trainer;
  std::string out_dir;
  const bool resuming = args.has("--resume");

  if (resuming) {
    for (const char* o : kRunDefining)
      if (args.has(o))
        throw UsageError(std::string(o) + " cannot be changed when resuming (the run's config is in its checkpoint)");
    const std::string ck = train::resolve_checkpoint(*args.value("--resume"));
    const FileSet files = train::read_checkpoint_files(ck);
    // The data paths come from the checkpoint's config unless given again.
    const auto st_it = files.find("trainer_state.json");
    if (st_it == files.end()) throw Error("checkpoint: trainer_state.json is missing in " + ck);
    const auto st = nlohmann::json::parse(st_it->second.begin(), st_it->second.end(), nullptr, false);
    if (st.is_discarded() || !st.contains("config")) throw Error("checkpoint: " + ck + "/trainer_state.json is not valid");
    const TrainConfig saved = train::train_config_from_json(st["config"].dump());
    const std::string data_path = args.has("--data") ? fs::absolute(*args.value("--data")).string() : saved.data_path;
    const std::string heldout_path =
        args.has("--heldout") ? fs::absolute(*args.value("--heldout")).string() : saved.heldout_path;
    train::TrainData data;
    if (!data_path.empty()) data.train = load_ids(data_path, dtype_flag, "training data").ids;
    if (!heldout_path.empty()) data.heldout = load_ids(heldout_path, dtype_flag, "held-out data").ids;
    std::optional<int64_t> steps = args.integer("--steps", 1, INT64_MAX / 4);
    std::optional<int64_t> threads = args.integer("--threads", 1, 1024);
    std::optional<int64_t> log_every = args.integer("--log-every", 0, INT64_MAX / 4);
    std::optional<int64_t> eval_every = args.integer("--eval-every", 0, INT64_MAX / 4);
    std::optional<int64_t> save_every = args.integer("--save-every", 0, INT64_MAX / 4);
    std::optional<int64_t> keep = args.integer("--keep", 0, 1 << 20);
    trainer = std::make_unique<train::Trainer>(files, std::move(data), [&](TrainConfig& c) {
      if (steps) c.steps = *steps;
      if (threads) c.threads = int(*threads);
      if (log_every) c.log_every = *log_every;
      if (eval_every) c.eval_every = *eval_every;
      if (save_every) c.save_every = *save_every;
      if (keep) c.keep_checkpoints = int(*keep);
      c.data_path = data_path;
      c.heldout_path = heldout_path;
    });
    out_dir = args.value("--out").value_or(fs::path(ck).parent_path().string());
    if (trainer->done())
      throw Error("resume: the checkpoint is at step " + std::to_string(trainer->step()) + " of " +
                  std::to_string(trainer->config().steps) + "; give --steps to train further");
  } else {
    if (!args.has("--out")) throw UsageError("--out DIR is needed (or --resume DIR)");
    out_dir = *args.value("--out");
    std::error_code ec;
    if (fs::exists(fs::path(out_dir) / "LATEST", ec))
      throw Error("'" + out_dir + "' already holds a run (LATEST); continue it with --resume " + out_dir +
                  " or choose another --out");

    TrainConfig cfg;
    bool config_has_bos = false;
    cfg.model.n_layers = 2;
    cfg.model.d_model = 128;
    cfg.model.n_heads = 8;
    cfg.model.d_head = 16;
    cfg.model.n_ctx = 128;
    cfg.model.positional = PosEmbed::Shortformer;
    cfg.model.normalization = Norm::LN;
    if (auto path = args.value("--config")) {
      const std::string text = read_text(*path);
      cfg = train::train_config_from_json(text);
      const auto j = nlohmann::json::parse(text, nullptr, false);
      config_has_bos = j.is_object() && j.contains("bos");
    }
    ModelConfig& mc = cfg.model;
    mc.n_layers = int(args.integer("--layers", 0, 64).value_or(mc.n_layers));
    mc.d_model = int(args.integer("--d-model", 1, kBig).value_or(mc.d_model));
    mc.n_heads = int(args.integer("--heads", 1, 1024).value_or(mc.n_heads));
    if (args.has("--d-head")) mc.d_head = int(*args.integer("--d-head", 1, kBig));
    else if (args.has("--d-model") || args.has("--heads")) mc.d_head = std::max(1, mc.d_model / mc.n_heads);
    mc.n_ctx = int(args.integer("--ctx", 2, kBig).value_or(mc.n_ctx));
    if (auto v = args.value("--norm")) mc.normalization = norm_of(*v);
    if (auto v = args.value("--pos")) mc.positional = pos_of(*v);
    cfg.batch = int(args.integer("--batch", 1, kBig).value_or(cfg.batch));
    cfg.lr = args.number("--lr").value_or(cfg.lr);
    cfg.min_lr = args.number("--min-lr").value_or(cfg.min_lr);
    cfg.warmup = args.integer("--warmup", 0, INT64_MAX / 4).value_or(cfg.warmup);
    cfg.schedule = args.value("--schedule").value_or(cfg.schedule);
    cfg.weight_decay = args.number("--weight-decay").value_or(cfg.weight_decay);
    cfg.beta1 = args.number("--beta1").value_or(cfg.beta1);
    cfg.beta2 = args.number("--beta2").value_or(cfg.beta2);
    cfg.grad_clip = args.number("--grad-clip").value_or(cfg.grad_clip);
    cfg.seed = uint64_t(args.integer("--seed", 0, INT64_MAX).value_or(int64_t(cfg.seed)));
    cfg.threads = int(args.integer("--threads", 1, 1024).value_or(cfg.threads));
    cfg.log_every = args.integer("--log-every", 0, INT64_MAX / 4).value_or(cfg.log_every);
    cfg.eval_every = args.integer("--eval-every", 0, INT64_MAX / 4).value_or(cfg.eval_every);
    cfg.save_every = args.integer("--save-every", 0, INT64_MAX / 4).value_or(cfg.save_every);
    cfg.keep_checkpoints = int(args.integer("--keep", 0, 1 << 20).value_or(cfg.keep_checkpoints));
    cfg.init_std = args.number("--init-std").value_or(cfg.init_std);
    cfg.pos_init_std = args.number("--pos-std").value_or(cfg.pos_init_std);
    cfg.eval_windows = int(args.integer("--eval-windows", 1, 1 << 20).value_or(cfg.eval_windows));
    cfg.eval_examples = int(args.integer("--eval-examples", 1, 1 << 20).value_or(cfg.eval_examples));
    if (auto v = args.value("--curriculum")) cfg.curriculum = parse_curriculum(*v);
    if (auto v = args.value("--steps")) {
      cfg.steps = parse_int(*v, "--steps", 1, INT64_MAX / 4);
    } else if (args.has("--curriculum")) {
      cfg.steps = 0;
      for (const auto& p : cfg.curriculum) cfg.steps += p.steps;
    }

    // Data and tokenizer.
    if (auto v = args.value("--data")) cfg.data_path = fs::absolute(*v).string();
    if (auto v = args.value("--heldout")) cfg.heldout_path = fs::absolute(*v).string();
    if (auto v = args.value("--tokenizer")) cfg.tokenizer_path = fs::absolute(*v).string();
    train::TrainData data;
    Ids train_ids, heldout_ids;
    if (!cfg.data_path.empty()) train_ids = load_ids(cfg.data_path, dtype_flag, "training data");
    if (!cfg.heldout_path.empty()) heldout_ids = load_ids(cfg.heldout_path, dtype_flag, "held-out data");
    std::optional<Tokenizer> tok;
    if (!cfg.tokenizer_path.empty()) {
      data.tokenizer_json = read_text(cfg.tokenizer_path);
      try {
        tok = Tokenizer::from_json(data.tokenizer_json);
      } catch (const Error& e) {
        throw Error("tokenizer '" + cfg.tokenizer_path + "': " + e.what());
      }
    }

    // Vocabulary: --vocab, the config file, the tokenizer, the token file's sidecar, or the data's largest id + 1.
    if (auto v = args.integer("--vocab", 1, kBig)) mc.d_vocab = int(*v);
    if (mc.d_vocab <= 0) {
      if (tok) mc.d_vocab = tok->vocab_size();
      else if (train_ids.vocab_size > 0) mc.d_vocab = train_ids.vocab_size;
      else if (!train_ids.ids.empty())
        mc.d_vocab = std::max(train::max_token_id(train_ids.ids), train::max_token_id(heldout_ids.ids)) + 1;
      else throw UsageError("--vocab N is needed when there is neither --data nor --tokenizer");
    }
    if (tok && tok->vocab_size() > mc.d_vocab)
      throw Error("tokenizer '" + cfg.tokenizer_path + "' has " + std::to_string(tok->vocab_size()) +
                  " tokens, more than the model's d_vocab " + std::to_string(mc.d_vocab));
    // BOS: --bos N|none, the config file, the tokenizer's, the token file's, else none.
    if (auto v = args.value("--bos")) {
      cfg.bos = *v == "none" ? -1 : int(parse_int(*v, "--bos", 0, kBig));
    } else if (!config_has_bos) {
      cfg.bos = tok && tok->bos_id() ? *tok->bos_id() : train_ids.bos_id ? *train_ids.bos_id : -1;
    }
    if (cfg.bos >= mc.d_vocab)
      throw Error("BOS id " + std::to_string(cfg.bos) + " is outside the model's vocabulary [0, d_vocab = " +
                  std::to_string(mc.d_vocab) + ")");
    if (auto v = args.value("--name")) mc.name = *v;
    if (mc.name.empty()) mc.name = "attn-only-" + std::to_string(mc.n_layers) + "l (circuitscope train)";
    if (!cfg.tokenizer_path.empty() && mc.tokenizer_name.empty())
      mc.tokenizer_name = fs::path(cfg.tokenizer_path).filename().string();

    const int64_t window = mc.n_ctx - (cfg.bos >= 0 ? 1 : 0);
    if (!train_ids.ids.empty() && int64_t(train_ids.ids.size()) < window)
      throw Error("training data '" + cfg.data_path + "' has " + std::to_string(train_ids.ids.size()) +
                  " tokens, fewer than one context of n_ctx " + std::to_string(mc.n_ctx));
    if (!heldout_ids.ids.empty() && int64_t(heldout_ids.ids.size()) < window)
      throw Error("held-out data '" + cfg.heldout_path + "' has " + std::to_string(heldout_ids.ids.size()) +
                  " tokens, fewer than one context of n_ctx " + std::to_string(mc.n_ctx));
    if (!train_ids.ids.empty())
      train::check_token_ids(train_ids.ids, mc.d_vocab, window, "training data '" + cfg.data_path + "'");
    if (!heldout_ids.ids.empty())
      train::check_token_ids(heldout_ids.ids, mc.d_vocab, window, "held-out data '" + cfg.heldout_path + "'");
    data.train = std::move(train_ids.ids);
    data.heldout = std::move(heldout_ids.ids);
    trainer = std::make_unique<train::Trainer>(cfg, std::move(data));
  }

  const TrainConfig& cfg = trainer->config();
  fs::create_directories(out_dir);
  {
    std::ofstream f(fs::path(out_dir) / "train_config.json", std::ios::trunc);
    f << train::train_config_to_json(cfg) << "\n";
  }
  const std::string log_path = args.value("--log").value_or((fs::path(out_dir) / "train_log.jsonl").string());
  if (resuming) train::truncate_log(log_path, trainer->step());
  std::ofstream log(log_path, resuming ? std::ios::app : std::ios::trunc);
  if (!log) throw Error("cannot write the log '" + log_path + "'");

  train::CheckpointDir ckdir(out_dir, cfg.keep_checkpoints);
  ProgressLine progress(!args.has("--no-progress"), cfg.log_every);
  train::RunOptions opt;
  opt.log = &log;
  opt.save = [&](const FileSet& f, int64_t step) { return ckdir.save(f, step); };
  opt.stop = &g_stop;
  opt.progress = [&](const train::Progress& p) { progress(p); };

  g_stop = false;
  auto previous = std::signal(SIGINT, on_sigint);
  train::RunResult r;
  try {
    r = train::run_training(*trainer, opt);
  } catch (...) {
    std::signal(SIGINT, previous);
    progress.finish();
    throw;
  }
  std::signal(SIGINT, previous);
  progress.finish();

  if (r.status == train::RunStatus::Diverged) {
    std::cerr << "circuitscope: train: " << r.message << std::endl;
    return 1;
  }
  if (r.status == train::RunStatus::Interrupted) {
    std::cerr << "circuitscope: train: " << r.message << "; continue with --resume " << out_dir << std::endl;
    return 130;
  }

  // Summary of the final evaluation.
  const train::Evaluation* e = r.last_eval ? &*r.last_eval : nullptr;
  if (args.has("--json")) {
    Json j;
    j["steps"] = trainer->step();
    j["tokens"] = trainer->tokens();
    j["checkpoint"] = r.last_saved;
    j["log"] = log_path;
    if (e) {
      if (e->heldout_loss) j["heldout_loss"] = *e->heldout_loss;
      if (e->prev_token.size()) j["prev_token"] = matrix_json(e->prev_token);
      if (e->pm_tokens > 0) {
        j["prefix_matching"] = matrix_json(e->prefix_matching);
        j["repeat_loss_first"] = e->repeat.first;
        j["repeat_loss_repeats"] = e->repeat.repeats;
      }
      if (e->icl_score) j["icl_score"] = *e->icl_score;
    }
    print_json(std::cout, j);
  } else {
    std::cout << "trained " << trainer->step() << " steps (" << trainer->tokens() << " tokens); checkpoint "
              << r.last_saved << "; log " << log_path << "\n";
    if (e) {
      if (e->heldout_loss) std::cout << "held-out loss " << *e->heldout_loss << "\n";
      if (e->prefix_matching.size() > 0) {
        const int L = int(e->prefix_matching.rows());
        Eigen::Index h = 0;
        const float best = e->prefix_matching.row(L - 1).maxCoeff(&h);
        std::cout << "best prefix-matching score in layer " << L - 1 << ": " << best << " (head " << L - 1 << "."
                  << h << "); loss on repeated random tokens: first copy " << e->repeat.first << ", repeats "
                  << e->repeat.repeats << "\n";
      }
    }
  }
  return 0;
}

}  // namespace cs::cli
