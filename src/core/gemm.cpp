// Matrix products (kernels.h): Eigen natively; in wasm a packed,
// register-blocked kernel with a SIMD128 micro-kernel. docs/speed.md explains
// the blocking and what limits it in wasm.
//
// The packed product C = A B, for blocks of kKc of the inner dimension:
//   B's block [kc, n] is packed into panels of nr columns, k-major
//     (panel j: kc rows of nr entries, zero past the last column);
//   A's block [mc, kc] into panels of kMr rows, k-major (kc columns of kMr entries);
//   the micro-kernel keeps a kMr x nr tile of C in registers over the kc
//   steps, each a rank-1 update: kMr broadcasts of A times two vector loads of B.
// nr is two SIMD128 vectors: 8 floats, or 4 doubles. A B panel (kc x 32
// bytes, 8 KB) stays in L1 while every A panel of the block passes it; the A
// block (kMc x kKc: 64 KB of floats, 128 KB of doubles) stays in L2.
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
// Columns of the register tile: two 16-byte vectors of T.
template <class T>
constexpr Index kNr = Index(32 / sizeof(T));
constexpr Index kKc = 256;   // inner-dimension block
constexpr Index kMc = 64;    // rows of A per packed block
constexpr Index kNc = 4096;  // columns of B per packed block (4 MB at kKc)

// Columns j0 .. j0+nc of rows p0 .. p0+kc of M into panels of `width`
// columns, k-major: out[panel][p][c], zeros past the last column. B's block
// is packed as it is (width kNr); A's as its transpose (width kMr), so that
// A's panels hold kMr rows of A per step of k.
template <class T>
void pack_panels(const MatViewOf<T>& M, Index p0, Index kc, Index j0, Index nc, Index width, T* out) {
  for (Index jr = 0; jr < nc; jr += width) {
    const Index w = std::min(width, nc - jr);
    if (!M.transposed && w == width) {  // a row's `width` entries are contiguous
      for (Index p = 0; p < kc; ++p) {
        const T* src = M.data + (p0 + p) * M.stride + j0 + jr;
        std::copy(src, src + width, out);
        out += width;
      }
    } else if (M.transposed) {  // column c of the panel is a contiguous stored row: read it whole
      for (Index c = 0; c < w; ++c) {
        const T* src = M.data + (j0 + jr + c) * M.stride + p0;
        for (Index p = 0; p < kc; ++p) out[p * width + c] = src[p];
      }
      for (Index c = w; c < width; ++c)
        for (Index p = 0; p < kc; ++p) out[p * width + c] = T(0);
      out += kc * width;
    } else {  // the last, narrower panel
      for (Index p = 0; p < kc; ++p) {
        for (Index c = 0; c < w; ++c) out[c] = M.data[(p0 + p) * M.stride + j0 + jr + c];
        std::fill(out + w, out + width, T(0));
        out += width;
      }
    }
  }
}

// The tile t [kMr, kNr<T>] into C (mr x nr of it), added when `add`.
template <class T>
inline void store_tile(const T* t, T* C, Index ldc, Index mr, Index nr, bool add) {
  for (Index r = 0; r < mr; ++r)
    for (Index c = 0; c < nr; ++c) C[r * ldc + c] = add ? C[r * ldc + c] + t[r * kNr<T> + c] : t[r * kNr<T> + c];
}

#if defined(__wasm_simd128__)

