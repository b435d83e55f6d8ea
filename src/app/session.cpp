#include "app/app_state.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <new>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace cs::app {

namespace {

std::string megabytes(size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", double(bytes) / 1e6);
  return buf;
}

// "12" or "#12" -> 12; anything else -> nullopt.
std::optional<int> parse_id(std::string_view s) {
  if (!s.empty() && s.front() == '#') s.remove_prefix(1);
  if (s.empty()) return std::nullopt;
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < 0) return std::nullopt;
  return v;
}

// A model load as a sliced computation for the job runner.
class LoadWork final : public SlicedComputation {
 public:
  LoadWork(std::shared_ptr<const FileSet> files, const LoadOptions& opt) : job(std::move(files), opt) {}
  bool step(double budget_ms) override { return done_ = job.step(budget_ms); }
  bool done() const override { return done_; }
  float progress() const override { return job.progress(); }
  std::string stage() const override { return job.stage(); }
  ModelLoadJob job;

 private:
  bool done_ = false;
};

}  // namespace

AppState::AppState() = default;
AppState::~AppState() = default;

AppState& state() {
  static AppState s;
  return s;
}

// ---- files from the browser -------------------------------------------------

uint8_t* AppState::stage_file(const std::string& name, size_t len) {
  try {
    auto& bytes = staged_[name];
    bytes.clear();
    bytes.shrink_to_fit();
    bytes.resize(len);
    return len ? bytes.data() : reinterpret_cast<uint8_t*>(&bytes);  // non-null for empty files
  } catch (const std::bad_alloc&) {
    staged_.clear();
    error_ = "file " + name + " (" + megabytes(len) + ") is too large for the browser's memory";
    return nullptr;
  } catch (const std::length_error&) {
    staged_.clear();
    error_ = "file " + name + " (" + megabytes(len) + ") is too large for the browser's memory";
    return nullptr;
  }
}

bool AppState::stage_reserve(const std::string& name, size_t len) {
  try {
    auto& bytes = staged_[name];
    bytes.clear();
    bytes.shrink_to_fit();
    bytes.reserve(len);
    return true;
  } catch (const std::bad_alloc&) {
  } catch (const std::length_error&) {
  }
  staged_.clear();
  error_ = "file " + name + " (" + megabytes(len) + ") is too large for the browser's memory";
  return false;
}

uint8_t* AppState::stage_append(const std::string& name, size_t n) {
  auto it = staged_.find(name);
  if (it == staged_.end()) return nullptr;
  auto& bytes = it->second;
  const size_t old = bytes.size();
  if (n > bytes.capacity() - old) return nullptr;  // more than reserved: the pointer would move
  bytes.resize(old + n);  // within the capacity: fills only these n bytes
  return bytes.data() + old;
}

void AppState::stage_skipped(const std::string& name) { skipped_.push_back(name); }

void AppState::discard_staged() {
  staged_.clear();
  skipped_.clear();
}

void AppState::load_staged(const std::string& id, const std::string& title, const std::string& description,
                           const std::string& origin) {
  FileSet files = std::move(staged_);
  std::vector<std::string> skipped = std::move(skipped_);
  discard_staged();
  bool has_weights = false;
  for (const auto& [name, bytes] : files)
    if (name.size() >= 12 && name.ends_with(".safetensors")) has_weights = true;
  if (!has_weights) {
    std::string got;
    for (const auto& [name, bytes] : files) got += (got.empty() ? "" : ", ") + name;
    for (const auto& name : skipped) got += (got.empty() ? "" : ", ") + name;
    if (got.empty()) got = "nothing";
    error_ = "no .safetensors file among the chosen files (got: " + got +
             "); pick model.safetensors with config.json and tokenizer.json, or one .safetensors";
    return;
  }
  auto next = std::make_unique<ActiveModel>();
  next->id = id;
  next->title = title;
  next->description = description;
  next->origin = origin;
  next->files = std::make_shared<const FileSet>(std::move(files));
  // A newer request replaces a load still running; the shown model stays as it is.
  jobs_.cancel(kLoadSlot);
  pending_ = std::move(next);
  job_label_ = title.empty() ? id : title;
  try {
    start_load(pending_->files, true);
  } catch (const Error& e) {
    load_failed(e.what());
  } catch (const std::bad_alloc&) {
    load_failed("not enough browser memory to load " + job_label_);
  }
}

