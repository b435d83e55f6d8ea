// OV / QK circuits and the eigenvalue copying score (circuits.h).
// TransformerLens convention throughout: row vectors, x @ W.
#include "core/circuits.h"

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "core/forward.h"
#include "core/induction.h"
#include "core/kernels.h"
#include "core/vocab_matrix.h"

namespace cs {

void check_head(const Model& m, int layer, int head, const char* fn) {
  const ModelConfig& c = m.config();
  if (layer < 0 || layer >= c.n_layers)
    throw Error(std::string(fn) + ": layer " + std::to_string(layer) + " is outside [0, n_layers = " +
                std::to_string(c.n_layers) + ")");
  if (head < 0 || head >= c.n_heads)
    throw Error(std::string(fn) + ": head " + std::to_string(head) + " is outside [0, n_heads = " +
                std::to_string(c.n_heads) + ")");
}

void check_head_pair(const Model& m, int l1, int h1, int l2, int h2, const char* fn) {
  check_head(m, l1, h1, fn);
  check_head(m, l2, h2, fn);
  if (l1 >= l2)
    throw Error(std::string(fn) + ": head " + std::to_string(l1) + "." + std::to_string(h1) +
                " must be in an earlier layer than head " + std::to_string(l2) + "." + std::to_string(h2));
}

std::string head_name(const char* fn, int layer, int head) {
  return std::string(fn) + "(" + std::to_string(layer) + ", " + std::to_string(head) + ")";
}

namespace {

void check_square(const Model& m, const char* fn) {
  const ModelConfig& c = m.config();
  if (c.vocab_out() != c.d_vocab)
    throw Error(std::string(fn) + ": the full OV circuit is not square (d_vocab " + std::to_string(c.d_vocab) +
                ", d_vocab_out " + std::to_string(c.vocab_out()) + ")");
}

}  // namespace

RowMat ov_circuit(const Model& m, int layer, int head) {
  check_head(m, layer, head, "ov_circuit");
  // [d_model, d_head] @ [d_head, d_model]
  return m.W_V(layer, head) * m.W_O(layer, head);
}

RowMat qk_circuit(const Model& m, int layer, int head) {
  check_head(m, layer, head, "qk_circuit");
  // [d_model, d_head] @ [d_head, d_model]
  return m.W_Q(layer, head) * m.W_K(layer, head).transpose();
}

RowMat embed_for_layer(const Model& m, int layer, const CircuitOptions& opt) {
  RowMat E = m.W_E();  // [d_vocab, d_model]
  if (opt.normalize_embed) normalize_rows(m, E, layer);
  return E;
}

RowMat full_ov_circuit(const Model& m, int layer, int head, const CircuitOptions& opt) {
  check_head(m, layer, head, "full_ov_circuit");
  const RowMat E = embed_for_layer(m, layer, opt);
  // ([d_vocab, d_model] @ [d_model, d_head]) @ [d_head, d_model] @ [d_model, d_vocab_out]
  const RowMat EV = E * m.W_V(layer, head);
  const RowMat EVO = EV * m.W_O(layer, head);
  return EVO * m.W_U();
}

Eigen::MatrixXd ov_small_matrix(const Model& m, int layer, int head, const CircuitOptions& opt) {
  check_head(m, layer, head, "ov_small_matrix");
  check_square(m, "ov_small_matrix");
  return ov_small_matrix(m, layer, head, embed_grams(m, opt));
}

std::vector<std::complex<double>> small_eigenvalues(const Eigen::MatrixXd& S, const char* what) {
  Eigen::EigenSolver<Eigen::MatrixXd> solver(S, /*computeEigenvectors=*/false);
  if (solver.info() != Eigen::Success)
    throw Error(std::string(what) + ": the eigenvalue solver did not converge");
  std::vector<std::complex<double>> ev(solver.eigenvalues().begin(), solver.eigenvalues().end());
  std::stable_sort(ev.begin(), ev.end(),
                   [](const std::complex<double>& a, const std::complex<double>& b) { return std::abs(a) > std::abs(b); });
  return ev;
}

std::vector<std::complex<double>> ov_eigenvalues(const Model& m, int layer, int head, const CircuitOptions& opt) {
  check_head(m, layer, head, "ov_eigenvalues");
  check_square(m, "ov_eigenvalues");
  return small_eigenvalues(ov_small_matrix(m, layer, head, opt),
                           ("ov_eigenvalues of head " + std::to_string(layer) + "." + std::to_string(head)).c_str());
}

double copying_score(std::span<const std::complex<double>> eigenvalues) {
  double re = 0, mag = 0;
  for (const auto& l : eigenvalues) {
    re += l.real();
    mag += std::abs(l);
  }
  return mag > 0 ? re / mag : 0.0;
}

RowMat copying_scores(const Model& m, const CircuitOptions& opt) {
  const ModelConfig& c = m.config();
  check_square(m, "copying_scores");
  const EmbedGrams g = embed_grams(m, opt);  // one vocabulary pass for every head
  RowMat out(c.n_layers, c.n_heads);
  for (int l = 0; l < c.n_layers; ++l)
    for (int h = 0; h < c.n_heads; ++h)
      out(l, h) = float(copying_score(small_eigenvalues(ov_small_matrix(m, l, h, g), "copying_scores")));
  return out;
}


// ---- vocabulary sums ----------------------------------------------------------

namespace {

bool grams_normalized(const Model& m, const CircuitOptions& opt) { return m.config().normalizes() && opt.normalize_embed; }

// X = rows [r0, r0 + X.rows()) of N (circuits.h): W_E rows, centred and scaled
// when `normalized` (the normalization without w and b, as normalize_rows computes it).
template <class Block>
void n_rows(const Model& m, bool normalized, Eigen::Index r0, Block X) {
  X = m.W_E().middleRows(r0, X.rows());
  if (normalized) kernels::normalize_rows(X.data(), X.rows(), X.cols(), X.outerStride(), m.config().eps);
}

// Rows per unit of a vocabulary pass: about 2^kUnitLog2 multiply-adds of
// d_model^2 each. In the page a unit must fit in a frame slice (2^24: 64 rows
// at d_model 512; 2^25 took up to 34 ms in Chromium). Natively no frame waits
// and a GEMM with a longer inner dimension runs faster (2^26: 256 rows).
// tests/bench/RESULTS.md.
#ifdef __EMSCRIPTEN__
constexpr int kUnitLog2 = 24;
#else
constexpr int kUnitLog2 = 26;
#endif
Eigen::Index rows_per_unit(int d_model) {
  const Eigen::Index dd = Eigen::Index(d_model) * d_model;
  return std::clamp<Eigen::Index>((Eigen::Index(1) << kUnitLog2) / std::max<Eigen::Index>(dd, 1), 16, 1 << 16);
}

// Float partial sums cover at most kFloatRows rows before they are added in
// double: the rounding of a sum is then that of a few hundred terms whatever
// a unit's size (units are 4x larger natively), and so is the difference
// between the native and wasm kernels' summation orders. A strand's float
// sums run on across its units (64 rows each in wasm at d_model 512), so the
// double additions, on Eigen's scalar path in wasm, come once per kFloatRows
// rows, not once per unit.
constexpr Eigen::Index kFloatRows = 256;

// Adds the float sums of `p` into the doubles: G's lower triangle from
// p.acc, and, with UN, UN from p.acc_un.
using RowMatD = EmbedGramsPlan::RowMatD;
void flush_float_sums(EmbedGramsPlan::Part& p, RowMatD& G, RowMatD* UN) {
  if (p.acc_rows == 0) return;
  for (Eigen::Index i = 0; i < G.rows(); ++i) {
    kernels::add_to_double(p.acc.row(i).data(), i + 1, G.row(i).data());
    if (UN) kernels::add_to_double(p.acc_un.row(i).data(), UN->cols(), UN->row(i).data());
  }
  p.acc_rows = 0;
}

// G += X^T X (lower triangle) for a float chunk X [rows, d_model] and, with
// U [d_model, rows] (the same vocabulary ids as columns of W_U), UN += U X,
// through the strand's float sums (flushed every kFloatRows rows).
template <class Block, class UBlock>
void add_grams(EmbedGramsPlan::Part& p, RowMatD& G, const Block& X, RowMatD* UN, const UBlock* U) {
  for (Eigen::Index r = 0; r < X.rows();) {
    const Eigen::Index n = std::min(kFloatRows - p.acc_rows, X.rows() - r);
    const bool more = p.acc_rows > 0;
    kernels::gram_lower(kernels::view(X.middleRows(r, n)), p.acc.data(), p.acc.outerStride(), more);
    if (UN) kernels::matmul(U->middleCols(r, n), X.middleRows(r, n), p.acc_un, more);  // [d_model, d_model]
    p.acc_rows += n;
    r += n;
    if (p.acc_rows == kFloatRows) flush_float_sums(p, G, UN);
  }
}

void mirror_lower(Eigen::MatrixXd& G) { G.triangularView<Eigen::StrictlyUpper>() = G.transpose(); }

// Strands of the vocabulary sums (EmbedGramsPlan::Part): 8 cores' worth, a
// fixed number so the result does not depend on the thread count.
constexpr size_t kGramStrands = 8;

// Adds `n` units in min(n, kGramStrands) strands of consecutive units (the
// strand count is a function of n alone, as the reducing unit assumes):
// `begin(s)` before strand s's first unit, `unit(s, u)` for unit u,
// `end(s)` after its last.
template <class Begin, class Unit, class End>
void add_gram_strands(WorkPlan& plan, const char* stage, size_t n, double cost_each, Begin begin, Unit unit, End end) {
  const size_t S = std::min(n, kGramStrands);
  for (size_t s = 0; s < S; ++s) {
    const size_t u0 = s * n / S, u1 = (s + 1) * n / S;
    for (size_t u = u0; u < u1; ++u) {
      auto work = [begin, unit, end, s, u, first = u == u0, last = u + 1 == u1] {
        if (first) begin(s);
        unit(s, u);
        if (last) end(s);
      };
      plan.add_to_strand(stage, cost_each, work, /*new_strand=*/u == u0);
    }
  }
  plan.fence();
}

}  // namespace

// A strand's units reuse its x and acc: allocating (and so faulting in)
// megabytes per unit cost more than the arithmetic (tests/bench/RESULTS.md).
EmbedGramsPlan::EmbedGramsPlan(const Model& m, const CircuitOptions& opt, bool want_UUt) : m_(m) {
  const ModelConfig& c = m.config();
  const Eigen::Index V = c.d_vocab, Vo = c.vocab_out(), D = c.d_model;
  g_.normalized = grams_normalized(m, opt);
  g_.square = V == Vo;
  g_.d_vocab = V;
  const Eigen::Index step = rows_per_unit(c.d_model);
  // Memory is allocated in the units, not here: a plan is built in the frame
  // that asks for it, its units run in frame slices.
  const size_t row_units = size_t((V + step - 1) / step), col_units = size_t((Vo + step - 1) / step);
  const size_t row_strands = std::min(row_units, kGramStrands), col_strands = std::min(col_units, kGramStrands);
  add("vocabulary sums", double(D * D), [this, row_strands, col_strands, want_UUt] {
    parts_.resize(std::max(row_strands, want_UUt ? col_strands : 0));
  });
  auto scratch = [this, step, D](size_t s, bool un) {
    Part& p = parts_[s];
    p.x.resize(step, D);
    p.acc.resize(D, D);
    if (un) p.acc_un.resize(D, D);
    p.acc_rows = 0;
  };
  auto drop_scratch = [this](size_t s) {
    Part& p = parts_[s];
    p.x.resize(0, 0);  // the scratch is not kept with the result
    p.acc.resize(0, 0);
    p.acc_un.resize(0, 0);
  };
  add_gram_strands(
      *this, "vocabulary sums", row_units, double(step * D * D * (g_.square ? 2 : 1)),
      [this, scratch, D](size_t s) {
        Part& p = parts_[s];
        scratch(s, g_.square);
        p.NtN = Eigen::MatrixXd::Zero(D, D);
        p.N_sum = Eigen::VectorXd::Zero(D);
        if (g_.square) {
          p.UN = Eigen::MatrixXd::Zero(D, D);
          p.U_sum = Eigen::VectorXd::Zero(D);
        }
      },
      [this, step, V](size_t s, size_t u) {
        Part& p = parts_[s];
        const Eigen::Index r0 = Eigen::Index(u) * step, r1 = std::min(V, r0 + step);
        auto X = p.x.topRows(r1 - r0);  // [rows, d_model]
        n_rows(m_, g_.normalized, r0, X);
        p.N_sum += X.colwise().sum().transpose().cast<double>();
        const auto U = m_.W_U().middleCols(r0, g_.square ? r1 - r0 : 0);  // [d_model, rows]
        add_grams(p, p.NtN, X, g_.square ? &p.UN : nullptr, &U);
        if (g_.square) p.U_sum += U.rowwise().sum().cast<double>();
      },
      [this, drop_scratch](size_t s) {
        Part& p = parts_[s];
        flush_float_sums(p, p.NtN, g_.square ? &p.UN : nullptr);
        drop_scratch(s);
      });
  add("vocabulary sums", double(D * D) * double(row_strands), [this, row_strands, D] {
    g_.NtN = Eigen::MatrixXd::Zero(D, D);
    g_.N_sum = Eigen::VectorXd::Zero(D);
    if (g_.square) {
      g_.UN = Eigen::MatrixXd::Zero(D, D);
      g_.U_sum = Eigen::VectorXd::Zero(D);
    }
    for (size_t s = 0; s < row_strands; ++s) {  // in order: the same sums on any thread count
      Part& p = parts_[s];
      g_.NtN.triangularView<Eigen::Lower>() += p.NtN;
      g_.N_sum += p.N_sum;
      if (g_.square) {
        g_.UN += p.UN;
        g_.U_sum += p.U_sum;
      }
      p = Part{};
    }
    mirror_lower(g_.NtN);
  });
  if (want_UUt) {
    add_gram_strands(
        *this, "unembedding sums", col_units, double(step * D * D),
        [this, scratch, D](size_t s) {
          scratch(s, false);
          parts_[s].UUt = Eigen::MatrixXd::Zero(D, D);
        },
        [this, step, Vo](size_t s, size_t u) {
          Part& p = parts_[s];
          const Eigen::Index c0 = Eigen::Index(u) * step, c1 = std::min(Vo, c0 + step);
          auto Ut = p.x.topRows(c1 - c0);  // [cols, d_model]
          Ut = m_.W_U().middleCols(c0, c1 - c0).transpose();
          add_grams(p, p.UUt, Ut, nullptr, static_cast<const RowMat*>(nullptr));
        },
        [this, drop_scratch](size_t s) {
          flush_float_sums(parts_[s], parts_[s].UUt, nullptr);
          drop_scratch(s);
        });
    add("unembedding sums", double(D * D) * double(col_strands), [this, col_strands, D] {
      g_.UUt = Eigen::MatrixXd::Zero(D, D);
      for (size_t s = 0; s < col_strands; ++s) {
        g_.UUt.triangularView<Eigen::Lower>() += parts_[s].UUt;
        parts_[s] = Part{};
      }
      mirror_lower(g_.UUt);
    });
  }
  add("vocabulary sums", 1.0, [this] { parts_ = {}; });
}

const EmbedGrams& EmbedGramsPlan::result() const {
  if (!done()) throw Error("embed_grams: result() before the computation finished");
  return g_;
}

EmbedGrams& EmbedGramsPlan::mutable_result() {
  if (!done()) throw Error("embed_grams: result() before the computation finished");
  return g_;
}

EmbedGrams embed_grams(const Model& m, const CircuitOptions& opt, bool want_UUt) {
  EmbedGramsPlan p(m, opt, want_UUt);
  p.run();
  return std::move(p.mutable_result());
}

namespace {

// E of block l from N: E = N diag(w) + 1 b^T with LN weights, E = N otherwise.
bool layer_affine(const Model& m, const EmbedGrams& g) { return g.normalized && m.config().has_ln_weights(); }

}  // namespace

Eigen::MatrixXd embed_cross_gram(const Model& m, int l1, int l2, const EmbedGrams& g) {
  if (!layer_affine(m, g)) return g.NtN;
  const Eigen::VectorXd w1 = m.ln1_w(l1).cast<double>(), b1 = m.ln1_b(l1).cast<double>();
  const Eigen::VectorXd w2 = m.ln1_w(l2).cast<double>(), b2 = m.ln1_b(l2).cast<double>();
  // (N diag(w1) + 1 b1^T)^T (N diag(w2) + 1 b2^T)
  //   = diag(w1) N^T N diag(w2) + (w1 o N^T 1) b2^T + b1 (w2 o N^T 1)^T + V b1 b2^T
  Eigen::MatrixXd G = w1.asDiagonal() * g.NtN * w2.asDiagonal();
  G += w1.cwiseProduct(g.N_sum) * b2.transpose() + b1 * w2.cwiseProduct(g.N_sum).transpose() +
       double(g.d_vocab) * b1 * b2.transpose();
  return G;
}

Eigen::MatrixXd embed_gram_for_layer(const Model& m, int layer, const EmbedGrams& g) {
  return embed_cross_gram(m, layer, layer, g);
}

namespace {

// W_U E of block l [d_model, d_model]: W_U N diag(w) + (W_U 1) b^T, or W_U N.
Eigen::MatrixXd unembed_embed_for_layer(const Model& m, int layer, const EmbedGrams& g) {
  if (!g.square) throw Error("ov_small_matrix: the full OV circuit is not square (d_vocab != d_vocab_out)");
  if (!layer_affine(m, g)) return g.UN;
  const Eigen::VectorXd w = m.ln1_w(layer).cast<double>(), b = m.ln1_b(layer).cast<double>();
  return g.UN * w.asDiagonal() + g.U_sum * b.transpose();
}

Eigen::MatrixXd d(const ConstMatMap& x) { return x.cast<double>(); }

// The three factors of a head's small matrix S = L M R:
//   OV: W_O [d_head, d_model] (W_U E) [d_model, d_model] W_V [d_model, d_head]
//   QK: W_K^T [d_head, d_model] (E^T E) [d_model, d_model] W_Q [d_model, d_head]
struct SmallFactors {
  Eigen::MatrixXd L, M, R;
  // S = (L M) R [d_head, d_head], in double through kernels::product (the SIMD128 kernel in wasm).
  Eigen::MatrixXd product() const { return kernels::product(kernels::product(L, M), R); }
};
SmallFactors small_factors(const Model& m, int layer, int head, const EmbedGrams& g, bool ov) {
  if (ov) return {d(m.W_O(layer, head)), unembed_embed_for_layer(m, layer, g), d(m.W_V(layer, head))};
  return {d(m.W_K(layer, head)).transpose(), embed_gram_for_layer(m, layer, g), d(m.W_Q(layer, head))};
}
// The virtual head h2 o h1's: (W_O1 W_V2 W_O2) [d_head, d_model] (W_U E_l1)
// [d_model, d_model] W_V1 [d_model, d_head] (the cyclic shift of
// E_l1 W_V1 . W_O1 W_V2 W_O2 W_U, as for one head).
SmallFactors virtual_small_factors(const Model& m, int l1, int h1, int l2, int h2, const EmbedGrams& g) {
  const Eigen::MatrixXd L = d(m.W_O(l1, h1)) * d(m.W_V(l2, h2)) * d(m.W_O(l2, h2));
  return {L, unembed_embed_for_layer(m, l1, g), d(m.W_V(l1, h1))};
}

}  // namespace

Eigen::MatrixXd ov_small_matrix(const Model& m, int layer, int head, const EmbedGrams& g) {
  check_head(m, layer, head, "ov_small_matrix");
  const SmallFactors f = small_factors(m, layer, head, g, true);
  return f.product();
}

Eigen::MatrixXd virtual_ov_small_matrix(const Model& m, int l1, int h1, int l2, int h2, const EmbedGrams& g) {
  check_head_pair(m, l1, h1, l2, h2, "virtual_ov_small_matrix");
  const SmallFactors f = virtual_small_factors(m, l1, h1, l2, h2, g);
  return f.product();
}

std::vector<std::complex<double>> virtual_ov_eigenvalues(const Model& m, int l1, int h1, int l2, int h2,
                                                         const CircuitOptions& opt) {
  check_head_pair(m, l1, h1, l2, h2, "virtual_ov_eigenvalues");
  check_square(m, "virtual_ov_eigenvalues");
  return small_eigenvalues(virtual_ov_small_matrix(m, l1, h1, l2, h2, embed_grams(m, opt)), "virtual_ov_eigenvalues");
}

Eigen::MatrixXd qk_small_matrix(const Model& m, int layer, int head, const EmbedGrams& g) {
  check_head(m, layer, head, "qk_small_matrix");
  const SmallFactors f = small_factors(m, layer, head, g, false);
  return f.product();
}

struct HeadEigenPlan::Impl {
  std::unique_ptr<EmbedGramsPlan> plan;  // when the sums were not given
  std::shared_ptr<const EmbedGrams> grams;
};

HeadEigenPlan::HeadEigenPlan(const Model& m, const CircuitOptions& opt, std::shared_ptr<const EmbedGrams> grams)
    : impl_(std::make_unique<Impl>()) {
  const ModelConfig& c = m.config();
  const Eigen::Index D = c.d_model;
  Impl& I = *impl_;
  if (grams) {
    I.grams = std::move(grams);
    return;
  }
  I.plan = std::make_unique<EmbedGramsPlan>(m, opt, false);
  add_units_of(I.plan.get(), I.plan->units(), "vocabulary sums", double(c.d_vocab) * double(D) * double(D) * 2.0 /
                                                                   double(std::max<size_t>(I.plan->units(), 1)));
  add("vocabulary sums", 1, [this] {
    impl_->grams = std::make_shared<const EmbedGrams>(std::move(impl_->plan->mutable_result()));
    impl_->plan.reset();
  });
}

HeadEigenPlan::HeadEigenPlan(const Model& m, int layer, int head, const CircuitOptions& opt,
                             std::shared_ptr<const EmbedGrams> grams)
    : HeadEigenPlan(m, opt, std::move(grams)) {
  add_head_eigen_units(*this, m, layer, head, [this]() -> const EmbedGrams& { return *impl_->grams; }, &result_);
}

HeadEigenPlan::HeadEigenPlan(const Model& m, VirtualHeadRef v, const CircuitOptions& opt,
                             std::shared_ptr<const EmbedGrams> grams)
    : HeadEigenPlan(m, opt, std::move(grams)) {
  add_virtual_ov_eigen_units(*this, m, v.l1, v.h1, v.l2, v.h2,
                             [this]() -> const EmbedGrams& { return *impl_->grams; }, &result_);
}

namespace {

// Units computing the eigenvalues of one small matrix S = L M R
// (SmallFactors, made by `factors` when the first unit runs): L M in blocks of
// M's columns, then S and its eigenvalues, handed to `done`.
void add_small_eigen_units(WorkPlan& plan, Eigen::Index D, Eigen::Index d_head, const char* what,
                           std::function<SmallFactors()> factors,
                           std::function<void(std::vector<std::complex<double>>)> done) {
  struct Scratch {
    SmallFactors f;
    Eigen::MatrixXd LM;  // [d_head, d_model]
  };
  auto sc = std::make_shared<Scratch>();
  const Eigen::Index cols = std::clamp<Eigen::Index>((Eigen::Index(1) << 22) / std::max<Eigen::Index>(1, d_head * D), 16, D);
  // One strand: eigen-problems (heads) run beside each other natively.
  plan.add_to_strand(
      what, double(D) * double(D),
      [sc, factors = std::move(factors)] {
        sc->f = factors();
        sc->LM.resize(sc->f.L.rows(), sc->f.M.cols());
      },
      /*new_strand=*/true);
  for (Eigen::Index c0 = 0; c0 < D; c0 += cols) {
    const Eigen::Index n = std::min(cols, D - c0);
    plan.add_to_strand(what, double(d_head) * double(D) * double(n), [sc, c0, n] {
      kernels::matmul(sc->f.L, sc->f.M.middleCols(c0, n), sc->LM.middleCols(c0, n));
    });
  }
  plan.add_to_strand(what, double(d_head) * double(D) * double(d_head), [sc, what, done = std::move(done)] {
    const Eigen::MatrixXd S = kernels::product(sc->LM, sc->f.R);  // [d_head, d_head]
    *sc = Scratch{};
    done(small_eigenvalues(S, what));
  });
}

}  // namespace

void add_head_eigen_units(WorkPlan& plan, const Model& m, int layer, int head,
                          std::function<const EmbedGrams&()> grams, HeadEigen* out) {
  check_head(m, layer, head, "head eigenvalues");
  const ModelConfig& c = m.config();
  auto factors = [grams, &m, layer, head](bool ov) {
    return [grams, &m, layer, head, ov] { return small_factors(m, layer, head, grams(), ov); };
  };
  if (c.d_vocab == c.vocab_out())
    add_small_eigen_units(plan, c.d_model, c.d_head, "OV eigenvalues", factors(true), [out](auto ev) {
      out->ov = std::move(ev);
      out->ov_score = copying_score(out->ov);
    });
  else
    out->ov_score = std::nan("");
  add_small_eigen_units(plan, c.d_model, c.d_head, "QK eigenvalues", factors(false), [out](auto ev) {
    out->qk = std::move(ev);
    out->qk_score = copying_score(out->qk);
  });
}

void add_virtual_ov_eigen_units(WorkPlan& plan, const Model& m, int l1, int h1, int l2, int h2,
                                std::function<const EmbedGrams&()> grams, HeadEigen* out) {
  check_head_pair(m, l1, h1, l2, h2, "virtual head eigenvalues");
  check_square(m, "virtual head eigenvalues");
  const ModelConfig& c = m.config();
  out->qk_score = std::nan("");
  add_small_eigen_units(
      plan, c.d_model, c.d_head, "OV eigenvalues",
      [grams, &m, l1, h1, l2, h2] { return virtual_small_factors(m, l1, h1, l2, h2, grams()); },
      [out](auto ev) {
        out->ov = std::move(ev);
        out->ov_score = copying_score(out->ov);
      });
}

HeadEigenPlan::~HeadEigenPlan() = default;

const HeadEigen& HeadEigenPlan::result() const {
  if (!done()) throw Error("head eigenvalues: result() before the computation finished");
  return result_;
}

std::shared_ptr<const EmbedGrams> HeadEigenPlan::grams() const {
  if (!done()) throw Error("head eigenvalues: grams() before the computation finished");
  return impl_->grams;
}

double ov_frobenius_sq(const Model& m, int layer, int head, const EmbedGrams& g) {
  check_head(m, layer, head, "ov_frobenius_sq");
  if (g.UUt.size() == 0) throw Error("ov_frobenius_sq: the vocabulary sums lack W_U W_U^T (want_UUt)");
  const Eigen::MatrixXd W_V = d(m.W_V(layer, head)), W_O = d(m.W_O(layer, head));
  const Eigen::MatrixXd LtL = W_V.transpose() * embed_gram_for_layer(m, layer, g) * W_V;  // [d_head, d_head]
  const Eigen::MatrixXd RtR = W_O * g.UUt * W_O.transpose();                              // [d_head, d_head]
  return (LtL * RtR).trace();
}

double qk_frobenius_sq(const Model& m, int layer, int head, const EmbedGrams& g) {
  check_head(m, layer, head, "qk_frobenius_sq");
  const Eigen::MatrixXd G = embed_gram_for_layer(m, layer, g);
  const Eigen::MatrixXd W_Q = d(m.W_Q(layer, head)), W_K = d(m.W_K(layer, head));
  return ((W_Q.transpose() * G * W_Q) * (W_K.transpose() * G * W_K)).trace();
}

// ---- QK circuit ------------------------------------------------------------------

RowMat full_qk_circuit(const Model& m, int layer, int head, const CircuitOptions& opt) {
  check_head(m, layer, head, "full_qk_circuit");
  const RowMat E = embed_for_layer(m, layer, opt);   // [d_vocab, d_model]
  const RowMat Q = E * m.W_Q(layer, head);            // [d_vocab, d_head]
  const RowMat K = E * m.W_K(layer, head);            // [d_vocab, d_head]
  return Q * K.transpose();                           // [d_vocab(dest), d_vocab(source)]
}

Eigen::MatrixXd qk_small_matrix(const Model& m, int layer, int head, const CircuitOptions& opt) {
  check_head(m, layer, head, "qk_small_matrix");
  return qk_small_matrix(m, layer, head, embed_grams(m, opt));
}

std::vector<std::complex<double>> qk_eigenvalues(const Model& m, int layer, int head, const CircuitOptions& opt) {
  check_head(m, layer, head, "qk_eigenvalues");
  return small_eigenvalues(qk_small_matrix(m, layer, head, opt),
                           ("qk_eigenvalues of head " + std::to_string(layer) + "." + std::to_string(head)).c_str());
}

// ---- positions ----------------------------------------------------------------------

RowMat positions_for_layer(const Model& m, int layer, const CircuitOptions& opt) {
  const ModelConfig& c = m.config();
  if (!c.has_pos()) throw Error("positions_for_layer: the model has no positional embeddings (positional = none)");
  if (layer < 0 || layer >= c.n_layers)
    throw Error("positions_for_layer: layer " + std::to_string(layer) + " is outside [0, n_layers = " +
                std::to_string(c.n_layers) + ")");
  RowMat P = m.W_pos();  // [n_ctx, d_model]
  if (c.positional == PosEmbed::Standard && opt.normalize_embed) normalize_rows(m, P, layer);
  return P;
}

RowMat positional_qk_circuit(const Model& m, int layer, int head, const CircuitOptions& opt) {
  check_head(m, layer, head, "positional_qk_circuit");
  const RowMat P = positions_for_layer(m, layer, opt);
  const RowMat Q = P * m.W_Q(layer, head), K = P * m.W_K(layer, head);  // [n_ctx, d_head]
  return Q * K.transpose();                                            // [n_ctx(query), n_ctx(key)]
}

namespace {

RowMat gather_tokens(const Model& m, int layer, std::span<const int> ids, const CircuitOptions& opt, const char* what) {
  const ModelConfig& c = m.config();
  RowMat X(Eigen::Index(ids.size()), c.d_model);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= c.d_vocab)
      throw Error(std::string("qk_terms: ") + what + " " + std::to_string(ids[i]) + " is outside [0, d_vocab = " +
                  std::to_string(c.d_vocab) + ")");
    X.row(Eigen::Index(i)) = m.W_E().row(ids[i]);
  }
  if (opt.normalize_embed) normalize_rows(m, X, layer);
  return X;
}

