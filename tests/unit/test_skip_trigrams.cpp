// Skip-trigrams (core/skip_trigrams.h) against a brute-force enumeration of
// every (source, destination, out) on dense QK and OV circuits built here by
// loops in double precision (naive_reference.h), with the same score and the
// same restriction of the candidate set.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "core/model.h"
#include "core/skip_trigrams.h"
#include "naive_reference.h"

namespace cs {
namespace {

ModelConfig config(Norm norm, PosEmbed pos, int vocab = 37, int vocab_out = 0) {
  ModelConfig c;
  c.n_layers = 2;
  c.d_model = 10;
  c.n_heads = 2;
  c.d_head = 3;
  c.n_ctx = 6;
  c.d_vocab = vocab;
  c.d_vocab_out = vocab_out;
  c.normalization = norm;
  c.positional = pos;
  return c;
}

struct Dense {
  naive::Mat qk;  // [dest][source]
  naive::Mat ov;  // [source][out]
  double qk_rms = 0, ov_rms = 0;
};

Dense dense(const Model& m, int l, int h, bool normalize) {
  const ModelConfig& c = m.config();
  const size_t V = size_t(c.d_vocab), D = size_t(c.d_model), H = size_t(c.d_head), Vo = size_t(c.vocab_out());
  const naive::Tensor WE = naive::tensor(m, "embed.W_E"), WQ = naive::tensor(m, naive::blk(l, "attn.W_Q")),
                      WK = naive::tensor(m, naive::blk(l, "attn.W_K")), WV = naive::tensor(m, naive::blk(l, "attn.W_V")),
                      WO = naive::tensor(m, naive::blk(l, "attn.W_O")), WU = naive::tensor(m, "unembed.W_U");
  std::vector<std::vector<double>> q(V, std::vector<double>(H)), k = q, v = q;
  for (size_t s = 0; s < V; ++s) {
    std::vector<double> e(D);
    for (size_t d = 0; d < D; ++d) e[d] = WE[s * D + d];
    if (normalize) e = naive::norm_row(m, e, naive::blk(l, "ln1"));
    for (size_t j = 0; j < H; ++j)
      for (size_t d = 0; d < D; ++d) {
        const size_t i = (size_t(h) * D + d) * H + j;
        q[s][j] += e[d] * WQ[i];
        k[s][j] += e[d] * WK[i];
        v[s][j] += e[d] * WV[i];
      }
  }
  Dense r;
  r.qk = naive::zeros(V, V);
  r.ov = naive::zeros(V, Vo);
  double sq = 0, so = 0;
  for (size_t a = 0; a < V; ++a)
    for (size_t b = 0; b < V; ++b) {
      for (size_t j = 0; j < H; ++j) r.qk[a][b] += q[a][j] * k[b][j];
      sq += r.qk[a][b] * r.qk[a][b];
    }
  for (size_t s = 0; s < V; ++s)
    for (size_t o = 0; o < Vo; ++o) {
      for (size_t j = 0; j < H; ++j)
        for (size_t d = 0; d < D; ++d) r.ov[s][o] += v[s][j] * WO[(size_t(h) * H + j) * D + d] * WU[d * Vo + o];
      so += r.ov[s][o] * r.ov[s][o];
    }
  r.qk_rms = std::sqrt(sq / double(V * V));
  r.ov_rms = std::sqrt(so / double(V * Vo));
  return r;
}

// Ids of the k largest values, value descending, ties smaller id first.
std::vector<int> top_ids(const std::vector<double>& v, int k) {
  std::vector<int> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](int a, int b) { return v[size_t(a)] > v[size_t(b)] || (v[size_t(a)] == v[size_t(b)] && a < b); });
  idx.resize(std::min(idx.size(), size_t(k)));
  return idx;
}

struct Want {
  int s, d, o;
  double qk, ov, score;
};

