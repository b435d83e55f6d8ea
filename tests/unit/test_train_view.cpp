// The Train view (src/app/train_view.h, train_run.h), natively and under Node:
// a run stepped a unit per tick, paused and resumed, reaches exactly the
// weights of train::Trainer stepped straight through (the CLI's loop); its
// evaluations come at the CLI's steps with the trainer's own scores; the
// phase change is found where the best prefix-matching score jumps; the
// weights open as the page's model; bad selections name the field.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "app/export.h"
#include "app/app.h"
#include "app/session.h"
#include "app/train_view.h"
#include "app/train_text.h"
#include "app_test_helpers.h"
#include "test_models.h"
#include "core/error.h"
#include "io/tokenizer.h"
#include "train/trainer.h"

namespace cs::app {
namespace {

// A tiny run: 2 layers of 2 heads, d_model 16, n_ctx 16, 24 token ids.
Json tiny_selection(int steps = 12) {
  return Json{{"preset", "induction"}, {"steps", steps}, {"layers", 2},     {"heads", 2},       {"d_model", 16},
              {"d_head", 8},           {"n_ctx", 16},    {"vocab", 24},     {"batch", 2},       {"warmup", 3},
              {"eval_every", 4},       {"min_len", 2},   {"max_len", 7},    {"seed", 5},        {"lr", 0.01}};
}

bool same_weights(const Model& a, const Model& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// The CLI's loop: one Trainer stepped straight through (its batch split into
// the same groups, on threads natively), evaluated at 0, every eval_every and the end.
struct StraightRun {
  std::unique_ptr<train::Trainer> trainer;
  std::vector<float> losses;
  std::vector<train::Evaluation> evals;
};
StraightRun straight_run(const train::TrainConfig& cfg, train::TrainData data) {
  StraightRun r{std::make_unique<train::Trainer>(cfg, std::move(data)), {}, {}};
  train::Trainer& t = *r.trainer;
  r.evals.push_back(t.evaluate());
  while (!t.done()) {
    r.losses.push_back(t.train_step().loss);
    if (t.step() % cfg.eval_every == 0 || t.done()) r.evals.push_back(t.evaluate());
  }
  return r;
}

TEST(TrainView, PresetsMakeValidConfigs) {
  ASSERT_FALSE(train_presets().empty());
  for (const TrainPreset& p : train_presets()) {
    SCOPED_TRACE(p.id);
    const TrainSelection s = TrainSelection::of_preset(p.id);
    const train::TrainConfig c = s.config();
    // The selection carries the preset's config whole (nothing lost on the way).
    EXPECT_EQ(train::train_config_to_json(c), train::train_config_to_json(p.config));
  }
  // The induction preset is the CLI's induction_forms run (tests/train).
  const train::TrainConfig c = TrainSelection::of_preset("induction").config();
  EXPECT_EQ(c.model.n_layers, 2);
  EXPECT_EQ(c.model.d_vocab, 256);
  EXPECT_EQ(c.bos, 0);
  EXPECT_EQ(c.curriculum.size(), 1u);
  EXPECT_EQ(c.curriculum[0].source, "repeated-random");
}

TEST(TrainView, SlicedPausedAndResumedRunEqualsTheStraightTrainer) {
  Session s;
  TrainView v;
  v.set_selection_json(s, tiny_selection());
  EXPECT_EQ(v.status(s), TrainView::Status::idle);
  v.start(s);
  EXPECT_EQ(v.status(s), TrainView::Status::running);
  // One unit per tick (budget 0): parts of the evaluation at step 0, then
  // updates a group of sequences at a time, ... Paused in the middle of
  // update 5 (after the evaluation at 4 and the first group of the batch).
  int ticks = 0;
  while (v.run()->evals().size() < 2 && ticks < 1000) {
    s.tick(0);
    ++ticks;
  }
  EXPECT_EQ(v.run()->evals()[1].step, 4);
  s.tick(0);
  EXPECT_TRUE(v.run()->trainer().update_in_progress());
  const int64_t at_pause = v.run()->step();
  EXPECT_EQ(at_pause, 4);
  v.pause(s);
  EXPECT_EQ(v.status(s), TrainView::Status::paused);
  for (int i = 0; i < 5; ++i) s.tick(0);
  EXPECT_EQ(v.run()->step(), at_pause);  // paused: nothing moves
  EXPECT_TRUE(v.run()->trainer().update_in_progress());
  v.resume(s);
  EXPECT_EQ(v.status(s), TrainView::Status::running);
  apptest::run_jobs(s, 0.0);
  EXPECT_EQ(v.status(s), TrainView::Status::finished);
  ASSERT_EQ(v.run()->step(), 12);

  // The CLI's loop with the same config.
  const StraightRun ref = straight_run(v.selection().config(), {});
  const train::Trainer& t = *ref.trainer;
  const std::vector<float>& losses = ref.losses;
  const std::vector<train::Evaluation>& evals = ref.evals;
  EXPECT_TRUE(same_weights(v.run()->trainer().model(), t.model()));
  EXPECT_EQ(v.run()->losses(), losses);
  ASSERT_EQ(v.run()->evals().size(), evals.size());  // steps 0, 4, 8, 12
  for (size_t i = 0; i < evals.size(); ++i) {
    const TrainEval& e = v.run()->evals()[i];
    EXPECT_EQ(e.step, evals[i].step);
    // Scored a few sequences at a time: the same means up to rounding.
    ASSERT_EQ(e.prefix_matching.rows(), evals[i].prefix_matching.rows());
    EXPECT_LE((e.prefix_matching - evals[i].prefix_matching).cwiseAbs().maxCoeff(), 1e-6f);
    ASSERT_EQ(e.prev_token.rows(), evals[i].prev_token.rows());
    EXPECT_LE((e.prev_token - evals[i].prev_token).cwiseAbs().maxCoeff(), 1e-6f);
    EXPECT_NEAR(e.repeat_first, evals[i].repeat.first, 1e-5);
    EXPECT_NEAR(e.repeat_repeats, evals[i].repeat.repeats, 1e-5);
    // Held-out loss on the run's own rows of repeated random tokens, an ICL
    // score, and every head's pattern on the probe (rows sum to 1).
    ASSERT_TRUE(e.heldout_loss.has_value());
    EXPECT_GT(*e.heldout_loss, 0.0);
    EXPECT_TRUE(e.icl_score.has_value());
    ASSERT_EQ(e.patterns.size(), 4u);
    EXPECT_EQ(e.patterns[0].rows(), Eigen::Index(v.run()->probe().size()));
    EXPECT_NEAR(e.patterns[3].row(5).sum(), 1.0, 1e-5);
  }
  // A snapshot at every evaluation, with that step's weights.
  ASSERT_EQ(v.run()->snapshots().size(), evals.size());
  EXPECT_TRUE(same_weights(*v.run()->snapshots().back().model, t.model()));

  // The state the page draws and the tests read.
  const Json st = v.state_json(s);
  EXPECT_EQ(st["status"], "finished");
  EXPECT_EQ(st["run"]["step"], 12);
  EXPECT_EQ(st["run"]["losses"].size(), 12u);
  EXPECT_EQ(st["run"]["evals"].size(), 4u);
  EXPECT_EQ(st["run"]["snapshots"].size(), 4u);
  EXPECT_GT(st["run"]["tokens_per_s"].get<double>(), 0.0);

  // The tables to download: the straight trainer's losses and scores, a row per update / evaluation.
  const std::vector<ExportTable> tables = v.tables(s);
  ASSERT_EQ(tables.size(), 2u);
  ASSERT_EQ(tables[0].rows.size(), losses.size());
  for (size_t i = 0; i < losses.size(); ++i) {
    EXPECT_EQ(tables[0].rows[i][0], Json(i + 1));
    EXPECT_EQ(tables[0].rows[i][1].get<float>(), losses[i]);
  }
  const ExportTable& et = tables[1];
  ASSERT_EQ(et.rows.size(), evals.size());
  const auto col = [&](const std::string& name) {
    const auto it = std::find(et.columns.begin(), et.columns.end(), name);
    EXPECT_NE(it, et.columns.end()) << name;
    return size_t(it - et.columns.begin());
  };
  for (size_t i = 0; i < evals.size(); ++i) {
    EXPECT_EQ(et.rows[i][col("update")], Json(evals[i].step));
    EXPECT_NEAR(et.rows[i][col("prefix matching 1.1")].get<double>(), evals[i].prefix_matching(1, 1), 1e-6);
    EXPECT_NEAR(et.rows[i][col("previous token 0.0")].get<double>(), evals[i].prev_token(0, 0), 1e-6);
    EXPECT_NEAR(et.rows[i][col("loss on repeats")].get<double>(), evals[i].repeat.repeats, 1e-5);
  }
}

TEST(TrainView, StopEndsTheRunAndRestartBeginsAgainWithTheSeed) {
  Session s;
  TrainView v;
  v.set_selection_json(s, tiny_selection());
  v.start(s);
  for (int i = 0; i < 3; ++i) s.tick(0);
  v.stop(s);
  EXPECT_EQ(v.status(s), TrainView::Status::stopped);
  v.resume(s);  // a stopped run does not resume
  EXPECT_EQ(v.status(s), TrainView::Status::stopped);
  const int64_t stopped_at = v.run()->step();
  for (int i = 0; i < 3; ++i) s.tick(0);
  EXPECT_EQ(v.run()->step(), stopped_at);

  // Restart: a new run from update 0 that gives the same weights as a first run.
  v.start(s);
  EXPECT_EQ(v.run()->step(), 0);
  apptest::run_jobs(s, 5.0);
  TrainView w;
  w.set_selection_json(s, tiny_selection());
  w.start(s);
  apptest::run_jobs(s, 1000.0);
  EXPECT_TRUE(same_weights(v.run()->trainer().model(), w.run()->trainer().model()));
  // Another seed, other weights.
  Json other = tiny_selection();
  other["seed"] = 6;
  w.set_selection_json(s, other);
  w.start(s);
  apptest::run_jobs(s, 1000.0);
  EXPECT_FALSE(same_weights(v.run()->trainer().model(), w.run()->trainer().model()));
}

TEST(TrainView, OpenThisModelLoadsTheWeightsOfNowOrOfASnapshot) {
  Session s;
  TrainView v;
  EXPECT_THROW(v.open_model(s), Error);  // nothing trained yet
  v.set_selection_json(s, tiny_selection());
  v.start(s);
  apptest::run_jobs(s, 1000.0);
  v.open_model(s);
  apptest::run_jobs(s, 1000.0);
  ASSERT_EQ(s.error(), "");
  ASSERT_NE(s.active(), nullptr);
  EXPECT_EQ(s.active()->origin, "trained");
  // The page's model was made from exactly the run's weights.
  const FileSet now = save_model(v.run()->trainer().model(), v.run()->tokenizer_json(), false, true);
  EXPECT_EQ(s.active()->files->at("model.safetensors"), now.at("model.safetensors"));
  EXPECT_EQ(s.shown()->model.config().n_layers, 2);
  ASSERT_TRUE(s.shown()->tokenizer.has_value());  // the run's words, with its BOS
  EXPECT_EQ(bos_or_none(*s.shown()), 0);

  v.open_model(s, 4);
  apptest::run_jobs(s, 1000.0);
  const FileSet at4 = save_model(*v.run()->snapshots()[1].model, v.run()->tokenizer_json(), false, true);
  EXPECT_EQ(v.run()->snapshots()[1].step, 4);
  EXPECT_EQ(s.active()->files->at("model.safetensors"), at4.at("model.safetensors"));
  EXPECT_NE(at4.at("model.safetensors"), now.at("model.safetensors"));
  EXPECT_THROW(v.open_model(s, 5), Error);  // no snapshot there

  std::string name;
  const FileSet saved = v.save_files(name);
  EXPECT_EQ(name, "trained-in-page-induction-step-12");
  EXPECT_TRUE(saved.count("model.safetensors") && saved.count("config.json") && saved.count("tokenizer.json"));
  // The weights file alone is the whole model: its config and tokenizer ride in its metadata.
  const LoadedModel alone = load_model(FileSet{{"run.model.safetensors", saved.at("model.safetensors")}});
  EXPECT_EQ(alone.model.config().n_layers, 2);
  ASSERT_TRUE(alone.tokenizer.has_value());
  EXPECT_EQ(alone.tokenizer_json, v.run()->tokenizer_json());
  EXPECT_EQ(bos_or_none(alone), 0);
}

// "Keep snapshot": the weights of the update it is pressed at (mid-update
// too: the weights change only when an update is finished), opened like an
// evaluation's snapshot; kept once per update.
TEST(TrainView, KeepSnapshotKeepsTheWeightsOfThatUpdate) {
  Session s;
  TrainView v;
  EXPECT_THROW(v.keep_snapshot(), Error);  // nothing trained yet
  v.set_selection_json(s, tiny_selection());
  v.start(s);
  int ticks = 0;
  while (v.run()->step() < 6 && ticks++ < 1000) s.tick(0);
  s.tick(0);  // into update 7
  ASSERT_EQ(v.run()->step(), 6);
  EXPECT_TRUE(v.run()->trainer().update_in_progress());
  v.keep_snapshot();
  v.keep_snapshot();  // the same update: nothing more
  apptest::run_jobs(s, 0.0);
  ASSERT_EQ(v.status(s), TrainView::Status::finished);
  std::vector<int64_t> steps;
  for (const TrainSnapshot& x : v.run()->snapshots()) steps.push_back(x.step);
  EXPECT_EQ(steps, (std::vector<int64_t>{0, 4, 6, 8, 12}));

  train::Trainer t(v.selection().config(), {});
  for (int i = 0; i < 6; ++i) t.train_step();
  EXPECT_TRUE(same_weights(*v.run()->snapshots()[2].model, t.model()));
  v.open_model(s, 6);
  apptest::run_jobs(s, 1000.0);
  ASSERT_EQ(s.error(), "");
  EXPECT_EQ(s.active()->files->at("model.safetensors"),
            save_model(t.model(), v.run()->tokenizer_json(), false, true).at("model.safetensors"));
}

// Generated tokens get words: the BOS named so every view finds it, the rest
// distinct syllables the tokenizer reads back.
TEST(TrainView, SyllableTokenizerNamesTheBosAndEveryId) {
  for (int V : {24, 256, 600}) {
    SCOPED_TRACE(V);
    const Tokenizer t = Tokenizer::from_json(syllable_tokenizer_json(V, 0));
    EXPECT_EQ(t.vocab_size(), V);
    EXPECT_EQ(t.bos_id(), 0);
    std::set<std::string> names;
    for (int id = 0; id < V; ++id) names.insert(t.token_string(id));
    EXPECT_EQ(names.size(), size_t(V));  // all distinct
    EXPECT_EQ(t.encode(t.token_string(1) + " " + t.token_string(V - 1) + " " + t.token_string(1)),
              (std::vector<int>{1, V - 1, 1}));
  }
  EXPECT_THROW(syllable_tokenizer_json(10, 10), Error);
}

TEST(TrainView, PhaseChangeIsWhereTheBestPrefixMatchingScoreJumps) {
  const auto evals_of = [](std::vector<double> best) {
    std::vector<TrainEval> out;
    for (size_t i = 0; i < best.size(); ++i) {
      TrainEval e;
      e.step = int64_t(i) * 50;
      e.prefix_matching = RowMat::Constant(2, 3, 0.01f);
      e.prefix_matching(1, 2) = float(best[i]);  // the best head
      out.push_back(e);
    }
    return out;
  };
  EXPECT_FALSE(phase_change_step(evals_of({0.02, 0.05, 0.1, 0.15, 0.2})).has_value());  // a slow creep
  EXPECT_EQ(phase_change_step(evals_of({0.02, 0.03, 0.3, 0.8, 0.85})), 150);  // half of the rise: 0.435
  EXPECT_EQ(phase_change_step(evals_of({0.02, 0.6, 0.62})), 50);
  // A steady rise of 0.58: marked where half of it is covered (0.31), at 0.4.
  EXPECT_EQ(phase_change_step(evals_of({0.02, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6})), 200);
  EXPECT_FALSE(phase_change_step({}).has_value());
}

TEST(TrainView, BadSelectionsNameTheFieldAndKeepTheOldOne) {
  Session s;
  TrainView v;
  v.set_selection_json(s, tiny_selection());
  const TrainSelection before = v.selection();
  const auto refused = [&](Json j, const std::string& needle) {
    try {
      v.set_selection_json(s, j);
      ADD_FAILURE() << "accepted " << j.dump();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
    EXPECT_EQ(v.selection(), before);
  };
  // {field, value, what the reason names}
  const std::vector<std::tuple<const char*, Json, const char*>> bad{
      {"preset", "nope", "\"preset\""},
      {"layers", 9, "\"layers\""},
      {"lr", "fast", "\"lr\""},
      {"head", "2.0", "\"head\""},
      {"max_len", 12, "max_len"},  // n_ctx 16 with a BOS holds two copies of at most 7
      {"text", "novel", "\"text\""},
      {"curriculum", "copy:100", "'copy'"},
      {"curriculum", "repeat:5,text:7", "text phases"},  // no text chosen
      {"curriculum", "repeat:5:2-12", "max_len"},        // a phase's own lengths are checked against n_ctx too
  };
  for (const auto& [key, value, needle] : bad) {
    Json j = tiny_selection();
    j[key] = value;
    refused(j, needle);
  }
  // A selection round-trips through its JSON.
  EXPECT_EQ(TrainSelection::from_json(v.selection().to_json()), v.selection());
}

// ---- text ----------------------------------------------------------------------

std::vector<uint8_t> file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << path;
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// The text sample as the shell hands it over: index.json and the files it names.
FileSet sample_files() {
  const std::string dir = std::string(CS_SOURCE_DIR) + "/assets/text/";
  FileSet f;
  for (const char* name : {"index.json", "train.bin", "heldout.bin", "tokenizer.json"}) f[name] = file_bytes(dir + name);
  return f;
}

std::string as_text(const std::vector<uint8_t>& b) { return std::string(b.begin(), b.end()); }

// A text with what tokenizers find hard at a cut: indented code, blank lines,
// runs of spaces, tabs, CRLF, numbers, UTF-8, lines that start with a space.
std::string awkward_text(size_t bytes) {
  static const char* const kLines[] = {
      "def f(x):\n", "    return x + 1\n", "\n", "\n\n  \n", "The quick brown fox, again.\n",
      " starts with a space\n", "\ttabbed\tline\n", "numbers 12345 678\n", "caf\xc3\xa9 na\xc3\xafve \xe2\x86\x92\n",
      "crlf line\r\n", "    \n", ">>> import os\n", "x  =  [1, 2,   3]\n", "'''doc'''\n"};
  std::string out;
  Rng rng(11);
  while (out.size() < bytes) out += kLines[rng.next() % (sizeof kLines / sizeof *kLines)];
  return out;
}

TEST(TrainText, TheSampleIsWhatItsIndexSays) {
  const FileSet files = sample_files();
  const TrainText t = sample_text(files);
  const Json index = Json::parse(as_text(files.at("index.json")));
  EXPECT_EQ(t.source, "sample");
  EXPECT_EQ(int64_t(t.ids.size()), index["train"]["tokens"].get<int64_t>());
  EXPECT_EQ(t.ids.size() * 2, files.at("train.bin").size());
  EXPECT_EQ(t.heldout.size() * 2, files.at("heldout.bin").size());
  EXPECT_GT(t.ids.size(), 500000u);
  EXPECT_EQ(t.d_vocab, kSampleVocab);
  EXPECT_EQ(t.bos, kSampleBos);
  // The bundled models' tokenizer, and their BOS at the start of every document.
  EXPECT_EQ(t.tokenizer_json,
            as_text(file_bytes(std::string(CS_SOURCE_DIR) + "/assets/models/attn-only-2l/tokenizer.json")));
  const Tokenizer tok = Tokenizer::from_json(t.tokenizer_json);
  EXPECT_EQ(tok.bos_id(), kSampleBos);
  EXPECT_EQ(t.ids[0], kSampleBos);
  // It decodes to the Python sources and docs it says it is.
  const std::string head = tok.decode(std::span<const int>(t.ids).subspan(1, 2000));
  EXPECT_NE(head.find("the"), std::string::npos);
  EXPECT_NE(head.find('\n'), std::string::npos);

  const auto refused = [&](FileSet f, const std::string& needle) {
    try {
      (void)sample_text(f);
      ADD_FAILURE() << "accepted a bad sample (" << needle << ")";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  FileSet f = files;
  f.erase("heldout.bin");
  refused(f, "heldout.bin is missing");
  f = files;
  f["train.bin"].resize(f["train.bin"].size() - 2);
  refused(f, "train.bin holds");
  f = files;
  f["heldout.bin"][1] = 0xFF;  // the first id becomes >= 65280
  refused(f, "heldout.bin");
  f = files;
  f["index.json"] = std::vector<uint8_t>{'{', '}'};
  refused(f, "\"dtype\"");
}

TEST(TrainText, TokenizingInChunksGivesTheIdsOfTheWholeText) {
  const std::string bpe = as_text(sample_files().at("tokenizer.json"));
  Json prefixed = Json::parse(bpe);  // a space in front of every text: no cut keeps the ids, one chunk
  prefixed["pre_tokenizer"]["add_prefix_space"] = true;
  const std::vector<std::pair<std::string, bool>> tokenizers{
      {bpe, true}, {testmodels::wordlevel_tokenizer(50), true}, {prefixed.dump(), false}};
  for (const auto& [tj, cuts] : tokenizers) {
    const Tokenizer tok = Tokenizer::from_json(tj);
    for (size_t n : {size_t(10), size_t(20000), size_t(70000)}) {
      const std::string text = awkward_text(n);
      TokenizeWork w("t.txt", std::vector<uint8_t>(text.begin(), text.end()), tok, tj);
      size_t steps = 1;
      while (!w.step(0)) ++steps;  // one chunk per step
      EXPECT_EQ(w.text().ids, tok.encode(text)) << tok.kind() << " " << n;
      EXPECT_EQ(w.text().source, "file");
      EXPECT_EQ(w.text().d_vocab, tok.vocab_size());
      if (cuts) EXPECT_GE(steps + 1, n / TokenizeWork::kChunkBytes) << "cut into chunks";
      else EXPECT_EQ(steps, 1u);
    }
  }
  EXPECT_THROW(TokenizeWork("empty.txt", {}, Tokenizer::from_json(bpe), bpe), Error);
}

TEST(TrainText, AFileKeepsItsLastTwentiethForHeldOut) {
  TrainText t;
  t.source = "file";
  t.name = "f";
  t.bos = 0;
  for (int i = 0; i < 10000; ++i) t.ids.push_back(i % 97);
  train::TrainData d = training_data(t, 64);
  EXPECT_EQ(d.heldout.size(), 500u);  // 10,000 / 20 >= 2 x 64
  EXPECT_EQ(d.train.size(), 9500u);
  EXPECT_TRUE(std::equal(d.train.begin(), d.train.end(), t.ids.begin()));
  EXPECT_TRUE(std::equal(d.heldout.begin(), d.heldout.end(), t.ids.begin() + 9500));
  d = training_data(t, 400);  // 2 x 400 held out
  EXPECT_EQ(d.heldout.size(), 800u);
  t.ids.resize(1000);  // too short to hold any out at n_ctx 128
  d = training_data(t, 128);
  EXPECT_TRUE(d.heldout.empty());
  EXPECT_EQ(d.train.size(), 1000u);
  t.ids.resize(100);
  EXPECT_THROW(training_data(t, 128), Error);  // not one row
}

// The text preset's run on the sample: Train waits for the sample (the page
// fetches it), then runs with the arithmetic of the trainer stepped straight
// through on the same text.
TEST(TrainText, ARunOnTheSampleEqualsTheStraightTrainer) {
  Session s;
  TrainView v;
  Json sel = tiny_selection(10);
  sel["preset"] = "text";
  sel["text"] = "sample";
  sel["curriculum"] = "text:4,repeat:3,text:3";
  v.set_selection_json(s, sel);
  int asked = 0;
  v.set_sample_source([&asked] { ++asked; });
  v.start(s);
  EXPECT_EQ(v.status(s), TrainView::Status::loading);
  EXPECT_EQ(asked, 1);  // start asks for the sample itself, whichever tab is shown
  v.start(s);
  EXPECT_EQ(asked, 1);  // once until it comes
  EXPECT_EQ(v.run(), nullptr);
  v.receive_sample(s, sample_files());
  ASSERT_EQ(s.error(), "");
  ASSERT_EQ(v.status(s), TrainView::Status::running);
  apptest::run_jobs(s, 0.0);
  ASSERT_EQ(v.status(s), TrainView::Status::finished);

  const TrainText& text = *v.selected_text();
  const train::TrainConfig cfg = v.selection().config(&text);
  EXPECT_EQ(cfg.model.d_vocab, 2048);
  EXPECT_EQ(cfg.bos, 256);
  ASSERT_EQ(cfg.curriculum.size(), 3u);
  EXPECT_EQ(cfg.curriculum[0].source, "text");
  EXPECT_EQ(cfg.curriculum[1].source, "repeated-random");
  EXPECT_EQ(cfg.curriculum[1].min_len, 2);  // the selection's lengths for a repeat phase without its own
  const StraightRun ref = straight_run(cfg, training_data(text, cfg.model.n_ctx));
  const std::vector<train::Evaluation>& evals = ref.evals;
  EXPECT_TRUE(same_weights(v.run()->trainer().model(), ref.trainer->model()));
  EXPECT_EQ(v.run()->losses(), ref.losses);
  ASSERT_EQ(v.run()->evals().size(), evals.size());
  for (size_t i = 0; i < evals.size(); ++i) {
    const TrainEval& e = v.run()->evals()[i];
    EXPECT_EQ(e.heldout_on, "held-out text");
    ASSERT_TRUE(e.heldout_loss && evals[i].heldout_loss);
    EXPECT_NEAR(*e.heldout_loss, *evals[i].heldout_loss, 1e-5);  // scored 2 windows at a time
    ASSERT_TRUE(e.icl_score && evals[i].icl_score);
    EXPECT_NEAR(*e.icl_score, *evals[i].icl_score, 1e-5);
    EXPECT_LE((e.prev_token - evals[i].prev_token).cwiseAbs().maxCoeff(), 1e-6f);
  }
  const Json st = v.state_json(s);
  EXPECT_EQ(st["text"]["source"], "sample");
  EXPECT_EQ(st["text"]["tokens"], text.ids.size());
  EXPECT_EQ(st["run"]["config"]["model"]["d_vocab"], 2048);
  // The saved folder carries the sample's tokenizer.
  std::string name;
  EXPECT_EQ(as_text(v.save_files(name).at("tokenizer.json")), text.tokenizer_json);

  // A bad sample: the wait ends with the reason, nothing runs.
  TrainView w;
  int w_asked = 0;
  w.set_sample_source([&w_asked] { ++w_asked; });
  w.set_selection_json(s, sel);
  w.start(s);
  FileSet bad = sample_files();
  bad.erase("tokenizer.json");
  w.receive_sample(s, bad);
  EXPECT_NE(s.error().find("tokenizer.json is missing"), std::string::npos) << s.error();
  EXPECT_EQ(w.status(s), TrainView::Status::idle);
  s.clear_error();
  w.start(s);
  EXPECT_EQ(w_asked, 2);  // asked again after the bad sample
  w.sample_failed(s, "HTTP 404");
  EXPECT_NE(s.error().find("HTTP 404"), std::string::npos);
  EXPECT_EQ(w.status(s), TrainView::Status::idle);
  w.start(s);
  EXPECT_EQ(w_asked, 3);  // and after a failed download
}

// A text file's bytes come through the Session's staging set (as a model's
// do) and are handed over whole; a file over the page's limit is refused
// from its size, by name.
TEST(TrainText, TextFilesComeThroughTheStagingSet) {
  Session s;
  FileSet files;
  files["mine.txt"] = {'a', 'b', '\n'};
  apptest::stage(s, files);
  EXPECT_EQ(s.take_staged(), files);
  EXPECT_TRUE(s.take_staged().empty());  // nothing left staged
  EXPECT_NO_THROW(check_text_file_size("mine.txt", double(kMaxTextFileBytes)));
  try {
    check_text_file_size("big.txt", double(kMaxTextFileBytes) + 16e6);
    ADD_FAILURE() << "a file over the limit was taken";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("text file big.txt is 79 MB"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("at most 64 MB"), std::string::npos) << e.what();
  }
}

// The user's own text file: tokenized with the shown model's tokenizer by a
// job, then trained on like the trainer on the same ids.
TEST(TrainText, AFileIsTokenizedWithTheShownModelsTokenizer) {
  App a;
  Session& s = a.session();
  TrainView& v = *a.view<TrainView>();
  const std::string text = awkward_text(60000);
  try {
    v.receive_file(s, "mine.txt", std::vector<uint8_t>(text.begin(), text.end()));
    ADD_FAILURE() << "a file was taken with no model shown";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("load a model with a tokenizer"), std::string::npos) << e.what();
  }
  Json sel = tiny_selection(6);
  sel["text"] = "file";
  v.set_selection_json(s, sel);
  try {
    v.start(s);
    ADD_FAILURE() << "started with no text file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("choose a text file"), std::string::npos) << e.what();
  }
  FileSet model;
  const std::string dir = std::string(CS_SOURCE_DIR) + "/assets/models/attn-only-1l/";
  for (const char* f : {"model.safetensors", "config.json", "tokenizer.json"}) model[f] = file_bytes(dir + f);
  apptest::stage(s, model);
  s.load_staged("attn-only-1l", "1l", "", "bundled");
  apptest::run_jobs(s, 1000.0);
  ASSERT_NE(s.shown(), nullptr);
  v.receive_file(s, "mine.txt", std::vector<uint8_t>(text.begin(), text.end()));
  EXPECT_EQ(v.status(s), TrainView::Status::loading);
  apptest::run_jobs(s, 0.0);
  ASSERT_EQ(s.error(), "");
  const TrainText* t = v.selected_text();
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(v.selection().text, "file");
  EXPECT_EQ(t->name, "mine.txt");
  EXPECT_EQ(t->ids, s.shown()->tokenizer->encode(text));
  EXPECT_EQ(t->bos, 256);
  EXPECT_EQ(v.state_json(s)["text"]["tokens"], t->ids.size());
  v.start(s);
  apptest::run_jobs(s, 0.0);
  ASSERT_EQ(v.status(s), TrainView::Status::finished);
  const train::TrainConfig cfg = v.selection().config(t);
  EXPECT_EQ(cfg.curriculum[0].source, "text");
  EXPECT_EQ(cfg.model.d_vocab, 2048);
  const StraightRun ref = straight_run(cfg, training_data(*t, cfg.model.n_ctx));
  EXPECT_TRUE(same_weights(v.run()->trainer().model(), ref.trainer->model()));
  EXPECT_EQ(v.run()->losses(), ref.losses);
  EXPECT_EQ(v.run()->evals().back().heldout_on, "held-out text");
}

TEST(TrainText, CurriculumTextIsRead) {
  const auto spec = train::parse_curriculum("repeat:5:3-6,text:7,repeat:2");
  ASSERT_EQ(spec.size(), 3u);
  EXPECT_EQ(spec[0].source, "repeated-random");
  EXPECT_EQ(spec[0].steps, 5);
  EXPECT_EQ(spec[0].min_len, 3);
  EXPECT_EQ(spec[0].max_len, 6);
  EXPECT_EQ(spec[1].source, "text");
  EXPECT_EQ(spec[1].steps, 7);
  EXPECT_EQ(spec[2].steps, 2);
  EXPECT_EQ(spec[2].min_len, 0);  // no lengths of its own
  const auto phases = train::parse_curriculum("random:4,text:1");
  ASSERT_EQ(phases.size(), 2u);
  EXPECT_EQ(phases[0].source, "repeated-random");
  EXPECT_EQ(phases[0].steps, 4);
  for (const char* bad : {"", "text", "text:0", "text:x", "copy:3", "text:3:1-2", "repeat:3:5", "repeat:3:a-9"})
    EXPECT_THROW(train::parse_curriculum(bad), Error) << bad;
}

}  // namespace
}  // namespace cs::app
