// Composition scores (composition.h; the math in docs/two-layer.md).
//
// A score ||(A1 B1)(A2 B2)|| with A [d, r], B [r, d] never forms a d x d
// matrix: with A1 = Q1 R1 (thin QR, Q1 orthonormal columns) and
// B2^T = Q2 R2, ||A1 M B2|| = ||R1 M R2^T|| for any M, so
//   ||(A1 B1)(A2 B2)|| = ||Z1^T Z2||,  Z1 = (R1 B1)^T [d, k],  Z2 = A2 R2^T [d, k]
// (k = min(d, r)), and ||A1 B1|| = ||Z1||, ||A2 B2|| = ||Z2||. For every pair
// of heads at once, Z1 of all earlier heads times Z2 of all later heads is one
// GEMM per pair of layers and kind.
#include "core/composition.h"

#include <Eigen/Cholesky>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/head_detector.h"
#include "core/kernels.h"
#include "core/rng.h"

namespace cs {

const char* to_string(CompositionKind k) {
  switch (k) {
    case CompositionKind::Q: return "Q";
    case CompositionKind::K: return "K";
    case CompositionKind::V: return "V";
  }
  return "?";
}

const Eigen::MatrixXd& CompositionScores::of(CompositionKind k) const {
  return k == CompositionKind::Q ? Q : k == CompositionKind::K ? K : V;
}

double CompositionScores::at(CompositionKind k, int l1, int h1, int l2, int h2) const {
  if (l1 < 0 || l1 >= n_layers || l2 < 0 || l2 >= n_layers || h1 < 0 || h1 >= n_heads || h2 < 0 || h2 >= n_heads)
    throw Error("composition score: head " + std::to_string(l1) + "." + std::to_string(h1) + " or " +
                std::to_string(l2) + "." + std::to_string(h2) + " is outside the model (" +
                std::to_string(n_layers) + " layers of " + std::to_string(n_heads) + " heads)");
  return of(k)(l1 * n_heads + h1, l2 * n_heads + h2);
}

namespace {

// An R [r, r] with R^T R = G for a Gram matrix G = X^T X [r, r] (what the
// thin QR's R of X is; any such R keeps ||X M|| = ||R M||): by a pivoted
// LDL^T, G = P^T L D L^T P, R = D^(1/2) L^T P. G is semidefinite, so D's
// rounding negatives are taken as 0. Cheaper than a QR of the tall X.
Eigen::MatrixXd r_of_gram(const Eigen::MatrixXd& G) {
  const Eigen::LDLT<Eigen::MatrixXd> ldlt(G);
  const Eigen::VectorXd sd = ldlt.vectorD().cwiseMax(0.0).cwiseSqrt();
  const Eigen::MatrixXd R = sd.asDiagonal() * Eigen::MatrixXd(ldlt.matrixU());
  return R * (ldlt.transpositionsP() * Eigen::MatrixXd::Identity(G.rows(), G.cols()));  // times P as a matrix
}

// R of X [d, r]: [r, r] with R^T R = X^T X; the Gram matrix formed in X's
// scalar type (float for the model's weights, double for the random
// baseline; kernels::product, the SIMD128 kernel in wasm), its LDL^T in double.
template <class M>
Eigen::Matrix<typename M::Scalar, Eigen::Dynamic, Eigen::Dynamic> qr_r(const M& X) {
  using S = typename M::Scalar;
  const Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic> G = kernels::product(X.transpose(), X);
  return r_of_gram(G.template cast<double>()).template cast<S>();
}

// Z1 = (R(A1) B1)^T = B1^T R(A1)^T: the left product's factor [d, r].
template <class MA, class MB>
Eigen::Matrix<typename MA::Scalar, Eigen::Dynamic, Eigen::Dynamic> left_factor(const MA& A1, const MB& B1) {
  const auto R = qr_r(A1);
  return kernels::product(B1.transpose(), R.transpose());
}
// Z2 = A2 R(B2^T)^T: the right product's factor [d, r].
template <class MA, class MB>
Eigen::Matrix<typename MA::Scalar, Eigen::Dynamic, Eigen::Dynamic> right_factor(const MA& A2, const MB& B2) {
  const auto R = qr_r(B2.transpose());
  return kernels::product(A2, R.transpose());
}

double ratio(double num, double n1, double n2) { return n1 > 0 && n2 > 0 ? num / (n1 * n2) : 0.0; }

}  // namespace

double composition_score(const Eigen::MatrixXd& A1, const Eigen::MatrixXd& B1, const Eigen::MatrixXd& A2,
                         const Eigen::MatrixXd& B2) {
  const Eigen::Index dm = A1.rows();
  if (B1.cols() != dm || A2.rows() != dm || B2.cols() != dm || A1.cols() != B1.rows() || A2.cols() != B2.rows())
    throw Error("composition_score: factors must be A [d, r] and B [r, d] with one d");
  const Eigen::MatrixXd Z1 = left_factor(A1, B1), Z2 = right_factor(A2, B2);
  return ratio(kernels::product(Z1.transpose(), Z2).norm(), Z1.norm(), Z2.norm());  // Z1^T Z2 [r1, r2]
}

namespace {

// The random generator of the baseline's pairs for a seed.
Rng baseline_rng(uint64_t seed) { return Rng(seed ^ 0xC0DEC0DE12345678ull); }

// The score of the next random pair: independent standard Gaussian factors.
double baseline_sample(Rng& rng, int d_model, int d_head) {
  auto gaussian = [&](int rows, int cols) {
    Eigen::MatrixXd X(rows, cols);
    for (Eigen::Index i = 0; i < X.size(); ++i) X.data()[i] = rng.gaussian();
    return X;
  };
  const Eigen::MatrixXd A1 = gaussian(d_model, d_head), B1 = gaussian(d_head, d_model);
  const Eigen::MatrixXd A2 = gaussian(d_model, d_head), B2 = gaussian(d_head, d_model);
  return composition_score(A1, B1, A2, B2);
}

}  // namespace

double composition_baseline(int d_model, int d_head, uint64_t seed, int samples) {
  if (d_model < 1 || d_head < 1) throw Error("composition_baseline: d_model and d_head must be >= 1");
  if (samples < 1) throw Error("composition_baseline: samples must be >= 1 (got " + std::to_string(samples) + ")");
  Rng rng = baseline_rng(seed);
  double sum = 0;
  for (int s = 0; s < samples; ++s) sum += baseline_sample(rng, d_model, d_head);
  return sum / samples;
}

// Per head: Z of its OV circuit as the earlier head, and as the later head Z
// of what it reads with: queries (W_QK = W_Q W_K^T), keys (W_QK^T) and values
// (W_OV = W_V W_O). All [d_model, k]; side by side per layer: [d_model,
// n_heads * k] (float, for the GEMMs), with their norms.
struct CompositionPlan::Impl {
  struct LayerFactors {
    Eigen::MatrixXf ov_left, q_right, k_right, v_right;  // [d_model, n_heads * k]
    Eigen::VectorXd ov_norm, qk_norm, ov2_norm;          // [n_heads]
  };
  std::vector<LayerFactors> f;
  Rng rng;
  double baseline_sum = 0;
};

CompositionPlan::CompositionPlan(const Model& m, const CompositionOptions& opt) : impl_(std::make_unique<Impl>()) {
  const ModelConfig& c = m.config();
  const int L = c.n_layers, H = c.n_heads, D = c.d_model;
  if (opt.baseline_samples < 1)
    throw Error("composition_baseline: samples must be >= 1 (got " + std::to_string(opt.baseline_samples) + ")");
  if (D < 1 || c.d_head < 1) throw Error("composition_baseline: d_model and d_head must be >= 1");
  r_.n_layers = L;
  r_.n_heads = H;
  r_.Q = r_.K = r_.V = r_.virtual_norm = Eigen::MatrixXd::Zero(L * H, L * H);
  const double Dd = D, Kd = c.d_head;
  // The baseline: one unit per random pair (the pairs composition_baseline draws).
  Impl& I = *impl_;
  I.rng = baseline_rng(opt.seed);
  const int samples = opt.baseline_samples, Dh = c.d_head;
  for (int i = 0; i < samples; ++i)
    add("random baseline", 8 * Dd * Kd * Kd, [this, &I, i, samples, D, Dh] {
      I.baseline_sum += baseline_sample(I.rng, D, Dh);
      if (i + 1 == samples) r_.baseline = I.baseline_sum / samples;
    });
  if (L < 2) return;
  const int k = c.d_head;  // Z's columns (R is d_head x d_head even when d_model is smaller: zero columns then)
  I.f.resize(size_t(L));
  for (int l = 0; l < L; ++l)
    add("composition: factors", 1, [&I, l, H, D, k] {
      Impl::LayerFactors& F = I.f[size_t(l)];
      F.ov_left.resize(D, H * k);
      F.q_right.resize(D, H * k);
      F.k_right.resize(D, H * k);
      F.v_right.resize(D, H * k);
      F.ov_norm.resize(H);
      F.qk_norm.resize(H);
      F.ov2_norm.resize(H);
    });
  for (int l = 0; l < L; ++l)
    for (int h = 0; h < H; ++h)
      add("composition: factors", 12 * Dd * Kd * Kd, [&I, &m, l, h, k] {
        Impl::LayerFactors& F = I.f[size_t(l)];  // head h's columns and norms only: concurrent
        // In float, from the weights as they are (no copies): [d_model, d_head] x3, W_O [d_head, d_model].
        const ConstMatMap WQ = m.W_Q(l, h), WK = m.W_K(l, h), WV = m.W_V(l, h), WO = m.W_O(l, h);
        auto ovl = F.ov_left.middleCols(h * k, k);
        auto qr = F.q_right.middleCols(h * k, k);
        auto kr = F.k_right.middleCols(h * k, k);
        auto vr = F.v_right.middleCols(h * k, k);
        ovl = left_factor(WV, WO);               // OV = W_V W_O, earlier
        qr = right_factor(WQ, WK.transpose());   // QK = W_Q W_K^T
        kr = right_factor(WK, WQ.transpose());   // QK^T = W_K W_Q^T
        vr = right_factor(WV, WO);               // OV, later
        F.ov_norm[h] = ovl.cast<double>().norm();
        F.qk_norm[h] = qr.cast<double>().norm();
        F.ov2_norm[h] = vr.cast<double>().norm();
      }, /*concurrent=*/true);
  // Every factor before any score (a non-concurrent unit ends a stretch of
  // concurrent ones: run_concurrently would otherwise mix the two).
  add("composition: factors", 1, [] {});
  // For each later layer, the earlier layers' OV factors against its three:
  // one GEMM [k, d_model] x [d_model, n_heads * k] per earlier head (a unit:
  // a few ms in wasm at d_model 512, 8 heads of 64).
  for (int l2 = 1; l2 < L; ++l2)
    for (const CompositionKind kind : {CompositionKind::Q, CompositionKind::K, CompositionKind::V})
      for (int l1 = 0; l1 < l2; ++l1)
        for (int h1 = 0; h1 < H; ++h1)
          add(
              "composition: scores", Dd * double(k) * double(H * k),
              [this, &I, l1, h1, l2, kind, H, k] {
                const Impl::LayerFactors& F1 = I.f[size_t(l1)];
                const Impl::LayerFactors& F2 = I.f[size_t(l2)];
                const Eigen::MatrixXf& right = kind == CompositionKind::Q ? F2.q_right
                                               : kind == CompositionKind::K ? F2.k_right
                                                                            : F2.v_right;
                const Eigen::VectorXd& n2 = kind == CompositionKind::V ? F2.ov2_norm : F2.qk_norm;
                Eigen::MatrixXd& out = kind == CompositionKind::Q ? r_.Q : kind == CompositionKind::K ? r_.K : r_.V;
                // Its own scratch: the units may run at once (run_concurrently).
                const Eigen::MatrixXf C =
                    kernels::product(F1.ov_left.middleCols(h1 * k, k).transpose(), right);  // [k, n_heads * k]
                for (int h2 = 0; h2 < H; ++h2) {
                  const double num = C.middleCols(h2 * k, k).cast<double>().norm();
                  out(l1 * H + h1, l2 * H + h2) = ratio(num, F1.ov_norm[h1], n2[h2]);
                  if (kind == CompositionKind::V) r_.virtual_norm(l1 * H + h1, l2 * H + h2) = num;
                }
              },
              /*concurrent=*/true);
  add("composition: scores", 1, [this] { impl_.reset(); });
}

CompositionPlan::~CompositionPlan() = default;

const CompositionScores& CompositionPlan::result() const {
  if (!done()) throw Error("composition scores: result() before the computation finished");
  return r_;
}

CompositionScores composition_scores(const Model& m, const CompositionOptions& opt) {
  CompositionPlan p(m, opt);
  p.run();  // on analysis_threads()
  return p.result();
}

std::vector<VirtualHeadNorm> rank_virtual_heads(const CompositionScores& s) {
  const int L = s.n_layers, H = s.n_heads;
  std::vector<VirtualHeadNorm> out;
  for (int l1 = 0; l1 < L; ++l1)
    for (int h1 = 0; h1 < H; ++h1)
      for (int l2 = l1 + 1; l2 < L; ++l2)
        for (int h2 = 0; h2 < H; ++h2)
          out.push_back({VirtualHeadRef{l1, h1, l2, h2}, s.virtual_norm(l1 * H + h1, l2 * H + h2),
                         s.V(l1 * H + h1, l2 * H + h2)});
  // Built in (l1, h1, l2, h2) order: a stable sort keeps it among equal norms.
  std::stable_sort(out.begin(), out.end(),
                   [](const VirtualHeadNorm& a, const VirtualHeadNorm& b) { return a.norm > b.norm; });
  return out;
}

Eigen::MatrixXd k_composition_small_matrix(const Model& m, int l1, int h1, int l2, int h2, const EmbedGrams& g) {
  check_head_pair(m, l1, h1, l2, h2, "k_composition_small_matrix");
  const Eigen::MatrixXd WV1 = m.W_V(l1, h1).cast<double>(), WO1 = m.W_O(l1, h1).cast<double>();
  const Eigen::MatrixXd WK2 = m.W_K(l2, h2).cast<double>(), WQ2 = m.W_Q(l2, h2).cast<double>();
  // P2 (E_l1^T E_l2) P1 with P2 = (W_V1 W_O1 W_K2)^T [d_head, d_model], P1 = W_Q2 [d_model, d_head]
  const Eigen::MatrixXd P2 = (WV1 * (WO1 * WK2)).transpose();
  return P2 * embed_cross_gram(m, l1, l2, g) * WQ2;
}

std::vector<std::complex<double>> k_composition_eigenvalues(const Model& m, int l1, int h1, int l2, int h2,
                                                            const EmbedGrams& g) {
  return small_eigenvalues(k_composition_small_matrix(m, l1, h1, l2, h2, g), "k_composition_eigenvalues");
}

namespace {

// One later head's point of the scatter.
InductionScatterPoint scatter_point(const Model& m, int prev_layer, int prev_head, int l, int h, const EmbedGrams& g) {
  InductionScatterPoint p;
  p.layer = l;
  p.head = h;
  p.ov_positivity = g.square ? copying_score(small_eigenvalues(ov_small_matrix(m, l, h, g), "ov eigenvalues"))
                             : std::numeric_limits<double>::quiet_NaN();
  p.k_term_eigenvalues = k_composition_eigenvalues(m, prev_layer, prev_head, l, h, g);
  p.k_term_positivity = copying_score(p.k_term_eigenvalues);
  return p;
}

}  // namespace

std::vector<InductionScatterPoint> induction_scatter(const Model& m, int prev_layer, int prev_head,
                                                     const EmbedGrams& g) {
  check_head(m, prev_layer, prev_head, "induction_scatter");
  const ModelConfig& c = m.config();
  std::vector<InductionScatterPoint> out;
  for (int l = prev_layer + 1; l < c.n_layers; ++l)
    for (int h = 0; h < c.n_heads; ++h) out.push_back(scatter_point(m, prev_layer, prev_head, l, h, g));
  return out;
}

HeadId previous_token_head(const RowMat& previous_token) {
  if (previous_token.rows() < 2) throw Error("previous_token_head: needs scores of two layers or more");
  Eigen::Index l = 0, h = 0;
  previous_token.topRows(previous_token.rows() - 1).maxCoeff(&l, &h);
  return HeadId{int(l), int(h)};
}

struct InductionScatterPlan::Impl {
  std::unique_ptr<EmbedGramsPlan> grams_plan;
  std::unique_ptr<DetectorPlan> detector;
};

InductionScatterPlan::InductionScatterPlan(const Model& m, const CircuitOptions& opt, int prev_layer, int prev_head,
                                           std::vector<std::vector<int>> sequences,
                                           std::shared_ptr<const EmbedGrams> grams)
    : impl_(std::make_unique<Impl>()) {
  const ModelConfig& c = m.config();
  if (c.n_layers < 2) throw Error("induction scatter: the model has " + std::to_string(c.n_layers) +
                                  " layer(s); K-composition needs two or more");
  Impl& I = *impl_;
  if (prev_layer >= 0) {
    check_head(m, prev_layer, prev_head, "induction scatter");
    if (prev_layer + 1 >= c.n_layers)
      throw Error("induction scatter: head " + std::to_string(prev_layer) + "." + std::to_string(prev_head) +
                  " has no later layer to compose with");
    r_.prev_layer = prev_layer;
    r_.prev_head = prev_head;
  } else {
    I.detector = std::make_unique<DetectorPlan>(m, std::move(sequences));
    add_units_of(I.detector.get(), I.detector->units(), "previous-token head", 1.0 * double(c.d_model));
    add("previous-token head", 1, [this, &I] {
      r_.previous_token = I.detector->result().previous_token;
      const HeadId p = previous_token_head(r_.previous_token);
      r_.prev_layer = p.layer;
      r_.prev_head = p.head;
      I.detector.reset();
    });
  }
  if (grams) {
    grams_ = std::move(grams);
  } else {
    I.grams_plan = std::make_unique<EmbedGramsPlan>(m, opt, false);
    add_units_of(I.grams_plan.get(), I.grams_plan->units(), "vocabulary sums", double(c.d_model) * double(c.d_model));
    add("vocabulary sums", 1, [this, &I] {
      grams_ = std::make_shared<const EmbedGrams>(std::move(I.grams_plan->mutable_result()));
      I.grams_plan.reset();
    });
  }
  // One unit per head after the previous-token head's layer (which is known only now when found).
  for (int l = 1; l < c.n_layers; ++l)
    for (int h = 0; h < c.n_heads; ++h)
      add("K-composition terms", double(c.d_model) * double(c.d_model) * double(c.d_head), [this, &m, l, h] {
        if (l <= r_.prev_layer) return;
        r_.points.push_back(scatter_point(m, r_.prev_layer, r_.prev_head, l, h, *grams_));
      });
}

InductionScatterPlan::~InductionScatterPlan() = default;

const InductionScatter& InductionScatterPlan::result() const {
  if (!done()) throw Error("induction scatter: result() before the computation finished");
  return r_;
}

std::shared_ptr<const EmbedGrams> InductionScatterPlan::grams() const {
  if (!done()) throw Error("induction scatter: grams() before the computation finished");
  return grams_;
}

}  // namespace cs