// Every (s, d, o), restricted as skip_trigrams.h describes, scored, sorted, top_n.
std::vector<Want> brute_force(const Dense& D, const SkipTrigramQuery& q) {
  const int V = int(D.qk.size()), Vo = int(D.ov[0].size());
  auto qk_col = [&](int s) {
    std::vector<double> c(static_cast<size_t>(V));
    for (int d = 0; d < V; ++d) c[size_t(d)] = D.qk[size_t(d)][size_t(s)];
    return c;
  };
  auto ov_col = [&](int o) {
    std::vector<double> c(static_cast<size_t>(V));
    for (int s = 0; s < V; ++s) c[size_t(s)] = D.ov[size_t(s)][size_t(o)];
    return c;
  };
  std::vector<int> S;
  if (q.source) S = {*q.source};
  else if (q.destination && q.out) S = top_ids(std::vector<double>(size_t(V), 0.0), V);  // every source
  else if (q.destination) S = top_ids(D.qk[size_t(*q.destination)], q.sources_k);
  else if (q.out) S = top_ids(ov_col(*q.out), q.sources_k);
  else S = top_ids(std::vector<double>(size_t(V), 0.0), V);
  std::vector<Want> all;
  for (int s : S) {
    const std::vector<int> Ds = q.destination ? std::vector<int>{*q.destination} : top_ids(qk_col(s), q.per_source_k);
    const std::vector<int> Os = q.out ? std::vector<int>{*q.out} : top_ids(D.ov[size_t(s)], q.per_source_k);
    for (int d : Ds)
      for (int o : Os) {
        const double a = D.qk[size_t(d)][size_t(s)], b = D.ov[size_t(s)][size_t(o)];
        if (a > 0 && b > 0) all.push_back(Want{s, d, o, a, b, (a / D.qk_rms) * (b / D.ov_rms)});
      }
  }
  (void)Vo;
  std::sort(all.begin(), all.end(), [](const Want& x, const Want& y) {
    if (x.score != y.score) return x.score > y.score;
    return std::tie(x.s, x.d, x.o) < std::tie(y.s, y.d, y.o);
  });
  if (all.size() > size_t(q.top_n)) all.resize(size_t(q.top_n));
  return all;
}

// as_set: compare as sets (sorted by (s, d, o)), for lists of thousands where
// float and double scores can order near-ties differently; the order of `got`
// by its own scores is checked separately.
void expect_same(const SkipTrigramResult& got_r, const Dense& D, const SkipTrigramQuery& q, const std::string& what,
                 bool as_set = false) {
  EXPECT_NEAR(got_r.qk_rms, D.qk_rms, 1e-4 * D.qk_rms) << what;
  EXPECT_NEAR(got_r.ov_rms, D.ov_rms, 1e-4 * D.ov_rms) << what;
  std::vector<Want> want = brute_force(D, q);
  std::vector<SkipTrigram> got = got_r.trigrams;
  for (size_t i = 0; i + 1 < got.size(); ++i) {
    ASSERT_GE(got[i].score, got[i + 1].score) << what;
    if (got[i].score == got[i + 1].score)
      ASSERT_LT(std::tie(got[i].source, got[i].destination, got[i].out),
                std::tie(got[i + 1].source, got[i + 1].destination, got[i + 1].out));
  }
  if (as_set) {
    std::sort(want.begin(), want.end(), [](const Want& x, const Want& y) { return std::tie(x.s, x.d, x.o) < std::tie(y.s, y.d, y.o); });
    std::sort(got.begin(), got.end(), [](const SkipTrigram& x, const SkipTrigram& y) {
      return std::tie(x.source, x.destination, x.out) < std::tie(y.source, y.destination, y.out);
    });
  }
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) {
    const SkipTrigram& g = got[i];
    EXPECT_EQ(g.source, want[i].s) << what << " #" << i;
    EXPECT_EQ(g.destination, want[i].d) << what << " #" << i;
    EXPECT_EQ(g.out, want[i].o) << what << " #" << i;
    EXPECT_NEAR(g.qk, want[i].qk, 1e-4 * (1 + std::abs(want[i].qk))) << what;
    EXPECT_NEAR(g.ov, want[i].ov, 1e-4 * (1 + std::abs(want[i].ov))) << what;
    EXPECT_NEAR(g.score, want[i].score, 1e-4 * (1 + want[i].score)) << what;
  }
}

