// A training run of the Train view (train_view.h), without ImGui: the trainer
// of src/train advanced one unit at a time (a unit is one optimizer update or
// one evaluation), the history the view plots (every update's batch loss, an
// evaluation every eval_every updates) and snapshots of the weights. The same
// train::Trainer as `circuitscope train`, so the same config, seed and data
// give the CLI's weights (docs/training.md). Built natively too
// (tests/unit/test_train_view.cpp).
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/sliced.h"
#include "io/model_io.h"
#include "train/trainer.h"

namespace cs::app {

// A tokenizer.json (WordLevel, split on whitespace) naming the token ids of
// generated data: the BOS `bos` is "<bos>", the others short syllables
// ("ba", "de", ..., then "bas", ...; "t<id>" past those), so views and the
// Prompt view show and read them as words. Throws cs::Error when bos is
// outside [0, d_vocab).
std::string syllable_tokenizer_json(int d_vocab, int bos);

// A starting point of the Train view: a whole training config, a description
// and the text its text phases read ("" or "sample", TrainSelection::text).
struct TrainPreset {
  std::string id, title, description;
  train::TrainConfig config;
  std::string text;
};
// The text sample's vocabulary and BOS (assets/text/index.json: the bundled
// models' tokenizer), for checking a selection before the sample is there.
inline constexpr int kSampleVocab = 2048, kSampleBos = 256;
// The presets, the first being the default: "induction" (induction heads on
// repeated random tokens: 2 layers, d_model 64, 4 heads of 16, n_ctx 128,
// 256 token ids with BOS 0, batch 8, lr 2e-3 after 100 warm-up updates, 1,000
// updates; the config of `circuitscope train` in tests/train/induction_forms),
// "one-layer" (the same with one layer) and "text" (2 layers on the text
// sample, its 2,048-token vocabulary).
const std::vector<TrainPreset>& train_presets();
const TrainPreset* find_train_preset(const std::string& id);

// One evaluation: train::Evaluation's scores plus, when the run has no
// held-out text, a held-out loss and in-context learning score on fixed
// repeated random rows (drawn from their own seed, never trained on), and the
// attention patterns of every head on the run's probe sequence.
struct TrainEval {
  int64_t step = 0;
  std::optional<double> heldout_loss, icl_score;
  std::string heldout_on;          // "held-out text" | "held-out repeated random tokens"
  RowMat prev_token;               // [n_layers, n_heads]
  RowMat prefix_matching;          // [n_layers, n_heads]
  double repeat_first = 0, repeat_repeats = 0;  // mean loss on [I]'s first copy / on the repeats
  std::vector<RowMat> patterns;    // l * n_heads + h: [T, T] on probe()
  double best_prefix_matching() const;  // 0 when there are none
};

// The phase change: the first evaluation at which the best head's
// prefix-matching score has covered half of its rise from the first
// evaluation to its highest, once that rise is at least kPhaseRise (none
// before: a slow creep is no phase change). On the presets the score jumps
// from about 0.05 to 0.8 within a few evaluations, so this marks the jump.
inline constexpr double kPhaseRise = 0.3;
std::optional<int64_t> phase_change_step(std::span<const TrainEval> evals);

// Weights kept at a step (to open "before" and "after").
struct TrainSnapshot {
  int64_t step = 0;
  std::shared_ptr<const Model> model;
};

class TrainRun {
 public:
  // Throws cs::Error naming a bad field of the config or the data.
  TrainRun(train::TrainConfig cfg, train::TrainData data);

  const train::Trainer& trainer() const { return trainer_; }
  const train::TrainConfig& config() const { return trainer_.config(); }
  int64_t step() const { return trainer_.step(); }

  // One unit of work: a part of the evaluation due at this step, else a part
  // of an update (one group of the batch's sequences, Trainer::update_unit).
  // Throws cs::Error when the loss turns NaN/Inf (the weights are not changed then).
  void advance();
  bool done() const { return trainer_.done() && evaluated_; }
  // Whether advance() works on an evaluation next (else on an update).
  bool eval_due() const { return !evaluated_; }