// The loader's constructor checks the files (cheap); the job then converts
// and processes the tensors a slice per frame. Throws cs::Error on bad files.
void AppState::start_load(std::shared_ptr<const FileSet> files, bool process) {
  LoadOptions opt;
  opt.process = process;
  job_raw_ = !process;
  JobRunner::Job j;
  j.label = "loading " + job_label_;
  j.work = std::make_unique<LoadWork>(std::move(files), opt);
  j.priority = 10;  // after the views' queries: a click stays quick while a model loads
  j.done = [this](SlicedComputation& w) { finish_load(static_cast<LoadWork&>(w).job.take()); };
  j.failed = [this](const std::string& message) { load_failed(message); };
  jobs_.start(kLoadSlot, std::move(j));
}

void AppState::load_failed(const std::string& message) {
  error_ = message;
  jobs_.cancel(kLoadSlot);
  const bool was_raw = job_raw_ && !pending_;
  pending_.reset();
  if (was_raw)
    show_raw_ = false;  // keep showing the processed weights
  else
    resume_raw();
}

void AppState::cancel_load() {
  if (!loading()) return;
  jobs_.cancel(kLoadSlot);
  const bool was_raw = job_raw_ && !pending_;
  pending_.reset();
  if (was_raw)
    show_raw_ = false;
  else
    resume_raw();
}

void AppState::resume_raw() {
  if (!show_raw_ || !active_ || active_->raw || loading()) return;
  job_label_ = active_->title + " (raw weights)";
  try {
    start_load(active_->files, false);
  } catch (const Error& e) {
    error_ = e.what();
    show_raw_ = false;
  }
}

// ---- bundled models --------------------------------------------------------

void AppState::set_bundled_index(const std::string& json_text) {
  bundled_.clear();
  try {
    auto j = nlohmann::json::parse(json_text);
    if (!j.is_array()) throw Error("assets/models/index.json: expected an array of models");
    for (const auto& e : j) {
      BundledModel b;
      b.id = e.at("id").get<std::string>();
      b.title = e.value("title", b.id);
      b.description = e.value("description", "");
      for (const auto& f : e.at("files")) b.files.push_back(f.get<std::string>());
      bundled_.push_back(std::move(b));
    }
  } catch (const Error& e) {
    error_ = e.what();
  } catch (const std::exception& e) {
    error_ = std::string("assets/models/index.json: ") + e.what();
  }
}

// ---- loading ---------------------------------------------------------------

float AppState::load_progress() const {
  const JobRunner::Info* j = jobs_.info(kLoadSlot);
  return j ? j->progress : 0.f;
}
std::string AppState::load_stage() const {
  const JobRunner::Info* j = jobs_.info(kLoadSlot);
  return j ? j->stage : std::string();
}

void AppState::finish_load(LoadedModel model) {
  auto loaded = std::make_shared<const LoadedModel>(std::move(model));
  if (pending_) {
    // The user's files: the config's model name says more than "model.safetensors".
    if (pending_->origin == "files" && !loaded->model.config().name.empty())
      pending_->title = loaded->model.config().name;
    pending_->processed = std::move(loaded);
    active_ = std::move(pending_);
    error_.clear();
    ++generation_;
    reset_bigram_defaults();
    resume_raw();  // with "raw" ticked, the new model's raw weights follow
  } else if (active_ && job_raw_) {
    active_->raw = std::move(loaded);
    if (show_raw_) on_new_shown();
  }
}

const LoadedModel* AppState::shown() const { return shown_shared().get(); }

std::shared_ptr<const LoadedModel> AppState::shown_shared() const {
  if (!active_) return nullptr;
  if (show_raw_ && active_->raw) return active_->raw;
  return active_->processed;
}

