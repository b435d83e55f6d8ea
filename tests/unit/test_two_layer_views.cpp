// The two-layer views, natively: what the Composition view holds after its
// jobs ran equals composition scores formed here from dense d_model x d_model
// products (loops), and its scatter equals the one-shot core functions with
// the previous-token head the detector finds on the CLI's default sequences;
// a chosen head is used as chosen; the Induction view holds the one-shot
// scores on the same sequences; selections round-trip through JSON.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "app/app.h"
#include "app/composition_view.h"
#include "app/induction_view.h"
#include "app_test_helpers.h"
#include "core/composition.h"
#include "core/error.h"
#include "core/forward.h"
#include "core/head_detector.h"
#include "core/induction.h"
#include "naive_reference.h"
#include "test_models.h"

namespace cs::app {
namespace {

Model model_2l(uint64_t seed) { return testmodels::small_ln_model(2, 40, seed, 0.6f); }

using naive::Mat;
template <class M>
Mat dense(const M& x) {
  Mat a(size_t(x.rows()), std::vector<double>(size_t(x.cols())));
  for (Eigen::Index i = 0; i < x.rows(); ++i)
    for (Eigen::Index j = 0; j < x.cols(); ++j) a[size_t(i)][size_t(j)] = x(i, j);
  return a;
}
double fro(const Mat& a) {
  double s = 0;
  for (const auto& r : a)
    for (double v : r) s += v * v;
  return std::sqrt(s);
}

TEST(CompositionView, HoldsTheScoresAndTheScatterOfTheShownModel) {
  App a;
  apptest::load(a, model_2l(7), 0.05);
  Session& s = a.session();
  CompositionView& v = *a.view<CompositionView>();
  EXPECT_TRUE(s.jobs().idle()) << "nothing runs behind a tab that is not shown";
  a.show(v);
  apptest::run_jobs(s, 0.05);
  ASSERT_EQ(s.error(), "");
  ASSERT_TRUE(v.scores().has());
  ASSERT_TRUE(v.scatter().has());
  const Model& m = s.shown()->model;
  // K-composition of every pair: ||W_OV1 (W_Q2 W_K2^T)^T|| / (||W_OV1|| ||W_QK2||), dense.
  for (int h1 = 0; h1 < 3; ++h1)
    for (int h2 = 0; h2 < 3; ++h2) {
      const Mat ov = naive::matmul(dense(m.W_V(0, h1)), dense(m.W_O(0, h1)));
      const Mat qk = naive::matmul(dense(m.W_Q(1, h2)), naive::transpose(dense(m.W_K(1, h2))));
      const double want = fro(naive::matmul(ov, naive::transpose(qk))) / (fro(ov) * fro(qk));
      EXPECT_NEAR(v.scores().value().at(CompositionKind::K, 0, h1, 1, h2), want, 1e-5) << h1 << " " << h2;
    }
  // The scatter: the detector's previous-token head on the CLI's default
  // sequences, with 10 tokens (n_ctx 40 = 4 repeats of 10; no BOS without a tokenizer).
  const auto seqs = repeated_random_tokens(30, 10, CompositionView::kRepeats, CompositionView::kExamples, 0, -1);
  const DetectorScores d = detect_heads(m, seqs);
  Eigen::Index bl = 0, bh = 0;
  d.previous_token.topRows(1).maxCoeff(&bl, &bh);
  const InductionScatter& r = v.scatter().value();
  EXPECT_EQ(r.prev_layer, 0);
  EXPECT_EQ(r.prev_head, int(bh));
  const auto want = induction_scatter(m, 0, int(bh), embed_grams(m, circuit_options(*s.shown(), true)));
  ASSERT_EQ(r.points.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(r.points[i].k_term_positivity, want[i].k_term_positivity, 1e-9);
  // What the page's tests read.
  const Json j = a.views_json()["composition"]["results"];
  EXPECT_EQ(j["scores"]["freshness"], "current");
  EXPECT_EQ(j["scatter"]["value"]["found"], true);
  EXPECT_NEAR(j["scores"]["value"]["K"][0][1][1][2].get<double>(), v.scores().value().at(CompositionKind::K, 0, 1, 1, 2), 1e-6);

  // A chosen head: only the scatter is recomputed, and the old one is stale meanwhile.
  const int other = (int(bh) + 1) % 3;
  v.set_previous_head(s, 0, other);
  EXPECT_EQ(a.views_json()["composition"]["results"]["scatter"]["freshness"], "stale");
  EXPECT_EQ(a.views_json()["composition"]["results"]["scatter"]["pending"], true);
  EXPECT_EQ(a.views_json()["composition"]["results"]["scores"]["freshness"], "current");
  apptest::run_jobs(s, 0.05);
  EXPECT_EQ(v.scatter().value().prev_head, other);
  EXPECT_EQ(a.views_json()["composition"]["results"]["scatter"]["value"]["found"], false);
  const auto chosen = induction_scatter(m, 0, other, embed_grams(m, circuit_options(*s.shown(), true)));
  EXPECT_NEAR(v.scatter().value().points[2].k_term_positivity, chosen[2].k_term_positivity, 1e-9);
}

TEST(CompositionView, OneLayerModelHasNothingToCompose) {
  App a;
  ModelConfig c;
  c.n_layers = 1;
  c.d_model = 8;
  c.n_heads = 2;
  c.d_head = 4;
  c.n_ctx = 8;
  c.d_vocab = 10;
  Model m(c);
  randomize(m, 1, 0.5f);
  apptest::load(a, m, 0.05);
  CompositionView& v = *a.view<CompositionView>();
  a.show(v);
  apptest::run_jobs(a.session(), 0.05);
  EXPECT_EQ(a.session().error(), "");
  EXPECT_FALSE(v.scores().has());
  EXPECT_TRUE(a.views_json()["composition"]["results"]["scores"]["value"].is_null());
}

TEST(CompositionView, SelectionRoundTripsAndNamesABadField) {
  CompositionSelection sel;
  sel.prev_layer = 1;
  sel.prev_head = 3;
  sel.embed_norm = false;
  EXPECT_EQ(CompositionSelection::from_json(sel.to_json()), sel);
  EXPECT_EQ(sel.to_json()["prev"], "1.3");
  EXPECT_EQ(CompositionSelection::from_json(Json{{"prev", nullptr}}).prev_layer, -1);
  for (const Json& bad : {Json{{"prev", "x"}}, Json{{"prev", "1.2.3"}}, Json{{"prev", 5}}, Json{{"prev", "-1.0"}}}) {
    try {
      CompositionSelection::from_json(bad);
      FAIL() << bad.dump();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("prev"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace cs::app

namespace cs::app {
namespace {

TEST(InductionView, HoldsTheExperimentTheCliComputes) {
  App a;
  apptest::load(a, model_2l(11), 0.05);
  Session& s = a.session();
  InductionView& v = *a.view<InductionView>();
  a.show(v);
  // n_ctx 40 cannot hold 25 x 4 tokens: the default is refused with the reason, nothing crashes.
  apptest::run_jobs(s, 0.05);
  EXPECT_NE(s.error().find("n_ctx"), std::string::npos) << s.error();
  EXPECT_FALSE(v.experiment().has());
  s.set_error("");
  v.set_experiment(s, 8, 4, 3, 5);
  apptest::run_jobs(s, 0.05);
  ASSERT_EQ(s.error(), "");
  ASSERT_TRUE(v.experiment().has());
  const Model& m = s.shown()->model;
  const auto seqs = repeated_random_tokens(30, 8, 4, 3, 5, -1);
  const InductionExperiment& r = v.experiment().value();
  EXPECT_EQ(r.sequences, seqs);
  EXPECT_LE((r.prefix_matching - prefix_matching_scores(m, seqs, -1)).cwiseAbs().maxCoeff(), 1e-6f);
  EXPECT_NEAR(r.loss.repeats, repeat_loss(m, seqs, 8, 4, false).repeats, 1e-6);
  // The drawn head: the best prefix-matching head until one is chosen.
  Eigen::Index bl = 0, bh = 0;
  r.prefix_matching.maxCoeff(&bl, &bh);
  EXPECT_EQ(v.shown_head(), (HeadId{int(bl), int(bh)}));
  Json j = a.views_json()["induction"]["results"]["experiment"];
  EXPECT_EQ(j["freshness"], "current");
  EXPECT_EQ(j["value"]["head"]["layer"], int(bl));
  EXPECT_EQ(j["value"]["pattern"].size(), seqs[0].size());
  v.set_head(0, 2);
  j = a.views_json()["induction"]["results"]["experiment"];
  EXPECT_EQ(j["value"]["head"]["head"], 2);
  EXPECT_NEAR(j["value"]["pattern"][5][4].get<double>(), forward(m, seqs[0]).cache.pattern[2](5, 4), 1e-6);
  EXPECT_TRUE(s.jobs().idle()) << "choosing the drawn head recomputes nothing";
}

TEST(InductionView, SelectionRoundTripsAndNamesABadField) {
  InductionSelection sel;
  sel.tokens = 12;
  sel.layer = 1;
  sel.head = 4;
  EXPECT_EQ(InductionSelection::from_json(sel.to_json()), sel);
  for (const Json& bad : {Json{{"tokens", 0}}, Json{{"repeats", 1}}, Json{{"head", "1x"}}, Json{{"examples", "ten"}}}) {
    try {
      InductionSelection::from_json(bad);
      FAIL() << bad.dump();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(bad.begin().key()), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace cs::app
