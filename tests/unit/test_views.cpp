// The page's views (src/app/view.h, app.h, bigram_view.h), natively: the
// bigram view's results against a dense table computed here with loops
// (naive::bigram_table) and against core, the one freshness rule, a newer
// selection dropping the older job, the selection as JSON, and "adding a
// view": a view registered in this file alone shows up in the registry, the
// tabs and the views JSON.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "app/app.h"
#include "app/bigram_view.h"
#include "core/error.h"
#include "io/model_io.h"
#include "app_test_helpers.h"
#include "naive_reference.h"

namespace cs::app {
namespace {

using apptest::load;
using apptest::run_jobs;

// ---- a test-only view, registered with the one line a new view needs ----------
struct CountSelection {
  int token = 0;
  Json to_json() const { return Json{{"token", token}}; }
  static CountSelection from_json(const Json& j) {
    if (!j.is_object() || !j.contains("token") || !j.at("token").is_number_integer())
      throw Error("test_only selection: \"token\" must be an integer");
    return CountSelection{int(j.at("token").get<int64_t>())};
  }
};

class TestOnlyView final : public SelectionView<CountSelection> {
 public:
  const char* id() const override { return "test_only"; }
  const char* title() const override { return "Test only"; }
  void on_model(Session& s, ModelChange) override {
    // Models, not calls: App also runs on_model from the fresh selection to
    // learn what a fresh page shows (App::record_baselines).
    if (s.generation() != last_generation) ++models_seen;
    last_generation = s.generation();
    sel_.token = clamp_token(sel_.token, s.vocab());
    defer_until_shown();  // its "work" waits for its tab
  }
  Json state_json(const Session&) const override { return Json{{"models_seen", models_seen}}; }
  int models_seen = 0;
  uint64_t last_generation = ~uint64_t(0);
  int starts = 0;  // deferred work run

 private:
  void apply_selection(Session& s) override { sel_.token = clamp_token(sel_.token, s.vocab()); }
  void start_deferred(Session&) override { ++starts; }
};

CS_REGISTER_VIEW(TestOnlyView, 1000);

// ---- helpers --------------------------------------------------------------------
Model small_model(uint64_t seed, int d_vocab, Norm norm = Norm::LN) {
  ModelConfig c;
  c.n_layers = 1;
  c.d_model = 8;
  c.n_heads = 2;
  c.d_head = 4;
  c.n_ctx = 8;
  c.d_vocab = d_vocab;
  c.normalization = norm;
  Model m(c);
  randomize(m, seed, 0.7f);
  return m;
}

// Ids of v sorted by value descending (ties: smaller id first).
std::vector<int> ranking(const std::vector<double>& v) {
  std::vector<int> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return v[size_t(a)] > v[size_t(b)]; });
  return idx;
}

// ---- registry, tabs and state JSON ----------------------------------------------
TEST(Views, AViewRegisteredInItsOwnFileShowsUpEverywhere) {
  std::vector<std::string> ids;
  for (const auto& r : registered_views()) ids.push_back(r.id);
  EXPECT_NE(std::find(ids.begin(), ids.end(), "bigram"), ids.end());
  EXPECT_NE(std::find(ids.begin(), ids.end(), "test_only"), ids.end());

  App a;
  const auto tabs = a.tabs();
  ASSERT_GE(tabs.size(), 2u);
  EXPECT_EQ(tabs.front().id, "bigram") << "order 0 comes first";
  EXPECT_EQ(tabs.front().title, "Direct path (bigrams)");
  EXPECT_EQ(tabs.back().id, "test_only");
  EXPECT_EQ(tabs.back().title, "Test only");
  ASSERT_NE(a.view<TestOnlyView>(), nullptr);
  EXPECT_EQ(a.find("test_only"), a.view<TestOnlyView>());

  Json j = a.views_json();
  ASSERT_TRUE(j.contains("test_only"));
  EXPECT_EQ(j["test_only"]["title"], "Test only");
  EXPECT_EQ(j["test_only"]["selection"], Json({{"token", 0}}));
  EXPECT_EQ(j["test_only"]["results"], Json({{"models_seen", 0}}));

  // It hears about models and takes its selection from JSON like any view.
  load(a, small_model(1, 30));
  EXPECT_EQ(a.view<TestOnlyView>()->models_seen, 1);
  a.set_selections(Json{{"test_only", Json{{"token", 99}}}});
  EXPECT_EQ(a.views_json()["test_only"]["selection"], Json({{"token", 29}})) << "clamped to the vocabulary";
  EXPECT_THROW(a.set_selections(Json{{"no_such_view", Json::object()}}), Error);
}

