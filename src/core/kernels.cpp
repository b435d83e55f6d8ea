// Matrix-vector kernels and row statistics (kernels.h): Eigen natively, SIMD128 in wasm.
#include "core/kernels.h"

#include <algorithm>
#include <cmath>

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

void row_mean_var(const float* A, Index n, Index d, Index lda, float* mean, float* var) {
  const float inv_d = 1.f / float(d);
  for (Index i = 0; i < n; ++i) {
    const float* a = A + i * lda;
    v128_t s0 = wasm_f32x4_splat(0.f), s1 = s0;
    Index k = 0;
    for (; k + 8 <= d; k += 8) {
      s0 = wasm_f32x4_add(s0, wasm_v128_load(a + k));
      s1 = wasm_f32x4_add(s1, wasm_v128_load(a + k + 4));
    }
    float s = hsum(wasm_f32x4_add(s0, s1));
    for (; k < d; ++k) s += a[k];
    const float mu = s * inv_d;
    const v128_t m = wasm_f32x4_splat(mu);
    v128_t q0 = wasm_f32x4_splat(0.f), q1 = q0;
    for (k = 0; k + 8 <= d; k += 8) {
      const v128_t c0 = wasm_f32x4_sub(wasm_v128_load(a + k), m), c1 = wasm_f32x4_sub(wasm_v128_load(a + k + 4), m);
      q0 = wasm_f32x4_add(q0, wasm_f32x4_mul(c0, c0));
      q1 = wasm_f32x4_add(q1, wasm_f32x4_mul(c1, c1));
    }
    float q = hsum(wasm_f32x4_add(q0, q1));
    for (; k < d; ++k) q += (a[k] - mu) * (a[k] - mu);
    mean[i] = mu;
    var[i] = q * inv_d;
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

void row_mean_var(const float* A, Index n, Index d, Index lda, float* mean, float* var) {
  const float inv_d = 1.f / float(d);
  const Strided M(A, n, d, Eigen::OuterStride<>(lda));
  for (Index i = 0; i < n; ++i) {
    const float mu = M.row(i).sum() * inv_d;
    mean[i] = mu;
    var[i] = (M.row(i).array() - mu).square().sum() * inv_d;
  }
}

const char* gemv_backend() { return "eigen"; }

#endif

// Columns in blocks whose sums stay in L1; each pass adds whole rows of the
// block (contiguous, so the compiler vectorizes it in both builds).
void col_mean_var(const float* A, Index d, Index n, Index lda, float* mean, float* var) {
  constexpr Index kBlock = 1024;
  const float inv_d = 1.f / float(d);
  for (Index j0 = 0; j0 < n; j0 += kBlock) {
    const Index w = std::min(kBlock, n - j0);
    float* mu = mean + j0;
    float* q = var + j0;
    std::fill(mu, mu + w, 0.f);
    std::fill(q, q + w, 0.f);
    for (Index k = 0; k < d; ++k) {
      const float* a = A + k * lda + j0;
      for (Index j = 0; j < w; ++j) mu[j] += a[j];
    }
    for (Index j = 0; j < w; ++j) mu[j] *= inv_d;
    for (Index k = 0; k < d; ++k) {
      const float* a = A + k * lda + j0;
      for (Index j = 0; j < w; ++j) q[j] += (a[j] - mu[j]) * (a[j] - mu[j]);
    }
    for (Index j = 0; j < w; ++j) q[j] *= inv_d;
  }
}

// Plain loops over contiguous memory: the compiler vectorizes them in both
// builds (Eigen 3.4 has no wasm packets, so its version ran element by element).
#if defined(__wasm_simd128__)
namespace {
// exp(x) for x in [-87.3, 0] (lower values: a term too small to matter in a
// sum, given as exp(-87.3)): x = n ln 2 + r, |r| <= ln 2 / 2, with ln 2 in two
// parts so n ln 2 is exact; exp(r) by its degree-7 Taylor-like polynomial
// (Cephes' expf coefficients); 2^n built in the float's exponent bits.
inline v128_t exp_nonpositive(v128_t x) {
  x = wasm_f32x4_max(x, wasm_f32x4_splat(-87.3f));
  const v128_t n = wasm_f32x4_floor(wasm_f32x4_add(wasm_f32x4_mul(x, wasm_f32x4_splat(1.44269504088896341f)),
                                                   wasm_f32x4_splat(0.5f)));
  v128_t r = wasm_f32x4_sub(x, wasm_f32x4_mul(n, wasm_f32x4_splat(0.693359375f)));
  r = wasm_f32x4_sub(r, wasm_f32x4_mul(n, wasm_f32x4_splat(-2.12194440e-4f)));
  v128_t p = wasm_f32x4_splat(1.9875691500e-4f);
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.3981999507e-3f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(8.3334519073e-3f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(4.1665795894e-2f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.6666665459e-1f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(5.0000001201e-1f));
  p = wasm_f32x4_add(wasm_f32x4_add(wasm_f32x4_mul(p, wasm_f32x4_mul(r, r)), r), wasm_f32x4_splat(1.f));
  const v128_t two_n = wasm_i32x4_shl(wasm_i32x4_add(wasm_i32x4_trunc_sat_f32x4(n), wasm_i32x4_splat(127)), 23);
  return wasm_f32x4_mul(p, two_n);
}
}  // namespace

float sum_exp(const float* x, Index n, float shift) {
  const v128_t sh = wasm_f32x4_splat(shift);
  v128_t s0 = wasm_f32x4_splat(0.f), s1 = s0;
  Index i = 0;
  for (; i + 8 <= n; i += 8) {
    s0 = wasm_f32x4_add(s0, exp_nonpositive(wasm_f32x4_sub(wasm_v128_load(x + i), sh)));
    s1 = wasm_f32x4_add(s1, exp_nonpositive(wasm_f32x4_sub(wasm_v128_load(x + i + 4), sh)));
  }
  if (i + 4 <= n) {
    s0 = wasm_f32x4_add(s0, exp_nonpositive(wasm_f32x4_sub(wasm_v128_load(x + i), sh)));
    i += 4;
  }
  if (i < n) {  // the last 1-3 terms, padded with exp(-inf) = 0
    float tail[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    for (Index j = 0; i + j < n; ++j) tail[j] = x[i + j];
    v128_t t = exp_nonpositive(wasm_f32x4_sub(wasm_v128_load(tail), sh));
    // -inf was clamped to exp(-87.3): zero the padding lanes.
    const v128_t live = wasm_f32x4_gt(wasm_v128_load(tail), wasm_f32x4_splat(-INFINITY));
    s1 = wasm_f32x4_add(s1, wasm_v128_and(t, live));
  }
  return hsum(wasm_f32x4_add(s0, s1));
}

float exp_shift(float* x, Index n, float shift) {
  const v128_t sh = wasm_f32x4_splat(shift);
  v128_t s0 = wasm_f32x4_splat(0.f);
  Index i = 0;
  for (; i + 4 <= n; i += 4) {
    const v128_t e = exp_nonpositive(wasm_f32x4_sub(wasm_v128_load(x + i), sh));
    wasm_v128_store(x + i, e);
    s0 = wasm_f32x4_add(s0, e);
  }
  float sum = hsum(s0);
  if (i < n) {  // the last 1-3 values, padded with exp(-inf) = 0 (clamped to exp(-87.3): zeroed)
    float tail[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    for (Index j = 0; i + j < n; ++j) tail[j] = x[i + j];
    const v128_t t = wasm_v128_load(tail);
    const v128_t e = wasm_v128_and(exp_nonpositive(wasm_f32x4_sub(t, sh)), wasm_f32x4_gt(t, wasm_f32x4_splat(-INFINITY)));
    wasm_v128_store(tail, e);
    for (Index j = 0; i + j < n; ++j) x[i + j] = tail[j];
    sum += hsum(e);
  }
  return sum;
}

float max_value(const float* x, Index n) {
  Index i = 0;
  float m = x[0];
  if (n >= 4) {
    v128_t v = wasm_v128_load(x);
    for (i = 4; i + 4 <= n; i += 4) v = wasm_f32x4_pmax(v, wasm_v128_load(x + i));
    m = std::max(std::max(wasm_f32x4_extract_lane(v, 0), wasm_f32x4_extract_lane(v, 1)),
                 std::max(wasm_f32x4_extract_lane(v, 2), wasm_f32x4_extract_lane(v, 3)));
  }
  for (; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

void softmax_backward_row(const float* a, float* da, Index n) {
  const float rowdot = dot(a, da, n);
  const v128_t rd = wasm_f32x4_splat(rowdot);
  Index i = 0;
  for (; i + 4 <= n; i += 4)
    wasm_v128_store(da + i, wasm_f32x4_mul(wasm_v128_load(a + i), wasm_f32x4_sub(wasm_v128_load(da + i), rd)));
  for (; i < n; ++i) da[i] = a[i] * (da[i] - rowdot);
}
#else
float max_value(const float* x, Index n) { return Eigen::Map<const Eigen::ArrayXf>(x, n).maxCoeff(); }

void softmax_backward_row(const float* a, float* da, Index n) {
  const Eigen::Map<const Eigen::ArrayXf> av(a, n);
  Eigen::Map<Eigen::ArrayXf> dv(da, n);
  const float rowdot = (av * dv).sum();
  dv = av * (dv - rowdot);
}

float sum_exp(const float* x, Index n, float shift) {
  return (Eigen::Map<const Eigen::ArrayXf>(x, n) - shift).exp().sum();
}

float exp_shift(float* x, Index n, float shift) {
  Eigen::Map<Eigen::ArrayXf> a(x, n);
  a = (a - shift).exp();
  return a.sum();
}
#endif

void add_to_double(const float* x, Index n, double* y) {
  for (Index i = 0; i < n; ++i) y[i] += double(x[i]);
}

void normalize_rows(float* A, Index n, Index d, Index lda, float eps) {
  constexpr Index kRows = 64;
  float mean[kRows], var[kRows];
  for (Index i0 = 0; i0 < n; i0 += kRows) {
    const Index m = std::min(kRows, n - i0);
    row_mean_var(A + i0 * lda, m, d, lda, mean, var);
    for (Index i = 0; i < m; ++i) {
      float* a = A + (i0 + i) * lda;
      const float mu = mean[i], inv = 1.f / std::sqrt(var[i] + eps);
      for (Index k = 0; k < d; ++k) a[k] = (a[k] - mu) * inv;
    }
  }
}

}  // namespace cs::kernels