RowMat gather_positions(const RowMat& P, std::span<const int> pos, const char* what) {
  RowMat X(Eigen::Index(pos.size()), P.cols());
  for (size_t i = 0; i < pos.size(); ++i) {
    if (pos[i] < 0 || pos[i] >= P.rows())
      throw Error(std::string("qk_terms: ") + what + " " + std::to_string(pos[i]) + " is outside [0, n_ctx = " +
                  std::to_string(P.rows()) + ")");
    X.row(Eigen::Index(i)) = P.row(pos[i]);
  }
  return X;
}

}  // namespace

QkTerms qk_terms(const Model& m, int layer, int head, std::span<const int> query_tokens,
                 std::span<const int> query_positions, std::span<const int> key_tokens,
                 std::span<const int> key_positions, const CircuitOptions& opt) {
  check_head(m, layer, head, "qk_terms");
  const RowMat P = positions_for_layer(m, layer, opt);
  const ConstMatMap W_Q = m.W_Q(layer, head), W_K = m.W_K(layer, head);
  const RowMat Qt = gather_tokens(m, layer, query_tokens, opt, "query token") * W_Q;   // [nq, d_head]
  const RowMat Kt = gather_tokens(m, layer, key_tokens, opt, "key token") * W_K;       // [nk, d_head]
  const RowMat Qp = gather_positions(P, query_positions, "query position") * W_Q;      // [nqp, d_head]
  const RowMat Kp = gather_positions(P, key_positions, "key position") * W_K;          // [nkp, d_head]
  QkTerms t;
  t.token_token = Qt * Kt.transpose();
  t.token_position = Qt * Kp.transpose();
  t.position_token = Qp * Kt.transpose();
  t.position_position = Qp * Kp.transpose();
  return t;
}

