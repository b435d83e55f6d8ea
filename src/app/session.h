// The page's state: the loaded model(s), the error banner, and the selections
// and cached results the views read. Views draw from this and call its
// methods for user intents; they never compute on the model themselves.
// Everything long (loading, a reverse lookup over the whole vocabulary) runs
// as a job of jobs() in slices across frames, with progress the views show;
// a newer request in the same slot cancels the older one. No ImGui, SDL or
// browser code here.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "app/jobs.h"
#include "core/direct_path.h"
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
  std::string label;
  double loaded = 0, total = 0;  // bytes; total 0 when unknown
};

// Current-token / next-token bigram selections and their cached results.
struct BigramView {
  int source = 0;   // current token (row of W_E W_U)
  int k = 10;       // top-k next tokens
  int next = 0;     // reverse lookup: next token (column)
  int k_sources = 10;
  std::vector<int> block_tokens;  // heatmap rows and columns
  // Results, recomputed by jobs when an input changes; until a job finishes
  // the previous results stay, and these say which token they belong to
  // (-1: none yet for the model shown).
  std::vector<Ranked> top_next;
  std::vector<Ranked> top_sources;
  int top_next_source = -1;
  int top_sources_next = -1;
  RowMat block;  // [block_tokens.size(), block_tokens.size()]
};

// Candidate tokens for a text query (see AppState::find_tokens).
struct TokenMatches {
  std::vector<int> ids;
  std::string note;  // how they were found, or why none were
};

class AppState {
 public:
  AppState();
  ~AppState();

  // ---- files from the browser ------------------------------------------------
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

  // ---- bundled models ------------------------------------------------------
  void set_bundled_index(const std::string& json_text);  // assets/models/index.json
  const std::vector<BundledModel>& bundled() const { return bundled_; }
  DownloadProgress& download() { return download_; }
  const DownloadProgress& download() const { return download_; }

  // ---- jobs, stepped from the main loop ----------------------------------------
  // Job slots: a model load, the two bigram queries.
  static constexpr const char* kLoadSlot = "load";
  static constexpr const char* kTopNextSlot = "bigram.next";
  static constexpr const char* kTopSourcesSlot = "bigram.sources";
  // Steps the jobs for about budget_ms (main.cpp, once per frame).
  void tick(double budget_ms) { jobs_.tick(budget_ms); }
  const JobRunner& jobs() const { return jobs_; }
  void reset_longest_job_step() { jobs_.reset_longest_step(); }
  bool loading() const { return jobs_.running(kLoadSlot); }
  float load_progress() const;
  std::string load_stage() const;
  const std::string& load_label() const { return job_label_; }
  // Stops a model load (a new model, or the raw weights); the shown model stays.
  void cancel_load();

  // ---- error banner ----------------------------------------------------------
  void set_error(const std::string& message) { error_ = message; }
  void clear_error() { error_.clear(); }
  const std::string& error() const { return error_; }

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
  int vocab() const;      // d_vocab of the shown model (0 without one)
  int vocab_out() const;  // d_vocab_out of the shown model
  // query as text: exact vocabulary/byte match first, then its tokenization;
  // "#123" or a bare number that is not a token selects an id.
  TokenMatches find_tokens(const std::string& query) const;

  // ---- bigram view -----------------------------------------------------------
  const BigramView& bigram() const { return bigram_; }
  void select_source(int id);
  void set_top_k(int k);
  void select_next(int id);
  void set_top_k_sources(int k);
  void add_block_tokens(const std::vector<int>& ids);
  void remove_block_token(size_t index);
  void clear_block_tokens();

 private:
  void start_load(std::shared_ptr<const FileSet> files, bool process);
  void finish_load(LoadedModel loaded);
  void load_failed(const std::string& message);
  void resume_raw();  // the raw weights are wanted but no load brings them: start one
  void on_new_shown();
  void refresh_bigrams();
  void start_top_next();
  void start_top_sources();
  void reset_bigram_defaults();  // selections for a newly loaded model
  int clamp_token(int id, int n) const;

  std::vector<BundledModel> bundled_;
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

  BigramView bigram_;
  bool follow_top_next_ = false;  // a new model's reverse lookup starts at its top next token
};

// The one state of the page (main loop, views and the JS bridge share it).
AppState& state();
// Frames drawn so far (main.cpp).
uint64_t frame_count();

}  // namespace cs::app
