// The training loop of the attention-only transformer: initialisation,
// AdamW with warmup + cosine decay and gradient clipping, a data curriculum,
// evaluation of the induction-head scores while training, checkpoints that
// resume bit-identically, and a JSON-lines training log.
//
// Conventions: TransformerLens names and shapes (x @ W, row vectors); the
// gradients of backward.h have the layout of Model::data(), and so do the
// optimizer moments here. A "step" is one optimizer update; step counts are
// the number of updates done (the first update is step 1; step index s,
// 0-based, is the update that takes the model from step s to step s + 1).
//
// Determinism: for a fixed config (seed and thread count included) a run gives
// the same weights bit for bit, and so does a run interrupted at any
// checkpoint and resumed (the checkpoint holds the weights and both AdamW
// moments in F32, the step and the data Rng's state).
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/induction.h"
#include "core/model.h"
#include "io/model_io.h"
#include "train/backward.h"
#include "train/data.h"

namespace cs::train {

// One phase of the data curriculum. Phases run in order, each for `steps`
// updates; the last one runs until the end of training whatever its `steps`.
struct DataPhase {
  std::string source = "text";  // "text" | "repeated-random"
  int64_t steps = 0;
  int min_len = 0, max_len = 0;  // repeated-random segment lengths (0: auto, data.h)
};

struct TrainConfig {
  // The model (n_ctx is also the training sequence length T).
  ModelConfig model;

  int batch = 8;  // B sequences per step
  int64_t steps = 1000;

  // Learning rate: linear warmup from lr / warmup to lr over the first
  // `warmup` updates (update index s < warmup gets lr * (s + 1) / warmup),
  // then, with schedule "cosine", min_lr + (lr - min_lr) (1 + cos(pi p)) / 2
  // with p = (s - warmup) / (steps - warmup) going 0 -> 1; with "constant", lr.
  double lr = 1e-3;
  double min_lr = -1;  // < 0: lr / 10
  int64_t warmup = 100;
  std::string schedule = "cosine";

  // AdamW (decoupled weight decay, PyTorch's formulation and defaults except
  // where noted). Weight decay applies to the matrices that read or write
  // the residual stream inside the model and the unembedding: W_Q, W_K, W_V,
  // W_O, W_U. Not to biases, LayerNorm weights or the embeddings W_E / W_pos
  // (the common practice of minGPT and Hugging Face: decaying an embedding
  // pulls rarely seen tokens to 0, and W_pos starts at unit scale on purpose).
  double weight_decay = 0.01;
  double beta1 = 0.9, beta2 = 0.999, adam_eps = 1e-8;
  // Gradients are scaled by clip / (norm + 1e-6) when their global L2 norm
  // exceeds clip (as torch.nn.utils.clip_grad_norm_); 0 disables.
  double grad_clip = 1.0;

  uint64_t seed = 1;
  // Threads natively (0: the machine's cores; 0 means 1 in wasm). The batch
  // is split into this many groups of sequences whose gradients are summed in
  // order (backward.h), so the same count gives the same arithmetic anywhere;
  // in wasm the groups run one after the other.
  int threads = 0;

  int64_t log_every = 10;      // a log line every N steps (and at eval steps and the end)
  int64_t eval_every = 250;    // evaluation at step 0, every N steps and at the end (0: only at the end)
  int64_t save_every = 1000;   // a checkpoint every N steps and at the end (0: only at the end)
  int keep_checkpoints = 0;    // keep only the newest N step folders (0: all)

  std::vector<DataPhase> curriculum;  // empty: text if there is training text, else repeated-random

  // Initialisation, TransformerLens-like: W_E, W_Q, W_K, W_V, W_O, W_U ~
  // N(0, init_std); biases 0; LayerNorm w = 1, b = 0; W_pos ~ N(0, pos_init_std),
  // by default N(0, 1) with Shortformer positions (trial
  // runs showed it: positions at 0.02 are invisible to the QK
  // circuit next to the unit-scale normalised residual) and init_std otherwise.
  double init_std = 0.02;
  double pos_init_std = -1;  // < 0: 1 for Shortformer, init_std otherwise

  int bos = -1;  // BOS id put in front of every sequence; < 0: none

  // Evaluation: held-out loss over up to eval_windows fixed windows; the
  // previous-token score on the first 8 of them (on training-text windows
  // when there is no held-out text, else on the repeated random tokens);
  // prefix matching and repeat loss on eval_examples sequences of [I]'s
  // repeated random tokens (BOS + 25 tokens repeated 4 times, fewer tokens
  // when n_ctx is short), ids unseen in the training text excluded.
  int eval_windows = 16;
  int eval_examples = 10;

