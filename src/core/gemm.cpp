// Matrix products (kernels.h): Eigen natively; in wasm a packed,
// register-blocked kernel with a SIMD128 micro-kernel. docs/speed.md explains
// the blocking and what limits it in wasm.
//
// The packed product C = A B, for blocks of kKc of the inner dimension:
//   B's block [kc, n] is packed into panels of kNr columns, k-major
//     (panel j: kc rows of kNr floats, zero past the last column);
//   A's block [mc, kc] into panels of kMr rows, k-major (kc columns of kMr floats);
//   the micro-kernel keeps a kMr x kNr tile of C in registers over the kc
//   steps, each a rank-1 update: kMr broadcasts of A times two 4-wide loads of B.
// A B panel (kc x 8 floats, 8 KB) stays in L1 while every A panel of the
// block passes it; the A block (kMc x kKc, 64 KB) stays in L2.
#include <algorithm>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "core/error.h"
#include "core/kernels.h"

#if defined(__wasm_simd128__)
#include <wasm_simd128.h>
#endif

namespace cs::kernels {

namespace {

constexpr Index kMr = 4;     // rows of the register tile
constexpr Index kNr = 8;     // columns of the register tile (two 4-wide vectors)
constexpr Index kKc = 256;   // inner-dimension block
constexpr Index kMc = 64;    // rows of A per packed block
constexpr Index kNc = 4096;  // columns of B per packed block (4 MB at kKc)

// Columns j0 .. j0+nc of rows p0 .. p0+kc of M into panels of `width`
// columns, k-major: out[panel][p][c], zeros past the last column. B's block
// is packed as it is (width kNr); A's as its transpose (width kMr), so that
// A's panels hold kMr rows of A per step of k.
void pack_panels(const MatView& M, Index p0, Index kc, Index j0, Index nc, Index width, float* out) {
  for (Index jr = 0; jr < nc; jr += width) {
    const Index w = std::min(width, nc - jr);
    if (!M.transposed && w == width) {  // a row's `width` entries are contiguous
      for (Index p = 0; p < kc; ++p) {
        const float* src = M.data + (p0 + p) * M.stride + j0 + jr;
        std::copy(src, src + width, out);
        out += width;
      }
    } else if (M.transposed) {  // column c of the panel is a contiguous stored row: read it whole
      for (Index c = 0; c < w; ++c) {
        const float* src = M.data + (j0 + jr + c) * M.stride + p0;
        for (Index p = 0; p < kc; ++p) out[p * width + c] = src[p];
      }
      for (Index c = w; c < width; ++c)
        for (Index p = 0; p < kc; ++p) out[p * width + c] = 0.f;
      out += kc * width;
    } else {  // the last, narrower panel
      for (Index p = 0; p < kc; ++p) {
        for (Index c = 0; c < w; ++c) out[c] = M.data[(p0 + p) * M.stride + j0 + jr + c];
        std::fill(out + w, out + width, 0.f);
        out += width;
      }
    }
  }
}

// The tile t [kMr, kNr] into C (mr x nr of it), added when `add`.
inline void store_tile(const float* t, float* C, Index ldc, Index mr, Index nr, bool add) {
  for (Index r = 0; r < mr; ++r)
    for (Index c = 0; c < nr; ++c) C[r * ldc + c] = add ? C[r * ldc + c] + t[r * kNr + c] : t[r * kNr + c];
}

#if defined(__wasm_simd128__)

// C[0..mr, 0..nr] (+)= a-panel [kc][kMr] x b-panel [kc][kNr], in SIMD128
// registers: 8 accumulators, one f32x4 mul and add per pair of 4 lanes (no
// fused multiply-add in baseline SIMD128).
void micro_kernel(Index kc, const float* a, const float* b, float* C, Index ldc, Index mr, Index nr, bool add) {
  v128_t c00 = wasm_f32x4_splat(0.f), c01 = c00, c10 = c00, c11 = c00;
  v128_t c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  for (Index p = 0; p < kc; ++p, a += kMr, b += kNr) {
    const v128_t b0 = wasm_v128_load(b), b1 = wasm_v128_load(b + 4);
    v128_t x = wasm_v128_load32_splat(a);
    c00 = wasm_f32x4_add(c00, wasm_f32x4_mul(x, b0));
    c01 = wasm_f32x4_add(c01, wasm_f32x4_mul(x, b1));
    x = wasm_v128_load32_splat(a + 1);
    c10 = wasm_f32x4_add(c10, wasm_f32x4_mul(x, b0));
    c11 = wasm_f32x4_add(c11, wasm_f32x4_mul(x, b1));
    x = wasm_v128_load32_splat(a + 2);
    c20 = wasm_f32x4_add(c20, wasm_f32x4_mul(x, b0));
    c21 = wasm_f32x4_add(c21, wasm_f32x4_mul(x, b1));
    x = wasm_v128_load32_splat(a + 3);
    c30 = wasm_f32x4_add(c30, wasm_f32x4_mul(x, b0));
    c31 = wasm_f32x4_add(c31, wasm_f32x4_mul(x, b1));
  }
  if (mr == kMr && nr == kNr) {
    const v128_t rows[kMr][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}};
    for (Index r = 0; r < kMr; ++r) {
      float* c = C + r * ldc;
      if (add) {
        wasm_v128_store(c, wasm_f32x4_add(wasm_v128_load(c), rows[r][0]));
        wasm_v128_store(c + 4, wasm_f32x4_add(wasm_v128_load(c + 4), rows[r][1]));
      } else {
        wasm_v128_store(c, rows[r][0]);
        wasm_v128_store(c + 4, rows[r][1]);
      }
    }
    return;
  }
  const v128_t tile[kMr * 2] = {c00, c01, c10, c11, c20, c21, c30, c31};
  float t[kMr * kNr];
  for (Index v = 0; v < kMr * 2; ++v) wasm_v128_store(t + 4 * v, tile[v]);
  store_tile(t, C, ldc, mr, nr, add);
}

#else

// The same tile in plain loops (the compiler vectorizes them): natively only
// gemm_packed's tests and benchmarks use it.
void micro_kernel(Index kc, const float* a, const float* b, float* C, Index ldc, Index mr, Index nr, bool add) {
  float t[kMr * kNr] = {};
  for (Index p = 0; p < kc; ++p, a += kMr, b += kNr)
    for (Index r = 0; r < kMr; ++r)
      for (Index c = 0; c < kNr; ++c) t[r * kNr + c] += a[r] * b[c];
  store_tile(t, C, ldc, mr, nr, add);
}

#endif

void check(const MatView& A, const MatView& B, Index ldc) {
  if (A.cols != B.rows)
    throw Error("gemm: inner dimensions differ (A is " + std::to_string(A.rows) + " x " + std::to_string(A.cols) +
                ", B is " + std::to_string(B.rows) + " x " + std::to_string(B.cols) + ")");
  if (ldc < B.cols) throw Error("gemm: ldc " + std::to_string(ldc) + " is less than n = " + std::to_string(B.cols));
}

}  // namespace