void AppState::set_raw(bool raw) {
  if (raw == show_raw_) return;
  show_raw_ = raw;
  if (raw && active_ && !active_->raw) {
    // Loads the raw weights unless a load is running: a new model's raw
    // weights follow it, and a raw load already running brings them.
    resume_raw();
    return;
  }
  on_new_shown();
}

// ---- tokens ----------------------------------------------------------------

int AppState::vocab() const {
  const LoadedModel* m = shown();
  return m ? m->model.config().d_vocab : 0;
}

int AppState::vocab_out() const {
  const LoadedModel* m = shown();
  return m ? m->model.config().vocab_out() : 0;
}

std::string AppState::token_display(int id) const {
  const LoadedModel* m = shown();
  if (m && m->tokenizer) return m->tokenizer->display(id);
  return "#" + std::to_string(id);
}

TokenMatches AppState::find_tokens(const std::string& query) const {
  TokenMatches out;
  const LoadedModel* m = shown();
  if (!m || query.empty()) return out;
  const int n = m->model.config().d_vocab;
  if (!m->tokenizer) {
    if (auto id = parse_id(query); id && *id < n) {
      out.ids = {*id};
      out.note = "token id";
    } else {
      out.note = "this model has no tokenizer: type a token id (0.." + std::to_string(n - 1) + ")";
    }
    return out;
  }
  const Tokenizer& tok = *m->tokenizer;
  if (auto id = tok.find_token(query); id && *id < n) {
    out.ids = {*id};
    out.note = "exact token";
    return out;
  }
  if (query.front() == '#') {
    if (auto id = parse_id(query); id && *id < n) {
      out.ids = {*id};
      out.note = "token id";
      return out;
    }
  }
  try {
    for (int id : tok.encode(query))
      if (id >= 0 && id < n) out.ids.push_back(id);
  } catch (const Error& e) {
    out.note = e.what();
    return out;
  }
  out.note = out.ids.size() == 1 ? "the text is one token" : "the text's tokens";
  return out;
}

// ---- bigram view -----------------------------------------------------------

int AppState::clamp_token(int id, int n) const { return n <= 0 ? 0 : std::clamp(id, 0, n - 1); }

void AppState::on_new_shown() {
  ++generation_;
  const int n = vocab(), n_out = vocab_out();
  bigram_.source = clamp_token(bigram_.source, n);
  bigram_.next = clamp_token(bigram_.next, n_out);
  std::erase_if(bigram_.block_tokens, [&](int t) { return t >= std::min(n, n_out); });
  refresh_bigrams();
}

void AppState::reset_bigram_defaults() {
  const LoadedModel* m = shown();
  const int k = bigram_.k, k_sources = bigram_.k_sources;
  jobs_.cancel(kTopNextSlot);
  jobs_.cancel(kTopSourcesSlot);
  bigram_ = BigramView{};
  bigram_.k = k;
  bigram_.k_sources = k_sources;
  if (!m) return;
  const int n = std::min(vocab(), vocab_out());
  std::vector<int> phrase;
  if (m->tokenizer) {
    try {
      // A start students recognise: the last token of " the" (" the" itself for
      // GPT-style BPE, "e" for characters or bytes), and the tokens of a short phrase.
      if (auto ids = m->tokenizer->encode(" the"); !ids.empty()) bigram_.source = clamp_token(ids.back(), vocab());
      phrase = m->tokenizer->encode("the cat sat on the mat.");
    } catch (const Error&) {
    }
  } else {
    for (int i = 0; i < std::min(n, 8); ++i) phrase.push_back(i);
  }
  // The reverse lookup starts once the top next token is known (start_top_next's job).
  follow_top_next_ = true;
  start_top_next();
  add_block_tokens(phrase);
}