  // Where the data came from (recorded in checkpoints so a resume can reload
  // it; the library itself never reads these).
  std::string data_path, heldout_path, tokenizer_path;

  // Throws cs::Error naming the first bad field.
  void validate() const;
  double min_lr_value() const { return min_lr < 0 ? lr / 10 : min_lr; }
  double pos_init_value() const;
  // Index into curriculum of the phase of update index s (the resolved
  // curriculum: never empty once a Trainer holds the config).
  size_t phase_at(int64_t s) const;
};

// JSON text of a config (every field above) and back. from_json starts from
// the defaults, so missing keys keep them; unknown keys are an error (names the key).
std::string train_config_to_json(const TrainConfig& cfg, int indent = 2);

// A curriculum as text, the CLI's --curriculum and the page's Train tab:
// comma-separated SOURCE:STEPS items, SOURCE "text" or "repeat" (also
// "repeated-random", "random"), an optional third field MIN-MAX for a repeat
// phase's segment lengths: "repeat:2000:8-40,text:3000". Throws cs::Error
// naming the item at fault.
std::vector<DataPhase> parse_curriculum(std::string_view spec);
TrainConfig train_config_from_json(std::string_view text);

// Learning rate of update index s (0-based), per the schedule above.
double lr_at(const TrainConfig& cfg, int64_t s);

// Whether AdamW's weight decay applies to a tensor (TransformerLens name).
bool decays(const std::string& tensor_name);

struct AdamParams {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
};
// One AdamW update of parameters p with gradient g and moments m, v (all the
// same length), t = 1-based number of this update:
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p = p (1 - lr wd)                    (when decay)
//   p = p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
void adamw_step(std::span<float> p, std::span<const float> g, std::span<float> m, std::span<float> v, int64_t t,
                double lr, const AdamParams& a, bool decay);

// The initialisation described at TrainConfig::init_std, from rng.
void init_weights(Model& m, double init_std, double pos_std, Rng& rng);

struct TrainData {
  std::vector<int> train;      // training token ids (needed when a phase reads text)
  std::vector<int> heldout;    // held-out token ids (optional)
  std::string tokenizer_json;  // copied into every checkpoint (optional)
};

struct StepResult {
  int64_t step = 0;  // updates done after this one
  float loss = 0;    // mean loss of the batch, before the update
  double grad_norm = 0;
  double lr = 0;
  bool finite = true;  // false: the loss or gradient was NaN/Inf and nothing was updated
};

struct Evaluation {
  int64_t step = 0;
  std::optional<double> heldout_loss;
  RowMat prev_token;          // [n_layers, n_heads]
  std::string prev_token_on;  // "held-out text" | "training text" | "repeated random tokens"
  RowMat prefix_matching;     // [n_layers, n_heads]; empty when n_ctx is too short
  int pm_tokens = 0, pm_repeats = 0;
  RepeatLoss repeat;
  // In-context learning score on the held-out windows (positive = learning):
  // loss at icl_positions(n_ctx).early minus at .late, each averaged over
  // +- n_ctx / 64 positions (induction.h); absent without held-out text.
  std::optional<double> icl_score;
};

// What Trainer::evaluate scores the heads on, for a caller that scores them a
// few sequences at a time (the page): [I]'s repeated random tokens (prefix
// matching and the repeat loss) and the windows of the previous-token score.
struct EvalInputs {
  std::vector<std::vector<int>> repeated;  // empty when n_ctx is too short
  int pm_tokens = 0, pm_repeats = 0;
  std::vector<std::vector<int>> prev_token_windows;
  std::string prev_token_on;
  std::vector<std::vector<int>> heldout_windows;  // the held-out loss's (empty without held-out text)
};

class Trainer {
 public:
  // A fresh run: weights initialised from cfg.seed. Checks the config and the
  // data against each other (cs::Error naming what is wrong).
  Trainer(TrainConfig cfg, TrainData data);
  // Resumes from a checkpoint's files (checkpoint()); `adjust` may change the
  // config first (e.g. more steps, other intervals; changing the batch, the
  // model or the thread count breaks bit-identity).
  Trainer(const FileSet& checkpoint, TrainData data, const std::function<void(TrainConfig&)>& adjust = {});

  const TrainConfig& config() const { return cfg_; }
  const Model& model() const { return model_; }
  int64_t step() const { return step_; }
  int64_t tokens() const { return step_ * int64_t(cfg_.batch) * cfg_.model.n_ctx; }
  bool done() const { return step_ >= cfg_.steps; }
  double elapsed_before() const { return elapsed_before_; }  // seconds of earlier runs (from the checkpoint)
  int bos() const { return cfg_.bos; }
  const std::string& phase_source() const;  // source of the next update's phase

