#include "app/session.h"

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

// A model load as a sliced computation for the job runner (the one slicing
// protocol the runner steps, as the views' analyses).
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

Session::Session() = default;
Session::~Session() = default;

int clamp_token(int id, int n) { return n <= 0 ? 0 : std::clamp(id, 0, n - 1); }

std::string byte_size_text(double bytes) {
  char buf[48];
  if (bytes >= 1e9) std::snprintf(buf, sizeof buf, "%.1f GB", bytes / 1e9);
  else if (bytes >= 1e6) std::snprintf(buf, sizeof buf, "%.1f MB", bytes / 1e6);
  else if (bytes >= 1e3) std::snprintf(buf, sizeof buf, "%.1f kB", bytes / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f bytes", bytes);
  return buf;
}

std::vector<int> text_tokens(const LoadedModel& m, const std::string& text) {
  if (m.tokenizer) return encode_prompt(m, text);
  const int n = m.model.config().d_vocab;
  std::vector<int> ids;
  std::string_view rest = text;
  while (!rest.empty()) {
    const size_t start = rest.find_first_not_of(" ,\t\r\n");
    if (start == std::string_view::npos) break;
    rest.remove_prefix(start);
    const std::string_view word = rest.substr(0, rest.find_first_of(" ,\t\r\n"));
    rest.remove_prefix(word.size());
    const auto id = parse_id(word);
    if (!id || *id >= n)
      throw Error("this model has no tokenizer (no tokenizer.json came with it): type token ids below " +
                  std::to_string(n) + " separated by spaces (\"" +
                  std::string(word.substr(0, 20)) + "\" is not one)");
    ids.push_back(*id);
  }
  if (ids.empty())
    throw Error("this model has no tokenizer (no tokenizer.json came with it): type token ids separated by spaces");
  return ids;
}

std::string example_id_text(int d_vocab) {
  std::string out;
  for (int rep = 0; rep < 2; ++rep)
    for (int i = 1; i <= 6; ++i) out += (out.empty() ? "" : " ") + std::to_string(d_vocab > 0 ? i % d_vocab : 0);
  return out;
}

void TextAcrossModels::on_model(const LoadedModel* m, std::string& text) {
  if (!m) return;
  // No state is cleared here: App::record_baselines calls the views' on_model
  // on their fresh selections first.
  if (m->tokenizer) {
    if (!replacement_.empty() && text == replacement_) text = saved_;
    return;
  }
  try {
    text_tokens(*m, text);  // ids already
  } catch (const Error&) {
    saved_ = text;
    replacement_ = text = example_id_text(m->model.config().d_vocab);
  }
}

namespace {
// The banner's line for a file the browser's memory cannot take.
std::string too_large_for_memory(const std::string& name, size_t len) {
  return "file " + name + " (" + megabytes(len) + ") is too large for the browser's memory";
}
}  // namespace

// ---- files from the browser -------------------------------------------------

bool Session::check_file_size(const std::string& name, double bytes) {
  if (bytes <= kMaxFileBytes) return true;
  set_error(name + " is " + byte_size_text(bytes) + "; the page holds files up to " + byte_size_text(kMaxFileBytes),
            ErrorKind::load);
  return false;
}

uint8_t* Session::stage_file(const std::string& name, size_t len) {
  try {
    auto& bytes = staged_[name];
    bytes.clear();
    bytes.shrink_to_fit();
    bytes.resize(len);
    return len ? bytes.data() : reinterpret_cast<uint8_t*>(&bytes);  // non-null for empty files
  } catch (const std::bad_alloc&) {
  } catch (const std::length_error&) {
  }
  staged_.clear();
  set_error(too_large_for_memory(name, len), ErrorKind::load);
  return nullptr;
}

bool Session::stage_reserve(const std::string& name, size_t len) {
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
  set_error(too_large_for_memory(name, len), ErrorKind::load);
  return false;
}

uint8_t* Session::stage_append(const std::string& name, size_t n) {
  auto it = staged_.find(name);
  if (it == staged_.end()) return nullptr;
  auto& bytes = it->second;
  const size_t old = bytes.size();
  if (n > bytes.capacity() - old) return nullptr;  // more than reserved: the pointer would move
  bytes.resize(old + n);  // within the capacity: fills only these n bytes
  return bytes.data() + old;
}

void Session::stage_skipped(const std::string& name) { skipped_.push_back(name); }

void Session::discard_staged() {
  staged_.clear();
  skipped_.clear();
}

FileSet Session::take_staged() {
  FileSet files = std::move(staged_);
  discard_staged();
  return files;
}

void Session::load_files(FileSet files, const std::string& id, const std::string& title,
                         const std::string& description, const std::string& origin) {
  discard_staged();
  staged_ = std::move(files);
  load_staged(id, title, description, origin);
}

void Session::load_staged(const std::string& id, const std::string& title, const std::string& description,
                           const std::string& origin) {
  FileSet files = std::move(staged_);
  std::vector<std::string> skipped = std::move(skipped_);
  discard_staged();
  bool has_weights = false;
  for (const auto& [name, bytes] : files)
    if (is_weights_name(name)) has_weights = true;
  if (!has_weights) {
    std::string got;
    for (const auto& [name, bytes] : files) got += (got.empty() ? "" : ", ") + name;
    for (const auto& name : skipped) got += (got.empty() ? "" : ", ") + name;
    if (got.empty()) got = "nothing";
    set_error("no weights file (.safetensors, .pth) among the chosen files (got: " + got +
             "); pick model.safetensors (or a .pth) with config.json and tokenizer.json, or one .safetensors",
              ErrorKind::load);
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
    load_failed(ran_out_of_memory(load_job_label()));
  }
}

// The loader's constructor checks the files (cheap); the job then converts
// and processes the tensors a slice per frame. Throws cs::Error on bad files.
void Session::start_load(std::shared_ptr<const FileSet> files, bool process) {
  LoadOptions opt;
  opt.process = process;
  job_raw_ = !process;
  JobOptions o;
  o.label = load_job_label();
  o.priority = 10;  // after the views' queries: a click stays quick while a model loads
  o.failed = [this](const std::string& message) { load_failed(message); };
  jobs_.start<LoadWork>(kLoadSlot, std::make_unique<LoadWork>(std::move(files), opt),
                        [this](LoadWork& w) { finish_load(w.job.take()); }, std::move(o));
}

void Session::load_failed(const std::string& message) {
  set_error(message, ErrorKind::load);
  jobs_.cancel(kLoadSlot);
  const bool was_raw = job_raw_ && !pending_;
  pending_.reset();
  if (was_raw)
    show_raw_ = false;  // keep showing the processed weights
  else
    resume_raw();
}

void Session::cancel_load() {
  if (!loading()) return;
  jobs_.cancel(kLoadSlot);
  const bool was_raw = job_raw_ && !pending_;
  pending_.reset();
  if (was_raw)
    show_raw_ = false;
  else
    resume_raw();
}

void Session::resume_raw() {
  if (!show_raw_ || !active_ || active_->raw || loading()) return;
  job_label_ = active_->title + " (raw weights)";
  try {
    start_load(active_->files, false);
  } catch (const Error& e) {
    set_error(e.what(), ErrorKind::load);
    show_raw_ = false;
  }
}

// ---- bundled models --------------------------------------------------------

void Session::set_bundled_index(const std::string& json_text) {
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
    set_error(e.what(), ErrorKind::load);
  } catch (const std::exception& e) {
    set_error(std::string("assets/models/index.json: ") + e.what(), ErrorKind::load);
  }
}