namespace {

// The two sides of the positional term matrices: E rows (block l's norm when
// asked) and P rows (W_pos; block l's norm for standard positions when asked).
VocabSide position_side(const Model& m, int layer, const CircuitOptions& opt, const char* fn) {
  const ModelConfig& c = m.config();
  if (!c.has_pos()) throw Error(std::string(fn) + ": the model has no positional embeddings (positional = none)");
  const bool norm = c.positional == PosEmbed::Standard && opt.normalize_embed;
  return VocabSide::rows_of(m.W_pos(), norm ? layer : kNoNorm);
}

}  // namespace

VocabMatrix qk_token_position_matrix(const Model& m, int layer, int head, const CircuitOptions& opt) {
  check_head(m, layer, head, "qk_token_position_matrix");
  // E [d_vocab, d_model] W_Q [d_model, d_head] W_K^T [d_head, d_model] P^T [d_model, n_ctx]
  return VocabMatrix(m, head_name("qk_token_position_matrix", layer, head), embed_side(m, layer, opt),
                     position_side(m, layer, opt, "qk_token_position_matrix"), RowMat(m.W_Q(layer, head)),
                     RowMat(m.W_K(layer, head).transpose()));
}

VocabMatrix qk_position_token_matrix(const Model& m, int layer, int head, const CircuitOptions& opt) {
  check_head(m, layer, head, "qk_position_token_matrix");
  // P [n_ctx, d_model] W_Q W_K^T E^T [d_model, d_vocab]
  return VocabMatrix(m, head_name("qk_position_token_matrix", layer, head),
                     position_side(m, layer, opt, "qk_position_token_matrix"), embed_side(m, layer, opt),
                     RowMat(m.W_Q(layer, head)), RowMat(m.W_K(layer, head).transpose()));
}