// Work a model change defers runs once, when (and only when) its tab is shown.
TEST(Views, DeferredWorkRunsOnceWhenItsTabIsShown) {
  App a;
  TestOnlyView& v = *a.view<TestOnlyView>();
  load(a, small_model(1, 30));
  EXPECT_TRUE(v.deferred());
  EXPECT_EQ(v.starts, 0);
  a.show(*a.find("bigram"));  // another tab
  EXPECT_EQ(v.starts, 0);
  EXPECT_EQ(a.open_view(), "bigram");
  a.show(v);
  EXPECT_EQ(v.starts, 1);
  EXPECT_FALSE(v.deferred());
  EXPECT_EQ(a.open_view(), "test_only");
  a.show(v);  // every frame shows the tab again: nothing more runs
  EXPECT_EQ(v.starts, 1);
  load(a, small_model(2, 31));  // a new model defers again
  EXPECT_EQ(v.starts, 1);
  a.show(v);
  EXPECT_EQ(v.starts, 2);
}

// ---- the bigram view ----------------------------------------------------------------
TEST(BigramViewTest, ResultsEqualTheNaiveTableAndCore) {
  App a;
  const Model m = small_model(2, 40);
  load(a, m);
  Session& s = a.session();
  BigramView& v = *a.view<BigramView>();
  const Model& shown = s.shown()->model;
  const naive::Mat table = naive::bigram_table(shown);  // [d_vocab][d_vocab_out]

  // A new model without a tokenizer: source 0, the reverse lookup of its top next token.
  EXPECT_EQ(v.selection().source, 0);
  ASSERT_TRUE(v.top_next().has());
  EXPECT_EQ(v.top_next().key(), (TokenK{0, 10}));
  const std::vector<int> want0 = ranking(table[0]);
  EXPECT_EQ(v.selection().next, want0[0]) << "the reverse lookup follows the top next token";
  EXPECT_EQ(v.selection().block_tokens, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));

  for (int src : {5, 39}) {
    v.select_source(s, src);
    v.set_top_k(s, 7);
    run_jobs(s);
    const auto& top = v.top_next().value();
    const std::vector<int> want = ranking(table[size_t(src)]);
    ASSERT_EQ(top.size(), 7u);
    for (size_t i = 0; i < 7; ++i) {
      EXPECT_EQ(top[i].id, want[i]);
      EXPECT_NEAR(top[i].logit, table[size_t(src)][size_t(want[i])], 1e-4);
    }
    const auto core = bigram_top_next(shown, src, 7);
    for (size_t i = 0; i < 7; ++i) {
      EXPECT_EQ(top[i].id, core[i].id);
      EXPECT_EQ(top[i].logit, core[i].logit);
      EXPECT_EQ(top[i].prob, core[i].prob);
    }
  }
  // Reverse lookup: the column of the table.
  v.set_top_k_sources(s, 6);
  v.select_next(s, 11);
  run_jobs(s, 0.0);  // one unit per tick
  std::vector<double> col(table.size());
  for (size_t r = 0; r < table.size(); ++r) col[r] = table[r][11];
  const std::vector<int> want = ranking(col);
  const auto& src = v.top_sources().value();
  ASSERT_EQ(src.size(), 6u);
  EXPECT_EQ(v.top_sources().key(), (TokenK{11, 6}));
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(src[i].id, want[i]);
    EXPECT_NEAR(src[i].logit, col[size_t(want[i])], 1e-4);
  }
  // The heatmap block: the table at the chosen tokens.
  v.clear_block_tokens(s);
  v.add_block_tokens(s, {3, 17, 3, 200, 9});
  EXPECT_EQ(v.selection().block_tokens, (std::vector<int>{3, 17, 9})) << "no repeats, nothing out of range";
  const RowMat& b = v.block().value();
  const int ids[] = {3, 17, 9};
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) EXPECT_NEAR(b(r, c), table[size_t(ids[r])][size_t(ids[c])], 1e-4);
}

