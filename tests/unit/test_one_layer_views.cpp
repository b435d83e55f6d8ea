// The one-layer views (heads_view.h, head_view.h, skip_trigrams_view.h),
// natively: what each view holds after its jobs ran equals dense OV and QK
// circuits built here with plain loops from the model's tensors (independent
// of the factored engine), their eigenvalues (Eigen's solver on the dense
// matrix), and a brute-force skip-trigram enumeration with the documented
// score (docs/one-layer.md); a new selection makes the old results stale until
// its jobs finish; selections round-trip through JSON.
#include <gtest/gtest.h>

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <tuple>
#include <vector>

#include "app/app.h"
#include "app/head_view.h"
#include "app/heads_view.h"
#include "app/skip_trigrams_view.h"
#include "core/error.h"
#include "io/model_io.h"
#include "app_test_helpers.h"
#include "naive_reference.h"

namespace cs::app {
namespace {

// Tiny budgets: many slices.
void run_jobs(Session& s) { apptest::run_jobs(s, 0.05); }
void load(App& a, const Model& m) { apptest::load(a, m, 0.05); }

using Dense = std::vector<std::vector<double>>;

Model model_1l(uint64_t seed, int d_vocab, Norm norm, PosEmbed pos) {
  ModelConfig c;
  c.n_layers = 1;
  c.d_model = 12;
  c.n_heads = 3;
  c.d_head = 4;
  c.n_ctx = 10;
  c.d_vocab = d_vocab;
  c.normalization = norm;
  c.positional = pos;
  Model m(c);
  randomize(m, seed, 0.6f);
  return m;
}

// E = each row of W_E through block 0's normalization (loops).
Dense embed(const Model& m) {
  const ModelConfig& c = m.config();
  const naive::Tensor WE = naive::tensor(m, "embed.W_E");
  Dense E(size_t(c.d_vocab));
  for (int t = 0; t < c.d_vocab; ++t) {
    std::vector<double> x(size_t(c.d_model));
    for (int d = 0; d < c.d_model; ++d) x[size_t(d)] = WE[size_t(t * c.d_model + d)];
    E[size_t(t)] = naive::norm_row(m, x, "blocks.0.ln1");
  }
  return E;
}

// x @ W[h] for W [n_heads, rows, cols] (flat), x of length rows.
std::vector<double> times(const std::vector<double>& x, const naive::Tensor& W, int h, int rows, int cols) {
  std::vector<double> y(size_t(cols), 0.0);
  for (int r = 0; r < rows; ++r)
    for (int k = 0; k < cols; ++k) y[size_t(k)] += x[size_t(r)] * W[size_t((h * rows + r) * cols + k)];
  return y;
}

// OV [source][out] = E W_V W_O W_U and QK [destination][source] = E W_Q W_K^T E^T, by loops.
struct Circuits {
  Dense ov, qk;
};
Circuits dense_circuits(const Model& m, int h) {
  const ModelConfig& c = m.config();
  const Dense E = embed(m);
  const auto WV = naive::tensor(m, "blocks.0.attn.W_V"), WO = naive::tensor(m, "blocks.0.attn.W_O");
  const auto WQ = naive::tensor(m, "blocks.0.attn.W_Q"), WK = naive::tensor(m, "blocks.0.attn.W_K");
  const auto WU = naive::tensor(m, "unembed.W_U");
  const size_t V = size_t(c.d_vocab);
  Circuits out{Dense(V, std::vector<double>(V)), Dense(V, std::vector<double>(V))};
  std::vector<std::vector<double>> q(V), k(V);
  for (size_t s = 0; s < V; ++s) {
    const auto resid = times(times(E[s], WV, h, c.d_model, c.d_head), WO, h, c.d_head, c.d_model);
    for (size_t o = 0; o < V; ++o) {
      double acc = 0;
      for (int d = 0; d < c.d_model; ++d) acc += resid[size_t(d)] * WU[size_t(d) * V + o];
      out.ov[s][o] = acc;
    }
    q[s] = times(E[s], WQ, h, c.d_model, c.d_head);
    k[s] = times(E[s], WK, h, c.d_model, c.d_head);
  }
  for (size_t d = 0; d < V; ++d)
    for (size_t s = 0; s < V; ++s) {
      double acc = 0;
      for (int e = 0; e < c.d_head; ++e) acc += q[d][size_t(e)] * k[s][size_t(e)];
      out.qk[d][s] = acc;
    }
  return out;
}

std::vector<std::pair<int, double>> top(std::vector<double> v, int k) {
  std::vector<int> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return v[size_t(a)] > v[size_t(b)]; });
  std::vector<std::pair<int, double>> out;
  for (int i = 0; i < k && i < int(idx.size()); ++i) out.push_back({idx[size_t(i)], v[size_t(idx[size_t(i)])]});
  return out;
}

