// The Prompt view, natively: after its jobs ran it holds the text's forward
// pass (tokens, patterns, top predictions and losses equal a dense forward()
// of the same ids and a full sort of its logits), the logit split at the
// chosen position (equal to the row of a full path expansion, and summing to
// the logit), and the ablated run (equal to forward() with the patterns frozen
// and the heads zeroed); clicking a token locks it, clicking again unlocks;
// bad selections name the field and change nothing.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include "app/app.h"
#include "app/prompt_view.h"
#include "app_test_helpers.h"
#include "core/error.h"
#include "core/forward.h"
#include "core/paths.h"
#include "test_models.h"

namespace cs::app {
namespace {

Model model_2l(uint64_t seed) { return testmodels::small_ln_model(2, 16, seed, 0.9f); }

// The k largest of a row, by a full sort.
std::vector<int> top_ids(const RowMat& logits, int t, int k) {
  std::vector<int> ids(size_t(logits.cols()));
  std::iota(ids.begin(), ids.end(), 0);
  std::stable_sort(ids.begin(), ids.end(), [&](int a, int b) { return logits(t, a) > logits(t, b); });
  ids.resize(size_t(k));
  return ids;
}

struct Fixture {
  App app;
  PromptView* view = nullptr;
  Fixture() {
    apptest::load(app, model_2l(11), 0.05, testmodels::wordlevel_tokenizer(30));
    view = app.view<PromptView>();
    app.show(*view);
  }
  Session& s() { return app.session(); }
  // The model as the page holds it (processed: TransformerLens' defaults), the
  // reference for every number the view shows.
  const Model& shown() { return s().shown()->model; }
  void set(const Json& sel) {
    app.set_selections(Json{{"prompt", sel}});
    apptest::run_jobs(s(), 0.05);
  }
};

const std::vector<int> kIds{1, 2, 3, 7, 1, 2, 3, 9, 1, 2};
const char* kText = "t1 t2 t3 t7 t1 t2 t3 t9 t1 t2";

TEST(PromptView, HoldsTheForwardPassOfTheText) {
  Fixture f;
  f.set(Json{{"text", kText}});
  ASSERT_EQ(f.s().error(), "");
  const auto& run = f.view->run();
  ASSERT_TRUE(run.has());
  const PromptRun& r = *run.value();
  EXPECT_EQ(r.ids, kIds);  // WordLevel: no BOS
  const ForwardResult want = forward(f.shown(), kIds);
  ASSERT_EQ(r.cache.pattern.size(), want.cache.pattern.size());
  for (size_t i = 0; i < want.cache.pattern.size(); ++i)
    EXPECT_LE((r.cache.pattern[i] - want.cache.pattern[i]).cwiseAbs().maxCoeff(), 1e-6) << "pattern " << i;
  const std::vector<float> losses = token_losses(want.logits, kIds), got = r.summary.losses();
  ASSERT_EQ(got.size(), losses.size());
  for (size_t t = 0; t < losses.size(); ++t) EXPECT_NEAR(got[t], losses[t], 1e-4);
  // Predictions at the last position (nothing locked).
  EXPECT_EQ(f.view->position(), int(kIds.size()) - 1);
  const Json st = f.view->state_json(f.s());
  EXPECT_EQ(st["run"]["freshness"], "current");
  const Json& top = st["run"]["value"]["top"];
  const std::vector<int> ids = top_ids(want.logits, int(kIds.size()) - 1, PromptView::kTopK);
  ASSERT_EQ(top.size(), ids.size());
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(top[i]["id"], ids[i]) << "rank " << i;
  EXPECT_TRUE(st["run"]["value"]["locked"].is_null());
  // The split is for the top prediction at the last position.
  EXPECT_EQ(f.view->split_token(), ids[0]);
}

TEST(PromptView, LockUnlockAndTheSplitAtTheLockedPosition) {
  Fixture f;
  f.set(Json{{"text", kText}, {"head", "1.2"}});
  const ForwardResult want = forward(f.shown(), kIds);
  const PathExpansion full = expand_paths(f.shown(), kIds, want.cache);
  f.view->click_token(f.s(), 4);
  apptest::run_jobs(f.s(), 0.05);
  EXPECT_EQ(f.view->position(), 4);
  Json st = f.view->state_json(f.s());
  EXPECT_EQ(st["run"]["value"]["locked"], 4);
  EXPECT_EQ(st["run"]["value"]["focus"], 4);
  // The strip's colours: head 1.2's attention from position 4.
  const RowMat& A = want.cache.attn(1, 2, 3);
  for (int j = 0; j < int(kIds.size()); ++j)
    EXPECT_NEAR(st["run"]["value"]["focus_attention"][size_t(j)].get<float>(), A(4, j), 1e-6);
  const int tok = top_ids(want.logits, 4, 1)[0];
  ASSERT_EQ(st["split"]["freshness"], "current");
  const PromptSplit& sp = f.view->split().value();
  EXPECT_EQ(sp.position, 4);
  EXPECT_EQ(sp.token, tok);
  EXPECT_NEAR(sp.logit, want.logits(4, tok), 1e-5);
  const Vec parts = path_logit_contributions(f.shown(), full, 4, tok);
  ASSERT_EQ(sp.contribution.size(), size_t(parts.size()));
  double sum = 0;
  for (size_t i = 0; i < sp.contribution.size(); ++i) {
    EXPECT_NEAR(sp.contribution[i], parts[Eigen::Index(i)], 1e-5) << full.terms[i].name();
    EXPECT_EQ(sp.terms[i].name(), full.terms[i].name());
    sum += sp.contribution[i];
  }
  EXPECT_NEAR(sum, want.logits(4, tok), 1e-4);
  // Another token chosen: its split.
  f.view->set_token(f.s(), 5);
  apptest::run_jobs(f.s(), 0.05);
  EXPECT_EQ(f.view->split().value().token, 5);
  EXPECT_NEAR(f.view->split().value().logit, want.logits(4, 5), 1e-5);
  // Hover shows another position without unlocking.
  f.view->hover_token(2);
  st = f.view->state_json(f.s());
  EXPECT_EQ(st["run"]["value"]["focus"], 2);
  EXPECT_EQ(st["run"]["value"]["locked"], 4);
  f.view->hover_token(-1);
  // Click again: unlocked, predictions back at the last position.
  f.view->click_token(f.s(), 4);
  apptest::run_jobs(f.s(), 0.05);
  st = f.view->state_json(f.s());
  EXPECT_TRUE(st["run"]["value"]["locked"].is_null());
  EXPECT_TRUE(st["run"]["value"]["focus"].is_null());
  EXPECT_EQ(f.view->position(), int(kIds.size()) - 1);
  EXPECT_EQ(f.view->split().value().position, int(kIds.size()) - 1);
}

TEST(PromptView, AblationKeepsThePatternsAndZeroesTheHeads) {
  Fixture f;
  f.set(Json{{"text", kText}, {"ablate", {"1.0", "0.2"}}});
  ASSERT_EQ(f.s().error(), "");
  const ForwardResult full = forward(f.shown(), kIds);
  ForwardOptions o;
  o.frozen_patterns = full.cache.pattern;
  o.ablate.assign(6, 0);
  o.ablate[2] = o.ablate[3] = 1;
  const ForwardResult want = forward(f.shown(), kIds, o);
  ASSERT_TRUE(f.view->ablated().has());
  const LogitSummary& a = f.view->ablated().value();
  const std::vector<float> losses = token_losses(want.logits, kIds), got = a.losses();
  for (size_t t = 0; t < losses.size(); ++t) EXPECT_NEAR(got[t], losses[t], 1e-4);
  const Json st = f.view->state_json(f.s());
  EXPECT_EQ(st["ablated"]["freshness"], "current");
  EXPECT_EQ(st["ablated"]["value"]["heads"].size(), 2u);
  EXPECT_EQ(st["ablated"]["value"]["heads"][0]["layer"], 0);  // sorted
  const std::vector<int> ids = top_ids(want.logits, int(kIds.size()) - 1, PromptView::kTopK);
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(st["ablated"]["value"]["top"][i]["id"], ids[i]);
  // The ablation changes something (the heads are not inert in this model).
  EXPECT_GT(std::abs(a.loss() - f.view->run().value()->summary.loss()), 1e-4);
  // Toggling a head off again, then clearing: no ablated result shown.
  f.view->toggle_ablate(f.s(), HeadId{1, 0});
  apptest::run_jobs(f.s(), 0.05);
  EXPECT_EQ(f.view->ablated().key().heads, (std::vector<HeadId>{{0, 2}}));
  f.view->clear_ablate(f.s());
  apptest::run_jobs(f.s(), 0.05);
  EXPECT_TRUE(f.view->state_json(f.s())["ablated"]["value"].is_null());
}

TEST(PromptView, BadSelectionsNameTheFieldAndChangeNothing) {
  Fixture f;
  f.set(Json{{"text", kText}});
  const Json before = f.view->selection_json();
  for (const auto& [sel, field] : std::vector<std::pair<Json, std::string>>{
           {Json{{"ablate", {"2.0"}}}, "ablate"},
           {Json{{"ablate", "1.0"}}, "ablate"},
           {Json{{"head", "0.3"}}, "head"},
           {Json{{"token", 30}}, "token"},
           {Json{{"position", -2}}, "position"},
           {Json{{"text", 5}}, "text"},
           {Json{{"text", std::string(70000, 'a')}}, "text"}}) {
    try {
      f.app.set_selections(Json{{"prompt", sel}});
      ADD_FAILURE() << "accepted " << sel.dump().substr(0, 80);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
    EXPECT_EQ(f.view->selection_json(), before) << "after " << sel.dump().substr(0, 80);
  }
  EXPECT_EQ(f.view->state_json(f.s())["run"]["freshness"], "current");
  apptest::run_jobs(f.s(), 0.05);
  // Round trip.
  f.set(Json{{"text", kText}, {"position", 3}, {"head", "1.1"}, {"token", 4}, {"ablate", {"1.2", "0.1", "1.2"}}});
  const Json sel = f.view->selection_json();
  EXPECT_EQ(sel["position"], 3);
  EXPECT_EQ(sel["ablate"], Json({"0.1", "1.2"}));
  EXPECT_EQ(PromptSelection::from_json(sel), f.view->selection());
}

TEST(PromptView, ANewModelKeepsTheTextAndDropsTheRest) {
  Fixture f;
  f.set(Json{{"text", kText}, {"position", 3}, {"ablate", {"1.2"}}});
  apptest::load(f.app, model_2l(12), 0.05, testmodels::wordlevel_tokenizer(30));
  f.app.show(*f.view);
  apptest::run_jobs(f.s(), 0.05);
  EXPECT_EQ(f.view->selection().text, kText);
  EXPECT_EQ(f.view->selection().position, -1);
  EXPECT_TRUE(f.view->selection().ablate.empty());
  ASSERT_TRUE(f.view->run().has());
  const ForwardResult want = forward(f.s().shown()->model, kIds);
  EXPECT_NEAR(f.view->run().value()->summary.loss(), mean_loss(want.logits, kIds), 1e-5);
}

}  // namespace
}  // namespace cs::app
