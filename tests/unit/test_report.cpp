// The analysis report (core/report.h, io/report_json.h, app/analysis_report.h):
// the chain of plans gives the numbers of the analyses run one by one (each of
// them checked against dense loops in its own tests), the previous-token head
// and the virtual-head ranking agree with loops written here, stepping it a
// unit at a time or on threads does the same arithmetic, and the page's
// download is the JSON `circuitscope report` prints for the shown model. Also
// PlanChain (core/sliced.h), which the report is made of.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "app/analysis_report.h"
#include "app/app.h"
#include "app_test_helpers.h"
#include "core/composition.h"
#include "core/error.h"
#include "core/head_badges.h"
#include "core/head_summary.h"
#include "core/induction.h"
#include "core/report.h"
#include "core/processing.h"
#include "core/sliced.h"
#include "io/model_io.h"
#include "io/report_json.h"
#include "test_models.h"

namespace cs {
namespace {

// ---- PlanChain -------------------------------------------------------------------

// A plan of n units that each append `tag` to *log.
std::unique_ptr<WorkPlan> tagging_plan(int n, int tag, std::vector<int>* log) {
  auto p = std::make_unique<WorkPlan>();
  for (int i = 0; i < n; ++i) p->add("unit", 1, [tag, log] { log->push_back(tag); });
  return p;
}

TEST(PlanChain, MakesEachStageAfterTheOneBeforeFinished) {
  std::vector<int> log;
  int first_result = 0, made_second_with = -1;
  PlanChain c;
  c.then<WorkPlan>("first", 1, [&] { return tagging_plan(2, 1, &log); },
                   [&](WorkPlan& p) { first_result = int(p.units_done()); });
  c.then<WorkPlan>("nothing", 5, [&]() -> std::unique_ptr<WorkPlan> { return nullptr; }, {});
  c.then<WorkPlan>("second", 2,
                   [&] {
                     made_second_with = first_result;  // the first stage's result is there when this is made
                     return tagging_plan(2, 2, &log);
                   },
                   {});
  EXPECT_EQ(c.stage(), "first");
  EXPECT_EQ(c.progress(), 0.f);
  EXPECT_FALSE(c.step(0));  // one unit per zero-budget step
  EXPECT_EQ(log, std::vector<int>{1});
  EXPECT_EQ(c.stage(), "first: unit");
  EXPECT_FLOAT_EQ(c.progress(), 0.5f * 1.f / 8.f);  // weights 1, 5, 2
  EXPECT_EQ(made_second_with, -1);
  EXPECT_FALSE(c.step(0));  // the first stage ends; the empty one is passed, the second made
  EXPECT_EQ(first_result, 2);
  EXPECT_EQ(made_second_with, 2);
  EXPECT_FLOAT_EQ(c.progress(), 6.f / 8.f);
  EXPECT_FALSE(c.step(0));
  EXPECT_TRUE(c.step(0));
  EXPECT_EQ(log, (std::vector<int>{1, 1, 2, 2}));
  EXPECT_TRUE(c.done());
  EXPECT_EQ(c.progress(), 1.f);
  EXPECT_EQ(c.stage(), "done");

  PlanChain big;  // a large budget runs every stage in one call
  log.clear();
  for (int s = 0; s < 3; ++s) big.then<WorkPlan>("s", 1, [&, s] { return tagging_plan(3, s, &log); }, {});
  EXPECT_TRUE(big.step(1e9));
  EXPECT_EQ(log.size(), 9u);

  PlanChain threads;  // run_concurrently: the same units in the same order of stages
  log.clear();
  for (int s = 0; s < 3; ++s) threads.then<WorkPlan>("s", 1, [&, s] { return tagging_plan(1, s, &log); }, {});
  threads.run_concurrently(4);
  EXPECT_EQ(log, (std::vector<int>{0, 1, 2}));
  EXPECT_TRUE(threads.done());
}

TEST(PlanChain, AFailingStageSpendsTheChain) {
  int made = 0;
  PlanChain c;
  c.then<WorkPlan>("bad", 1,
                   [] {
                     auto p = std::make_unique<WorkPlan>();
                     p->add("throws", 1, [] { throw Error("bad unit"); });
                     return p;
                   },
                   {});
  c.then<WorkPlan>("after", 1, [&] { ++made; return std::make_unique<WorkPlan>(); }, {});
  EXPECT_THROW(c.run(), Error);
  EXPECT_THROW(c.step(1e9), Error);
  EXPECT_EQ(made, 0);
  PlanChain d;
  d.then<WorkPlan>("make throws", 1, []() -> std::unique_ptr<WorkPlan> { throw Error("cannot make"); }, {});
  EXPECT_THROW(d.step(0), Error);
  EXPECT_THROW(d.step(0), Error);
}

// ---- the report ------------------------------------------------------------------

Model model(int layers, int n_ctx, uint64_t seed) { return testmodels::small_ln_model(layers, n_ctx, seed, 0.7f); }

void expect_same(const RowMat& a, const RowMat& b, const std::string& what) {
  ASSERT_EQ(a.rows(), b.rows()) << what;
  ASSERT_EQ(a.cols(), b.cols()) << what;
  for (Eigen::Index i = 0; i < a.size(); ++i) {
    if (std::isnan(a.data()[i])) EXPECT_TRUE(std::isnan(b.data()[i])) << what;
    else EXPECT_EQ(a.data()[i], b.data()[i]) << what << " entry " << i;
  }
}

Report run_report(const Model& m, const ReportOptions& opt, bool unit_by_unit) {
  ReportPlan p(m, opt);
  if (unit_by_unit) {
    float last = 0.f;
    while (!p.step(0)) {
      EXPECT_GE(p.progress(), last);  // progress only grows
      last = p.progress();
      EXPECT_NE(p.stage(), "done");
    }
  } else {
    const int old = analysis_threads();
    set_analysis_threads(4);
    p.run();
    set_analysis_threads(old);
  }
  EXPECT_TRUE(p.done());
  return p.result();
}

TEST(Report, EqualsTheAnalysesRunOneByOne) {
  for (int n_ctx : {20, 128}) {  // a short context shortens the experiment (badge_experiment_shape)
    const Model m = model(2, n_ctx, 11);
    const ModelConfig& c = m.config();
    ReportOptions opt;
    opt.circuit.normalize_embed = true;
    opt.bos = 3;
    opt.virtual_top = 5;
    const Report r = run_report(m, opt, /*unit_by_unit=*/true);
    const std::string at = "n_ctx " + std::to_string(n_ctx);

    // Heads: head_summaries with the same options.
    HeadSummaryOptions ho;
    ho.circuit = opt.circuit;
    const std::vector<HeadSummary> heads = head_summaries(m, ho);
    ASSERT_EQ(r.heads.size(), heads.size());
    for (size_t i = 0; i < heads.size(); ++i) {
      EXPECT_EQ(dump_json(head_summary_json(r.heads[i])), dump_json(head_summary_json(heads[i]))) << at;
      EXPECT_FALSE(std::isnan(r.heads[i].ov_diagonal_top1)) << "the diagonal test ran";
    }

    // Composition and the virtual heads: every pair, ranked by a loop here.
    const CompositionScores s = composition_scores(m);
    EXPECT_EQ(r.composition.K, s.K);
    EXPECT_EQ(r.composition.virtual_norm, s.virtual_norm);
    EXPECT_EQ(r.composition.baseline, s.baseline);
    const int H = c.n_heads;
    ASSERT_EQ(r.virtual_heads.size(), size_t(H * H));  // two layers: H x H virtual heads
    for (size_t i = 0; i < r.virtual_heads.size(); ++i) {
      const VirtualHeadRef v = r.virtual_heads[i].head;
      EXPECT_EQ(r.virtual_heads[i].norm, s.virtual_norm(v.l1 * H + v.h1, v.l2 * H + v.h2));
      if (i > 0) {
        EXPECT_GE(r.virtual_heads[i - 1].norm, r.virtual_heads[i].norm) << "largest first";
      }
    }
    ASSERT_EQ(r.virtual_eigenvalues.size(), 5u);
    for (size_t i = 0; i < 5; ++i) {
      const VirtualHeadRef v = r.virtual_heads[i].head;
      const auto once = virtual_ov_eigenvalues(m, v.l1, v.h1, v.l2, v.h2, opt.circuit);
      ASSERT_EQ(r.virtual_eigenvalues[i].size(), once.size());
      for (size_t k = 0; k < once.size(); ++k)
        EXPECT_NEAR(std::abs(r.virtual_eigenvalues[i][k] - once[k]), 0.0, 1e-9 * (1 + std::abs(once[k]))) << at;
    }

    // The experiment: its shape for this context, the plan run alone.
    const BadgeExperimentShape shape = badge_experiment_shape(c, true);
    EXPECT_EQ(r.induction.tokens, shape.tokens);
    EXPECT_EQ(r.induction.repeats, shape.repeats);
    EXPECT_EQ(r.induction.examples, 10);
    EXPECT_EQ(r.induction.seed, 0u);
    EXPECT_EQ(r.induction.bos, 3);
    InductionExperimentPlan ex(m, shape.tokens, shape.repeats, shape.examples, 0, 3, opt.circuit);
    ex.run();
    EXPECT_EQ(r.induction.sequences, ex.result().sequences);
    expect_same(r.induction.prefix_matching, ex.result().prefix_matching, at + " prefix matching");
    expect_same(r.induction.previous_token, ex.result().previous_token, at + " previous token");
    EXPECT_EQ(r.induction.loss.repeats, ex.result().loss.repeats);

    // The scatter: from the head of layer 0 (the layers before the last) with
    // the highest previous-token score, found by a loop here.
    int best = 0;
    for (int h = 1; h < H; ++h)
      if (r.induction.previous_token(0, h) > r.induction.previous_token(0, best)) best = h;
    ASSERT_TRUE(r.scatter.has_value());
    EXPECT_EQ(r.scatter->prev_layer, 0);
    EXPECT_EQ(r.scatter->prev_head, best);
    const std::vector<InductionScatterPoint> pts = induction_scatter(m, 0, best, embed_grams(m, opt.circuit));
    ASSERT_EQ(r.scatter->points.size(), pts.size());
    ASSERT_EQ(pts.size(), size_t(H));
    for (size_t i = 0; i < pts.size(); ++i) {
      EXPECT_EQ(r.scatter->points[i].layer, 1);
      EXPECT_NEAR(r.scatter->points[i].k_term_positivity, pts[i].k_term_positivity, 1e-9) << at;
      EXPECT_NEAR(r.scatter->points[i].ov_positivity, pts[i].ov_positivity, 1e-9) << at;
    }

    // Threads or a unit per step: the same numbers, to the bit.
    const Report t = run_report(m, opt, /*unit_by_unit=*/false);
    const LoadedModel lm{m, std::nullopt, {}, "model.safetensors", nullptr};
    EXPECT_EQ(dump_json(report_json(lm, opt, t)), dump_json(report_json(lm, opt, r))) << at;
  }
}

TEST(Report, ModelsWithoutHeadsOrWithOneLayer) {
  const Model one = model(1, 32, 5);
  ReportOptions opt;
  opt.diagonal = false;
  const Report r = run_report(one, opt, true);
  EXPECT_EQ(r.heads.size(), 3u);
  EXPECT_TRUE(std::isnan(r.heads[0].ov_diagonal_top1)) << "no diagonal test when not asked";
  EXPECT_TRUE(r.virtual_heads.empty());
  EXPECT_TRUE(r.virtual_eigenvalues.empty());
  EXPECT_FALSE(r.scatter.has_value());
  EXPECT_EQ(r.induction.prefix_matching.rows(), 1);

  const Model zero = model(0, 32, 6);
  const Report z = run_report(zero, ReportOptions{}, true);
  EXPECT_TRUE(z.heads.empty());
  EXPECT_EQ(z.composition.n_layers, 0);
  EXPECT_FALSE(z.scatter.has_value());
  EXPECT_TRUE(std::isfinite(z.induction.loss.first)) << "the direct path still predicts";
  const LoadedModel lm{zero, std::nullopt, {}, "model.safetensors", nullptr};
  const Json j = report_json(lm, ReportOptions{}, z);
  EXPECT_TRUE(j["heads"]["heads"].empty());
  EXPECT_TRUE(j["induction"]["k_term"].is_null());

  ModelConfig tiny = one.config();  // no room for a repeated sequence: refused before any work
  tiny.n_ctx = 1;
  Model short_ctx(tiny);
  EXPECT_THROW(ReportPlan(short_ctx, ReportOptions{}), Error);
}

TEST(Report, CommandsNameTheOptionsThatReproduceEachSection) {
  const Model m = model(2, 20, 3);
  ReportOptions opt;
  opt.circuit.normalize_embed = false;
  opt.diagonal = false;
  opt.virtual_top = 7;
  const Report r = run_report(m, opt, false);
  const Json j = report_commands(m, opt, r);  // small_ln_model's weights are unprocessed: --raw
  EXPECT_EQ(j["heads"], "--json --raw --no-embed-norm --no-diagonal");
  EXPECT_EQ(j["composition"], "--json --raw");
  EXPECT_EQ(j["virtual"], "--json --raw --no-embed-norm --top 7");
  EXPECT_EQ(j["induction"], "--json --raw --no-embed-norm --tokens " + std::to_string(r.induction.tokens) +
                                " --repeats " + std::to_string(r.induction.repeats) + " --examples 10 --seed 0");
  Model processed = m;
  process_weights(processed);
  const Json p = report_commands(processed, ReportOptions{}, r);
  EXPECT_EQ(p["info"], "--json");
  EXPECT_EQ(p["heads"], "--json");
  EXPECT_EQ(p["virtual"], "--json --top 20");
}

}  // namespace

// ---- the page's download -------------------------------------------------------------

namespace app {
namespace {

TEST(AnalysisReport, TheDownloadIsTheReportOfTheShownModel) {
  App a;
  const Model m = model(2, 40, 21);
  apptest::load(a, m, 1.0, testmodels::wordlevel_tokenizer(30), "two-layer");
  Session& s = a.session();
  AnalysisReport& rep = a.analysis_report();
  EXPECT_EQ(rep.state_json(s)["last"], Json(nullptr));
  rep.start(s);
  EXPECT_TRUE(rep.running(s));
  s.tick(0.0);  // one unit: still running, its progress and stage shown
  const Json mid = rep.state_json(s);
  EXPECT_TRUE(mid["running"].get<bool>());
  EXPECT_FALSE(mid["stage"].get<std::string>().empty());
  EXPECT_FALSE(rep.take_ready().has_value());
  apptest::run_jobs(s, 1.0);
  const auto f = rep.take_ready();
  ASSERT_TRUE(f.has_value());
  EXPECT_FALSE(rep.take_ready().has_value()) << "saved once";
  EXPECT_EQ(f->name, "two-layer_analysis_report.json");
  EXPECT_EQ(rep.state_json(s)["last"]["name"], f->name);

  // What the CLI prints for these files: the model loaded as `circuitscope
  // report` loads it (processed, W_E normalized, the tokenizer's BOS).
  const LoadedModel lm = load_model(save_model(m, testmodels::wordlevel_tokenizer(30)));
  ReportOptions opt;
  opt.circuit = circuit_options(lm, true);
  opt.bos = bos_or_none(lm);
  ReportPlan p(lm.model, opt);
  p.run();
  const Json want = report_json(lm, opt, p.result());
  const Json got = Json::parse(f->json);
  EXPECT_EQ(got["commands"], want["commands"]);
  EXPECT_EQ(got["info"], want["info"]);
  EXPECT_EQ(got["induction"]["sequences"], want["induction"]["sequences"]);
  // The two loads are separate copies of the weights: numbers agree to float rounding.
  EXPECT_EQ(got["heads"]["heads"].size(), 6u);
  const auto near = [](const Json& x, const Json& y, const std::string& where, auto& self) -> void {
    if (x.is_number() && y.is_number()) {  // a parsed 3 is unsigned, a written one signed
      const double u = x.get<double>(), v = y.get<double>();
      EXPECT_NEAR(u, v, 1e-5 * (1 + std::abs(v))) << where;
    } else if (x.is_array() || x.is_object()) {
      ASSERT_EQ(x.size(), y.size()) << where;
      auto i = x.begin();
      auto k = y.begin();
      for (; i != x.end(); ++i, ++k) self(*i, *k, where + "/" + (x.is_object() ? i.key() : "#"), self);
    } else {
      ASSERT_EQ(x.type(), y.type()) << where;
      EXPECT_EQ(x, y) << where;
    }
  };
  near(got, want, "", near);
}

TEST(AnalysisReport, ANewModelOrWeightsDropAReportStillRunning) {
  App a;
  apptest::load(a, model(2, 40, 22), 1.0, {}, "first");
  Session& s = a.session();
  AnalysisReport& rep = a.analysis_report();
  rep.start(s);
  s.tick(0.0);
  EXPECT_TRUE(rep.running(s));
  apptest::load(a, model(1, 40, 23), 1.0, {}, "second");
  EXPECT_FALSE(rep.running(s));
  EXPECT_FALSE(rep.take_ready().has_value()) << "no report of the model no longer shown";
  // (The first model's report may have finished while the second loaded: it is not saved then either.)

  rep.start(s);
  s.tick(0.0);
  rep.cancel(s);
  apptest::run_jobs(s);
  EXPECT_FALSE(rep.take_ready().has_value()) << "cancelled";
  const Json last = rep.state_json(s)["last"];
  if (!last.is_null()) EXPECT_EQ(last["name"], "first_analysis_report.json") << "no report of the second model";
}

}  // namespace
}  // namespace app
}  // namespace cs