// The lanes of a SIMD128 vector of T: 4 floats or 2 doubles.
template <class T>
struct Lanes;
template <>
struct Lanes<float> {
  static v128_t zero() { return wasm_f32x4_splat(0.f); }
  static v128_t splat(const float* p) { return wasm_v128_load32_splat(p); }
  static v128_t mul_add(v128_t c, v128_t a, v128_t b) { return wasm_f32x4_add(c, wasm_f32x4_mul(a, b)); }
  static v128_t add(v128_t a, v128_t b) { return wasm_f32x4_add(a, b); }
};
template <>
struct Lanes<double> {
  static v128_t zero() { return wasm_f64x2_splat(0.0); }
  static v128_t splat(const double* p) { return wasm_v128_load64_splat(p); }
  static v128_t mul_add(v128_t c, v128_t a, v128_t b) { return wasm_f64x2_add(c, wasm_f64x2_mul(a, b)); }
  static v128_t add(v128_t a, v128_t b) { return wasm_f64x2_add(a, b); }
};

// C[0..mr, 0..nr] (+)= a-panel [kc][kMr] x b-panel [kc][kNr], in SIMD128
// registers: 8 accumulators (kMr rows of two vectors), one mul and one add
// per vector (no fused multiply-add in baseline SIMD128).
template <class T>
void micro_kernel(Index kc, const T* a, const T* b, T* C, Index ldc, Index mr, Index nr, bool add) {
  using V = Lanes<T>;
  constexpr Index h = kNr<T> / 2;  // lanes per vector
  v128_t c00 = V::zero(), c01 = c00, c10 = c00, c11 = c00;
  v128_t c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  for (Index p = 0; p < kc; ++p, a += kMr, b += kNr<T>) {
    const v128_t b0 = wasm_v128_load(b), b1 = wasm_v128_load(b + h);
    v128_t x = V::splat(a);
    c00 = V::mul_add(c00, x, b0);
    c01 = V::mul_add(c01, x, b1);
    x = V::splat(a + 1);
    c10 = V::mul_add(c10, x, b0);
    c11 = V::mul_add(c11, x, b1);
    x = V::splat(a + 2);
    c20 = V::mul_add(c20, x, b0);
    c21 = V::mul_add(c21, x, b1);
    x = V::splat(a + 3);
    c30 = V::mul_add(c30, x, b0);
    c31 = V::mul_add(c31, x, b1);
  }
  if (mr == kMr && nr == kNr<T>) {
    const v128_t rows[kMr][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}};
    for (Index r = 0; r < kMr; ++r) {
      T* c = C + r * ldc;
      if (add) {
        wasm_v128_store(c, V::add(wasm_v128_load(c), rows[r][0]));
        wasm_v128_store(c + h, V::add(wasm_v128_load(c + h), rows[r][1]));
      } else {
        wasm_v128_store(c, rows[r][0]);
        wasm_v128_store(c + h, rows[r][1]);
      }
    }
    return;
  }
  const v128_t tile[kMr * 2] = {c00, c01, c10, c11, c20, c21, c30, c31};
  T t[kMr * kNr<T>];
  for (Index v = 0; v < kMr * 2; ++v) wasm_v128_store(t + h * v, tile[v]);
  store_tile(t, C, ldc, mr, nr, add);
}

#else

// The same tile in plain loops (the compiler vectorizes them): natively only
// gemm_packed's tests and benchmarks use it.
template <class T>
void micro_kernel(Index kc, const T* a, const T* b, T* C, Index ldc, Index mr, Index nr, bool add) {
  T t[kMr * kNr<T>] = {};
  for (Index p = 0; p < kc; ++p, a += kMr, b += kNr<T>)
    for (Index r = 0; r < kMr; ++r)
      for (Index c = 0; c < kNr<T>; ++c) t[r * kNr<T> + c] += a[r] * b[c];
  store_tile(t, C, ldc, mr, nr, add);
}

#endif

