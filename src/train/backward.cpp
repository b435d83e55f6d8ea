// Training forward and backward pass (backward.h), llm.c style: one small
// function per layer kind, each forward followed directly by its backward.
//
// Convention: TransformerLens, row vectors, x @ W. A worker holds a group of
// nseq consecutive sequences of the batch; their residual streams are stacked
// into one matrix of N = nseq * T rows (row s * T + t is position t of the
// group's sequence s), so every projection is one GEMM over all N rows:
//
//   x0 = W_E[tokens] (+ W_pos[t] if Standard)                     [N, d_model]
//   block l:  y  = norm(x_l)                                      [N, d_model]
//             qk_in = y (+ W_pos[t] if Shortformer)               [N, d_model]
//             qkv = [qk_in W_Q | qk_in W_K | y W_V] + [b_Q|b_K|b_V] [N, 3 H d_head]
//                   (q is then divided by attn_scale)
//             per sequence and head h: A = softmax(causal(q k^T)) [T, T], z_h = A v
//             x_{l+1} = x_l + z W_O + b_O                         z: [N, H d_head]
//   logits = norm_final(x_L) W_U + b_U                            [N, d_vocab_out]
//   loss = sum_i w_i (logsumexp(logits_i) - logits_i[target_i]) / sum_i w_i
//
// W_Q, W_K, W_V are stored per head ([n_heads, d_model, d_head]); they are
// repacked once per call into Wqkv [d_model, 3 n_heads d_head] (column block
// h * d_head of each third is head h) so that the three projections are one
// GEMM, and their gradient is accumulated in the same packed layout and
// unpacked at the end. W_O [n_heads, d_head, d_model] is already the matrix
// [n_heads d_head, d_model] that z multiplies.
#include "train/backward.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <string>
#ifndef __EMSCRIPTEN__
#include <thread>
#endif

#include "core/error.h"
#include "core/kernels.h"

