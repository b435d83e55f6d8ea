// The page's session: the files and models, the error banner, the jobs, the
// model on screen and token helpers. What each view selects and computes
// lives in the view (view.h); the session tells the views when the shown
// model changes (set_model_listener). Everything long (loading, a view's
// query over the whole vocabulary) runs as a job of jobs() in slices across
// frames, with progress the views show; a newer request in the same slot
// cancels the older one. No ImGui, SDL or browser code here: built natively
// too (tests/unit/test_app_session.cpp).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "app/jobs.h"
#include "core/direct_path.h"
#include "core/head_badges.h"
#include "io/json_out.h"
#include "io/model_io.h"

namespace cs::app {

// One entry of assets/models/index.json.
struct BundledModel {
  std::string id, title, description;
  std::vector<std::string> files;
};

// A model on screen: the file bytes it came from (kept to reload the raw
// weights on demand) and the processed and raw versions once loaded.
struct ActiveModel {
  std::string id;           // "demo" for a bundled model, "file:<weights file>" for the user's files
  std::string title;
  std::string description;
  std::string origin;       // "bundled" | "files"
  std::shared_ptr<const FileSet> files;  // as received; shared with a load in progress
  std::shared_ptr<const LoadedModel> processed;  // TransformerLens defaults
  std::shared_ptr<const LoadedModel> raw;        // as stored; null until first asked for
};

// Download of a bundled model, reported by the shell.
struct DownloadProgress {
  bool active = false;
  std::string label;  // the line shown above the bar, e.g. "Downloading <model title>"
  double loaded = 0, total = 0;  // bytes; total 0 when unknown
};

// Candidate tokens for a text query (see Session::find_tokens).
struct TokenMatches {
  std::vector<int> ids;
  std::string note;  // how they were found, or why none were
};

// What changed about the shown model (View::on_model).
enum class ModelChange {
  NewModel,  // another model: selections start over
  Weights,   // the same model with other weights (raw <-> processed): selections are kept, results recomputed
};

// Token id clamped to [0, n) (0 when n is 0).
int clamp_token(int id, int n);

// Bytes in human units: "5.2 GB", "12.3 MB", "4.1 kB", "12 bytes" (1 GB = 1e9 bytes).
std::string byte_size_text(double bytes);

// The token ids of a text the user typed for the Prompt and Term importance
// views: encode_prompt (io/model_io.h) with the model's tokenizer; without one,
// the text is token ids ("5 12 #7", separated by spaces or commas), each below
// d_vocab. Throws cs::Error with the reason otherwise.
std::vector<int> text_tokens(const LoadedModel& m, const std::string& text);
// A text of token ids that text_tokens reads for a model with d_vocab tokens
// and no tokenizer: a short run of ids, repeated (so induction has something to do).
std::string example_id_text(int d_vocab);
// The Prompt and Term importance views' text across models: a model without a
// tokenizer gets example_id_text in place of a text it cannot read, and the
// next model with a tokenizer gets the text back (unless the user changed it since).
class TextAcrossModels {
 public:
  void on_model(const LoadedModel* m, std::string& text);

 private:
  std::string saved_, replacement_;
};
// The model warning of a model loaded without a tokenizer (tokens shown as ids).
inline constexpr const char* kNoTokenizerWarning =
    "no tokenizer.json came with the model: tokens are shown as ids (#12), and the Prompt and Term importance "
    "views read token ids separated by spaces";

class Session {
 public:
  Session();
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // ---- files from the browser ------------------------------------------------
  // The largest file the page takes (io/model_io.h: kPageMaxBytes). The shell
  // asks about every file (cs_check_file_size) before reading any of them.
  static constexpr double kMaxFileBytes = double(kPageMaxBytes);
  // True when a file of `bytes` fits; else false, and the banner says
  // "<name> is 5.2 GB; the page holds files up to 2.1 GB".
  bool check_file_size(const std::string& name, double bytes);
  // Reserves `len` bytes for a file in the staging set and returns where the
  // shell writes them (nullptr when memory runs out; the banner then says so).
  uint8_t* stage_file(const std::string& name, size_t len);
  // The same in pieces, so no single call fills hundreds of MB (a frame's
  // worth of time): stage_reserve sets aside `len` bytes without touching
  // them (false when memory runs out; the banner then says so), and each
  // stage_append(name, n) returns where the next n bytes go (nullptr past len).
  bool stage_reserve(const std::string& name, size_t len);
  uint8_t* stage_append(const std::string& name, size_t n);
  // A file the shell did not stage (not .safetensors/.json); mentioned on failure.
  void stage_skipped(const std::string& name);
  // Starts loading the staged files as a new model; the current one stays until it succeeds.
  void load_staged(const std::string& id, const std::string& title, const std::string& description,
                   const std::string& origin);
  void discard_staged();
  // The staged files, handed over for another use than a model (the Train
  // view's text); the staging set is left empty.
  FileSet take_staged();
  // Loads a model folder made in the page (the Train view's weights) like
  // staged files: the shown model stays until it has loaded.
  void load_files(FileSet files, const std::string& id, const std::string& title, const std::string& description,
                  const std::string& origin);

  // ---- bundled models ------------------------------------------------------
  void set_bundled_index(const std::string& json_text);  // assets/models/index.json
  const std::vector<BundledModel>& bundled() const { return bundled_; }
  // The bundled model the picker shows: the one the user picked, else the
  // bundled model shown last (however it was loaded: the picker, a link, a
  // script), else the first. Index into bundled() (0 when there are none).
  int bundled_pick() const;
  void pick_bundled(int index) { picked_bundled_ = bundled_.empty() ? std::string() : bundled_.at(size_t(index)).id; }
  DownloadProgress& download() { return download_; }
  const DownloadProgress& download() const { return download_; }