  // One update. When the loss or the gradient norm is not finite, nothing is
  // changed (weights, moments, step and data position stay) and finite = false.
  StepResult train_step();
  // The same update in pieces, for a caller that must not block for a whole
  // update (the page's Train view): each call does one group of the batch's
  // sequences (config().threads groups, as train_step splits the batch over
  // its threads, backward.h), the first also drawing the batch; the last one
  // also does the optimizer update and returns its StepResult (nullopt
  // before). The same arithmetic as train_step. While an update is in
  // progress, train_step, evaluate and checkpoint must not be called; a
  // throw abandons the update (the data position is put back).
  std::optional<StepResult> update_unit();
  bool update_in_progress() const { return group_ >= 0; }

  Evaluation evaluate() const;
  // The sequences evaluate() scores the heads on (fixed for a run).
  EvalInputs eval_inputs() const;
  bool has_heldout() const { return !heldout_windows_.empty(); }

  // model.safetensors (F32), config.json, tokenizer.json (if any),
  // optimizer.safetensors (tensors "adam.m", "adam.v": the moments, flat, in
  // Model::data() layout) and trainer_state.json (step, tokens, data Rng state,
  // elapsed seconds, the whole config). elapsed: seconds of this run so far.
  FileSet checkpoint(double elapsed = 0) const;

 private:
  void setup(TrainData data);
  void draw_batch();                                         // the next batch into batch_
  StepResult finish_update(float loss, const Rng& before);  // clip, AdamW, step; `before`: the data Rng before the batch
  TrainConfig cfg_;
  TrainData data_;
  Model model_;
  std::vector<float> grads_, m_, v_;
  std::vector<uint8_t> decay_;  // per parameter
  std::vector<int> batch_;
  std::vector<int> eval_exclude_;
  std::vector<std::vector<int>> heldout_windows_;
  Rng data_rng_;
  int64_t step_ = 0;
  int group_ = -1, groups_ = 0;  // update_unit's next group (-1: no update in progress) and group count
  Rng rng_before_;
  double elapsed_before_ = 0;
  mutable Workspace ws_;
};

// ---- the loop ---------------------------------------------------------------

struct Progress {
  int64_t step = 0, total = 0;
  float loss = 0;           // this step's batch loss
  double tokens_per_s = 0;  // over this run so far
  double eta_s = 0;
  std::string phase;
};

struct RunOptions {
  std::ostream* log = nullptr;  // JSON lines (one object per log step)
  // Checkpoint sink: called with the files and the step; returns a name for
  // messages (e.g. the folder). Empty: no checkpoints.
  std::function<std::string(const FileSet&, int64_t)> save;
  const std::atomic<bool>* stop = nullptr;  // set (e.g. by SIGINT): save and return Interrupted
  std::function<void(const Progress&)> progress;  // after every step
};

enum class RunStatus { Finished, Interrupted, Diverged };

struct RunResult {
  RunStatus status = RunStatus::Finished;
  int64_t step = 0;
  std::string message;     // one line
  std::string last_saved;  // the sink's name of the newest checkpoint ("" if none)
  std::optional<Evaluation> last_eval;
};

// Trains until the config's steps are done, the stop flag is set, or the loss
// turns NaN/Inf (then nothing more is saved: the last good checkpoint stays).
RunResult run_training(Trainer& t, const RunOptions& opt);

// One JSON object (one line, no newline) for a log step: step, phase, tokens,
// loss, lr, grad_norm, tokens_per_s, elapsed; with an evaluation also
// heldout_loss, prev_token and prefix_matching ([layer][head] arrays),
// prev_token_on, repeat_loss_first, repeat_loss_repeats, icl_score.
std::string log_line(const Trainer& t, const StepResult* s, double loss_mean, double tokens_per_s, double elapsed,
                     const Evaluation* e);

// ---- checkpoints on disk ------------------------------------------------------

// A run folder holding step-NNNNNNN checkpoint folders and a LATEST file naming
// the newest. save() writes into a temporary folder and renames it into place
// (and LATEST likewise), so a crash or a failed save never leaves a half
// checkpoint and never replaces a good one.
class CheckpointDir {
 public:
  explicit CheckpointDir(std::string dir, int keep = 0);
  std::string save(const FileSet& files, int64_t step);  // returns the folder's path
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  int keep_;
};

// A checkpoint folder's path from either that folder or a run folder (via LATEST).
std::string resolve_checkpoint(const std::string& path);
// Every regular file of a checkpoint folder.
FileSet read_checkpoint_files(const std::string& folder);
// Keeps only the log lines with "step" <= step (before appending on resume).
void truncate_log(const std::string& path, int64_t step);

}  // namespace cs::train