namespace cs::train {

namespace {

using Eigen::Index;
using RowVec = Eigen::RowVectorXf;
// Buffers that Eigen maps and reduces over are allocated at Eigen's alignment:
// Eigen peels unaligned leading elements with scalar code and sums the rest in
// packets, so with a malloc'ed (16-byte) buffer the rounding of column sums
// would depend on where the allocation landed, and a run would not repeat bit
// for bit (the trainer's resume test depends on it).
using AlignedFloats = std::vector<float, Eigen::aligned_allocator<float>>;
using Block = Eigen::Block<RowMat>;
using ConstBlock = Eigen::Block<const RowMat>;

// Rows of logits computed at a time by the fused unembedding + cross-entropy
// (keeps the [rows, d_vocab_out] buffer cache-sized while the GEMMs stay large).
constexpr Index kUnembedRows = 256;

// Everything a worker needs to know about the shapes.
struct Dims {
  int T = 0, D = 0, H = 0, Dh = 0, HD = 0, L = 0, V = 0;
  PosEmbed pos = PosEmbed::None;
  Norm norm = Norm::None;
  float eps = 0.f, inv_scale = 1.f;
};

// Read-only state shared by the workers of one call.
struct Shared {
  const Model* m = nullptr;
  Dims d;
  const int* tokens = nullptr;  // [B, T]
  const float* mask = nullptr;  // [B, T] or nullptr
  double inv_total_weight = 0;  // 1 / sum of the counted predictions' weights
  const std::vector<RowMat>* Wqkv = nullptr;  // per layer [d_model, 3 HD]
  const std::vector<RowVec>* bqkv = nullptr;  // per layer [3 HD]
};

// Offset of a view into the model's flat block (= into the gradient block).
size_t offset_of(const Model& m, const float* p) { return size_t(p - m.data()); }

// ---- normalization ---------------------------------------------------------------

// Activations the normalization keeps for its backward.
struct NormCache {
  RowMat xhat;         // (x - mean) * rstd   [N, d_model]  (LN / LNPre)
  Eigen::VectorXf rstd;  // 1 / sqrt(mean((x - mean)^2) + eps)   [N]
};

// y = norm(x) over each row of x [N, d_model]: LN: xhat * w + b; LNPre: xhat;
// None: x. The same arithmetic as core normalize_rows.
void norm_forward(const Dims& d, const RowMat& x, const float* w, const float* b, NormCache& c, RowMat& y) {
  if (d.norm == Norm::None) {
    y = x;
    return;
  }
  const float D = float(d.D);
  const Eigen::VectorXf mean = x.rowwise().sum() / D;
  c.xhat = x;
  c.xhat.colwise() -= mean;
  c.rstd = (c.xhat.rowwise().squaredNorm().array() / D + d.eps).rsqrt().matrix();
  c.xhat.array().colwise() *= c.rstd.array();
  if (d.norm == Norm::LN) {
    const Eigen::Map<const RowVec> wv(w, d.D), bv(b, d.D);
    y = c.xhat;
    y.array().rowwise() *= wv.array();
    y.rowwise() += bv;
  } else {
    y = c.xhat;
  }
}

// dx += d norm / dx applied to dy [N, d_model]; dw, db (LN only) += their
// gradients. With xhat as above:
//   dxhat = dy * w (LN) or dy (LNPre)
//   dx    = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))   (per row)
// `scratch` is a [N, d_model] buffer.
void norm_backward(const Dims& d, const NormCache& c, const float* w, const RowMat& dy, float* dw, float* db,
                   RowMat& dx, RowMat& scratch) {
  if (d.norm == Norm::None) {
    dx += dy;
    return;
  }
  const RowMat* dxhat = &dy;
  if (d.norm == Norm::LN) {
    Eigen::Map<RowVec> dwv(dw, d.D), dbv(db, d.D);
    dwv += (dy.array() * c.xhat.array()).colwise().sum().matrix();
    dbv += dy.colwise().sum();
    scratch = dy;
    scratch.array().rowwise() *= Eigen::Map<const RowVec>(w, d.D).array();
    dxhat = &scratch;
  }
  const float inv_D = 1.f / float(d.D);
  const Eigen::ArrayXf mean_dxhat = dxhat->rowwise().sum().array() * inv_D;
  const Eigen::ArrayXf mean_dxhat_xhat = (dxhat->array() * c.xhat.array()).rowwise().sum() * inv_D;
  dx.array() += ((dxhat->array().colwise() - mean_dxhat) - c.xhat.array().colwise() * mean_dxhat_xhat).colwise() *
                c.rstd.array();
}

// ---- embedding ---------------------------------------------------------------------

// x0[s T + t] = W_E[tokens[s, t]] (+ W_pos[t] for Standard positions).   [N, d_model]
void embedding_forward(const Shared& sh, const int* tokens, int nseq, RowMat& x0) {
  const Model& m = *sh.m;
  const Dims& d = sh.d;
  const ConstMatMap W_E = m.W_E();
  x0.resize(Index(nseq) * d.T, d.D);
  for (Index i = 0; i < x0.rows(); ++i) x0.row(i) = W_E.row(tokens[i]);
  if (d.pos == PosEmbed::Standard) {
    const auto W_pos = m.W_pos().topRows(d.T);
    for (int s = 0; s < nseq; ++s) x0.middleRows(Index(s) * d.T, d.T) += W_pos;
  }
}

// dW_E[tokens[i]] += dx0[i]; dW_pos[t] += dx0[s T + t] (Standard).
void embedding_backward(const Shared& sh, const int* tokens, int nseq, const RowMat& dx0, float* g) {
  const Model& m = *sh.m;
  const Dims& d = sh.d;
  MatMap gW_E(g + offset_of(m, m.W_E().data()), m.config().d_vocab, d.D);
  for (Index i = 0; i < dx0.rows(); ++i) gW_E.row(tokens[i]) += dx0.row(i);
  if (d.pos == PosEmbed::Standard) {
    MatMap gW_pos(g + offset_of(m, m.W_pos().data()), m.config().n_ctx, d.D);
    for (int s = 0; s < nseq; ++s) gW_pos.topRows(d.T) += dx0.middleRows(Index(s) * d.T, d.T);
  }
}

// ---- attention (one head of one sequence) --------------------------------------------

// In place: each row i of A [T, T] becomes the softmax of its causal part
// (columns 0..i); the upper triangle is set to 0. As core forward's causal_softmax.
void causal_softmax(Eigen::Map<RowMat>& A) {
  const Index T = A.rows();
  for (Index i = 0; i < T; ++i) {
    auto row = A.row(i);
    auto live = row.head(i + 1);
    const float mx = kernels::max_value(live.data(), i + 1);
    live *= 1.f / kernels::exp_shift(live.data(), i + 1, mx);
    if (i + 1 < T) row.tail(T - i - 1).setZero();
  }
}

// q (already divided by attn_scale), k, v: [T, d_head] column blocks of qkv.
// A = softmax(causal(q k^T))  [T(query), T(key)];  z = A v  [T, d_head].
// Clears the lower triangle (diagonal included) of a row-major [T, T] matrix
// row by row. Then adding a triangular product to it is much faster than
// assigning one: Eigen's assignment clears the triangle column by column,
// strided in a row-major matrix.
void zero_lower(Eigen::Map<RowMat>& M) {
  for (Index i = 0; i < M.rows(); ++i) M.row(i).head(i + 1).setZero();
}

// How the attention products are done. Natively, Eigen's triangular
// products (only the causal half). In wasm Eigen has no SIMD128 kernels, so
// they go through the SIMD128 GEMM (core/kernels.h) in blocks of kBand rows
// (or columns), each over the part of the square up to its band's diagonal
// block: 5/8 of the square's multiply-adds at T = 128, against 1/2 for the
// exact triangle, and several times faster there. Entries above the diagonal
// inside a band are computed and then cleared where they would be read.
#ifdef __EMSCRIPTEN__
constexpr bool kBandProducts = true;
#else
constexpr bool kBandProducts = false;
#endif
constexpr Index kBand = 32;

void attention_head_forward(const Block& q, const Block& k, const Block& v, Eigen::Map<RowMat>& A, Block z) {
  const Index T = A.rows();
  if constexpr (kBandProducts) {
    // S[i0 : i0 + R, 0 : i0 + R] = q[i0 : i0 + R] k[0 : i0 + R]^T
    for (Index i0 = 0; i0 < T; i0 += kBand) {
      const Index R = std::min(kBand, T - i0), C = i0 + R;
      kernels::matmul(q.middleRows(i0, R), k.topRows(C).transpose(), A.block(i0, 0, R, C));
    }
  } else {
    zero_lower(A);
    A.triangularView<Eigen::Lower>() += q * k.transpose();
  }
  causal_softmax(A);  // reads the causal part of each row, clears the rest
  if constexpr (kBandProducts) {
    for (Index i0 = 0; i0 < T; i0 += kBand) {
      const Index R = std::min(kBand, T - i0), C = i0 + R;
      kernels::matmul(A.block(i0, 0, R, C), v.topRows(C), z.middleRows(i0, R));
    }
  } else {
    z.noalias() = A.triangularView<Eigen::Lower>() * v;
  }
}

// Given dz [T, d_head], writes dq (w.r.t. the scaled q), dk, dv [T, d_head]:
//   dA = dz v^T (lower triangle)            dv = A^T dz
//   dS = A * (dA - rowsum(A * dA))          (softmax backward, per row)
//   dq = dS k                               dk = dS^T q
// dA [T, T] is scratch (it ends up holding dS).
void attention_head_backward(const Eigen::Map<RowMat>& A, const Block& q, const Block& k, const Block& v,
                             const Block& dz, Eigen::Map<RowMat>& dA, Block dq, Block dk, Block dv) {
  const Index T = A.rows();
  if constexpr (kBandProducts) {
    for (Index i0 = 0; i0 < T; i0 += kBand) {
      const Index R = std::min(kBand, T - i0), C = i0 + R;
      kernels::matmul(dz.middleRows(i0, R), v.topRows(C).transpose(), dA.block(i0, 0, R, C));
      // dv[j0 : j0 + R] = A[j0 :, j0 : j0 + R]^T dz[j0 :] (A is 0 above the diagonal)
      kernels::matmul(A.block(i0, i0, T - i0, R).transpose(), dz.middleRows(i0, T - i0), dv.middleRows(i0, R));
    }
  } else {
    zero_lower(dA);
    dA.triangularView<Eigen::Lower>() += dz * v.transpose();
    dv.noalias() = A.triangularView<Eigen::Lower>().transpose() * dz;
  }
  for (Index i = 0; i < T; ++i) {
    kernels::softmax_backward_row(A.row(i).data(), dA.row(i).data(), i + 1);
    if (kBandProducts && i + 1 < T) dA.row(i).tail(T - i - 1).setZero();
  }
  if constexpr (kBandProducts) {
    for (Index i0 = 0; i0 < T; i0 += kBand) {
      const Index R = std::min(kBand, T - i0), C = i0 + R;
      kernels::matmul(dA.block(i0, 0, R, C), k.topRows(C), dq.middleRows(i0, R));
      kernels::matmul(dA.block(i0, i0, T - i0, R).transpose(), q.middleRows(i0, T - i0), dk.middleRows(i0, R));
    }
  } else {
    dq.noalias() = dA.triangularView<Eigen::Lower>() * k;
    dk.noalias() = dA.triangularView<Eigen::Lower>().transpose() * q;
  }
}

// ---- worker state -----------------------------------------------------------------

// (Every buffer is an Eigen matrix or an AlignedFloats, never a plain std::vector: see AlignedFloats.)
struct LayerActs {
  NormCache ln1;
  RowMat y;      // norm(x_l)                          [N, d_model]
  RowMat qk_in;  // y + W_pos (Shortformer only)       [N, d_model]
  RowMat qkv;    // q / attn_scale | k | v             [N, 3 HD]
  AlignedFloats A;  // patterns, [nseq][H][T][T]
  RowMat z;      // A v of every head side by side     [N, HD]
};

struct Worker {
  int seq0 = 0, nseq = 0;  // sequences [seq0, seq0 + nseq) of the batch
  RowMat x;                // residual stream, updated in place   [N, d_model]
  std::vector<LayerActs> layers;
  NormCache lnf;
  RowMat xf;               // norm_final(x_L)                      [N, d_model]
  RowMat logits;           // one chunk of logits / dlogits        [kUnembedRows, d_vocab_out]
  // backward scratch
  RowMat dx, dy, dqk_in, dz, dqkv, scratch;
  AlignedFloats dA;   // [T, T]
  // gradient accumulator in Model::data() layout (W_Q/W_K/W_V stay zero here:
  // they are accumulated packed in dWqkv)
  AlignedFloats g;
  std::vector<RowMat> dWqkv;  // per layer [d_model, 3 HD]
  double loss_sum = 0;        // sum of w_i * loss_i over this worker's predictions
  std::exception_ptr error;

