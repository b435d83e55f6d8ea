// Matrix-vector and matrix-matrix kernels (core/kernels.h) against plain
// double loops, on shapes with ragged edges (not multiples of the SIMD width,
// the register tile or the packed blocks), with row strides larger than the
// rows, natively and in wasm. Natively gemm is Eigen and gemm_packed the
// packed kernel with a portable micro-kernel; in wasm both are the packed
// kernel with the SIMD128 micro-kernel.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "core/error.h"
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
  EXPECT_STREQ(kernels::gemm_backend(), "wasm-simd128");
#else
  EXPECT_STREQ(kernels::gemv_backend(), "eigen");
  EXPECT_STREQ(kernels::gemm_backend(), "eigen");
#endif
  const std::string before = kernels::gemm_backend();
  kernels::set_gemm_uses_eigen(true);
  EXPECT_STREQ(kernels::gemm_backend(), "eigen");
  kernels::set_gemm_uses_eigen(before == "eigen");
  EXPECT_EQ(kernels::gemm_backend(), before);
}

// C (m x n, row stride ldc) against double loops over the operands as views.
void expect_product(const kernels::MatView& A, const kernels::MatView& B, const std::vector<float>& C, Index ldc,
                    const std::vector<float>& C0, bool accumulate, const std::string& what) {
  auto at = [](const kernels::MatView& M, Index i, Index j) {
    return double(M.transposed ? M.data[j * M.stride + i] : M.data[i * M.stride + j]);
  };
  int bad = 0;
  for (Index i = 0; i < A.rows; ++i)
    for (Index j = 0; j < ldc; ++j) {
      const size_t e = size_t(i * ldc + j);
      if (j >= B.cols) {  // between rows: untouched
        if (C[e] != C0[e] && bad++ < 3) ADD_FAILURE() << what << ": wrote outside C at " << i << "," << j;
        continue;
      }
      double want = accumulate ? double(C0[e]) : 0.0, abs_sum = accumulate ? std::abs(double(C0[e])) : 0.0;
      for (Index p = 0; p < A.cols; ++p) {
        want += at(A, i, p) * at(B, p, j);
        abs_sum += std::abs(at(A, i, p) * at(B, p, j));
      }
      if (!(std::abs(C[e] - want) <= 1e-6 * abs_sum + 1e-30) && bad++ < 3)
        ADD_FAILURE() << what << ": entry " << i << "," << j << " is " << C[e] << ", loops give " << want;
    }
}

// Every layout (A and B each stored as is or transposed), padded strides,
// accumulate or not, on shapes around the tile (4 x 8), the packed blocks
// (64 rows, 256 of k, 4096 columns) and the SIMD width.
TEST(Kernels, GemmMatchesLoopsOnEveryLayoutAndRaggedShape) {
  Rng rng(23);
  struct Shape {
    Index m, n, k;
  };
  const Shape shapes[] = {{0, 5, 3},  {3, 0, 2},   {2, 3, 0},    {1, 1, 1},   {4, 8, 1},   {5, 9, 7},
                          {3, 7, 17}, {64, 8, 256}, {65, 17, 257}, {70, 33, 300}, {9, 4100, 3}, {130, 12, 520}};
  using Fn = void (*)(const kernels::MatView&, const kernels::MatView&, float*, Index, bool);
  const std::pair<const char*, Fn> fns[] = {
      {"gemm", kernels::gemm}, {"gemm_packed", kernels::gemm_packed}, {"gemm_eigen", kernels::gemm_eigen}};
  for (const auto& [name, fn] : fns)
    for (const Shape& s : shapes)
      for (int layout = 0; layout < 4; ++layout)
        for (bool accumulate : {false, true}) {
          const bool ta = layout & 1, tb = layout & 2;
          const Index pad = 3;
          kernels::MatView A{nullptr, s.m, s.k, (ta ? s.m : s.k) + pad, ta};
          kernels::MatView B{nullptr, s.k, s.n, (tb ? s.k : s.n) + pad, tb};
          const std::vector<float> a = random_floats(rng, size_t(std::max<Index>(1, (ta ? s.k : s.m) * A.stride)));
          const std::vector<float> b = random_floats(rng, size_t(std::max<Index>(1, (tb ? s.n : s.k) * B.stride)));
          A.data = a.data();
          B.data = b.data();
          const Index ldc = s.n + 2;
          const std::vector<float> c0 = random_floats(rng, size_t(std::max<Index>(1, s.m * ldc)));
          std::vector<float> c = c0;
          fn(A, B, c.data(), ldc, accumulate);
          expect_product(A, B, c, ldc, c0, accumulate,
                         std::string(name) + " " + std::to_string(s.m) + "x" + std::to_string(s.n) + "x" +
                             std::to_string(s.k) + (ta ? " A^T" : "") + (tb ? " B^T" : "") + (accumulate ? " +=" : ""));
        }
}

