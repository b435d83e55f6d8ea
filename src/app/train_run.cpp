// A training run of the Train view (train_run.h).
#include "app/train_run.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/forward.h"
#include "core/induction.h"
#include "io/tokenizer.h"
#include "train/backward.h"
#include "train/data.h"

namespace cs::app {

namespace {

// Seeds of the run's fixed evaluation data (never trained on: the training
// batches come from the trainer's own stream of TrainConfig::seed).
constexpr uint64_t kHeldoutSeed = 0x68656C646F7574ull;  // held-out repeated rows
constexpr uint64_t kProbeSeed = 20240601;               // the probe sequence
constexpr int kHeldoutRows = 16;
constexpr int kProbeTokens = 20, kProbeRepeats = 3;

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

train::TrainConfig induction_preset() {
  train::TrainConfig c;
  c.model.name = "trained-in-page-induction";
  c.model.n_layers = 2;
  c.model.d_model = 64;
  c.model.n_heads = 4;
  c.model.d_head = 16;
  c.model.n_ctx = 128;
  c.model.d_vocab = 256;
  c.model.normalization = Norm::LN;
  c.model.positional = PosEmbed::Shortformer;
  c.bos = 0;
  c.batch = 8;
  c.steps = 1000;
  c.lr = 2e-3;
  c.warmup = 100;
  c.schedule = "constant";
  c.seed = 1;
  // 8 groups of one sequence: the page runs one group per unit of work (a few
  // ms), with the arithmetic of `circuitscope train --threads 8`.
  c.threads = 8;
  c.eval_every = 25;
  c.curriculum = {train::DataPhase{"repeated-random", 0, 8, 40}};
  return c;
}

train::TrainConfig one_layer_preset() {
  train::TrainConfig c = induction_preset();
  c.model.name = "trained-in-page-1l";
  c.model.n_layers = 1;
  c.steps = 600;
  return c;
}

train::TrainConfig text_preset() {
  train::TrainConfig c = induction_preset();
  c.model.name = "trained-in-page-text";
  c.model.d_vocab = kSampleVocab;
  c.bos = kSampleBos;
  c.steps = 1500;
  c.eval_every = 50;
  c.curriculum = {train::DataPhase{"text", 0, 0, 0}};
  return c;
}

}  // namespace

std::string syllable_tokenizer_json(int d_vocab, int bos) {
  if (bos < 0 || bos >= d_vocab) throw Error("syllable tokenizer: bos " + std::to_string(bos) + " is outside the vocabulary");
  static const char* const kCons[] = {"b", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z"};
  static const char* const kVowels[] = {"a", "e", "i", "o", "u"};
  static const char* const kEnds[] = {"", "n", "s", "t", "k"};
  std::vector<std::string> words;
  for (const char* end : kEnds)
    for (const char* c : kCons)
      for (const char* v : kVowels) words.push_back(std::string(c) + v + end);
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  size_t next = 0;
  for (int id = 0; id < d_vocab; ++id)
    vocab[id == bos ? std::string("<bos>") : next < words.size() ? words[next++] : "t" + std::to_string(id)] = id;
  const nlohmann::ordered_json j{
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens",
       {{{"id", bos}, {"content", "<bos>"}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
         {"normalized", false}, {"special", true}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "WhitespaceSplit"}}},
      {"post_processor", nullptr},
      {"decoder", nullptr},
      {"model", {{"type", "WordLevel"}, {"vocab", vocab}, {"unk_token", "<bos>"}}}};
  return j.dump(1);
}

const std::vector<TrainPreset>& train_presets() {
  static const std::vector<TrainPreset> presets{
      {"induction", "Induction heads on repeated random tokens",
       "2 layers of 4 heads learn to predict sequences of random tokens that repeat: the loss falls in a step "
       "(the phase change) when a previous-token head in layer 0 and an induction head in layer 1 form together. "
       "About 1,000 updates; the head usually forms within 700.",
       induction_preset(), ""},
      {"one-layer", "One layer on repeated random tokens (no induction head can form)",
       "The same data with a single layer: an induction head needs a previous-token head in an earlier layer "
       "(K-composition), so the repeats stay hard and no phase change comes.",
       one_layer_preset(), ""},
      {"text", "2 layers on the bundled text (Python's documentation and code)",
       "The same 2 layers learn real text: a slice of what the bundled models were trained on, in their "
       "2,048-token vocabulary (downloaded when you press Train). The loss falls as the model learns which tokens "
       "follow which. On text alone induction heads take far longer than a run here lasts; the bundled 2-layer "
       "model got its induction heads from a long phase of repeated random tokens (in a 2,048-token vocabulary "
       "that takes thousands of updates, against a few hundred with the first preset's 256 ids). The settings "
       "take a curriculum of text and repeated-token phases, and the text can be a file of yours.",
       text_preset(), "sample"},
  };
  return presets;
}

const TrainPreset* find_train_preset(const std::string& id) {
  for (const TrainPreset& p : train_presets())
    if (p.id == id) return &p;
  return nullptr;
}

double TrainEval::best_prefix_matching() const {
  return prefix_matching.size() ? double(prefix_matching.maxCoeff()) : 0.0;
}

TrainRun::TrainRun(train::TrainConfig cfg, train::TrainData data)
    : trainer_(std::move(cfg), data), tokenizer_json_(data.tokenizer_json) {
  const train::TrainConfig& c = trainer_.config();
  const int T = c.model.n_ctx, V = c.model.d_vocab;
  if (tokenizer_json_.empty() && c.bos >= 0) tokenizer_json_ = syllable_tokenizer_json(V, c.bos);
  if (!tokenizer_json_.empty()) {
    const Tokenizer tok = Tokenizer::from_json(tokenizer_json_);
    names_.resize(size_t(V));
    for (int id = 0; id < V; ++id) names_[size_t(id)] = tok.display(id);
  }
  inputs_ = trainer_.eval_inputs();
  if (trainer_.has_heldout()) {
    heldout_rows_ = std::move(inputs_.heldout_windows);  // the trainer's fixed held-out windows
    heldout_on_ = "held-out text";
  } else {
    // Held-out rows like the training batches of the last repeated phase.
    const train::DataPhase* phase = nullptr;
    for (const train::DataPhase& p : c.curriculum)
      if (p.source == "repeated-random") phase = &p;
    if (phase) {
      train::RepeatedRandomSpec spec{V, c.bos, phase->min_len, phase->max_len, {}};
      spec.resolve(T);
      Rng rng(kHeldoutSeed);
      std::vector<int> rows;
      train::sample_repeated_batch(spec, kHeldoutRows, T, rng, rows);
      for (int r = 0; r < kHeldoutRows; ++r)
        heldout_rows_.emplace_back(rows.begin() + ptrdiff_t(r) * T, rows.begin() + ptrdiff_t(r + 1) * T);
    }
  }
  // The probe: [I]'s layout (BOS, then random tokens repeated), short enough to draw.
  const int room = T - (c.bos >= 0 ? 1 : 0);
  const int n = std::max(1, std::min(kProbeTokens, room / kProbeRepeats));
  Rng rng(kProbeSeed);
  std::vector<int> exclude;
  probe_ = repeated_random_tokens(rng, V, n, std::max(1, std::min(kProbeRepeats, room / n)), c.bos, exclude);
}

std::string TrainRun::token_name(int id) const {
  if (id >= 0 && size_t(id) < names_.size() && !names_[size_t(id)].empty()) return names_[size_t(id)];
  return "#" + std::to_string(id);
}

double TrainRun::tokens_per_s() const {
  if (losses_.empty() || update_ms_ <= 0) return 0;
  return double(losses_.size()) * double(config().batch) * double(config().model.n_ctx) / (update_ms_ / 1000.0);
}

void TrainRun::advance() {
  if (!evaluated_) {
    evaluate_unit();
    return;
  }
  if (trainer_.done()) return;
  const auto t0 = std::chrono::steady_clock::now();
  const std::optional<train::StepResult> r = trainer_.update_unit();
  const double ms = ms_since(t0);
  update_ms_ += ms;
  record(kUpdateGroup, ms);
  if (!r) return;
  if (!r->finite)
    throw Error("training diverged: the " + std::string(std::isfinite(r->loss) ? "gradient norm" : "loss") +
                " is not finite at update " + std::to_string(r->step + 1) + "; lower the learning rate and restart");
  losses_.push_back(r->loss);
  const train::TrainConfig& c = config();
  const int64_t s = trainer_.step();
  evaluated_ = !((c.eval_every > 0 && s % c.eval_every == 0) || trainer_.done());
}

const char* TrainRun::unit_name(Unit u) {
  switch (u) {
    case kUpdateGroup: return "update_group";
    case kScores: return "evaluation_scores";
    case kHeldout: return "evaluation_heldout";
    case kProbe: return "evaluation_probe";
    case kUnitKinds: break;
  }
  return "";
}

TrainRun::Unit TrainRun::next_unit() const {
  if (evaluated_) return kUpdateGroup;
  if (eval_units_.empty()) return kScores;  // the first unit plans the evaluation and scores
  return eval_units_[eval_next_].kind;
}

void TrainRun::record(Unit u, double ms) {
  last_ms_[u] = ms;
  longest_ms_[u] = std::max(longest_ms_[u], ms);
}

// An evaluation as units of a few ms each (planned by the first): the heads'
// scores kEvalSeqs sequences at a time (means of equally long sequences, so
// the same as scoring them all at once up to rounding); the held-out loss
// and the ICL score kEvalSeqs rows at a time; the probe's patterns and the
// snapshot.
void TrainRun::plan_evaluation() {
  pending_ = TrainEval{};
  pending_.step = trainer_.step();
  eval_units_.clear();
  eval_next_ = 0;
  const train::TrainConfig& c = config();
  const int T = c.model.n_ctx, L = c.model.n_layers, H = c.model.n_heads;
  const auto chunks = [](size_t n) { return (n + kEvalSeqs - 1) / kEvalSeqs; };
  const auto part = [](const std::vector<std::vector<int>>& v, size_t k) {
    const size_t a = k * kEvalSeqs, b = std::min(v.size(), a + kEvalSeqs);
    return std::vector<std::vector<int>>(v.begin() + ptrdiff_t(a), v.begin() + ptrdiff_t(b));
  };
  const train::EvalInputs& in = inputs_;
  if (!in.repeated.empty()) {
    pending_.prefix_matching = RowMat::Zero(L, H);
    const double n_all = double(in.repeated.size());
    for (size_t k = 0; k < chunks(in.repeated.size()); ++k)
      eval_units_.push_back({kScores, [this, k, n_all, part, &in] {
                               const auto seqs = part(in.repeated, k);
                               const double w = double(seqs.size()) / n_all;
                               const Model& m = trainer_.model();
                               pending_.prefix_matching += prefix_matching_scores(m, seqs, config().bos) * float(w);
                               const RepeatLoss r = repeat_loss(m, seqs, in.pm_tokens, in.pm_repeats, config().bos >= 0);
                               pending_.repeat_first += r.first * w;
                               pending_.repeat_repeats += r.repeats * w;
                             }});
  }
  if (!in.prev_token_windows.empty()) {
    pending_.prev_token = RowMat::Zero(L, H);
    const double n_all = double(in.prev_token_windows.size());
    for (size_t k = 0; k < chunks(in.prev_token_windows.size()); ++k)
      eval_units_.push_back({kScores, [this, k, n_all, part, &in] {
                               const auto seqs = part(in.prev_token_windows, k);
                               pending_.prev_token +=
                                   previous_token_scores(trainer_.model(), seqs) * float(double(seqs.size()) / n_all);
                             }});
  }
  if (!heldout_rows_.empty()) {
    const double n_all = double(heldout_rows_.size());
    pending_.heldout_on = heldout_on_;
    pending_.heldout_loss = 0.0;
    for (size_t k = 0; k < chunks(heldout_rows_.size()); ++k)
      eval_units_.push_back({kHeldout, [this, k, n_all, T, part] {
                               const auto rows = part(heldout_rows_, k);
                               std::vector<int> flat;
                               for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
                               const float loss =
                                   train::batch_loss(trainer_.model(), train::BatchView{flat, int(rows.size()), T, {}});
                               *pending_.heldout_loss += double(loss) * double(rows.size()) / n_all;
                             }});
    if (T >= 4) {
      pending_.icl_score = 0.0;
      for (size_t k = 0; k < chunks(heldout_rows_.size()); ++k)
        eval_units_.push_back({kHeldout, [this, k, n_all, T, part] {
                                 const auto rows = part(heldout_rows_, k);
                                 const IclPositions p = icl_positions(T);
                                 *pending_.icl_score += in_context_learning_score(trainer_.model(), rows, p.early,
                                                                                  p.late, std::max(0, T / 64)) *
                                                        double(rows.size()) / n_all;
                               }});
    }
  }
  eval_units_.push_back({kProbe, [this] {
                           const Model& m = trainer_.model();
                           ForwardOptions fo = patterns_only();
                           pending_.patterns = forward(m, probe_, fo).cache.pattern;
                           (void)add_snapshot();  // over the budget: the evaluation goes on without one
                         }});
}

bool TrainRun::add_snapshot() {
  if (!snapshots_.empty() && snapshots_.back().step == step()) return true;
  const Model& m = trainer_.model();
  const size_t bytes = m.size() * sizeof(float);
  if (snapshot_bytes_ + bytes > kSnapshotBytes) return false;
  snapshots_.push_back(TrainSnapshot{step(), std::make_shared<const Model>(m)});
  snapshot_bytes_ += bytes;
  return true;
}

void TrainRun::keep_snapshot() {
  if (!add_snapshot())
    throw Error("train: the snapshots kept so far fill the " + std::to_string(kSnapshotBytes >> 20) +
                " MB set aside for them; no snapshot at update " + std::to_string(step()));
}

void TrainRun::evaluate_unit() {
  const auto t0 = std::chrono::steady_clock::now();
  if (eval_units_.empty()) plan_evaluation();
  const EvalUnit& u = eval_units_[eval_next_++];
  const Unit kind = u.kind;
  u.run();
  if (eval_next_ == eval_units_.size()) {
    evals_.push_back(std::move(pending_));
    pending_ = TrainEval{};
    eval_units_.clear();
    eval_next_ = 0;
    evaluated_ = true;
  }
  const double ms = ms_since(t0);
  eval_ms_ += ms;
  record(kind, ms);
}

std::optional<int64_t> TrainRun::phase_change_step() const { return app::phase_change_step(evals_); }

std::optional<int64_t> phase_change_step(std::span<const TrainEval> evals) {
  if (evals.empty()) return std::nullopt;
  const double start = evals.front().best_prefix_matching();
  double top = start;
  for (const TrainEval& e : evals) top = std::max(top, e.best_prefix_matching());
  if (top - start < kPhaseRise) return std::nullopt;
  const double half = start + 0.5 * (top - start);
  for (const TrainEval& e : evals)
    if (e.best_prefix_matching() >= half) return e.step;
  return std::nullopt;
}

FileSet TrainRun::model_files() const { return save_model(trainer_.model(), tokenizer_json_, false, true); }

FileSet TrainRun::snapshot_files(const TrainSnapshot& s) const {
  return save_model(*s.model, tokenizer_json_, false, true);
}

// Units until the budget is spent, the first always; a later one only when
// it is expected to fit (the last unit of its kind took less than what is
// left), so a long unit (an evaluation's scores) starts a frame's slice
// rather than overrunning the end of one.
bool TrainWork::step(double budget_ms) {
  const auto t0 = std::chrono::steady_clock::now();
  do {
    run_->advance();
  } while (!run_->done() && ms_since(t0) + run_->next_unit_estimate_ms() < budget_ms);
  return run_->done();
}

float TrainWork::progress() const {
  const int64_t total = run_->config().steps;
  return total > 0 ? float(double(run_->step()) / double(total)) : 1.f;
}

std::string TrainWork::stage() const {
  return run_->eval_due() ? "evaluating at update " + std::to_string(run_->step())
                          : "update " + std::to_string(run_->step() + 1) + " of " +
                                std::to_string(run_->config().steps);
}

}  // namespace cs::app
