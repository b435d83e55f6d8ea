// Head badges (core/head_badges.h): the plan's scores equal the one-shot
// functions on the same sequences (prefix matching, the detector's
// previous-token score) and copying_scores (another route to the OV
// eigenvalues than the head summary's); the experiment's shape fits short
// contexts; the session computes them for the shown model after every change
// and keeps their vocabulary sums for the views.
#include <gtest/gtest.h>

#include <cmath>

#include "app/app.h"
#include "app/composition_view.h"
#include "app/head_view.h"
#include "app/heads_view.h"
#include "app/induction_view.h"
#include "app/virtual_heads_view.h"
#include "app_test_helpers.h"
#include "core/circuits.h"
#include "core/error.h"
#include "core/head_badges.h"
#include "core/head_detector.h"
#include "core/induction.h"
#include "io/model_io.h"
#include "test_models.h"

namespace cs {
namespace {

Model model(int layers, int n_ctx, uint64_t seed) { return testmodels::small_ln_model(layers, n_ctx, seed, 0.7f); }

void expect_near(const RowMat& a, const RowMat& b, double tol, const char* what) {
  ASSERT_EQ(a.rows(), b.rows()) << what;
  ASSERT_EQ(a.cols(), b.cols()) << what;
  for (Eigen::Index i = 0; i < a.rows(); ++i)
    for (Eigen::Index j = 0; j < a.cols(); ++j) EXPECT_NEAR(a(i, j), b(i, j), tol) << what << " " << i << "." << j;
}

TEST(HeadBadges, ScoresEqualTheOneShotFunctions) {
  for (int bos : {-1, 29}) {
    const Model m = model(2, 128, 3);
    HeadBadgePlan plan(m, bos);
    plan.run();
    const HeadBadges& b = plan.result();
    EXPECT_EQ(b.experiment.tokens, 25);
    EXPECT_EQ(b.experiment.repeats, 4);
    EXPECT_EQ(b.experiment.examples, 10);
    const auto seqs = repeated_random_tokens(m.config().d_vocab, 25, 4, 10, 0, bos);
    expect_near(b.prefix_matching(), prefix_matching_scores(m, seqs, bos), 1e-5, "prefix matching");
    expect_near(b.previous_token(), detect_heads(m, seqs).previous_token, 1e-5, "previous token");
    expect_near(b.ov_copying, copying_scores(m), 1e-4, "OV copying");
    for (int l = 0; l < 2; ++l)
      for (int h = 0; h < 3; ++h) {
        EXPECT_EQ(b.induction(l, h), b.prefix_matching()(l, h) >= HeadBadges::kInduction);
        EXPECT_EQ(b.previous(l, h), b.previous_token()(l, h) >= HeadBadges::kPrevious);
        EXPECT_EQ(b.copying(l, h), b.ov_copying(l, h) >= HeadBadges::kCopying);
      }
  }
}

TEST(HeadBadges, TheExperimentFitsShortContexts) {
  ModelConfig c;
  c.positional = PosEmbed::Shortformer;
  c.n_ctx = 1024;
  EXPECT_EQ(badge_experiment_shape(c, true).tokens, 25);
  c.n_ctx = 41;  // BOS + 40: 10 x 4
  EXPECT_EQ(badge_experiment_shape(c, true).tokens, 10);
  EXPECT_EQ(badge_experiment_shape(c, true).repeats, 4);
  c.n_ctx = 7;  // BOS + 6: 3 x 2
  EXPECT_EQ(badge_experiment_shape(c, true).repeats, 2);
  EXPECT_EQ(badge_experiment_shape(c, true).tokens, 3);
  c.n_ctx = 2;
  EXPECT_THROW(badge_experiment_shape(c, true), Error);
  // And the plan runs there.
  const Model m = model(2, 9, 4);
  HeadBadgePlan plan(m, -1);
  plan.run();
  EXPECT_EQ(plan.result().experiment.tokens * plan.result().experiment.repeats, 8);
}

TEST(HeadBadges, TheSessionComputesThemForTheShownModel) {
  app::App a;
  const Model m1 = model(2, 128, 5);
  app::apptest::load(a, m1, 0.05);
  const app::Session& s = a.session();
  ASSERT_NE(s.badges(), nullptr);
  HeadBadgePlan want(s.shown()->model, -1, circuit_options(*s.shown(), true));
  want.run();
  expect_near(s.badges()->prefix_matching(), want.result().prefix_matching(), 1e-6, "prefix matching");
  expect_near(s.badges()->ov_copying, want.result().ov_copying, 1e-6, "OV copying");
  // Another model: the old badges are not shown, the new ones follow.
  const Model m2 = model(1, 128, 6);
  app::apptest::stage(a.session(), save_model(m2));
  a.session().load_staged("two", "Two", "", "bundled");
  a.session().tick(0.0);  // the load runs; a badge job for the old model would be dropped
  app::apptest::run_jobs(a.session(), 0.05);
  ASSERT_NE(s.badges(), nullptr);
  EXPECT_EQ(s.badges()->prefix_matching().rows(), 1);
}

// The badges' vocabulary sums are kept by the session: the Head, Heads,
// Composition and Virtual heads views start from them (no second pass over
// W_E: their jobs begin past it), with the same eigenvalues; a new model drops them.
TEST(HeadBadges, TheViewsStartFromTheBadgesVocabularySums) {
  app::App a;
  app::apptest::load(a, model(2, 128, 8), 0.05);
  app::Session& s = a.session();
  ASSERT_NE(s.badges(), nullptr);
  const auto grams = s.embed_grams(true);
  ASSERT_NE(grams, nullptr);
  EXPECT_EQ(s.embed_grams(false), nullptr) << "kept per embed_norm";
  const Model& m = s.shown()->model;
  app::HeadView& hv = *a.view<app::HeadView>();
  hv.select_head(s, 1, 2);
  a.show(hv);
  ASSERT_NE(s.jobs().info(app::HeadView::kEigenSlot), nullptr);
  EXPECT_NE(s.jobs().info(app::HeadView::kEigenSlot)->stage, "vocabulary sums");
  app::CompositionView& cv = *a.view<app::CompositionView>();
  a.show(cv);
  app::VirtualHeadsView& vv = *a.view<app::VirtualHeadsView>();
  a.show(vv);
  app::HeadsView& grid = *a.view<app::HeadsView>();
  a.show(grid);
  ASSERT_NE(s.jobs().info(app::HeadsView::kSummarySlot), nullptr);
  EXPECT_NE(s.jobs().info(app::HeadsView::kSummarySlot)->stage, "vocabulary sums");
  for (int i = 0; i < 100000 && !s.jobs().idle(); ++i) {
    for (const auto& j : s.jobs().list()) EXPECT_NE(j.stage, "vocabulary sums") << j.label;
    s.tick(0.05);
  }
  ASSERT_EQ(s.error(), "");
  EXPECT_EQ(s.embed_grams(true), grams);
  const auto ov = ov_eigenvalues(m, 1, 2);
  ASSERT_TRUE(hv.eigen().has());
  for (size_t i = 0; i < ov.size(); ++i) EXPECT_NEAR(std::abs(hv.eigen().value().ov[i] - ov[i]), 0.0, 1e-9);
  ASSERT_TRUE(cv.scatter().has());
  ASSERT_TRUE(vv.eigen().has());
  ASSERT_TRUE(grid.summary().has());
  // Unticking LayerNorm on W_E needs the other sums: computed once, then kept.
  hv.set_embed_norm(s, false);
  EXPECT_EQ(s.jobs().info(app::HeadView::kEigenSlot)->stage, "vocabulary sums");
  app::apptest::run_jobs(s, 0.05);
  EXPECT_NE(s.embed_grams(false), nullptr);
  // A new model: the old sums are not offered.
  app::apptest::stage(s, save_model(model(2, 128, 9)));
  const uint64_t before = s.generation();
  s.load_staged("other", "Other", "", "bundled");
  for (int i = 0; i < 100000 && s.generation() == before; ++i) s.tick(0.05);  // until it is shown
  ASSERT_NE(s.generation(), before);
  EXPECT_EQ(s.embed_grams(false), nullptr) << "dropped with the old model";
  app::apptest::run_jobs(s, 0.05);
  ASSERT_NE(s.embed_grams(true), nullptr);  // the new model's badges computed their own
  EXPECT_NE(s.embed_grams(true), grams);
}

// The Induction view's default experiment is the badges': shown at once,
// nothing computed again.
TEST(HeadBadges, TheInductionViewShowsTheBadgesExperimentWithoutRunningItAgain) {
  app::App a;
  app::apptest::load(a, model(2, 128, 7), 0.05);
  app::Session& s = a.session();
  ASSERT_NE(s.badges(), nullptr);
  app::InductionView& v = *a.view<app::InductionView>();
  a.show(v);
  EXPECT_FALSE(s.jobs().running(app::InductionView::kSlot)) << "the experiment ran again";
  ASSERT_TRUE(v.experiment().has());
  const InductionExperiment& e = v.experiment().value();
  EXPECT_EQ(e.sequences, repeated_random_tokens(30, 25, 4, 10, 0, -1));
  expect_near(e.prefix_matching, prefix_matching_scores(s.shown()->model, e.sequences, -1), 1e-5, "prefix matching");
  EXPECT_EQ(a.views_json()["induction"]["results"]["experiment"]["freshness"], "current");
}

}  // namespace
}  // namespace cs
