// The Train view (src/app/train_view.h, train_run.h), natively and under Node:
// a run stepped a unit per tick, paused and resumed, reaches exactly the
// weights of train::Trainer stepped straight through (the CLI's loop); its
// evaluations come at the CLI's steps with the trainer's own scores; the
// phase change is found where the best prefix-matching score jumps; the
// weights open as the page's model; bad selections name the field.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "app/export.h"
#include "app/session.h"
#include "app/train_view.h"
#include "app_test_helpers.h"
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

  // The CLI's loop: one Trainer stepped straight through with the same config
  // (its batch split into the same groups, on threads natively).
  const train::TrainConfig cfg = v.selection().config();
  train::Trainer t(cfg, {});
  std::vector<float> losses;
  std::vector<int64_t> eval_steps{0};
  std::vector<train::Evaluation> evals{t.evaluate()};
  while (!t.done()) {
    losses.push_back(t.train_step().loss);
    if (t.step() % cfg.eval_every == 0 || t.done()) evals.push_back(t.evaluate());
  }
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
  const FileSet now = save_model(v.run()->trainer().model());
  EXPECT_EQ(s.active()->files->at("model.safetensors"), now.at("model.safetensors"));
  EXPECT_EQ(s.shown()->model.config().n_layers, 2);
  ASSERT_TRUE(s.shown()->tokenizer.has_value());  // the run's words, with its BOS
  EXPECT_EQ(bos_or_none(*s.shown()), 0);

  v.open_model(s, 4);
  apptest::run_jobs(s, 1000.0);
  const FileSet at4 = save_model(*v.run()->snapshots()[1].model);
  EXPECT_EQ(v.run()->snapshots()[1].step, 4);
  EXPECT_EQ(s.active()->files->at("model.safetensors"), at4.at("model.safetensors"));
  EXPECT_NE(at4.at("model.safetensors"), now.at("model.safetensors"));
  EXPECT_THROW(v.open_model(s, 5), Error);  // no snapshot there

  std::string name;
  const FileSet saved = v.save_files(name);
  EXPECT_EQ(name, "trained-in-page-induction-step-12");
  EXPECT_TRUE(saved.count("model.safetensors") && saved.count("config.json") && saved.count("tokenizer.json"));
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
  Json j = tiny_selection();
  j["preset"] = "nope";
  refused(j, "\"preset\"");
  j = tiny_selection();
  j["layers"] = 9;
  refused(j, "\"layers\"");
  j = tiny_selection();
  j["lr"] = "fast";
  refused(j, "\"lr\"");
  j = tiny_selection();
  j["head"] = "2.0";
  refused(j, "\"head\"");
  j = tiny_selection();
  j["max_len"] = 12;  // n_ctx 16 with a BOS holds two copies of at most 7
  refused(j, "max_len");
  // A selection round-trips through its JSON.
  EXPECT_EQ(TrainSelection::from_json(v.selection().to_json()), v.selection());
}

}  // namespace
}  // namespace cs::app