template <class T>
void check(const MatViewOf<T>& A, const MatViewOf<T>& B, Index ldc) {
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

namespace {
template <class T>
void packed_product(const MatViewOf<T>& A, const MatViewOf<T>& B, T* C, Index ldc, bool accumulate) {
  check(A, B, ldc);
  const Index m = A.rows, n = B.cols, k = A.cols;
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (!accumulate)
      for (Index i = 0; i < m; ++i) std::fill(C + i * ldc, C + i * ldc + n, T(0));
    return;
  }
  // Scratch kept between calls (a scan calls this per block): allocating and
  // faulting in megabytes each time would cost more than the products.
  constexpr Index nr = kNr<T>;
  thread_local std::vector<T> bufA, bufB;
  bufA.resize(size_t(kMc * kKc));
  bufB.resize(size_t(std::min(kKc, k) * ((std::min(kNc, n) + nr - 1) / nr) * nr));
  for (Index jc = 0; jc < n; jc += kNc) {
    const Index nc = std::min(kNc, n - jc);
    for (Index pc = 0; pc < k; pc += kKc) {
      const Index kc = std::min(kKc, k - pc);
      const bool add = accumulate || pc > 0;
      pack_panels(B, pc, kc, jc, nc, nr, bufB.data());
      for (Index ic = 0; ic < m; ic += kMc) {
        const Index mc = std::min(kMc, m - ic);
        pack_panels(transpose(A), pc, kc, ic, mc, kMr, bufA.data());
        for (Index jr = 0; jr < nc; jr += nr)
          for (Index ir = 0; ir < mc; ir += kMr)
            micro_kernel(kc, bufA.data() + ir * kc, bufB.data() + jr * kc, C + (ic + ir) * ldc + jc + jr, ldc,
                         std::min(kMr, mc - ir), std::min(nr, nc - jr), add);
      }
    }
  }
}
}  // namespace

void gemm_packed(const MatView& A, const MatView& B, float* C, Index ldc, bool accumulate) {
  packed_product(A, B, C, ldc, accumulate);
}
void gemm_packed(const MatViewD& A, const MatViewD& B, double* C, Index ldc, bool accumulate) {
  packed_product(A, B, C, ldc, accumulate);
}

namespace {
template <class T>
using RowMajorOf = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using RowMajor = RowMajorOf<float>;

// The operand as Eigen reads it: the stored matrix, transposed if need be.
template <class T, class F>
auto with_eigen(const MatViewOf<T>& M, F f) {
  using Strided = Eigen::Map<const RowMajorOf<T>, 0, Eigen::OuterStride<>>;
  if (M.transposed) return f(Strided(M.data, M.cols, M.rows, Eigen::OuterStride<>(M.stride)).transpose());
  return f(Strided(M.data, M.rows, M.cols, Eigen::OuterStride<>(M.stride)));
}

#if defined(__wasm_simd128__)
bool g_eigen = false;  // the packed kernel unless a benchmark asks for Eigen
#else
bool g_eigen = true;
#endif
}  // namespace

namespace {
template <class T>
void eigen_product(const MatViewOf<T>& A, const MatViewOf<T>& B, T* C, Index ldc, bool accumulate) {
  check(A, B, ldc);
  Eigen::Map<RowMajorOf<T>, 0, Eigen::OuterStride<>> out(C, A.rows, B.cols, Eigen::OuterStride<>(ldc));
  with_eigen(A, [&](const auto& a) {
    with_eigen(B, [&](const auto& b) {
      if (accumulate)
        out.noalias() += a * b;
      else
        out.noalias() = a * b;
    });
  });
}
}  // namespace

void gemm_eigen(const MatView& A, const MatView& B, float* C, Index ldc, bool accumulate) {
  eigen_product(A, B, C, ldc, accumulate);
}
void gemm_eigen(const MatViewD& A, const MatViewD& B, double* C, Index ldc, bool accumulate) {
  eigen_product(A, B, C, ldc, accumulate);
}

void gemm(const MatView& A, const MatView& B, float* C, Index ldc, bool accumulate) {
  if (g_eigen)
    gemm_eigen(A, B, C, ldc, accumulate);
  else
    gemm_packed(A, B, C, ldc, accumulate);
}
void gemm(const MatViewD& A, const MatViewD& B, double* C, Index ldc, bool accumulate) {
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