int Session::bundled_pick() const {
  for (size_t i = 0; i < bundled_.size(); ++i)
    if (bundled_[i].id == picked_bundled_) return int(i);
  return 0;
}

// ---- loading ---------------------------------------------------------------

float Session::load_progress() const {
  const JobRunner::Info* j = jobs_.info(kLoadSlot);
  return j ? j->progress : 0.f;
}
std::string Session::load_stage() const {
  const JobRunner::Info* j = jobs_.info(kLoadSlot);
  return j ? j->stage : std::string();
}

void Session::finish_load(LoadedModel model) {
  if (!model.tokenizer) model.warnings.push_back(kNoTokenizerWarning);
  auto loaded = std::make_shared<const LoadedModel>(std::move(model));
  if (pending_) {
    // The user's files: the config's model name says more than "model.safetensors".
    if (pending_->origin == "files" && !loaded->model.config().name.empty())
      pending_->title = loaded->model.config().name;
    pending_->processed = std::move(loaded);
    if (pending_->origin == "bundled") picked_bundled_ = pending_->id;
    active_ = std::move(pending_);
    error_.clear();
    shown_changed(ModelChange::NewModel);
    resume_raw();  // with "raw" ticked, the new model's raw weights follow
  } else if (active_ && job_raw_) {
    active_->raw = std::move(loaded);
    if (show_raw_) shown_changed(ModelChange::Weights);
  }
}

