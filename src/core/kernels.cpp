// Matrix-vector kernels (kernels.h): Eigen natively, SIMD128 in wasm.
#include "core/kernels.h"

#include <Eigen/Core>

#if defined(__wasm_simd128__)
#include <wasm_simd128.h>
#endif

namespace cs::kernels {

#if defined(__wasm_simd128__)

namespace {

inline float hsum(v128_t v) {
  return wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1) + wasm_f32x4_extract_lane(v, 2) +
         wasm_f32x4_extract_lane(v, 3);
}

// One row against x.
inline float dot(const float* a, const float* x, Index d) {
  v128_t s0 = wasm_f32x4_splat(0.f), s1 = s0;
  Index k = 0;
  for (; k + 8 <= d; k += 8) {
    s0 = wasm_f32x4_add(s0, wasm_f32x4_mul(wasm_v128_load(a + k), wasm_v128_load(x + k)));
    s1 = wasm_f32x4_add(s1, wasm_f32x4_mul(wasm_v128_load(a + k + 4), wasm_v128_load(x + k + 4)));
  }
  float s = hsum(wasm_f32x4_add(s0, s1));
  for (; k < d; ++k) s += a[k] * x[k];
  return s;
}

}  // namespace

void gemv(const float* A, Index n, Index d, Index lda, const float* x, float* y) {
  Index i = 0;
  // Four rows at a time: each load of x serves four rows, and the four
  // accumulators are independent chains.
  for (; i + 4 <= n; i += 4) {
    const float* a0 = A + i * lda;
    const float* a1 = a0 + lda;
    const float* a2 = a1 + lda;
    const float* a3 = a2 + lda;
    v128_t s0 = wasm_f32x4_splat(0.f), s1 = s0, s2 = s0, s3 = s0;
    Index k = 0;
    for (; k + 4 <= d; k += 4) {
      const v128_t xv = wasm_v128_load(x + k);
      s0 = wasm_f32x4_add(s0, wasm_f32x4_mul(wasm_v128_load(a0 + k), xv));
      s1 = wasm_f32x4_add(s1, wasm_f32x4_mul(wasm_v128_load(a1 + k), xv));
      s2 = wasm_f32x4_add(s2, wasm_f32x4_mul(wasm_v128_load(a2 + k), xv));
      s3 = wasm_f32x4_add(s3, wasm_f32x4_mul(wasm_v128_load(a3 + k), xv));
    }
    float r0 = hsum(s0), r1 = hsum(s1), r2 = hsum(s2), r3 = hsum(s3);
    for (; k < d; ++k) {
      r0 += a0[k] * x[k];
      r1 += a1[k] * x[k];
      r2 += a2[k] * x[k];
      r3 += a3[k] * x[k];
    }
    y[i] = r0;
    y[i + 1] = r1;
    y[i + 2] = r2;
    y[i + 3] = r3;
  }
  for (; i < n; ++i) y[i] = dot(A + i * lda, x, d);
}

void gemv_t(const float* A, Index d, Index n, Index lda, const float* x, float* y) {
  // y accumulates four rows of A per pass (one load and store of y per four
  // rows); y stays in L1 for the caller's blocks of a few hundred columns.
  for (Index j = 0; j < n; ++j) y[j] = 0.f;
  Index k = 0;
  for (; k + 4 <= d; k += 4) {
    const float* a0 = A + k * lda;
    const float* a1 = a0 + lda;
    const float* a2 = a1 + lda;
    const float* a3 = a2 + lda;
    const v128_t x0 = wasm_f32x4_splat(x[k]), x1 = wasm_f32x4_splat(x[k + 1]);
    const v128_t x2 = wasm_f32x4_splat(x[k + 2]), x3 = wasm_f32x4_splat(x[k + 3]);
    Index j = 0;
    for (; j + 4 <= n; j += 4) {
      v128_t t = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(a0 + j), x0), wasm_f32x4_mul(wasm_v128_load(a1 + j), x1));
      t = wasm_f32x4_add(t, wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(a2 + j), x2),
                                           wasm_f32x4_mul(wasm_v128_load(a3 + j), x3)));
      wasm_v128_store(y + j, wasm_f32x4_add(wasm_v128_load(y + j), t));
    }
    for (; j < n; ++j) y[j] += (a0[j] * x[k] + a1[j] * x[k + 1]) + (a2[j] * x[k + 2] + a3[j] * x[k + 3]);
  }
  for (; k < d; ++k) {
    const float* a = A + k * lda;
    const v128_t xv = wasm_f32x4_splat(x[k]);
    Index j = 0;
    for (; j + 4 <= n; j += 4) wasm_v128_store(y + j, wasm_f32x4_add(wasm_v128_load(y + j), wasm_f32x4_mul(wasm_v128_load(a + j), xv)));
    for (; j < n; ++j) y[j] += a[j] * x[k];
  }
}

const char* gemv_backend() { return "wasm-simd128"; }

#else

namespace {
using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Strided = Eigen::Map<const RowMajor, 0, Eigen::OuterStride<>>;
}  // namespace

void gemv(const float* A, Index n, Index d, Index lda, const float* x, float* y) {
  Eigen::Map<Eigen::VectorXf>(y, n).noalias() = Strided(A, n, d, Eigen::OuterStride<>(lda)) * Eigen::Map<const Eigen::VectorXf>(x, d);
}

void gemv_t(const float* A, Index d, Index n, Index lda, const float* x, float* y) {
  Eigen::Map<Eigen::VectorXf>(y, n).noalias() =
      Strided(A, d, n, Eigen::OuterStride<>(lda)).transpose() * Eigen::Map<const Eigen::VectorXf>(x, d);
}

const char* gemv_backend() { return "eigen"; }

#endif

}  // namespace cs::kernels