TEST(BigramViewTest, FreshnessStaleAndPending) {
  App a;
  load(a, small_model(3, 40));
  Session& s = a.session();
  BigramView& v = *a.view<BigramView>();
  Freshness f = v.top_next().freshness(v.wanted_top_next(), s.generation(), s.jobs());
  EXPECT_STREQ(f.label(), "current");
  EXPECT_FALSE(f.faded());

  v.select_source(s, 9);  // the old result stays until the new one is in
  f = v.top_next().freshness(v.wanted_top_next(), s.generation(), s.jobs());
  EXPECT_TRUE(f.has);
  EXPECT_TRUE(f.stale);
  EXPECT_TRUE(f.pending);
  EXPECT_STREQ(f.label(), "stale");
  EXPECT_FALSE(f.faded()) << "not faded before the job's first frame (no flicker when it finishes in one)";
  Json j = a.views_json()["bigram"]["results"]["top_next"];
  EXPECT_EQ(j["freshness"], "stale");
  EXPECT_EQ(j["pending"], true);
  EXPECT_EQ(j["key"]["token"], 0);
  run_jobs(s);
  f = v.top_next().freshness(v.wanted_top_next(), s.generation(), s.jobs());
  EXPECT_STREQ(f.label(), "current");
  EXPECT_EQ(v.top_next().key().token, 9);

  // A job past its first frame fades the old result; cancelled, the result stays stale and faded.
  Freshness p;
  p.has = p.pending = true;
  p.pending_frames = 1;
  EXPECT_TRUE(p.faded());
  v.select_source(s, 10);
  s.jobs().cancel(BigramView::kTopNextSlot);
  f = v.top_next().freshness(v.wanted_top_next(), s.generation(), s.jobs());
  EXPECT_TRUE(f.stale);
  EXPECT_FALSE(f.pending);
  EXPECT_TRUE(f.faded());
  v.select_source(s, 9);
  run_jobs(s);

  // Same input, another model generation: stale too (the rule also checks the model).
  Result<int, int> r("nowhere");
  r.set(4, s.generation(), 1);
  EXPECT_FALSE(r.freshness(4, s.generation(), s.jobs()).stale);
  EXPECT_TRUE(r.freshness(4, s.generation() + 1, s.jobs()).stale);
  EXPECT_TRUE(r.freshness(5, s.generation(), s.jobs()).stale);

  // Raw weights: results of the processed weights are dropped, the selection kept, results recomputed.
  s.set_raw(true);
  run_jobs(s);
  EXPECT_EQ(v.selection().source, 9);
  ASSERT_TRUE(v.top_next().has());
  EXPECT_EQ(v.top_next().generation(), s.generation());
  const auto raw_top = bigram_top_next(s.shown()->model, 9, v.selection().k);
  EXPECT_EQ(v.top_next().value().front().id, raw_top.front().id);
  EXPECT_EQ(v.top_next().value().front().logit, raw_top.front().logit);

  // Legacy "bigram" key, as the browser tests read it.
  Json root;
  a.legacy_state_json(root);
  EXPECT_EQ(root["bigram"]["source"], 9);
  EXPECT_EQ(root["bigram"]["top_next_source"], 9);
  EXPECT_EQ(root["bigram"]["top_next_pending"], false);
  EXPECT_EQ(root["bigram"]["top_next"].size(), size_t(v.selection().k));
}

TEST(BigramViewTest, ANewerSelectionCancelsTheOlderJob) {
  App a;
  load(a, small_model(4, 3000));
  Session& s = a.session();
  BigramView& v = *a.view<BigramView>();
  v.select_next(s, 100);
  s.tick(0.0);  // one unit of the lookup of 100
  ASSERT_TRUE(s.jobs().running(BigramView::kTopSourcesSlot)) << "the lookup takes more than one unit";
  v.select_next(s, 2000);
  // From now on only 2000's result may ever appear.
  for (int i = 0; i < 100000 && !s.jobs().idle(); ++i) {
    s.tick(0.0);
    if (v.top_sources().has()) {
      EXPECT_NE(v.top_sources().key().token, 100);
    }
  }
  ASSERT_TRUE(v.top_sources().has());
  EXPECT_EQ(v.top_sources().key().token, 2000);
  const auto want = bigram_top_sources(s.shown()->model, 2000, v.selection().k_sources);
  ASSERT_EQ(v.top_sources().value().size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(v.top_sources().value()[i].id, want[i].id);
}

TEST(BigramViewTest, SelectionAsJson) {
  App a;
  load(a, small_model(5, 40));
  Session& s = a.session();
  BigramView& v = *a.view<BigramView>();
  v.set_selection_json(s, Json{{"source", 12}, {"k", 3}, {"next", 500}, {"k_sources", 4}, {"block_tokens", {1, 2}}});
  EXPECT_EQ(v.selection().source, 12);
  EXPECT_EQ(v.selection().next, 39) << "clamped to the vocabulary";
  run_jobs(s);
  EXPECT_EQ(v.top_next().key(), (TokenK{12, 3}));
  EXPECT_EQ(v.top_sources().key(), (TokenK{39, 4}));
  const Json back = v.selection_json();
  EXPECT_EQ(BigramSelection::from_json(back), v.selection());
  EXPECT_EQ(back["block_tokens"], Json({1, 2}));
  try {
    v.set_selection_json(s, Json{{"k", "ten"}});
    FAIL() << "a string k was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("\"k\""), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cs::app