void throw_output_shape(Index rows, Index cols, Index m, Index n) {
  throw Error("matmul: the output is " + std::to_string(rows) + " x " + std::to_string(cols) + ", the product " +
              std::to_string(m) + " x " + std::to_string(n));
}

void gemm_packed(const MatView& A, const MatView& B, float* C, Index ldc, bool accumulate) {
  check(A, B, ldc);
  const Index m = A.rows, n = B.cols, k = A.cols;
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (!accumulate)
      for (Index i = 0; i < m; ++i) std::fill(C + i * ldc, C + i * ldc + n, 0.f);
    return;
  }
  // Scratch kept between calls (a scan calls this per block): allocating and
  // faulting in megabytes each time would cost more than the products.
  thread_local std::vector<float> bufA, bufB;
  bufA.resize(size_t(kMc * kKc));
  bufB.resize(size_t(std::min(kKc, k) * ((std::min(kNc, n) + kNr - 1) / kNr) * kNr));
  for (Index jc = 0; jc < n; jc += kNc) {
    const Index nc = std::min(kNc, n - jc);
    for (Index pc = 0; pc < k; pc += kKc) {
      const Index kc = std::min(kKc, k - pc);
      const bool add = accumulate || pc > 0;
      pack_panels(B, pc, kc, jc, nc, kNr, bufB.data());
      for (Index ic = 0; ic < m; ic += kMc) {
        const Index mc = std::min(kMc, m - ic);
        pack_panels(transpose(A), pc, kc, ic, mc, kMr, bufA.data());
        for (Index jr = 0; jr < nc; jr += kNr)
          for (Index ir = 0; ir < mc; ir += kMr)
            micro_kernel(kc, bufA.data() + ir * kc, bufB.data() + jr * kc, C + (ic + ir) * ldc + jc + jr, ldc,
                         std::min(kMr, mc - ir), std::min(kNr, nc - jr), add);
      }
    }
  }
}