  size_t bytes() const {
    size_t n = size_t(x.size() + lnf.xhat.size() + lnf.rstd.size() + xf.size() + logits.size() + dx.size() +
                      dy.size() + dqk_in.size() + dz.size() + dqkv.size() + scratch.size()) +
               size_t(dA.size() + g.size());
    for (const auto& l : layers)
      n += size_t(l.ln1.xhat.size() + l.ln1.rstd.size() + l.y.size() + l.qk_in.size() + l.qkv.size() + l.z.size()) +
           size_t(l.A.size());
    for (const auto& w : dWqkv) n += size_t(w.size());
    return n * sizeof(float);
  }
};

}  // namespace

struct Workspace::Impl {
  std::vector<Worker> workers;
  std::vector<RowMat> Wqkv;  // per layer [d_model, 3 HD], packed W_Q | W_K | W_V
  std::vector<RowVec> bqkv;  // per layer [3 HD], packed b_Q | b_K | b_V
  // The pass begun (begin_pass) and not yet finished.
  Shared pass;
  double total_weight = 0;
  float* grads = nullptr;  // nullptr: forward only
  bool active = false;
};

Workspace::Workspace() : impl_(std::make_unique<Impl>()) {}
Workspace::~Workspace() = default;
Workspace::Workspace(Workspace&&) noexcept = default;
Workspace& Workspace::operator=(Workspace&&) noexcept = default;

size_t Workspace::bytes() const {
  if (!impl_) return 0;
  size_t n = 0;
  for (const auto& w : impl_->workers) n += w.bytes();
  for (const auto& w : impl_->Wqkv) n += size_t(w.size()) * sizeof(float);
  for (const auto& b : impl_->bqkv) n += size_t(b.size()) * sizeof(float);
  return n;
}

void Workspace::clear() {
  if (impl_) *impl_ = Impl{};
}

namespace {

// ---- one block: forward and backward ------------------------------------------------

float* A_of(LayerActs& la, const Dims& d, int s, int h) {
  return la.A.data() + (size_t(s) * d.H + size_t(h)) * size_t(d.T) * size_t(d.T);
}

// x <- x + attention block l (x is x_l on entry, x_{l+1} on return).
void block_forward(const Shared& sh, int l, Worker& w, LayerActs& la) {
  const Model& m = *sh.m;
  const Dims& d = sh.d;
  const Index N = w.x.rows(), T = d.T, HD = d.HD, Dh = d.Dh;
  const bool ln = d.norm == Norm::LN;
  norm_forward(d, w.x, ln ? m.ln1_w(l).data() : nullptr, ln ? m.ln1_b(l).data() : nullptr, la.ln1, la.y);

  // qkv = [qk_in W_Q | qk_in W_K | y W_V] + b: [N, d_model] @ [d_model, 3 HD]
  const RowMat& Wqkv = (*sh.Wqkv)[size_t(l)];
  la.qkv.resize(N, 3 * HD);
  if (d.pos == PosEmbed::Shortformer) {
    la.qk_in = la.y;
    const auto W_pos = m.W_pos().topRows(T);
    for (int s = 0; s < w.nseq; ++s) la.qk_in.middleRows(Index(s) * T, T) += W_pos;
    kernels::matmul(la.qk_in, Wqkv.leftCols(2 * HD), la.qkv.leftCols(2 * HD));
    kernels::matmul(la.y, Wqkv.rightCols(HD), la.qkv.rightCols(HD));
  } else {
    kernels::matmul(la.y, Wqkv, la.qkv);
  }
  la.qkv.rowwise() += (*sh.bqkv)[size_t(l)];
  la.qkv.leftCols(HD) *= d.inv_scale;  // scores = q k^T / attn_scale

  la.A.resize(size_t(w.nseq) * d.H * size_t(T) * size_t(T));
  la.z.resize(N, HD);
  for (int s = 0; s < w.nseq; ++s)
    for (int h = 0; h < d.H; ++h) {
      const Index r0 = Index(s) * T, c = Index(h) * Dh;
      Eigen::Map<RowMat> A(A_of(la, d, s, h), T, T);
      attention_head_forward(la.qkv.block(r0, c, T, Dh), la.qkv.block(r0, HD + c, T, Dh),
                             la.qkv.block(r0, 2 * HD + c, T, Dh), A, la.z.block(r0, c, T, Dh));
    }

  // x_{l+1} = x_l + z W_O + b_O: [N, HD] @ [HD, d_model]
  const ConstMatMap W_O(m.W_O(l, 0).data(), HD, d.D);
  kernels::matmul(la.z, W_O, w.x, /*accumulate=*/true);
  w.x.rowwise() += m.b_O(l).transpose();
}

// On entry w.dx = d loss / d x_{l+1}; on return d loss / d x_l.
void block_backward(const Shared& sh, int l, Worker& w, LayerActs& la) {
  const Model& m = *sh.m;
  const Dims& d = sh.d;
  float* g = w.g.data();
  const Index N = w.dx.rows(), T = d.T, HD = d.HD, Dh = d.Dh;

  // residual + W_O: db_O += colsum(dx); dW_O += z^T dx [HD, d_model]; dz = dx W_O^T [N, HD]
  const ConstMatMap W_O(m.W_O(l, 0).data(), HD, d.D);
  MatMap gW_O(g + offset_of(m, W_O.data()), HD, d.D);
  Eigen::Map<RowVec>(g + offset_of(m, m.b_O(l).data()), d.D) += w.dx.colwise().sum();
  kernels::matmul(la.z.transpose(), w.dx, gW_O, /*accumulate=*/true);
  w.dz.resize(N, HD);
  kernels::matmul(w.dx, W_O.transpose(), w.dz);

  // attention, per sequence and head -> dqkv [N, 3 HD]
  w.dqkv.resize(N, 3 * HD);
  w.dA.resize(size_t(T) * size_t(T));
  Eigen::Map<RowMat> dA(w.dA.data(), T, T);
  for (int s = 0; s < w.nseq; ++s)
    for (int h = 0; h < d.H; ++h) {
      const Index r0 = Index(s) * T, c = Index(h) * Dh;
      const Eigen::Map<RowMat> A(A_of(la, d, s, h), T, T);
      attention_head_backward(A, la.qkv.block(r0, c, T, Dh), la.qkv.block(r0, HD + c, T, Dh),
                              la.qkv.block(r0, 2 * HD + c, T, Dh), w.dz.block(r0, c, T, Dh), dA,
                              w.dqkv.block(r0, c, T, Dh), w.dqkv.block(r0, HD + c, T, Dh),
                              w.dqkv.block(r0, 2 * HD + c, T, Dh));
    }
  w.dqkv.leftCols(HD) *= d.inv_scale;  // back through q / attn_scale

  // biases: db_Q, db_K, db_V += column sums ([n_heads, d_head] each)
  const RowVec dbqkv = w.dqkv.colwise().sum();
  Eigen::Map<RowVec>(g + offset_of(m, m.b_Q(l, 0).data()), HD) += dbqkv.segment(0, HD);
  Eigen::Map<RowVec>(g + offset_of(m, m.b_K(l, 0).data()), HD) += dbqkv.segment(HD, HD);
  Eigen::Map<RowVec>(g + offset_of(m, m.b_V(l, 0).data()), HD) += dbqkv.segment(2 * HD, HD);

  // projections: dWqkv += input^T dqkv [d_model, 3 HD]; dy = dqkv Wqkv^T [N, d_model]
  const RowMat& Wqkv = (*sh.Wqkv)[size_t(l)];
  RowMat& dWqkv = w.dWqkv[size_t(l)];
  w.dy.resize(N, d.D);
  if (d.pos == PosEmbed::Shortformer) {
    kernels::matmul(la.qk_in.transpose(), w.dqkv.leftCols(2 * HD), dWqkv.leftCols(2 * HD), /*accumulate=*/true);
    kernels::matmul(la.y.transpose(), w.dqkv.rightCols(HD), dWqkv.rightCols(HD), /*accumulate=*/true);
    w.dqk_in.resize(N, d.D);
    kernels::matmul(w.dqkv.leftCols(2 * HD), Wqkv.leftCols(2 * HD).transpose(), w.dqk_in);
    MatMap gW_pos(g + offset_of(m, m.W_pos().data()), m.config().n_ctx, d.D);
    for (int s = 0; s < w.nseq; ++s) gW_pos.topRows(T) += w.dqk_in.middleRows(Index(s) * T, T);
    w.dy = w.dqk_in;
    kernels::matmul(w.dqkv.rightCols(HD), Wqkv.rightCols(HD).transpose(), w.dy, /*accumulate=*/true);
  } else {
    kernels::matmul(la.y.transpose(), w.dqkv, dWqkv, /*accumulate=*/true);
    kernels::matmul(w.dqkv, Wqkv.transpose(), w.dy);
  }

  // dx_l = dx_{l+1} (skip connection) + norm backward of dy
  const bool ln = d.norm == Norm::LN;
  norm_backward(d, la.ln1, ln ? m.ln1_w(l).data() : nullptr, w.dy,
                ln ? g + offset_of(m, m.ln1_w(l).data()) : nullptr, ln ? g + offset_of(m, m.ln1_b(l).data()) : nullptr,
                w.dx, w.scratch);
}

// ---- unembedding + cross-entropy (fused, in row chunks) ---------------------------------

// Weight of the prediction made at row i (position t of sequence s): 0 for the
// last position (nothing to predict) and for masked positions.
float row_weight(const Shared& sh, const Worker& w, Index i) {
  const Index t = i % sh.d.T;
  if (t == sh.d.T - 1) return 0.f;
  if (!sh.mask) return 1.f;
  return sh.mask[size_t(w.seq0) * size_t(sh.d.T) + size_t(i)];
}

// logits = xf W_U + b_U, chunk by chunk; accumulates w_i * loss_i into
// w.loss_sum. With backward: dlogits_i = w_i / sum(w) * (softmax(logits_i) -
// onehot(target_i)); db_U += colsum(dlogits); dW_U += xf^T dlogits
// [d_model, d_vocab_out]; dxf = dlogits W_U^T [N, d_model] (into w.dx).
void unembed_cross_entropy(const Shared& sh, Worker& w, bool backward) {
  const Model& m = *sh.m;
  const Dims& d = sh.d;
  const ConstMatMap W_U = m.W_U();
  const auto b_U = m.b_U().transpose();
  const int* tokens = sh.tokens + size_t(w.seq0) * size_t(d.T);
  const Index N = w.xf.rows();
  // The gradient block is empty when only evaluating: no pointers into it then.
  float* g = backward ? w.g.data() : nullptr;
  MatMap gW_U(g ? g + offset_of(m, W_U.data()) : nullptr, d.D, d.V);
  Eigen::Map<RowVec> gb_U(g ? g + offset_of(m, m.b_U().data()) : nullptr, d.V);
  if (backward) w.dx.resize(N, d.D);
  double loss_sum = 0;
  for (Index r0 = 0; r0 < N; r0 += kUnembedRows) {
    const Index R = std::min(kUnembedRows, N - r0);
    w.logits.resize(R, d.V);
    const auto xf = w.xf.middleRows(r0, R);
    kernels::matmul(xf, W_U, w.logits);
    w.logits.rowwise() += b_U;
    for (Index r = 0; r < R; ++r) {
      const Index i = r0 + r;
      const float wt = row_weight(sh, w, i);
      auto row = w.logits.row(r);
      if (wt == 0.f) {
        if (backward) row.setZero();
        continue;
      }
      const int target = tokens[i + 1];
      const float mx = kernels::max_value(row.data(), row.size());
      const float target_logit = row(target);
      if (!std::isfinite(mx)) {  // inf / NaN logits: the loss is not finite, say so with NaN
        loss_sum += std::numeric_limits<double>::quiet_NaN();
        if (backward) row.setConstant(std::numeric_limits<float>::quiet_NaN());
        continue;
      }
      const float sum = kernels::exp_shift(row.data(), row.size(), mx);
      loss_sum += double(wt) * double(mx + std::log(sum) - target_logit);
      if (backward) {
        const float c = float(double(wt) * sh.inv_total_weight);
        row *= c / sum;
        row(target) -= c;
      }
    }
    if (backward) {
      gb_U += w.logits.colwise().sum();
      kernels::matmul(xf.transpose(), w.logits, gW_U, /*accumulate=*/true);
      kernels::matmul(w.logits, W_U.transpose(), w.dx.middleRows(r0, R));
    }
  }
  w.loss_sum = loss_sum;
}

// ---- a worker's whole pass ---------------------------------------------------------------

void run_worker(const Shared& sh, Worker& w, bool backward) {
  const Model& m = *sh.m;
  const Dims& d = sh.d;
  const int* tokens = sh.tokens + size_t(w.seq0) * size_t(d.T);
  if (backward) {
    w.g.assign(m.size(), 0.f);
    w.dWqkv.resize(size_t(d.L));
    for (auto& dW : w.dWqkv) dW.setZero(d.D, 3 * d.HD);
  }
  w.layers.resize(size_t(d.L));

  embedding_forward(sh, tokens, w.nseq, w.x);
  for (int l = 0; l < d.L; ++l) block_forward(sh, l, w, w.layers[size_t(l)]);
  const bool ln = d.norm == Norm::LN;
  norm_forward(d, w.x, ln ? m.ln_final_w().data() : nullptr, ln ? m.ln_final_b().data() : nullptr, w.lnf, w.xf);
  unembed_cross_entropy(sh, w, backward);
  if (!backward) return;

  // w.dx = d loss / d xf; back through the final norm into d loss / d x_L
  w.dy.swap(w.dx);
  w.dx.setZero(w.dy.rows(), d.D);
  float* g = w.g.data();
  norm_backward(d, w.lnf, ln ? m.ln_final_w().data() : nullptr, w.dy,
                ln ? g + offset_of(m, m.ln_final_w().data()) : nullptr,
                ln ? g + offset_of(m, m.ln_final_b().data()) : nullptr, w.dx, w.scratch);
  for (int l = d.L - 1; l >= 0; --l) block_backward(sh, l, w, w.layers[size_t(l)]);
  embedding_backward(sh, tokens, w.nseq, w.dx, g);
}

// ---- validation and dispatch ---------------------------------------------------------------

// Checks the batch against the model (throws cs::Error naming what is wrong)
// and returns the total weight of the counted predictions.
double check_batch(const Model& m, const BatchView& b, const char* fn) {
  const ModelConfig& c = m.config();
  const std::string f = std::string(fn) + ": ";
  if (m.tensors().empty()) throw Error(f + "the model has no tensors (none loaded)");
  if (b.B < 1) throw Error(f + "batch B must be >= 1 (got " + std::to_string(b.B) + ")");
  if (b.T < 2) throw Error(f + "batch T must be >= 2 to predict anything (got " + std::to_string(b.T) + ")");
  if (c.has_pos() && b.T > c.n_ctx)
    throw Error(f + "batch T " + std::to_string(b.T) + " is more than n_ctx " + std::to_string(c.n_ctx));
  const size_t n = size_t(b.B) * size_t(b.T);
  if (b.tokens.size() != n)
    throw Error(f + "tokens has " + std::to_string(b.tokens.size()) + " entries, expected B * T = " +
                std::to_string(n));
  if (!b.loss_mask.empty() && b.loss_mask.size() != n)
    throw Error(f + "loss_mask has " + std::to_string(b.loss_mask.size()) + " entries, expected B * T = " +
                std::to_string(n));
  const int V = c.vocab_out();
  const size_t T = size_t(b.T);
  auto where = [&](size_t i) { return "[" + std::to_string(i / T) + ", " + std::to_string(i % T) + "] = "; };
  for (size_t i = 0; i < n; ++i) {
    const int id = b.tokens[i];
    if (id < 0 || id >= c.d_vocab)
      throw Error(f + "tokens" + where(i) + std::to_string(id) + " is outside [0, d_vocab = " +
                  std::to_string(c.d_vocab) + ")");
    if (!b.loss_mask.empty() && (!(b.loss_mask[i] >= 0.f) || !std::isfinite(b.loss_mask[i])))
      throw Error(f + "loss_mask" + where(i) + std::to_string(b.loss_mask[i]) + " must be finite and >= 0");
  }
  // Predictions: position t of each sequence (t < T - 1) predicts tokens[s, t + 1].
  double total = 0;
  for (size_t i = 0; i < n; ++i) {
    if (i % T == T - 1) continue;
    const double w = b.loss_mask.empty() ? 1.0 : double(b.loss_mask[i]);
    if (w == 0) continue;
    total += w;
    if (b.tokens[i + 1] >= V)
      throw Error(f + "tokens" + where(i + 1) + std::to_string(b.tokens[i + 1]) +
                  " is a target outside [0, d_vocab_out = " + std::to_string(V) + ")");
  }
  if (!(total > 0)) throw Error(f + "loss_mask counts no prediction (all weights are 0)");
  return total;
}

Dims dims_of(const ModelConfig& c, int T) {
  Dims d;
  d.T = T;
  d.D = c.d_model;
  d.H = c.n_heads;
  d.Dh = c.d_head;
  d.HD = c.n_heads * c.d_head;
  d.L = c.n_layers;
  d.V = c.vocab_out();
  d.pos = c.positional;
  d.norm = c.normalization;
  d.eps = c.eps;
  d.inv_scale = 1.f / c.scale();
  return d;
}

// Packs W_Q | W_K | W_V of each layer into [d_model, 3 HD] and the biases into [3 HD].
void pack_weights(const Model& m, const Dims& d, Workspace::Impl& ws) {
  ws.Wqkv.resize(size_t(d.L));
  ws.bqkv.resize(size_t(d.L));
  for (int l = 0; l < d.L; ++l) {
    RowMat& W = ws.Wqkv[size_t(l)];
    RowVec& b = ws.bqkv[size_t(l)];
    W.resize(d.D, 3 * d.HD);
    b.resize(3 * d.HD);
    for (int h = 0; h < d.H; ++h) {
      const Index c = Index(h) * d.Dh;
      W.block(0, c, d.D, d.Dh) = m.W_Q(l, h);
      W.block(0, d.HD + c, d.D, d.Dh) = m.W_K(l, h);
      W.block(0, 2 * d.HD + c, d.D, d.Dh) = m.W_V(l, h);
      b.segment(c, d.Dh) = m.b_Q(l, h).transpose();
      b.segment(d.HD + c, d.Dh) = m.b_K(l, h).transpose();
      b.segment(2 * d.HD + c, d.Dh) = m.b_V(l, h).transpose();
    }
  }
}

// A pass over a batch in `groups` contiguous groups of sequences (the first
// B % groups one longer), each with its own worker: begin_pass checks and
// prepares, run_group runs one group (on any thread), finish_pass sums the
// groups in group order. Returns the number of groups.
int begin_pass(const Model& m, const BatchView& b, std::span<float>* grads, Workspace& ws, int groups,
               const char* fn) {
  Workspace::Impl& impl = ws.impl();
  impl.active = false;
  const double total_weight = check_batch(m, b, fn);
  if (grads && grads->size() != m.size())
    throw Error(std::string(fn) + ": grads has " + std::to_string(grads->size()) + " entries, the model has " +
                std::to_string(m.size()) + " parameters");
  Shared& sh = impl.pass;
  sh = Shared{};
  sh.m = &m;
  sh.d = dims_of(m.config(), b.T);
  sh.tokens = b.tokens.data();
  sh.mask = b.loss_mask.empty() ? nullptr : b.loss_mask.data();
  sh.inv_total_weight = 1.0 / total_weight;
  pack_weights(m, sh.d, impl);
  sh.Wqkv = &impl.Wqkv;
  sh.bqkv = &impl.bqkv;
  const int n = std::clamp(groups, 1, b.B);
  impl.workers.resize(size_t(n));
  for (int i = 0, s = 0; i < n; ++i) {
    Worker& w = impl.workers[size_t(i)];
    w.seq0 = s;
    w.nseq = b.B / n + (i < b.B % n ? 1 : 0);
    w.error = nullptr;
    s += w.nseq;
  }
  impl.total_weight = total_weight;
  impl.grads = grads ? grads->data() : nullptr;
  impl.active = true;
  return n;
}

// Runs group i; an exception is kept in its worker (rethrown by finish_pass).
void run_group(Workspace::Impl& impl, int i) {
  Worker& w = impl.workers.at(size_t(i));
  try {
    run_worker(impl.pass, w, impl.grads != nullptr);
  } catch (...) {
    w.error = std::current_exception();
  }
}

float finish_pass(Workspace::Impl& impl) {
  if (!impl.active) throw Error("loss_and_grad: no pass was begun");
  impl.active = false;
  for (const Worker& w : impl.workers)
    if (w.error) std::rethrow_exception(w.error);
  const Model& m = *impl.pass.m;
  double loss_sum = 0;
  for (const Worker& w : impl.workers) loss_sum += w.loss_sum;
  if (impl.grads) {
    // Sum the workers' accumulators in worker order, then unpack dWqkv into
    // the per-head W_Q / W_K / W_V gradients.
    float* out = impl.grads;
    std::copy(impl.workers[0].g.begin(), impl.workers[0].g.end(), out);
    Eigen::Map<Eigen::VectorXf> gout(out, Index(m.size()));
    for (size_t i = 1; i < impl.workers.size(); ++i)
      gout += Eigen::Map<const Eigen::VectorXf>(impl.workers[i].g.data(), Index(m.size()));
    const Dims& d = impl.pass.d;
    for (int l = 0; l < d.L; ++l) {
      RowMat& dW = impl.workers[0].dWqkv[size_t(l)];
      for (size_t i = 1; i < impl.workers.size(); ++i) dW += impl.workers[i].dWqkv[size_t(l)];
      for (int h = 0; h < d.H; ++h) {
        const Index c = Index(h) * d.Dh;
        MatMap(out + offset_of(m, m.W_Q(l, h).data()), d.D, d.Dh) = dW.block(0, c, d.D, d.Dh);
        MatMap(out + offset_of(m, m.W_K(l, h).data()), d.D, d.Dh) = dW.block(0, d.HD + c, d.D, d.Dh);
        MatMap(out + offset_of(m, m.W_V(l, h).data()), d.D, d.Dh) = dW.block(0, 2 * d.HD + c, d.D, d.Dh);
      }
    }
  }
  return float(loss_sum / impl.total_weight);
}

float run(const Model& m, const BatchView& b, std::span<float>* grads, Workspace& ws, int n_threads,
          const char* fn) {
  const int n = begin_pass(m, b, grads, ws, n_threads, fn);
  Workspace::Impl& impl = ws.impl();
#ifdef __EMSCRIPTEN__
  for (int i = 0; i < n; ++i) run_group(impl, i);
#else
  {
    // Eigen's GEMM blocking sizes are set up on first use: do it before the threads start.
    static const bool eigen_ready = (Eigen::initParallel(), true);
    (void)eigen_ready;
    std::vector<std::thread> threads;
    threads.reserve(size_t(n) - 1);
    for (int i = 1; i < n; ++i) threads.emplace_back([&impl, i] { run_group(impl, i); });
    run_group(impl, 0);
    for (auto& t : threads) t.join();
  }
#endif
  return finish_pass(impl);
}

}  // namespace

float loss_and_grad(const Model& m, const BatchView& batch, std::span<float> grads, Workspace& ws, int n_threads) {
  return run(m, batch, &grads, ws, n_threads, "loss_and_grad");
}

float loss_and_grad(const Model& m, const BatchView& batch, std::span<float> grads, int n_threads) {
  thread_local Workspace ws;
  return loss_and_grad(m, batch, grads, ws, n_threads);
}

float batch_loss(const Model& m, const BatchView& batch, Workspace& ws, int n_threads) {
  return run(m, batch, nullptr, ws, n_threads, "batch_loss");
}

float batch_loss(const Model& m, const BatchView& batch, int n_threads) {
  thread_local Workspace ws;
  return batch_loss(m, batch, ws, n_threads);
}

double train_flops(const ModelConfig& c, int B, int T) {
  const double rows = double(B) * double(T);
  const double D = c.d_model, HD = double(c.n_heads) * c.d_head, V = c.vocab_out();
  const double proj = 2.0 * rows * (D * 3 * HD + HD * D);                       // Q, K, V and W_O
  const double attn = 2.0 * double(B) * c.n_heads * (double(T) * (T + 1) / 2) * c.d_head * 2;  // q k^T, A v
  const double unembed = 2.0 * rows * D * V;
  return 3.0 * (c.n_layers * (proj + attn) + unembed);
}

int begin_loss_and_grad(const Model& m, const BatchView& batch, std::span<float> grads, Workspace& ws, int groups) {
  return begin_pass(m, batch, &grads, ws, groups, "loss_and_grad");
}

void loss_and_grad_group(Workspace& ws, int group) {
  Workspace::Impl& impl = ws.impl();
  if (!impl.active) throw Error("loss_and_grad_group: no pass was begun");
  if (group < 0 || size_t(group) >= impl.workers.size())
    throw Error("loss_and_grad_group: group " + std::to_string(group) + " of " + std::to_string(impl.workers.size()));
  run_group(impl, group);
}

float finish_loss_and_grad(Workspace& ws) { return finish_pass(ws.impl()); }

}  // namespace cs::train