// The shown model changed (a new model, or raw <-> processed): every result is stale.
void AppState::refresh_bigrams() {
  const LoadedModel* m = shown();
  bigram_.top_next.clear();
  bigram_.top_sources.clear();
  bigram_.top_next_source = bigram_.top_sources_next = -1;
  bigram_.block.resize(0, 0);
  start_top_next();
  start_top_sources();
  if (m && !bigram_.block_tokens.empty())  // at most 64 x 64 entries: no job needed
    bigram_.block = bigram_block(m->model, bigram_.block_tokens, bigram_.block_tokens);
}

// (Re)starts the top-k next tokens of bigram_.source; a job still running for
// an earlier selection is dropped.
void AppState::start_top_next() {
  const auto m = shown_shared();
  if (!m) {
    jobs_.cancel(kTopNextSlot);
    return;
  }
  JobRunner::Job j;
  j.label = "next tokens";
  j.keep = m;
  j.work = std::make_unique<BigramTopNext>(m->model, bigram_.source, bigram_.k);
  j.done = [this](SlicedComputation& w) {
    const auto& q = static_cast<const BigramTopNext&>(w);
    bigram_.top_next = q.result();
    bigram_.top_next_source = q.source();
    if (follow_top_next_) {
      follow_top_next_ = false;
      if (!bigram_.top_next.empty()) select_next(bigram_.top_next.front().id);
    }
  };
  j.failed = [this](const std::string& message) { error_ = message; };
  jobs_.start(kTopNextSlot, std::move(j));
}

// (Re)starts the reverse lookup of bigram_.next: a pass over all of W_E and k
// rows times W_U (50-250 ms in wasm for the toy models), a slice per frame.
void AppState::start_top_sources() {
  const auto m = shown_shared();
  if (!m || follow_top_next_) {
    jobs_.cancel(kTopSourcesSlot);
    return;
  }
  JobRunner::Job j;
  j.label = "reverse lookup";
  j.keep = m;
  j.priority = 1;
  j.work = std::make_unique<BigramTopSources>(m->model, bigram_.next, bigram_.k_sources);
  j.done = [this](SlicedComputation& w) {
    const auto& q = static_cast<const BigramTopSources&>(w);
    bigram_.top_sources = q.result();
    bigram_.top_sources_next = q.next();
  };
  j.failed = [this](const std::string& message) { error_ = message; };
  jobs_.start(kTopSourcesSlot, std::move(j));
}

void AppState::select_source(int id) {
  bigram_.source = clamp_token(id, vocab());
  start_top_next();
}

void AppState::set_top_k(int k) {
  bigram_.k = std::clamp(k, 1, std::max(1, vocab_out()));
  start_top_next();
}

void AppState::select_next(int id) {
  follow_top_next_ = false;
  bigram_.next = clamp_token(id, vocab_out());
  start_top_sources();
}

void AppState::set_top_k_sources(int k) {
  bigram_.k_sources = std::clamp(k, 1, std::max(1, vocab()));
  start_top_sources();
}

void AppState::add_block_tokens(const std::vector<int>& ids) {
  const int n = std::min(vocab(), vocab_out());
  for (int id : ids) {
    if (id < 0 || id >= n) continue;
    if (std::find(bigram_.block_tokens.begin(), bigram_.block_tokens.end(), id) != bigram_.block_tokens.end())
      continue;
    if (bigram_.block_tokens.size() >= 64) break;  // a heatmap beyond this is unreadable
    bigram_.block_tokens.push_back(id);
  }
  if (shown() && !bigram_.block_tokens.empty())
    bigram_.block = bigram_block(shown()->model, bigram_.block_tokens, bigram_.block_tokens);
}

void AppState::remove_block_token(size_t index) {
  if (index >= bigram_.block_tokens.size()) return;
  bigram_.block_tokens.erase(bigram_.block_tokens.begin() + long(index));
  bigram_.block.resize(0, 0);
  if (shown() && !bigram_.block_tokens.empty())
    bigram_.block = bigram_block(shown()->model, bigram_.block_tokens, bigram_.block_tokens);
}

void AppState::clear_block_tokens() {
  bigram_.block_tokens.clear();
  bigram_.block.resize(0, 0);
}

}  // namespace cs::app
