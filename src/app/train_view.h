// The Train view (view.h): train a small attention-only model in the page
// and watch the induction heads form (docs/training.md). A preset or a
// config of one's own; Train, Pause, Resume, Stop, Restart; live plots of
// the training and held-out loss, each head's prefix-matching and
// previous-token score over the updates (the phase change marked), the
// in-context learning score and a chosen head's attention on a fixed
// repeated sequence. "Open this model" makes the weights of now (or of a
// snapshot) the page's model; "Save" saves them as a model folder.
// The run (train_run.h) advances as a job stepped a slice per frame.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "app/train_run.h"
#include "app/train_text.h"
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
  int min_len = 8, max_len = 40;  // repeated segment lengths (of repeat phases that do not give theirs)
  double lr = 2e-3;
  // The text the text phases read: "" (none: generated tokens only), "sample"
  // (the text sample shipped with the page) or "file" (the user's text file).
  // With text, the vocabulary and the BOS are its tokenizer's.
  std::string text;
  // The data's phases in the CLI's --curriculum syntax (train::parse_curriculum),
  // e.g. "text:300,repeat:700"; "" is one phase: text with a text, else repeated random tokens.
  std::string curriculum;
  int layer = -1, head = 0;  // the head whose attention is drawn; layer -1: the best prefix-matching head

  // The preset's values (cs::Error for an unknown preset).
  static TrainSelection of_preset(const std::string& id);
  // {"preset","seed","steps","layers","heads","d_model","d_head","n_ctx","vocab","batch","warmup",
  //  "eval_every","min_len","max_len","lr","text","curriculum","head": "L.H" | null}; from_json starts
  //  from the preset's values (missing keys keep them) and names a bad field.
  Json to_json() const;
  static TrainSelection from_json(const Json& j);
  bool operator==(const TrainSelection&) const = default;
  // The full training config (cs::Error naming a bad field). With `text`,
  // its vocabulary and BOS (without one, a selection that reads text is
  // checked as far as it can be before the text is there).
  train::TrainConfig config(const TrainText* text = nullptr) const;
};

class TrainView final : public SelectionView<TrainSelection> {
 public:
  static constexpr const char* kSlot = "train.run";
  static constexpr const char* kTextSlot = "train.text";  // tokenizing the user's text file
  // loading: Train was pressed and the text sample is still downloading, or a text file is being tokenized.
  enum class Status { idle, loading, running, paused, stopped, finished, failed };

  const char* id() const override { return "train"; }
  const char* title() const override { return "Train"; }
  void on_model(Session&, ModelChange) override {}  // training does not depend on the shown model
  // {"status", "reason" (after a failure), "text": null | {"source", "name", "tokens", "heldout_tokens",
  //  "d_vocab", "bos", "bytes"} (the text the selection reads, once there), "run": null | {"config"
  //  (train config JSON), "step", "steps",
  //  "tokens", "tokens_per_s", "steps_per_s", "update_ms", "eval_ms", "longest_unit_ms": {kind: ms},
  //  "losses": [per update],
  //  "evals": [{"step","heldout_loss","heldout_on","icl_score","prefix_matching","prev_token",
  //  "repeat_loss_first","repeat_loss_repeats","best_prefix_matching"}], "phase_change_step",
  //  "snapshots": [steps], "probe": [ids], "head": "L.H", "pattern": [query][key] (latest evaluation)}}
  Json state_json(const Session& s) const override;
  std::vector<ExportTable> tables(const Session& s) const override;
#ifdef CS_APP_DRAW
  void draw(Session& s) override;  // train_view_draw.cpp
  // "Save": save_files() as the folder <name> (platform::save_folder: a folder
  // the user picks, or downloads <name>.<file>; the safetensors alone carries
  // the config and tokenizer too).
  void save_download() const;
#endif

  Status status(const Session& s) const;
  static const char* status_name(Status st);
  // A new run from the selection (dropping the one there), started at once;
  // when it reads the text sample and that is not there yet, once the sample
  // has come (status loading; start asks for it through the sample source).
  // Throws cs::Error for a selection that reads a text file before one was chosen.
  void start(Session& s);
  // What start() calls to ask for the text sample (the page: the shell's
  // download, platform::fetch_train_sample), at most once until it comes or fails.
  void set_sample_source(std::function<void()> fetch) { fetch_sample_ = std::move(fetch); }
  // The sample's files came (sample_text, train_text.h): kept for later runs;
  // a run waiting for them starts. A bad sample fails the wait with its reason.
  void receive_sample(Session& s, const FileSet& files);
  // The sample could not be fetched: the wait ends with the reason in the banner.
  void sample_failed(Session& s, const std::string& reason);
  // A text file of the user's: tokenized by a job (kTextSlot) with the shown
  // model's tokenizer; once done it is the selection's text ("file"). Throws
  // cs::Error when no model with a tokenizer is shown.
  void receive_file(Session& s, const std::string& name, std::vector<uint8_t> bytes);
  // The text the selection reads, when it is there (null for generated data).
  const TrainText* selected_text() const;
  void pause(Session& s);   // the job stops; the run stays and resume() continues it
  void resume(Session& s);
  void stop(Session& s);    // the run ends where it is (its weights can still be opened and saved)
  // Keeps the weights of now as a snapshot (TrainRun::keep_snapshot); cs::Error
  // when there is no run or no room for it.
  void keep_snapshot();
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
  std::shared_ptr<const TrainText> sample_, file_;
  std::function<void()> fetch_sample_;
  bool waiting_sample_ = false;  // a run waits for the sample, which was asked for
  bool paused_ = false, stopped_ = false;
  std::string failure_;
  std::chrono::steady_clock::time_point job_started_{};
  int64_t job_start_step_ = 0;
};

}  // namespace cs::app
