// Matrix-vector kernels (core/kernels.h) against plain double loops, on
// shapes with ragged edges (not multiples of the SIMD width or the four-row
// blocking), with row strides larger than the rows, natively and in wasm.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/kernels.h"
#include "core/rng.h"

namespace cs {
namespace {

using kernels::Index;

std::vector<float> random_floats(Rng& rng, size_t n) {
  std::vector<float> v(n);
  for (float& x : v) x = float(rng.gaussian());
  return v;
}

// |got - want| within a float summation's rounding of sum |a_k x_k|.
void expect_close(double got, double want, double abs_sum, const char* what, Index i) {
  EXPECT_NEAR(got, want, 1e-6 * abs_sum + 1e-30) << what << " entry " << i;
}

const Index kSizes[] = {0, 1, 3, 4, 5, 7, 8, 9, 16, 63, 64, 65, 255, 257};

TEST(Kernels, GemvMatchesLoopsOnRaggedStridedShapes) {
  Rng rng(7);
  for (Index n : kSizes)
    for (Index d : kSizes)
      for (Index pad : {Index(0), Index(3)}) {
        const Index lda = d + pad;
        const std::vector<float> A = random_floats(rng, size_t(std::max<Index>(1, n * lda)));
        const std::vector<float> x = random_floats(rng, size_t(std::max<Index>(1, d)));
        std::vector<float> y(size_t(n) + 1, 12345.f);  // one sentinel past the end
        kernels::gemv(A.data(), n, d, lda, x.data(), y.data());
        for (Index i = 0; i < n; ++i) {
          double want = 0, abs_sum = 0;
          for (Index k = 0; k < d; ++k) {
            want += double(A[size_t(i * lda + k)]) * x[size_t(k)];
            abs_sum += std::abs(double(A[size_t(i * lda + k)]) * x[size_t(k)]);
          }
          expect_close(y[size_t(i)], want, abs_sum, "gemv", i);
        }
        EXPECT_EQ(y[size_t(n)], 12345.f) << "gemv wrote past y (n " << n << ", d " << d << ")";
      }
}

TEST(Kernels, GemvTransposedMatchesLoopsOnRaggedStridedShapes) {
  Rng rng(11);
  for (Index n : kSizes)
    for (Index d : kSizes)
      for (Index pad : {Index(0), Index(5)}) {
        const Index lda = n + pad;
        const std::vector<float> A = random_floats(rng, size_t(std::max<Index>(1, d * lda)));
        const std::vector<float> x = random_floats(rng, size_t(std::max<Index>(1, d)));
        std::vector<float> y(size_t(n) + 1, -7.f);
        kernels::gemv_t(A.data(), d, n, lda, x.data(), y.data());
        for (Index j = 0; j < n; ++j) {
          double want = 0, abs_sum = 0;
          for (Index k = 0; k < d; ++k) {
            want += double(A[size_t(k * lda + j)]) * x[size_t(k)];
            abs_sum += std::abs(double(A[size_t(k * lda + j)]) * x[size_t(k)]);
          }
          expect_close(y[size_t(j)], want, abs_sum, "gemv_t", j);
        }
        EXPECT_EQ(y[size_t(n)], -7.f) << "gemv_t wrote past y (n " << n << ", d " << d << ")";
      }
}

// The wasm build must use the SIMD kernels (the page's lookups depend on them;
// this fails if -msimd128 is dropped), the native build Eigen's.
TEST(Kernels, BackendIsTheOneForThisTarget) {
#if defined(__EMSCRIPTEN__)
  EXPECT_STREQ(kernels::gemv_backend(), "wasm-simd128");
#else
  EXPECT_STREQ(kernels::gemv_backend(), "eigen");
#endif
}

}  // namespace
}  // namespace cs