  // losses()[s]: the batch loss of update s (the one that made step s + 1).
  const std::vector<float>& losses() const { return losses_; }
  const std::vector<TrainEval>& evals() const { return evals_; }
  const std::vector<TrainSnapshot>& snapshots() const { return snapshots_; }
  // The probe: BOS + 20 random tokens repeated 3 times (fixed seed), cut to n_ctx.
  const std::vector<int>& probe() const { return probe_; }
  // The run's tokenizer.json text ("" with none): the data's, or for
  // generated tokens syllable_tokenizer_json.
  const std::string& tokenizer_json() const { return tokenizer_json_; }
  // How the run's token ids are shown (the tokenizer's name for it, else "#id").
  std::string token_name(int id) const;

  // Time spent in updates and in evaluations (ms), for tokens per second.
  double update_ms() const { return update_ms_; }
  double eval_ms() const { return eval_ms_; }
  // Training tokens per second of update time (0 before the first update).
  double tokens_per_s() const;
  // The kinds of unit advance() does, the longest of each so far (ms) and the
  // time the next one is expected to take (the last of its kind).
  enum Unit { kUpdateGroup, kScores, kHeldout, kProbe, kUnitKinds };
  static const char* unit_name(Unit u);
  double longest_unit_ms(Unit u) const { return longest_ms_[u]; }
  // An infinite estimate before any unit of the kind ran: a unit of unknown
  // cost waits for a frame of its own (TrainWork::step).
  double next_unit_estimate_ms() const {
    const double ms = last_ms_[next_unit()];
    return ms > 0 ? ms : std::numeric_limits<double>::infinity();
  }

  // The phase change of this run's evaluations (phase_change_step below).
  std::optional<int64_t> phase_change_step() const;

  // The weights now as a model folder: model.safetensors (F32; its metadata
  // holds the config and the tokenizer, so it alone opens as the model),
  // config.json and tokenizer.json when the run has a tokenizer.
  FileSet model_files() const;
  FileSet snapshot_files(const TrainSnapshot& s) const;

  // Keeps the weights of now as a snapshot (the user's choice of step, beside
  // the evaluations' own); nothing when one is kept at this step already.
  // Throws cs::Error when the snapshots would pass kSnapshotBytes.
  void keep_snapshot();

  // Snapshots are taken at every evaluation while their total stays under this.
  static constexpr size_t kSnapshotBytes = size_t(256) << 20;

 private:
  void evaluate_unit();
  Unit next_unit() const;
  void record(Unit u, double ms);
  double longest_ms_[kUnitKinds] = {}, last_ms_[kUnitKinds] = {};
  void plan_evaluation();
  static constexpr size_t kEvalSeqs = 2;  // sequences per unit of an evaluation
  struct EvalUnit {
    Unit kind;
    std::function<void()> run;
  };
  train::Trainer trainer_;
  std::string tokenizer_json_;
  std::vector<std::string> names_;  // token_name, by id (empty: "#id")
  std::vector<std::vector<int>> heldout_rows_;  // the held-out text's windows, else repeated random rows
  std::string heldout_on_ = "held-out repeated random tokens";
  std::vector<int> probe_;
  std::vector<float> losses_;
  std::vector<TrainEval> evals_;
  // Adds the weights of now at step() unless one is kept there; false when over kSnapshotBytes.
  bool add_snapshot();
  std::vector<TrainSnapshot> snapshots_;  // by step
  size_t snapshot_bytes_ = 0;
  bool evaluated_ = false;  // the evaluation of the current step, if one is due, is done
  train::EvalInputs inputs_;          // what the heads are scored on (fixed for the run)
  std::vector<EvalUnit> eval_units_;  // the evaluation in progress (empty: none)
  size_t eval_next_ = 0;
  TrainEval pending_;                 // its results so far
  double update_ms_ = 0, eval_ms_ = 0;
};

// A run as a job (app/jobs.h): each step() advances it for about the budget,
// at least one unit (an update of the presets takes a few ms in wasm). The
// run is shared with the view; dropping the job (pause, stop) leaves the run
// as it is, and a new job continues it exactly where it was.
class TrainWork final : public SlicedComputation {
 public:
  explicit TrainWork(std::shared_ptr<TrainRun> run) : run_(std::move(run)) {}
  bool step(double budget_ms) override;
  bool done() const override { return run_->done(); }
  float progress() const override;
  std::string stage() const override;

 private:
  std::shared_ptr<TrainRun> run_;
};

}  // namespace cs::app
