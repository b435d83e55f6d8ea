// The two-layer views, natively: what the Composition view holds after its
// jobs ran equals composition scores formed here from dense d_model x d_model
// products (loops), and its scatter equals the one-shot core functions with
// the previous-token head the detector finds on the CLI's default sequences;
// a chosen head is used as chosen; the Induction view holds the one-shot
// scores on the same sequences; the Virtual heads view's ranking and the
// chosen virtual head's rows, columns and eigenvalues equal the dense circuit
// formed here; selections round-trip through JSON.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "app/app.h"
#include "app/composition_view.h"
#include "app/induction_view.h"
#include "app/virtual_heads_view.h"
#include "app_test_helpers.h"
#include "core/composition.h"
#include "core/error.h"
#include "core/forward.h"
#include "core/head_detector.h"
#include "core/induction.h"
#include "dense_eigen.h"
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

namespace cs::app {
namespace {

// The virtual head l2.h2 o l1.h1's full OV circuit with loops (double):
// row s = ln1_l1(W_E[s]) W_V1 W_O1 W_V2 W_O2 W_U.
Mat dense_virtual_ov(const Model& m, const VirtualHeadRef& v) {
  const ModelConfig& c = m.config();
  const Mat WE = dense(m.W_E()), WU = dense(m.W_U());
  const Mat chain = naive::matmul(naive::matmul(naive::matmul(dense(m.W_V(v.l1, v.h1)), dense(m.W_O(v.l1, v.h1))),
                                                naive::matmul(dense(m.W_V(v.l2, v.h2)), dense(m.W_O(v.l2, v.h2)))),
                                  WU);  // [d_model, d_vocab_out]
  Mat E;
  for (int t = 0; t < c.d_vocab; ++t) E.push_back(naive::norm_row(m, WE[size_t(t)], naive::blk(v.l1, "ln1")));
  return naive::matmul(E, chain);
}

// The top k of a dense row (ties: smaller id), as the engine ranks.
std::vector<std::pair<int, double>> dense_top(const std::vector<double>& row, int k) {
  std::vector<std::pair<int, double>> all;
  for (size_t i = 0; i < row.size(); ++i) all.push_back({int(i), row[i]});
  std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  all.resize(size_t(k));
  return all;
}

void expect_list(const std::vector<IdValue>& got, const std::vector<double>& dense_row, int k, const std::string& what) {
  const auto want = dense_top(dense_row, k);
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].id, want[i].first) << what << " rank " << i;
    EXPECT_NEAR(got[i].value, want[i].second, 1e-5 * std::max(1.0, std::abs(want[i].second))) << what << " rank " << i;
  }
}