struct Variant {
  Norm norm;
  PosEmbed pos;
};

class SkipTrigrams : public ::testing::TestWithParam<Variant> {};

TEST_P(SkipTrigrams, EqualBruteForceForEveryKindOfQuery) {
  Model m(config(GetParam().norm, GetParam().pos));
  randomize(m, 51, 0.7f);
  for (int l = 0; l < 2; ++l)
    for (int h = 0; h < 2; ++h)
      for (bool norm : {true, false}) {
        const Dense D = dense(m, l, h, norm);
        std::vector<SkipTrigramQuery> queries;
        SkipTrigramQuery q;
        q.top_n = 25;
        q.per_source_k = 4;
        q.sources_k = 6;
        queries.push_back(q);  // no filter
        SkipTrigramQuery qs = q;
        qs.source = 5;
        queries.push_back(qs);
        SkipTrigramQuery qd = q;
        qd.destination = 30;
        queries.push_back(qd);
        SkipTrigramQuery qo = q;
        qo.out = 2;
        queries.push_back(qo);
        SkipTrigramQuery qdo = qd;
        qdo.out = 11;
        queries.push_back(qdo);
        SkipTrigramQuery qso = qs;
        qso.out = 11;
        queries.push_back(qso);
        SkipTrigramQuery qsd = qs;
        qsd.destination = 0;
        queries.push_back(qsd);
        SkipTrigramQuery big = q;
        big.top_n = 100000;  // every candidate
        big.per_source_k = 40;  // more than d_vocab: clamped
        queries.push_back(big);
        for (size_t i = 0; i < queries.size(); ++i)
          for (int64_t per_unit : {int64_t(1) << 17, int64_t(7)}) {  // one ranking unit, or one per source
            SkipTrigramQuery qi = queries[i];
            qi.candidates_per_unit = per_unit;
            expect_same(skip_trigrams(m, l, h, CircuitOptions{norm}, qi), D, qi,
                        "head " + std::to_string(l) + "." + std::to_string(h) + " query " + std::to_string(i) +
                            " candidates per unit " + std::to_string(per_unit),
                        /*as_set=*/i + 1 == queries.size());
          }
      }
}

INSTANTIATE_TEST_SUITE_P(Variants, SkipTrigrams,
                         ::testing::Values(Variant{Norm::None, PosEmbed::Standard}, Variant{Norm::LN, PosEmbed::Standard},
                                           Variant{Norm::LNPre, PosEmbed::Shortformer},
                                           Variant{Norm::LN, PosEmbed::Shortformer}));

TEST(SkipTrigramScan, NonSquareAndSlicedEqualOneShot) {
  Model m(config(Norm::LN, PosEmbed::Standard, 300, 310));
  randomize(m, 53, 0.7f);
  const Dense D = dense(m, 1, 0, true);
  SkipTrigramQuery q;
  q.top_n = 40;
  expect_same(skip_trigrams(m, 1, 0, {}, q), D, q, "non-square");
  for (SkipTrigramQuery qq : {q, [&] { auto x = q; x.out = 305; return x; }(), [&] { auto x = q; x.destination = 7; return x; }()}) {
    const SkipTrigramResult one = skip_trigrams(m, 1, 0, {}, qq);
    for (double budget : {0.0, 0.002}) {
      SkipTrigramScan scan(m, 1, 0, {}, qq);
      EXPECT_GT(scan.units(), 3u);
      while (!scan.step(budget)) {
      }
      const SkipTrigramResult& sl = scan.result();
      EXPECT_EQ(sl.qk_rms, one.qk_rms);
      EXPECT_EQ(sl.ov_rms, one.ov_rms);
      ASSERT_EQ(sl.trigrams.size(), one.trigrams.size());
      for (size_t i = 0; i < sl.trigrams.size(); ++i) {
        EXPECT_EQ(sl.trigrams[i].source, one.trigrams[i].source);
        EXPECT_EQ(sl.trigrams[i].destination, one.trigrams[i].destination);
        EXPECT_EQ(sl.trigrams[i].out, one.trigrams[i].out);
        EXPECT_EQ(sl.trigrams[i].score, one.trigrams[i].score);
      }
    }
  }
}