const LoadedModel* Session::shown() const { return shown_shared().get(); }

std::shared_ptr<const LoadedModel> Session::shown_shared() const {
  if (!active_) return nullptr;
  if (show_raw_ && active_->raw) return active_->raw;
  return active_->processed;
}

void Session::set_raw(bool raw) {
  if (raw == show_raw_) return;
  show_raw_ = raw;
  if (raw && active_ && !active_->raw) {
    // Loads the raw weights unless a load is running: a new model's raw
    // weights follow it, and a raw load already running brings them.
    resume_raw();
    return;
  }
  shown_changed(ModelChange::Weights);
}

void Session::shown_changed(ModelChange change) {
  ++generation_;
  grams_[0] = grams_[1] = nullptr;
  start_badges();
  if (listener_) listener_(change);
}

// ---- vocabulary sums ---------------------------------------------------------------

std::shared_ptr<const EmbedGrams> Session::embed_grams(bool embed_norm) const {
  const int i = embed_norm ? 1 : 0;
  return grams_generation_[i] == generation_ ? grams_[i] : nullptr;
}

void Session::keep_embed_grams(bool embed_norm, uint64_t generation, std::shared_ptr<const EmbedGrams> g) {
  if (!g || generation != generation_) return;
  const int i = embed_norm ? 1 : 0;
  grams_[i] = std::move(g);
  grams_generation_[i] = generation;
}

// ---- head badges -----------------------------------------------------------------

const HeadBadges* Session::badges() const {
  return badges_ && badges_generation_ == generation_ ? badges_.get() : nullptr;
}

void Session::start_badges() {
  badges_.reset();
  const auto m = shown_shared();
  if (!m || m->model.config().n_layers == 0) {
    jobs_.cancel(kBadgesSlot);
    return;
  }
  std::unique_ptr<HeadBadgePlan> plan;
  try {
    plan = std::make_unique<HeadBadgePlan>(m->model, bos_or_none(*m), circuit_options(*m, true), embed_grams(true));
  } catch (const Error&) {
    jobs_.cancel(kBadgesSlot);  // a context too short for the experiment: no badges
    return;
  }
  JobOptions o;
  o.label = "head badges";
  o.keep = m;
  o.priority = 5;  // after what the open view computes
  o.failed = [this](const std::string& message) { set_error("head badges: " + message); };
  const uint64_t generation = generation_;
  jobs_.start<HeadBadgePlan>(
      kBadgesSlot, std::move(plan),
      [this, generation](HeadBadgePlan& p) {
        badges_ = std::make_shared<HeadBadges>(p.result());
        badges_generation_ = generation;
        keep_embed_grams(true, generation, p.grams());
      },
      std::move(o));
}

// ---- tokens ----------------------------------------------------------------

int Session::familiar_token() const {
  const LoadedModel* m = shown();
  if (!m || !m->tokenizer) return 0;
  try {
    if (auto ids = m->tokenizer->encode(" the"); !ids.empty()) return clamp_token(ids.back(), vocab());
  } catch (const Error&) {
  }
  return 0;
}

std::string Session::error_heading() const {
  if (error_.empty()) return "";
  switch (error_kind_) {
    case ErrorKind::load: return "Could not load:";
    case ErrorKind::link: return "This link could not be followed in full:";
    case ErrorKind::analysis: break;
  }
  return "Could not compute:";
}

std::string Session::error_note() const {
  if (error_.empty() || error_kind_ != ErrorKind::load || !active_) return "";
  return "Still showing the previous model: " + active_->title;
}

int Session::vocab() const {
  const LoadedModel* m = shown();
  return m ? m->model.config().d_vocab : 0;
}

int Session::vocab_out() const {
  const LoadedModel* m = shown();
  return m ? m->model.config().vocab_out() : 0;
}

std::string Session::token_display(int id) const {
  const LoadedModel* m = shown();
  if (m && m->tokenizer) return m->tokenizer->display(id);
  return "#" + std::to_string(id);
}

TokenMatches Session::find_tokens(const std::string& query) const {
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

}  // namespace cs::app
