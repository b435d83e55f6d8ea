// The Train view (view.h): train a small attention-only model in the page
// and watch the induction heads form (docs/training.md). A preset or a
// config of one's own; Train, Pause, Resume, Stop, Restart; live plots of
// the training and held-out loss, each head's prefix-matching and
// previous-token score over the updates (the phase change marked), the
// in-context learning score and a chosen head's attention on a fixed
// repeated sequence. "Open this model" makes the weights of now (or of a
// snapshot) the page's model; "Save" downloads them as a model folder.
// The run (train_run.h) advances as a job stepped a slice per frame.
#pragma once
#include <memory>
#include <string>

#include "app/train_run.h"
#include "app/view.h"

namespace cs::app {

// What the run will be: a preset's config with the fields below in place of
// its own (the model's shape, the data's segment lengths, the optimizer's
// main settings, the seed).
struct TrainSelection {
  std::string preset = "induction";
  int seed = 1;
  int steps = 1000;
  int layers = 2, heads = 4, d_model = 64, d_head = 16, n_ctx = 128, vocab = 256;
  int batch = 8, warmup = 100, eval_every = 25;
  int min_len = 8, max_len = 40;  // repeated segment lengths
  double lr = 2e-3;
  int layer = -1, head = 0;  // the head whose attention is drawn; layer -1: the best prefix-matching head

  // The preset's values (cs::Error for an unknown preset).
  static TrainSelection of_preset(const std::string& id);
  // {"preset","seed","steps","layers","heads","d_model","d_head","n_ctx","vocab","batch","warmup",
  //  "eval_every","min_len","max_len","lr","head": "L.H" | null}; from_json starts from the preset's
  //  values (missing keys keep them) and names a bad field.
  Json to_json() const;
  static TrainSelection from_json(const Json& j);
  bool operator==(const TrainSelection&) const = default;
  // The full training config (cs::Error naming a bad field).
  train::TrainConfig config() const;
};

class TrainView final : public SelectionView<TrainSelection> {
 public:
  static constexpr const char* kSlot = "train.run";
  enum class Status { idle, running, paused, stopped, finished, failed };

  const char* id() const override { return "train"; }
  const char* title() const override { return "Train"; }
  void on_model(Session&, ModelChange) override {}  // training does not depend on the shown model
  // {"status", "reason" (after a failure), "run": null | {"config" (train config JSON), "step", "steps",
  //  "tokens", "tokens_per_s", "steps_per_s", "update_ms", "eval_ms", "longest_unit_ms": {kind: ms},
  //  "losses": [per update],
  //  "evals": [{"step","heldout_loss","heldout_on","icl_score","prefix_matching","prev_token",
  //  "repeat_loss_first","repeat_loss_repeats","best_prefix_matching"}], "phase_change_step",
  //  "snapshots": [steps], "probe": [ids], "head": "L.H", "pattern": [query][key] (latest evaluation)}}
  Json state_json(const Session& s) const override;
  std::vector<ExportTable> tables(const Session& s) const override;
#ifdef CS_APP_DRAW
  void draw(Session& s) override;  // train_view_draw.cpp
  // "Save": downloads save_files() as <name>.<file> (the safetensors carries its config).
  void save_download() const;
#endif

  Status status(const Session& s) const;
  static const char* status_name(Status st);
  // A new run from the selection (dropping the one there), started at once.
  void start(Session& s);
  void pause(Session& s);   // the job stops; the run stays and resume() continues it
  void resume(Session& s);
  void stop(Session& s);    // the run ends where it is (its weights can still be opened and saved)
  // The weights of now (step < 0) or of the snapshot at `step` become the
  // page's model. cs::Error when there is no run or no such snapshot.
  void open_model(Session& s, int64_t step = -1);
  // The weights of now as a model folder, and the name to save it under
  // ("<model name>-step-<N>"). cs::Error when there is no run.
  FileSet save_files(std::string& name) const;
  void set_head(int layer, int head) { sel_.layer = layer, sel_.head = head; }
  // The head drawn: the chosen one, or the best prefix-matching head of the latest evaluation.
  HeadId shown_head() const;
  const TrainRun* run() const { return run_.get(); }
  // Steps per second of wall time since the job last started (0 when not running).
  double steps_per_s() const;

 protected:
  void apply_selection(Session& s) override;

 private:
  void start_job(Session& s);
  std::shared_ptr<TrainRun> run_;
  bool paused_ = false, stopped_ = false;
  std::string failure_;
  std::chrono::steady_clock::time_point job_started_{};
  int64_t job_start_step_ = 0;
};

}  // namespace cs::app