VocabMatrix qk_position_position_matrix(const Model& m, int layer, int head, const CircuitOptions& opt) {
  check_head(m, layer, head, "qk_position_position_matrix");
  // P [n_ctx, d_model] W_Q W_K^T P^T [d_model, n_ctx]
  return VocabMatrix(m, head_name("qk_position_position_matrix", layer, head),
                     position_side(m, layer, opt, "qk_position_position_matrix"),
                     position_side(m, layer, opt, "qk_position_position_matrix"), RowMat(m.W_Q(layer, head)),
                     RowMat(m.W_K(layer, head).transpose()));
}

std::vector<QkSample> draw_qk_samples(const ModelConfig& c, uint64_t seed, int samples) {
  if (samples < 1) throw Error("positional_share: samples must be >= 1 (got " + std::to_string(samples) + ")");
  if (c.d_vocab < 1 || c.n_ctx < 1) throw Error("positional_share: d_vocab and n_ctx must be >= 1");
  Rng rng(seed);
  std::vector<QkSample> out(static_cast<size_t>(samples));
  for (QkSample& s : out) {
    s.query_token = int(rng.below(uint64_t(c.d_vocab)));
    s.query_pos = int(rng.below(uint64_t(c.n_ctx)));
    s.key_token = int(rng.below(uint64_t(c.d_vocab)));
    s.key_pos = int(rng.below(uint64_t(s.query_pos) + 1));
  }
  return out;
}