void expect_ranking(const std::vector<IdValue>& got, const std::vector<std::pair<int, double>>& want,
                    const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].id, want[i].first) << what << " rank " << i;
    EXPECT_NEAR(got[i].value, want[i].second, 1e-4 * std::max(1.0, std::abs(want[i].second))) << what << " rank " << i;
  }
}

double rms(const Dense& M) {
  double s = 0;
  size_t n = 0;
  for (const auto& r : M)
    for (double v : r) {
      s += v * v;
      ++n;
    }
  return std::sqrt(s / double(n));
}

class OneLayerViews : public ::testing::TestWithParam<std::tuple<Norm, PosEmbed>> {};

TEST_P(OneLayerViews, HeadViewHoldsTheDenseCircuitsRowsColumnsAndEigenvalues) {
  const auto [norm, pos] = GetParam();
  App a;
  load(a, model_1l(5, 23, norm, pos));
  Session& s = a.session();
  HeadView& v = *a.view<HeadView>();
  a.set_selections(Json{{"head", Json{{"layer", 0}, {"head", 2}, {"k", 6}, {"ov_source", 3}, {"ov_out", 7},
                                      {"qk_destination", 11}, {"qk_source", 19}}}});
  // Until its jobs run, the held results belong to another input: stale or none.
  EXPECT_NE(v.ov_outs().freshness(v.query(3), s.generation(), s.jobs()).label(), std::string("current"));
  run_jobs(s);
  for (const auto* r : {&v.ov_outs(), &v.ov_sources(), &v.qk_sources(), &v.qk_destinations()})
    ASSERT_TRUE(r->has());
  EXPECT_EQ(v.ov_outs().freshness(v.query(3), s.generation(), s.jobs()).label(), std::string("current"));

  const Model& m = s.shown()->model;
  const Circuits d = dense_circuits(m, 2);
  std::vector<double> col(d.ov.size());
  expect_ranking(v.ov_outs().value(), top(d.ov[3], 6), "OV row 3");
  for (size_t i = 0; i < col.size(); ++i) col[i] = d.ov[i][7];
  expect_ranking(v.ov_sources().value(), top(col, 6), "OV column 7");
  expect_ranking(v.qk_sources().value(), top(d.qk[11], 6), "QK row 11");
  for (size_t i = 0; i < col.size(); ++i) col[i] = d.qk[i][19];
  expect_ranking(v.qk_destinations().value(), top(col, 6), "QK column 19");

  // Eigenvalues: the nonzero ones of the dense V x V circuits (at most d_head of them).
  ASSERT_TRUE(v.eigen().has());
  for (int which = 0; which < 2; ++which) {
    const Dense& M = which == 0 ? d.ov : d.qk;
    Eigen::MatrixXd D(M.size(), M.size());
    for (size_t i = 0; i < M.size(); ++i)
      for (size_t j = 0; j < M.size(); ++j) D(Eigen::Index(i), Eigen::Index(j)) = M[i][j];
    Eigen::VectorXcd ev = Eigen::EigenSolver<Eigen::MatrixXd>(D, false).eigenvalues();
    std::vector<std::complex<double>> dense(ev.begin(), ev.end());
    std::sort(dense.begin(), dense.end(), [](auto x, auto y) { return std::abs(x) > std::abs(y); });
    const auto& got = which == 0 ? v.eigen().value().ov : v.eigen().value().qk;
    ASSERT_EQ(got.size(), 4u);
    double re = 0, mag = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_NEAR(std::abs(got[i]), std::abs(dense[i]), 1e-6 * std::max(1.0, std::abs(dense[i])));
      re += dense[i].real();
      mag += std::abs(dense[i]);
    }
    const double score = which == 0 ? v.eigen().value().ov_score : v.eigen().value().qk_score;
    EXPECT_NEAR(score, mag > 0 ? re / mag : 0.0, 1e-6);
  }

  // Positional QK, where the model has positions: P W_Q W_K^T P^T by loops (P = W_pos, Shortformer).
  if (pos == PosEmbed::Shortformer) {
    ASSERT_TRUE(v.positional().has());
    const ModelConfig& c = m.config();
    const auto WP = naive::tensor(m, "pos_embed.W_pos");
    const auto WQ = naive::tensor(m, "blocks.0.attn.W_Q"), WK = naive::tensor(m, "blocks.0.attn.W_K");
    const RowMat& P = v.positional().value();
    const int first = v.selection().pos_first;
    for (int i = 0; i < P.rows(); ++i)
      for (int j = 0; j < P.cols(); ++j) {
        std::vector<double> pi(size_t(c.d_model)), pj(size_t(c.d_model));
        for (int e = 0; e < c.d_model; ++e) {
          pi[size_t(e)] = WP[size_t((first + i) * c.d_model + e)];
          pj[size_t(e)] = WP[size_t((first + j) * c.d_model + e)];
        }
        const auto q = times(pi, WQ, 2, c.d_model, c.d_head), k = times(pj, WK, 2, c.d_model, c.d_head);
        double acc = 0;
        for (int e = 0; e < c.d_head; ++e) acc += q[size_t(e)] * k[size_t(e)];
        EXPECT_NEAR(P(i, j), acc, 1e-4 * std::max(1.0, std::abs(acc)));
      }
  } else if (pos == PosEmbed::None) {
    EXPECT_FALSE(v.positional().has());
  }

  // The selection set again with one lookup changed (as a URL or a widget
  // would): only that lookup is recomputed, the other three stay current.
  Json sel = v.selection_json();
  sel["qk_source"] = 4;
  a.set_selections(Json{{"head", sel}});
  EXPECT_NE(s.jobs().info(HeadView::kQkDestinationsSlot), nullptr);
  for (const char* slot : {HeadView::kOvOutsSlot, HeadView::kOvSourcesSlot, HeadView::kQkSourcesSlot})
    EXPECT_EQ(s.jobs().info(slot), nullptr) << slot;
  run_jobs(s);
  for (size_t i = 0; i < col.size(); ++i) col[i] = d.qk[i][4];
  expect_ranking(v.qk_destinations().value(), top(col, 6), "QK column 4");
  expect_ranking(v.ov_outs().value(), top(d.ov[3], 6), "OV row 3, kept");
}