// matmul takes Eigen blocks of row-major matrices and their .transpose() (as
// the forward pass, the scans and the trainer call it) and writes only its
// block of C; checked against Eigen's product in double, with gemm on either
// implementation.
TEST(Kernels, MatmulReadsEigenBlocksAndTransposes) {
  using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using MatD = Eigen::MatrixXd;
  const RowMat X = RowMat::Random(40, 300), Y = RowMat::Random(270, 90), Z = RowMat::Random(70, 280);
  const auto A = X.block(3, 10, 33, 261);        // [33, 261]
  const auto B = Y.block(5, 7, 261, 70);         // [261, 70]
  const auto Bt = Z.block(0, 11, 70, 261);       // B stored transposed: [70, 261]
  const auto At = Y.block(2, 1, 261, 33);        // A stored transposed: [261, 33]
  for (bool eigen : {false, true}) {
    kernels::set_gemm_uses_eigen(eigen);
    for (int layout = 0; layout < 4; ++layout)
      for (bool accumulate : {false, true}) {
        RowMat C = RowMat::Random(50, 80);
        const RowMat C0 = C;
        auto out = C.block(4, 6, 33, 70);
        const bool ta = layout & 1, tb = layout & 2;
        if (!ta && !tb) kernels::matmul(A, B, out, accumulate);
        if (ta && !tb) kernels::matmul(At.transpose(), B, out, accumulate);
        if (!ta && tb) kernels::matmul(A, Bt.transpose(), C.block(4, 6, 33, 70), accumulate);
        if (ta && tb) kernels::matmul(At.transpose(), Bt.transpose(), out, accumulate);
        const MatD a = ta ? MatD(At.cast<double>().transpose()) : MatD(A.cast<double>());
        const MatD b = tb ? MatD(Bt.cast<double>().transpose()) : MatD(B.cast<double>());
        MatD want = C0.cast<double>();
        if (!accumulate) want.block(4, 6, 33, 70).setZero();
        want.block(4, 6, 33, 70) += a * b;
        const double err = (C.cast<double>() - want).cwiseAbs().maxCoeff();
        EXPECT_LT(err, 1e-4) << (eigen ? "eigen" : "default") << " layout " << layout << (accumulate ? " +=" : "");
      }
  }
  kernels::set_gemm_uses_eigen(false);
#if !defined(__EMSCRIPTEN__)
  kernels::set_gemm_uses_eigen(true);  // natively the default is Eigen
#endif
  RowMat small(2, 2);
  try {
    kernels::matmul(A, B, small);
    ADD_FAILURE() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("matmul: the output is 2 x 2, the product 33 x 70"), std::string::npos)
        << e.what();
  }
}

TEST(Kernels, GemmBadShapesNameThem) {
  const float x[4] = {};
  float c[4];
  try {
    kernels::gemm({x, 2, 2, 2}, {x, 3, 1, 1}, c, 1);
    ADD_FAILURE() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("inner dimensions differ"), std::string::npos) << e.what();
  }
  EXPECT_THROW(kernels::gemm_packed({x, 1, 2, 2}, {x, 2, 2, 2}, c, 1), Error) << "ldc below n";
}

}  // namespace
}  // namespace cs