namespace {
using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Strided = Eigen::Map<const RowMajor, 0, Eigen::OuterStride<>>;

// The operand as Eigen reads it: the stored matrix, transposed if need be.
template <class F>
auto with_eigen(const MatView& M, F f) {
  if (M.transposed) return f(Strided(M.data, M.cols, M.rows, Eigen::OuterStride<>(M.stride)).transpose());
  return f(Strided(M.data, M.rows, M.cols, Eigen::OuterStride<>(M.stride)));
}

#if defined(__wasm_simd128__)
bool g_eigen = false;  // the packed kernel unless a benchmark asks for Eigen
#else
bool g_eigen = true;
#endif
}  // namespace

void gemm_eigen(const MatView& A, const MatView& B, float* C, Index ldc, bool accumulate) {
  check(A, B, ldc);
  Eigen::Map<RowMajor, 0, Eigen::OuterStride<>> out(C, A.rows, B.cols, Eigen::OuterStride<>(ldc));
  with_eigen(A, [&](const auto& a) {
    with_eigen(B, [&](const auto& b) {
      if (accumulate)
        out.noalias() += a * b;
      else
        out.noalias() = a * b;
    });
  });
}

void gemm(const MatView& A, const MatView& B, float* C, Index ldc, bool accumulate) {
  if (g_eigen)
    gemm_eigen(A, B, C, ldc, accumulate);
  else
    gemm_packed(A, B, C, ldc, accumulate);
}

void set_gemm_uses_eigen(bool eigen) { g_eigen = eigen; }

namespace {
// The block [r0, r0 + rows) x [c0, c0 + cols) of an operand.
MatView block(const MatView& M, Index r0, Index c0, Index rows, Index cols) {
  const float* d = M.transposed ? M.data + c0 * M.stride + r0 : M.data + r0 * M.stride + c0;
  return {d, rows, cols, M.stride, M.transposed};
}
// Columns per panel of gram_lower: the part above the diagonal it computes
// anyway is kGramPanel / (2 d) of the whole (1/16 at d_model 512).
constexpr Index kGramPanel = 64;
}  // namespace

void gram_lower(const MatView& X, float* G, Index ldg, bool accumulate) {
  const Index n = X.rows, d = X.cols;
  if (ldg < d) throw Error("gram_lower: ldg " + std::to_string(ldg) + " is less than d = " + std::to_string(d));
  if (g_eigen) {
    Eigen::Map<RowMajor, 0, Eigen::OuterStride<>> out(G, d, d, Eigen::OuterStride<>(ldg));
    if (!accumulate) out.triangularView<Eigen::Lower>().setZero();
    with_eigen(transpose(X), [&](const auto& xt) { out.selfadjointView<Eigen::Lower>().rankUpdate(xt); });
    return;
  }
  // Panel [j0, j0 + w) of the columns, from the diagonal down:
  // G[j0:, j0:j0+w] = X[:, j0:]^T X[:, j0:j0+w].
  for (Index j0 = 0; j0 < d; j0 += kGramPanel) {
    const Index w = std::min(kGramPanel, d - j0);
    gemm_packed(transpose(block(X, 0, j0, n, d - j0)), block(X, 0, j0, n, w), G + j0 * ldg + j0, ldg, accumulate);
  }
}

const char* gemm_backend() {
#if defined(__wasm_simd128__)
  return g_eigen ? "eigen" : "wasm-simd128";
#else
  return g_eigen ? "eigen" : "packed";  // the portable micro-kernel
#endif
}

}  // namespace cs::kernels