TEST_P(OneLayerViews, SkipTrigramTableIsTheBruteForceRanking) {
  const auto [norm, pos] = GetParam();
  App a;
  load(a, model_1l(9, 17, norm, pos));
  Session& s = a.session();
  SkipTrigramsView& v = *a.view<SkipTrigramsView>();
  // per_source_k = vocabulary: every (s, d, o) with both entries positive is a candidate.
  a.set_selections(Json{{"skip_trigrams", Json{{"layer", 0}, {"head", 1}, {"top_n", 30}, {"per_source_k", 17}}}});
  run_jobs(s);
  ASSERT_TRUE(v.table().has());
  const Circuits d = dense_circuits(s.shown()->model, 1);
  const double qr = rms(d.qk), orr = rms(d.ov);
  std::vector<std::tuple<double, int, int, int>> all;  // (-score, s, d, o)
  for (int src = 0; src < 17; ++src)
    for (int dst = 0; dst < 17; ++dst)
      for (int o = 0; o < 17; ++o)
        if (d.qk[size_t(dst)][size_t(src)] > 0 && d.ov[size_t(src)][size_t(o)] > 0)
          all.push_back({-(d.qk[size_t(dst)][size_t(src)] / qr) * (d.ov[size_t(src)][size_t(o)] / orr), src, dst, o});
  std::sort(all.begin(), all.end());
  const auto& rows = v.table().value();
  ASSERT_EQ(rows.size(), std::min<size_t>(30, all.size()));
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& [neg, src, dst, o] = all[i];
    EXPECT_NEAR(rows[i].t.score, -neg, 1e-4 * std::max(1.0, -neg)) << "row " << i;
    if (i + 1 < all.size() && std::abs(std::get<0>(all[i + 1]) - neg) > 1e-6 * std::abs(neg) &&
        (i == 0 || std::abs(std::get<0>(all[i - 1]) - neg) > 1e-6 * std::abs(neg))) {
      EXPECT_EQ(rows[i].t.source, src) << "row " << i;
      EXPECT_EQ(rows[i].t.destination, dst) << "row " << i;
      EXPECT_EQ(rows[i].t.out, o) << "row " << i;
    }
    EXPECT_EQ(rows[i].layer, 0);
    EXPECT_EQ(rows[i].head, 1);
  }

  // The bug: two rows with the same source give the crossed entries of the dense circuits.
  int ra = -1, rb = -1;
  for (size_t i = 0; i < rows.size() && rb < 0; ++i)
    for (size_t j = i + 1; j < rows.size(); ++j)
      if (rows[i].t.source == rows[j].t.source && rows[i].t.destination != rows[j].t.destination &&
          rows[i].t.out != rows[j].t.out) {
        ra = int(i);
        rb = int(j);
        break;
      }
  if (ra >= 0) {
    v.choose_bug_pair(s, ra, rb);
    ASSERT_TRUE(v.bug().has_value()) << v.bug_note();
    const SkipTrigram& x = v.bug()->a_destination_b_out;
    const int src = rows[size_t(ra)].t.source;
    EXPECT_EQ(x.destination, rows[size_t(ra)].t.destination);
    EXPECT_EQ(x.out, rows[size_t(rb)].t.out);
    EXPECT_NEAR(x.qk, d.qk[size_t(x.destination)][size_t(src)], 1e-4);
    EXPECT_NEAR(x.ov, d.ov[size_t(src)][size_t(x.out)], 1e-4);
  }

  // All heads: the union of the heads' tables, by score.
  a.set_selections(Json{{"skip_trigrams", Json{{"all_heads", true}, {"top_n", 40}, {"per_source_k", 17}}}});
  run_jobs(s);
  ASSERT_TRUE(v.table().has());
  std::vector<double> scores;
  for (int h = 0; h < 3; ++h) {
    const Circuits dh = dense_circuits(s.shown()->model, h);
    const double q = rms(dh.qk), o = rms(dh.ov);
    for (int src = 0; src < 17; ++src)
      for (int dst = 0; dst < 17; ++dst)
        for (int out = 0; out < 17; ++out)
          if (dh.qk[size_t(dst)][size_t(src)] > 0 && dh.ov[size_t(src)][size_t(out)] > 0)
            scores.push_back((dh.qk[size_t(dst)][size_t(src)] / q) * (dh.ov[size_t(src)][size_t(out)] / o));
  }
  std::sort(scores.rbegin(), scores.rend());
  ASSERT_EQ(v.table().value().size(), std::min<size_t>(40, scores.size()));
  for (size_t i = 0; i < v.table().value().size(); ++i)
    EXPECT_NEAR(v.table().value()[i].t.score, scores[i], 1e-4 * std::max(1.0, scores[i])) << "row " << i;
}