TEST(SkipTrigramBugs, CrossTermsAreTheDenseEntries) {
  Model m(config(Norm::LN, PosEmbed::Shortformer));
  randomize(m, 55, 0.7f);
  const Dense D = dense(m, 0, 1, true);
  SkipTrigramQuery q;
  q.source = 9;
  q.per_source_k = 3;
  const SkipTrigramResult r = skip_trigrams(m, 0, 1, {}, q);
  ASSERT_GE(r.trigrams.size(), 2u);
  // Two trigrams sharing the source with different destinations and outs, if the top list has them.
  SkipTrigram a = r.trigrams[0], b = r.trigrams[1];
  b.destination = (a.destination + 3) % 37;
  b.out = (a.out + 5) % 37;
  for (const SkipTrigramBug& bug : {skip_trigram_bugs(m, 0, 1, a, b), skip_trigram_bugs(m, 0, 1, a, b, r.qk_rms, r.ov_rms)}) {
    const SkipTrigram& x = bug.a_destination_b_out;
    const SkipTrigram& y = bug.b_destination_a_out;
    EXPECT_EQ(x.source, 9);
    EXPECT_EQ(x.destination, a.destination);
    EXPECT_EQ(x.out, b.out);
    EXPECT_EQ(y.destination, b.destination);
    EXPECT_EQ(y.out, a.out);
    const double qx = D.qk[size_t(a.destination)][9], ox = D.ov[9][size_t(b.out)];
    const double qy = D.qk[size_t(b.destination)][9], oy = D.ov[9][size_t(a.out)];
    EXPECT_NEAR(x.qk, qx, 1e-4);
    EXPECT_NEAR(x.ov, ox, 1e-4);
    EXPECT_NEAR(y.qk, qy, 1e-4);
    EXPECT_NEAR(y.ov, oy, 1e-4);
    EXPECT_NEAR(x.score, (qx / D.qk_rms) * (ox / D.ov_rms), 1e-4 * (1 + std::abs(x.score)));
    EXPECT_NEAR(y.score, (qy / D.qk_rms) * (oy / D.ov_rms), 1e-4 * (1 + std::abs(y.score)));
  }
  SkipTrigram c = b;
  c.source = 10;
  EXPECT_THROW(skip_trigram_bugs(m, 0, 1, a, c), Error);
}

TEST(SkipTrigramScan, BadInputNamesTheField) {
  Model m(config(Norm::None, PosEmbed::Standard));
  randomize(m, 57);
  SkipTrigramQuery q;
  q.out = 37;
  try {
    skip_trigrams(m, 0, 0, {}, q);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("out 37"), std::string::npos) << e.what();
  }
  q = SkipTrigramQuery{};
  q.per_source_k = 0;
  EXPECT_THROW(skip_trigrams(m, 0, 0, {}, q), Error);
  q = SkipTrigramQuery{};
  EXPECT_THROW(skip_trigrams(m, 0, 2, {}, q), Error);
  q.source = -1;
  EXPECT_THROW(skip_trigrams(m, 0, 0, {}, q), Error);
}

}  // namespace
}  // namespace cs