TEST(VirtualHeadsView, RanksEveryVirtualHeadAndExploresTheLargestThenAChosenOne) {
  App a;
  apptest::load(a, model_2l(13), 0.05);
  Session& s = a.session();
  VirtualHeadsView& v = *a.view<VirtualHeadsView>();
  EXPECT_TRUE(s.jobs().idle()) << "nothing runs behind a tab that is not shown";
  a.show(v);
  apptest::run_jobs(s, 0.05);
  ASSERT_EQ(s.error(), "");
  const Model& m = s.shown()->model;
  // The ranking: all 3 x 3 pairs, each with its dense ||W_OV1 W_OV2||, largest first.
  ASSERT_TRUE(v.ranking().has());
  const std::vector<VirtualHeadNorm>& r = v.ranking().value();
  ASSERT_EQ(r.size(), 9u);
  for (size_t i = 0; i < r.size(); ++i) {
    const VirtualHeadRef& h = r[i].head;
    const Mat ov1 = naive::matmul(dense(m.W_V(h.l1, h.h1)), dense(m.W_O(h.l1, h.h1)));
    const Mat ov2 = naive::matmul(dense(m.W_V(h.l2, h.h2)), dense(m.W_O(h.l2, h.h2)));
    EXPECT_NEAR(r[i].norm, fro(naive::matmul(ov1, ov2)), 1e-5);
    if (i > 0) EXPECT_GE(r[i - 1].norm, r[i].norm);
  }
  // With none chosen it explores the largest: its rows, columns and eigenvalues
  // equal the dense circuit's.
  ASSERT_EQ(v.shown_head(s), r.front().head);
  const VirtualHeadRef top = r.front().head;
  const Mat M = dense_virtual_ov(m, top);
  const VirtualHeadSelection& sel = v.selection();
  ASSERT_TRUE(v.ov_outs().has());
  expect_list(v.ov_outs().value(), M[size_t(sel.ov_source)], sel.k, "outs of the largest");
  std::vector<double> column;
  for (const auto& row : M) column.push_back(row[size_t(sel.ov_out)]);
  expect_list(v.ov_sources().value(), column, sel.k, "sources of the largest");
  ASSERT_TRUE(v.eigen().has());
  expect_eigen_match(v.eigen().value().ov, nonzero_dense_eigenvalues(M, 1e-7), "largest");
  Json j = a.views_json()["virtual"];
  EXPECT_EQ(j["selection"]["earlier"], nullptr);
  EXPECT_EQ(j["results"]["head"]["earlier"], head_text(top.l1, top.h1));
  EXPECT_EQ(j["results"]["ranking"]["freshness"], "current");
  EXPECT_EQ(j["results"]["ranking"]["value"].size(), 9u);
  EXPECT_EQ(j["results"]["ov_outs"]["freshness"], "current");
  EXPECT_EQ(j["results"]["eigen"]["freshness"], "current");

  // A chosen one (another pair): its lists are stale until its jobs ran; the ranking stays.
  const VirtualHeadRef other = r.back().head;
  v.select_virtual_head(s, other.l1, other.h1, other.l2, other.h2);
  j = a.views_json()["virtual"]["results"];
  EXPECT_EQ(j["ov_outs"]["freshness"], "stale");
  EXPECT_EQ(j["ranking"]["freshness"], "current");
  v.select_ov_source(s, 7);
  apptest::run_jobs(s, 0.05);
  ASSERT_EQ(s.error(), "");
  EXPECT_EQ(v.shown_head(s), other);
  const Mat M2 = dense_virtual_ov(m, other);
  expect_list(v.ov_outs().value(), M2[7], sel.k, "outs of the chosen one");
  expect_eigen_match(v.eigen().value().ov, nonzero_dense_eigenvalues(M2, 1e-7), "chosen");
  EXPECT_EQ(a.views_json()["virtual"]["selection"]["later"], head_text(other.l2, other.h2));

  // Refused: not an (earlier, later) pair, or not a head; the chosen one stays.
  EXPECT_THROW(v.select_virtual_head(s, 1, 0, 0, 1), Error);
  EXPECT_EQ(v.shown_head(s), other);
  for (const auto& [bad, field] : {std::pair{Json{{"earlier", "0.1"}}, "later"},
                                   std::pair{Json{{"earlier", "0.5"}, {"later", "1.0"}}, "earlier"},
                                   std::pair{Json{{"earlier", "1.0"}, {"later", "1.2"}}, "must be in an earlier layer"},
                                   std::pair{Json{{"earlier", "0.0"}, {"later", "x"}}, "later"}}) {
    try {
      v.set_selection_json(s, bad);
      ADD_FAILURE() << bad.dump();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
    EXPECT_EQ(v.shown_head(s), other) << bad.dump();
  }
  // Back to the largest through the selection JSON (what a URL carries).
  v.set_selection_json(s, Json{{"earlier", nullptr}, {"later", nullptr}});
  apptest::run_jobs(s, 0.05);
  EXPECT_EQ(v.shown_head(s), top);

  // A new model: the largest of its virtual heads again.
  v.select_virtual_head(s, other.l1, other.h1, other.l2, other.h2);
  apptest::load(a, model_2l(14), 0.05);
  EXPECT_EQ(v.selection().earlier_layer, -1);
  a.show(v);
  apptest::run_jobs(s, 0.05);
  const auto want = rank_virtual_heads(composition_scores(s.shown()->model));
  EXPECT_EQ(v.shown_head(s), want.front().head);
}

TEST(VirtualHeadsView, SelectionRoundTrips) {
  VirtualHeadSelection sel;
  sel.earlier_layer = 0;
  sel.earlier_head = 2;
  sel.later_layer = 1;
  sel.later_head = 4;
  sel.embed_norm = false;
  sel.k = 7;
  sel.ov_source = 3;
  sel.ov_out = 9;
  EXPECT_EQ(VirtualHeadSelection::from_json(sel.to_json()), sel);
  EXPECT_EQ(sel.to_json()["earlier"], "0.2");
  EXPECT_EQ(VirtualHeadSelection::from_json(Json::object()), VirtualHeadSelection{});
}

}  // namespace
}  // namespace cs::app