PositionalShareAccumulator::PositionalShareAccumulator(const Model& m, int layer, int head, uint64_t seed,
                                                       int samples, const CircuitOptions& opt)
    : m_(m), layer_(layer), head_(head), opt_(opt) {
  check_head(m, layer, head, "positional_share");
  samples_ = draw_qk_samples(m.config(), seed, samples);
  tt_.assign(samples_.size(), 0.0);
  pos_.assign(samples_.size(), 0.0);
  if (!m.config().has_pos()) return;  // no positional terms: share 0, nothing to run
  chunks_ = int((samples_.size() + kChunk - 1) / kChunk);
  // W_Q_ and W_K_ (double copies) are made by the first chunk: building the
  // accumulator stays cheap in the frame that asks for it.
}

namespace {

// The token part a and the position part p of the input to block l's
// queries/keys for token t at position i (circuits.h, positional_share), in double.
void split_input(const Model& m, int layer, bool normalize, int t, int i, double* a, double* p) {
  const ModelConfig& c = m.config();
  const int D = c.d_model;
  const ConstMatMap W_E = m.W_E(), W_pos = m.W_pos();
  const bool norm = normalize && c.normalizes();
  if (c.positional == PosEmbed::Shortformer) {
    // a = norm(W_E[t]) with w, b; p = W_pos[i]
    double mean = 0;
    for (int k = 0; k < D; ++k) mean += double(W_E(t, k));
    mean /= D;
    double var = 0;
    for (int k = 0; k < D; ++k) var += (double(W_E(t, k)) - mean) * (double(W_E(t, k)) - mean);
    const double rho = norm ? 1.0 / std::sqrt(var / D + double(c.eps)) : 1.0;
    for (int k = 0; k < D; ++k) {
      a[k] = norm ? (double(W_E(t, k)) - mean) * rho : double(W_E(t, k));
      if (norm && c.has_ln_weights()) a[k] = a[k] * double(m.ln1_w(layer)[k]) + double(m.ln1_b(layer)[k]);
      p[k] = double(W_pos(i, k));
    }
    return;
  }
  // Standard.
  if (!norm) {
    for (int k = 0; k < D; ++k) a[k] = double(W_E(t, k)), p[k] = double(W_pos(i, k));
    return;
  }
  double me = 0, mp = 0;
  for (int k = 0; k < D; ++k) me += double(W_E(t, k)), mp += double(W_pos(i, k));
  me /= D;
  mp /= D;
  double var = 0;
  for (int k = 0; k < D; ++k) {
    const double x = (double(W_E(t, k)) - me) + (double(W_pos(i, k)) - mp);
    var += x * x;
  }
  const double rho = 1.0 / std::sqrt(var / D + double(c.eps));
  for (int k = 0; k < D; ++k) {
    const double w = c.has_ln_weights() ? double(m.ln1_w(layer)[k]) : 1.0;
    const double b = c.has_ln_weights() ? double(m.ln1_b(layer)[k]) : 0.0;
    a[k] = rho * w * (double(W_E(t, k)) - me) + b;
    p[k] = rho * w * (double(W_pos(i, k)) - mp);
  }
}

}  // namespace