  // ---- jobs, stepped from the main loop ----------------------------------------
  // The model load's slot; views name their own slots ("<view id>.<what>").
  static constexpr const char* kLoadSlot = "load";
  // Steps the jobs for about budget_ms (main.cpp, once per frame).
  void tick(double budget_ms) { jobs_.tick(budget_ms); }
  JobRunner& jobs() { return jobs_; }
  const JobRunner& jobs() const { return jobs_; }
  bool loading() const { return jobs_.running(kLoadSlot); }
  float load_progress() const;
  std::string load_stage() const;
  const std::string& load_label() const { return job_label_; }
  // The load job's label: "loading <load_label()>".
  std::string load_job_label() const { return "loading " + job_label_; }
  // Stops a model load (a new model, or the raw weights); the shown model stays.
  void cancel_load();

  // Called after the shown model changed (App routes it to every view).
  void set_model_listener(std::function<void(ModelChange)> listener) { listener_ = std::move(listener); }

  // ---- head badges ----------------------------------------------------------
  // What the detector and the OV eigenvalues say each head of the shown model
  // does (core/head_badges.h), for every view to label heads with. Computed
  // by a job in kBadgesSlot whenever the shown model changes; null until then.
  static constexpr const char* kBadgesSlot = "badges";
  const HeadBadges* badges() const;

  // ---- vocabulary sums -------------------------------------------------------
  // The EmbedGrams (core/circuits.h: one pass over W_E) of the shown model for
  // each choice of embed_norm, once a job computed them (the badges, a view's
  // eigenvalues or K-composition terms): later plans start from them instead
  // of another pass. Null until then, and after the shown model changes.
  std::shared_ptr<const EmbedGrams> embed_grams(bool embed_norm) const;
  // Keeps a job's sums, computed for the shown model of `generation` (dropped
  // when the model changed since). Null is ignored.
  void keep_embed_grams(bool embed_norm, uint64_t generation, std::shared_ptr<const EmbedGrams> g);

  // ---- error banner ----------------------------------------------------------
  // One line at a time. What it is about decides the banner's heading: a load
  // that failed (the previous model is still shown), a link that could not be
  // followed in full, or an analysis a view asked for.
  enum class ErrorKind { load, link, analysis };
  void set_error(const std::string& message, ErrorKind kind = ErrorKind::analysis) {
    error_ = message;
    error_kind_ = kind;
  }
  void clear_error() { error_.clear(); }
  const std::string& error() const { return error_; }
  // The banner's heading for the error ("Could not load:", ...), and the line
  // under it ("Still showing the previous model: <title>" after a failed load
  // while a model is shown; "" otherwise). Both "" without an error.
  std::string error_heading() const;
  std::string error_note() const;

  // ---- the model on screen ---------------------------------------------------
  const ActiveModel* active() const { return active_.get(); }
  // The version shown: raw when show_raw() and it is loaded, else processed.
  const LoadedModel* shown() const;
  std::shared_ptr<const LoadedModel> shown_shared() const;  // the same, kept alive by jobs reading it
  bool show_raw() const { return show_raw_; }
  // Switches between processed and raw weights (loads the raw ones on first use).
  void set_raw(bool raw);
  // True while the raw weights were asked for but are still loading.
  bool raw_pending() const { return show_raw_ && active_ && !active_->raw; }
  uint64_t generation() const { return generation_; }  // bumps whenever shown() changes

  // Token helpers (tokenizer display, or "#id" without a tokenizer).
  std::string token_display(int id) const;
  // token_display as a function for the JSON writers (io/json_out.h); the session must outlive it.
  TokenDisplay token_display_fn() const {
    return [this](int id) { return token_display(id); };
  }
  // A token students recognise, where a view starts after a new model: the
  // last token of " the" (" the" itself for GPT-style BPE, "e" for characters
  // or bytes); 0 without a tokenizer or a model.
  int familiar_token() const;
  int vocab() const;      // d_vocab of the shown model (0 without one)
  int vocab_out() const;  // d_vocab_out of the shown model
  // query as text: exact vocabulary/byte match first, then its tokenization;
  // "#123" or a bare number that is not a token selects an id.
  TokenMatches find_tokens(const std::string& query) const;

 private:
  void start_load(std::shared_ptr<const FileSet> files, bool process);
  void finish_load(LoadedModel loaded);
  void load_failed(const std::string& message);
  void resume_raw();  // the raw weights are wanted but no load brings them: start one
  void shown_changed(ModelChange change);
  void start_badges();

  std::vector<BundledModel> bundled_;
  std::string picked_bundled_;  // id; set by pick_bundled and by a bundled model's load
  DownloadProgress download_;

  FileSet staged_;
  std::vector<std::string> skipped_;

  JobRunner jobs_;
  // The load job (kLoadSlot) is either a new model (pending_ holds its
  // description and file bytes) or the raw weights of the active model (pending_ null).
  std::unique_ptr<ActiveModel> pending_;
  bool job_raw_ = false;
  std::string job_label_;

  std::unique_ptr<ActiveModel> active_;
  bool show_raw_ = false;
  uint64_t generation_ = 0;
  std::string error_;
  ErrorKind error_kind_ = ErrorKind::analysis;
  std::function<void(ModelChange)> listener_;
  std::shared_ptr<const HeadBadges> badges_;
  uint64_t badges_generation_ = 0;
  std::shared_ptr<const EmbedGrams> grams_[2];  // [embed_norm]
  uint64_t grams_generation_[2] = {0, 0};
};

}  // namespace cs::app
