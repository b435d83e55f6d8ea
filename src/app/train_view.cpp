// The Train view's selection, run and results (train_view.h); drawing in
// train_view_draw.cpp (page build only).
#include "app/train_view.h"

#include <cmath>
#include <sstream>

#include "core/error.h"
#include "io/json_out.h"

namespace cs::app {

CS_REGISTER_VIEW(TrainView, 70);

namespace {

const char* const kView = "train";

std::string number_text(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

void check_range(const char* name, double v, double lo, double hi) {
  if (!(v >= lo && v <= hi))
    throw Error(std::string("train selection: \"") + name + "\" " + number_text(v) + " is outside [" +
                number_text(lo) + ", " + number_text(hi) + "]");
}

}  // namespace

TrainSelection TrainSelection::of_preset(const std::string& id) {
  const TrainPreset* p = find_train_preset(id);
  if (!p) throw Error("train selection: \"preset\" '" + id.substr(0, 40) + "' is not one of the presets");
  const train::TrainConfig& c = p->config;
  TrainSelection s;
  s.preset = id;
  s.seed = int(c.seed);
  s.steps = int(c.steps);
  s.layers = c.model.n_layers;
  s.heads = c.model.n_heads;
  s.d_model = c.model.d_model;
  s.d_head = c.model.d_head;
  s.n_ctx = c.model.n_ctx;
  s.vocab = c.model.d_vocab;
  s.batch = c.batch;
  s.warmup = int(c.warmup);
  s.eval_every = int(c.eval_every);
  for (const train::DataPhase& ph : c.curriculum)
    if (ph.source == "repeated-random" && ph.min_len > 0) s.min_len = ph.min_len, s.max_len = ph.max_len;
  s.lr = c.lr;
  s.text = p->text;
  return s;
}

Json TrainSelection::to_json() const {
  return Json{{"preset", preset},   {"seed", seed},       {"steps", steps},   {"layers", layers},
              {"heads", heads},     {"d_model", d_model}, {"d_head", d_head}, {"n_ctx", n_ctx},
              {"vocab", vocab},     {"batch", batch},     {"warmup", warmup}, {"eval_every", eval_every},
              {"min_len", min_len}, {"max_len", max_len}, {"lr", lr},       {"text", text},
              {"curriculum", curriculum},
              {"head", layer < 0 ? Json(nullptr) : head_json(layer, head)}};
}

TrainSelection TrainSelection::from_json(const Json& j) {
  if (!j.is_object()) throw Error("train selection: expected an object");
  TrainSelection s = of_preset(json_text(j, kView, "preset", "induction"));
  s.seed = json_int(j, kView, "seed", s.seed);
  s.steps = json_int(j, kView, "steps", s.steps);
  s.layers = json_int(j, kView, "layers", s.layers);
  s.heads = json_int(j, kView, "heads", s.heads);
  s.d_model = json_int(j, kView, "d_model", s.d_model);
  s.d_head = json_int(j, kView, "d_head", s.d_head);
  s.n_ctx = json_int(j, kView, "n_ctx", s.n_ctx);
  s.vocab = json_int(j, kView, "vocab", s.vocab);
  s.batch = json_int(j, kView, "batch", s.batch);
  s.warmup = json_int(j, kView, "warmup", s.warmup);
  s.eval_every = json_int(j, kView, "eval_every", s.eval_every);
  s.min_len = json_int(j, kView, "min_len", s.min_len);
  s.max_len = json_int(j, kView, "max_len", s.max_len);
  s.text = json_text(j, kView, "text", s.text);
  if (s.text != "" && s.text != "sample" && s.text != "file")
    throw Error("train selection: \"text\" '" + s.text.substr(0, 40) + "' is not \"\", \"sample\" or \"file\"");
  s.curriculum = json_text(j, kView, "curriculum", s.curriculum);
  if (j.contains("lr")) {
    if (!j.at("lr").is_number()) throw Error("train selection: \"lr\" must be a number");
    s.lr = j.at("lr").get<double>();
  }
  // Sizes a page can train in minutes at most; the config checks the rest.
  check_range("seed", s.seed, 0, 2147483647);
  check_range("steps", s.steps, 1, 1000000);
  check_range("layers", s.layers, 0, 4);
  check_range("heads", s.heads, 1, 16);
  check_range("d_model", s.d_model, 4, 512);
  check_range("d_head", s.d_head, 1, 128);
  check_range("n_ctx", s.n_ctx, 8, 512);
  check_range("vocab", s.vocab, 8, 4096);
  check_range("batch", s.batch, 1, 64);
  check_range("warmup", s.warmup, 0, 100000);
  check_range("eval_every", s.eval_every, 1, 100000);
  check_range("min_len", s.min_len, 1, 512);
  check_range("max_len", s.max_len, s.min_len, 512);
  check_range("lr", s.lr, 1e-6, 1.0);
  if (const auto h = json_head(j, kView, "head")) {
    if (h->layer >= s.layers || h->head >= s.heads)
      throw Error("train selection: \"head\" " + head_text(h->layer, h->head) + " is outside the model (" +
                  std::to_string(s.layers) + " layers of " + std::to_string(s.heads) + " heads)");
    s.layer = h->layer;
    s.head = h->head;
  }
  return s;
}

train::TrainConfig TrainSelection::config(const TrainText* t) const {
  const TrainPreset* p = find_train_preset(preset);
  if (!p) throw Error("train selection: \"preset\" '" + preset + "' is not one of the presets");
  train::TrainConfig c = p->config;
  c.seed = uint64_t(seed);
  c.steps = steps;
  c.model.n_layers = layers;
  c.model.n_heads = heads;
  c.model.d_model = d_model;
  c.model.d_head = d_head;
  c.model.n_ctx = n_ctx;
  c.model.d_vocab = vocab;
  c.batch = batch;
  c.warmup = warmup;
  c.eval_every = eval_every;
  c.lr = lr;
  if (curriculum.empty()) {
    c.curriculum = {train::DataPhase{text.empty() ? "repeated-random" : "text", 0, 0, 0}};
  } else {
    try {
      c.curriculum = train::parse_curriculum(curriculum);
    } catch (const Error& e) {
      throw Error(std::string("train selection: \"curriculum\": ") + e.what());
    }
  }
  bool reads_text = false;
  for (train::DataPhase& ph : c.curriculum) {
    if (ph.source == "text") reads_text = true;
    else if (ph.min_len == 0) ph.min_len = min_len, ph.max_len = max_len;
  }
  if (reads_text && text.empty())
    throw Error("train selection: \"curriculum\" has text phases but no text is chosen (the sample or a file)");
  if (t) {  // the text's tokenizer decides the vocabulary and the BOS
    c.model.d_vocab = t->d_vocab;
    c.bos = t->bos;
  } else if (text == "sample") {
    c.model.d_vocab = kSampleVocab;
    c.bos = kSampleBos;
  }
  c.validate();
  // Each repeat phase's segment lengths against n_ctx (the data's own check, with its message).
  for (const train::DataPhase& ph : c.curriculum)
    if (ph.source == "repeated-random") {
      train::RepeatedRandomSpec spec{c.model.d_vocab, c.bos, ph.min_len, ph.max_len, {}};
      spec.resolve(c.model.n_ctx);
    }
  return c;
}

void TrainView::apply_selection(Session&) {
  (void)sel_.config(selected_text());  // refuses a selection that cannot train (set_selection_json keeps the old one)
}

const TrainText* TrainView::selected_text() const {
  if (sel_.text == "sample") return sample_.get();
  if (sel_.text == "file") return file_.get();
  return nullptr;
}

void TrainView::receive_sample(Session& s, const FileSet& files) {
  const bool waiting = waiting_sample_;
  waiting_sample_ = false;
  try {
    sample_ = std::make_shared<const TrainText>(sample_text(files));
  } catch (const std::exception& e) {
    s.set_error(e.what());
    return;
  }
  if (waiting && sel_.text == "sample") {
    try {
      start(s);
    } catch (const std::exception& e) {
      s.set_error(e.what());
    }
  }
}

void TrainView::sample_failed(Session& s, const std::string& reason) {
  waiting_sample_ = false;
  s.set_error("text sample: " + reason);
}

void TrainView::receive_file(Session& s, const std::string& name, std::vector<uint8_t> bytes) {
  const LoadedModel* m = s.shown();
  if (!m || !m->tokenizer)
    throw Error("text file '" + name + "': load a model with a tokenizer first (its tokenizer reads the text)");
  auto work = std::make_unique<TokenizeWork>(name, std::move(bytes), *m->tokenizer, m->tokenizer_json);
  JobOptions o;
  o.label = "tokenizing " + name;
  o.failed = [&s](const std::string& message) { s.set_error(message); };
  s.jobs().start<TokenizeWork>(kTextSlot, std::move(work), [this, &s](TokenizeWork& w) {
    file_ = std::make_shared<const TrainText>(std::move(w.text()));
    Json j = sel_.to_json();
    j["text"] = "file";
    try {
      set_selection_json(s, j);
    } catch (const std::exception& e) {
      s.set_error(e.what());
    }
  }, std::move(o));
}

const char* TrainView::status_name(Status st) {
  switch (st) {
    case Status::idle: return "idle";
    case Status::loading: return "loading";
    case Status::running: return "running";
    case Status::paused: return "paused";
    case Status::stopped: return "stopped";
    case Status::finished: return "finished";
    case Status::failed: return "failed";
  }
  return "idle";
}

TrainView::Status TrainView::status(const Session& s) const {
  if (!failure_.empty()) return Status::failed;
  if (waiting_sample_ || s.jobs().running(kTextSlot)) return Status::loading;
  if (!run_) return Status::idle;
  if (s.jobs().running(kSlot)) return Status::running;
  if (run_->done()) return Status::finished;
  if (stopped_) return Status::stopped;
  return Status::paused;
}

void TrainView::start(Session& s) {
  const TrainText* text = selected_text();
  train::TrainConfig cfg = sel_.config(text);  // a refused config leaves the run there as it is
  if (sel_.text == "file" && !text) throw Error("train: choose a text file first (Text file...)");
  if (sel_.text == "sample" && !text) {  // fetched first; receive_sample starts the run
    if (status(s) == Status::running) pause(s);
    const bool asked = waiting_sample_;  // asked for already, not yet come
    waiting_sample_ = true;
    if (!asked && fetch_sample_) fetch_sample_();
    return;
  }
  train::TrainData data = text ? training_data(*text, cfg.model.n_ctx) : train::TrainData{};
  s.jobs().cancel(kSlot);
  run_.reset();  // its memory first, for the new one
  failure_.clear();
  paused_ = stopped_ = false;
  run_ = std::make_shared<TrainRun>(std::move(cfg), std::move(data));
  start_job(s);
}

void TrainView::start_job(Session& s) {
  JobOptions o;
  o.label = "training";
  o.priority = 20;     // after the views' queries: the other tabs stay quick while it trains
  o.foreground = true;  // the view draws the run each frame: it is stepped on the page's thread
  o.failed = [this, &s](const std::string& message) {
    failure_ = message;
    s.set_error(message);
  };
  job_started_ = std::chrono::steady_clock::now();
  job_start_step_ = run_->step();
  s.jobs().start<TrainWork>(kSlot, std::make_unique<TrainWork>(run_), {}, std::move(o));
}

void TrainView::pause(Session& s) {
  if (status(s) != Status::running) return;
  s.jobs().cancel(kSlot);
  paused_ = true;
}

void TrainView::resume(Session& s) {
  if (status(s) != Status::paused) return;
  paused_ = false;
  start_job(s);
}

void TrainView::stop(Session& s) {
  const Status st = status(s);
  if (st != Status::running && st != Status::paused) return;
  s.jobs().cancel(kSlot);
  stopped_ = true;
}

double TrainView::steps_per_s() const {
  if (!run_) return 0;
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - job_started_).count();
  return secs > 0 ? double(run_->step() - job_start_step_) / secs : 0;
}

void TrainView::keep_snapshot() {
  if (!run_) throw Error("train: nothing trained yet to keep");
  run_->keep_snapshot();
}

void TrainView::open_model(Session& s, int64_t step) {
  if (!run_) throw Error("train: nothing trained yet to open");
  FileSet files;
  int64_t at = run_->step();
  if (step < 0) {
    files = run_->model_files();
  } else {
    const TrainSnapshot* snap = nullptr;
    for (const TrainSnapshot& x : run_->snapshots())
      if (x.step == step) snap = &x;
    if (!snap) throw Error("train: no snapshot at update " + std::to_string(step));
    files = run_->snapshot_files(*snap);
    at = step;
  }
  const train::TrainConfig& c = run_->config();
  // A "file:" id like the user's own files: a link to it asks for the saved folder.
  const std::string id = "file:" + c.model.name + "-seed" + std::to_string(c.seed) + "-step-" + std::to_string(at);
  s.load_files(std::move(files), id, c.model.name + " at update " + std::to_string(at),
               "Trained in this page: " + std::to_string(at) + " updates of batch " + std::to_string(c.batch) +
                   " x " + std::to_string(c.model.n_ctx) + " tokens, seed " + std::to_string(c.seed) + ".",
               "trained");
}

FileSet TrainView::save_files(std::string& name) const {
  if (!run_) throw Error("train: nothing trained yet to save");
  name = run_->config().model.name + "-step-" + std::to_string(run_->step());
  return run_->model_files();
}

HeadId TrainView::shown_head() const {
  if (sel_.layer >= 0) return HeadId{sel_.layer, sel_.head};
  if (run_ && !run_->evals().empty()) {
    const RowMat& pm = run_->evals().back().prefix_matching;
    if (pm.size()) {
      Eigen::Index r = 0, c = 0;
      pm.maxCoeff(&r, &c);
      return HeadId{int(r), int(c)};
    }
  }
  return HeadId{0, 0};
}

Json TrainView::state_json(const Session& s) const {
  Json j{{"status", status_name(status(s))}};
  if (!failure_.empty()) j["reason"] = failure_;
  if (const TrainText* t = selected_text())
    j["text"] = Json{{"source", t->source},   {"name", t->name},   {"tokens", t->ids.size()},
                     {"heldout_tokens", t->heldout.size()},     {"d_vocab", t->d_vocab},
                     {"bos", t->bos},         {"bytes", t->bytes}};
  else
    j["text"] = nullptr;
  if (!run_) {
    j["run"] = nullptr;
    return j;
  }
  const TrainRun& r = *run_;
  Json evals = Json::array();
  for (const TrainEval& e : r.evals()) {
    Json ej{{"step", e.step}};
    ej["heldout_loss"] = e.heldout_loss ? Json(*e.heldout_loss) : Json(nullptr);
    ej["heldout_on"] = e.heldout_on;
    ej["icl_score"] = e.icl_score ? Json(*e.icl_score) : Json(nullptr);
    ej["prefix_matching"] = matrix_json(e.prefix_matching);
    ej["prev_token"] = matrix_json(e.prev_token);
    ej["repeat_loss_first"] = e.repeat_first;
    ej["repeat_loss_repeats"] = e.repeat_repeats;
    ej["best_prefix_matching"] = e.best_prefix_matching();
    evals.push_back(std::move(ej));
  }
  Json snaps = Json::array();
  for (const TrainSnapshot& x : r.snapshots()) snaps.push_back(x.step);
  Json run{{"config", Json::parse(train::train_config_to_json(r.config(), -1))},
           {"step", r.step()},
           {"steps", r.config().steps},
           {"tokens", r.trainer().tokens()},
           {"tokens_per_s", r.tokens_per_s()},
           {"steps_per_s", status(s) == Status::running ? steps_per_s() : 0.0},
           {"update_ms", r.update_ms()},
           {"eval_ms", r.eval_ms()},
           {"longest_unit_ms", [&r] {
              Json u = Json::object();
              for (int k = 0; k < TrainRun::kUnitKinds; ++k)
                u[TrainRun::unit_name(TrainRun::Unit(k))] = r.longest_unit_ms(TrainRun::Unit(k));
              return u;
            }()},
           {"losses", r.losses()},
           {"evals", std::move(evals)},
           {"snapshots", std::move(snaps)},
           {"probe", r.probe()}};
  const auto pc = r.phase_change_step();
  run["phase_change_step"] = pc ? Json(*pc) : Json(nullptr);
  const HeadId h = shown_head();
  run["head"] = head_json(h.layer, h.head);
  if (!r.evals().empty()) {
    const TrainEval& e = r.evals().back();
    const size_t idx = size_t(h.layer) * size_t(r.config().model.n_heads) + size_t(h.head);
    if (idx < e.patterns.size()) {
      run["pattern_step"] = e.step;
      run["pattern"] = matrix_json(e.patterns[idx]);
    }
  }
  j["run"] = std::move(run);
  return j;
}

std::vector<ExportTable> TrainView::tables(const Session&) const {
  if (!run_ || run_->evals().empty()) return {};
  const TrainRun& r = *run_;
  const int L = r.config().model.n_layers, H = r.config().model.n_heads;
  ExportTable loss;
  loss.name = "loss";
  loss.title = "Training loss at each update";
  loss.columns = {"update", "training loss"};
  for (size_t i = 0; i < r.losses().size(); ++i) loss.rows.push_back({Json(i + 1), Json(r.losses()[i])});
  ExportTable ev;
  ev.name = "evaluations";
  ev.title = "Held-out loss, in-context learning and each head's scores at each evaluation";
  ev.columns = {"update", "held-out loss", "in-context learning score", "loss on first copy", "loss on repeats"};
  for (int l = 0; l < L; ++l)
    for (int h = 0; h < H; ++h) ev.columns.push_back("prefix matching " + head_text(l, h));
  for (int l = 0; l < L; ++l)
    for (int h = 0; h < H; ++h) ev.columns.push_back("previous token " + head_text(l, h));
  for (const TrainEval& e : r.evals()) {
    std::vector<Json> row{Json(e.step), e.heldout_loss ? Json(*e.heldout_loss) : Json(nullptr),
                          e.icl_score ? Json(*e.icl_score) : Json(nullptr), Json(e.repeat_first),
                          Json(e.repeat_repeats)};
    for (int l = 0; l < L; ++l)
      for (int h = 0; h < H; ++h) row.push_back(e.prefix_matching.size() ? Json(e.prefix_matching(l, h)) : Json());
    for (int l = 0; l < L; ++l)
      for (int h = 0; h < H; ++h) row.push_back(e.prev_token.size() ? Json(e.prev_token(l, h)) : Json());
    ev.rows.push_back(std::move(row));
  }
  return {loss, ev};
}

}  // namespace cs::app