void PositionalShareAccumulator::run_chunk(int ci) {
  if (ci < 0 || ci >= chunks_) throw Error("positional_share: chunk " + std::to_string(ci) + " out of range");
  const int D = m_.config().d_model;
  const size_t s0 = size_t(ci) * kChunk, s1 = std::min(samples_.size(), s0 + kChunk);
  const Eigen::Index n = Eigen::Index(s1 - s0);
  using RowMatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  RowMatD Aq(n, D), Pq(n, D), Ak(n, D), Pk(n, D);  // token / position parts of query and key inputs
  for (Eigen::Index r = 0; r < n; ++r) {
    const QkSample& s = samples_[s0 + size_t(r)];
    split_input(m_, layer_, opt_.normalize_embed, s.query_token, s.query_pos, Aq.row(r).data(), Pq.row(r).data());
    split_input(m_, layer_, opt_.normalize_embed, s.key_token, s.key_pos, Ak.row(r).data(), Pk.row(r).data());
  }
  if (W_Q_.size() == 0) {
    W_Q_ = d(m_.W_Q(layer_, head_));
    W_K_ = d(m_.W_K(layer_, head_));
  }
  const RowMatD QA = Aq * W_Q_, QP = Pq * W_Q_, KA = Ak * W_K_, KP = Pk * W_K_;  // [n, d_head]
  for (Eigen::Index r = 0; r < n; ++r) {
    tt_[s0 + size_t(r)] = QA.row(r).dot(KA.row(r));
    pos_[s0 + size_t(r)] = QA.row(r).dot(KP.row(r)) + QP.row(r).dot(KA.row(r)) + QP.row(r).dot(KP.row(r));
  }
}

double PositionalShareAccumulator::value() const {
  if (chunks_ == 0) return 0.0;
  auto var = [](const std::vector<double>& x) {
    double mean = 0;
    for (double v : x) mean += v;
    mean /= double(x.size());
    double s = 0;
    for (double v : x) s += (v - mean) * (v - mean);
    return s / double(x.size());
  };
  const double vt = var(tt_), vp = var(pos_);
  return vt + vp > 0 ? vp / (vt + vp) : 0.0;
}

double positional_share(const Model& m, int layer, int head, uint64_t seed, int samples, const CircuitOptions& opt) {
  PositionalShareAccumulator acc(m, layer, head, seed, samples, opt);
  for (int i = 0; i < acc.chunks(); ++i) acc.run_chunk(i);
  return acc.value();
}

}  // namespace cs