TEST_P(OneLayerViews, HeadsGridHoldsEveryHeadsEigenvalueScore) {
  const auto [norm, pos] = GetParam();
  App a;
  load(a, model_1l(13, 19, norm, pos));
  Session& s = a.session();
  HeadsView& v = *a.view<HeadsView>();
  // Nothing is computed for a tab that is not shown.
  EXPECT_TRUE(s.jobs().idle());
  EXPECT_FALSE(v.summary().has());
  a.show(v);
  EXPECT_FALSE(s.jobs().idle());
  run_jobs(s);
  ASSERT_TRUE(v.summary().has());
  ASSERT_EQ(v.summary().value().size(), 3u);
  for (int h = 0; h < 3; ++h) {
    const Circuits d = dense_circuits(s.shown()->model, h);
    Eigen::MatrixXd D(19, 19);
    for (int i = 0; i < 19; ++i)
      for (int j = 0; j < 19; ++j) D(i, j) = d.ov[size_t(i)][size_t(j)];
    const Eigen::VectorXcd ev = Eigen::EigenSolver<Eigen::MatrixXd>(D, false).eigenvalues();
    double re = 0, mag = 0;
    for (const auto& z : ev) {
      re += z.real();
      mag += std::abs(z);
    }
    EXPECT_NEAR(v.summary().value()[size_t(h)].ov_copying_score, re / mag, 1e-6) << "head " << h;
    // Diagonal test: rows whose top-1 output is the source itself.
    int top1 = 0;
    for (int src = 0; src < 19; ++src)
      if (top(d.ov[size_t(src)], 1)[0].first == src) ++top1;
    EXPECT_NEAR(v.summary().value()[size_t(h)].ov_diagonal_top1, double(top1) / 19.0, 1e-12) << "head " << h;
  }
  // The state JSON the browser tests read carries the same numbers.
  const Json j = a.views_json()["heads"]["results"]["summary"];
  EXPECT_EQ(j["freshness"], "current");
  EXPECT_FLOAT_EQ(j["value"][1]["ov_copying_score"].get<float>(), float(v.summary().value()[1].ov_copying_score));
}

INSTANTIATE_TEST_SUITE_P(NormAndPositions, OneLayerViews,
                         ::testing::Values(std::make_tuple(Norm::LN, PosEmbed::Shortformer),
                                           std::make_tuple(Norm::LN, PosEmbed::Standard),
                                           std::make_tuple(Norm::None, PosEmbed::None)));

TEST(OneLayerViewSelections, RoundTripAndNameABadField) {
  HeadSelection h;
  h.layer = 0;
  h.head = 2;
  h.ov_source = 5;
  EXPECT_EQ(HeadSelection::from_json(h.to_json()), h);
  SkipTrigramsSelection t;
  t.all_heads = true;
  t.out = 4;
  EXPECT_EQ(SkipTrigramsSelection::from_json(t.to_json()), t);
  HeadsSelection g;
  g.diagonal = false;
  EXPECT_EQ(HeadsSelection::from_json(g.to_json()), g);
  try {
    HeadSelection::from_json(Json{{"ov_source", "five"}});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ov_source"), std::string::npos) << e.what();
  }
  EXPECT_THROW(SkipTrigramsSelection::from_json(Json{{"all_heads", 1}}), Error);
}

}  // namespace
}  // namespace cs::app
