// Matrix-vector and matrix-matrix kernels (core/kernels.h) against plain
// double loops, on shapes with ragged edges (not multiples of the SIMD width,
// the register tile or the packed blocks), with row strides larger than the
// rows, natively and in wasm. Natively gemm is Eigen and gemm_packed the
// packed kernel with a portable micro-kernel; in wasm both are the packed
// kernel with the SIMD128 micro-kernel.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "core/error.h"
#include "core/kernels.h"
#include "core/rng.h"

namespace cs {
namespace {

using kernels::Index;

template <class T>
std::vector<T> random_values(Rng& rng, size_t n) {
  std::vector<T> v(n);
  for (T& x : v) x = T(rng.gaussian());
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
        const std::vector<float> A = random_values<float>(rng, size_t(std::max<Index>(1, n * lda)));
        const std::vector<float> x = random_values<float>(rng, size_t(std::max<Index>(1, d)));
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
        const std::vector<float> A = random_values<float>(rng, size_t(std::max<Index>(1, d * lda)));
        const std::vector<float> x = random_values<float>(rng, size_t(std::max<Index>(1, d)));
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

// C (m x n, row stride ldc) against loops over the operands as views, summed
// in long double; within T's rounding of sum |a b| (float: 1e-6, double:
// 1e-14 relative).
template <class T>
void expect_product(const kernels::MatViewOf<T>& A, const kernels::MatViewOf<T>& B, const std::vector<T>& C,
                    Index ldc, const std::vector<T>& C0, bool accumulate, const std::string& what) {
  using Wide = long double;
  const Wide tol = std::is_same_v<T, float> ? 1e-6L : 1e-14L;
  auto at = [](const kernels::MatViewOf<T>& M, Index i, Index j) {
    return Wide(M.transposed ? M.data[j * M.stride + i] : M.data[i * M.stride + j]);
  };
  int bad = 0;
  for (Index i = 0; i < A.rows; ++i)
    for (Index j = 0; j < ldc; ++j) {
      const size_t e = size_t(i * ldc + j);
      if (j >= B.cols) {  // between rows: untouched
        if (C[e] != C0[e] && bad++ < 3) ADD_FAILURE() << what << ": wrote outside C at " << i << "," << j;
        continue;
      }
      Wide want = accumulate ? Wide(C0[e]) : 0, abs_sum = accumulate ? std::abs(Wide(C0[e])) : 0;
      for (Index p = 0; p < A.cols; ++p) {
        want += at(A, i, p) * at(B, p, j);
        abs_sum += std::abs(at(A, i, p) * at(B, p, j));
      }
      if (!(std::abs(Wide(C[e]) - want) <= tol * abs_sum + 1e-30L) && bad++ < 3)
        ADD_FAILURE() << what << ": entry " << i << "," << j << " is " << C[e] << ", loops give " << double(want);
    }
}

// Every layout (A and B each stored as is or transposed), padded strides,
// accumulate or not, on shapes around the tile (4 x 8 floats, 4 x 4
// doubles), the packed blocks (64 rows, 256 of k, 4096 columns) and the SIMD
// width, for gemm, gemm_packed and gemm_eigen in T.
template <class T>
void check_gemm_layouts_and_shapes(uint64_t seed) {
  Rng rng(seed);
  struct Shape {
    Index m, n, k;
  };
  const Shape shapes[] = {{0, 5, 3},  {3, 0, 2},   {2, 3, 0},    {1, 1, 1},     {4, 8, 1},    {5, 9, 7},  {4, 4, 2},
                          {3, 7, 17}, {64, 8, 256}, {65, 17, 257}, {70, 33, 300}, {9, 4100, 3}, {130, 12, 520}};
  using View = kernels::MatViewOf<T>;
  using Fn = void (*)(const View&, const View&, T*, Index, bool);
  const std::pair<const char*, Fn> fns[] = {
      {"gemm", kernels::gemm}, {"gemm_packed", kernels::gemm_packed}, {"gemm_eigen", kernels::gemm_eigen}};
  const std::string type = std::is_same_v<T, float> ? "float " : "double ";
  for (const auto& [name, fn] : fns)
    for (const Shape& s : shapes)
      for (int layout = 0; layout < 4; ++layout)
        for (bool accumulate : {false, true}) {
          const bool ta = layout & 1, tb = layout & 2;
          const Index pad = 3;
          View A{nullptr, s.m, s.k, (ta ? s.m : s.k) + pad, ta};
          View B{nullptr, s.k, s.n, (tb ? s.k : s.n) + pad, tb};
          const std::vector<T> a = random_values<T>(rng, size_t(std::max<Index>(1, (ta ? s.k : s.m) * A.stride)));
          const std::vector<T> b = random_values<T>(rng, size_t(std::max<Index>(1, (tb ? s.n : s.k) * B.stride)));
          A.data = a.data();
          B.data = b.data();
          const Index ldc = s.n + 2;
          const std::vector<T> c0 = random_values<T>(rng, size_t(std::max<Index>(1, s.m * ldc)));
          std::vector<T> c = c0;
          fn(A, B, c.data(), ldc, accumulate);
          expect_product(A, B, c, ldc, c0, accumulate,
                         type + name + " " + std::to_string(s.m) + "x" + std::to_string(s.n) + "x" +
                             std::to_string(s.k) + (ta ? " A^T" : "") + (tb ? " B^T" : "") + (accumulate ? " +=" : ""));
        }
}

TEST(Kernels, GemmMatchesLoopsOnEveryLayoutAndRaggedShape) { check_gemm_layouts_and_shapes<float>(23); }

// The double products (eigenvalues' small matrices, composition scores) to
// double's precision: a float kernel would miss 1e-14 by far.
TEST(Kernels, DoubleGemmMatchesLoopsOnEveryLayoutAndRaggedShape) { check_gemm_layouts_and_shapes<double>(29); }

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

// In double, as the eigenvalues' small matrices call it: column-major
// MatrixXd operands, a block of columns of B into the same block of a
// column-major C, a transposed operand; against loops in long double.
TEST(Kernels, MatmulInDoubleWritesColumnBlocksOfColumnMajorOutputs) {
  const Eigen::MatrixXd L = Eigen::MatrixXd::Random(19, 70), M = Eigen::MatrixXd::Random(70, 45);
  const Eigen::MatrixXd Rt = Eigen::MatrixXd::Random(9, 45);  // R stored transposed
  auto loops = [](const auto& A, const auto& B) {
    Eigen::MatrixXd P(A.rows(), B.cols());
    for (Eigen::Index i = 0; i < A.rows(); ++i)
      for (Eigen::Index j = 0; j < B.cols(); ++j) {
        long double s = 0;
        for (Eigen::Index p = 0; p < A.cols(); ++p) s += (long double)A(i, p) * B(p, j);
        P(i, j) = double(s);
      }
    return P;
  };
  for (bool eigen : {false, true}) {
    kernels::set_gemm_uses_eigen(eigen);
    Eigen::MatrixXd LM = Eigen::MatrixXd::Constant(19, 45, 7.0);
    kernels::matmul(L, M.middleCols(10, 23), LM.middleCols(10, 23));
    const Eigen::MatrixXd want = loops(L, M.middleCols(10, 23));
    EXPECT_LT((LM.middleCols(10, 23) - want).cwiseAbs().maxCoeff(), 1e-12) << (eigen ? "eigen" : "default");
    EXPECT_TRUE((LM.leftCols(10).array() == 7.0).all() && (LM.rightCols(12).array() == 7.0).all())
        << "only the block's columns are written";
    Eigen::MatrixXd S(19, 9);
    kernels::matmul(LM, Rt.transpose(), S);
    EXPECT_LT((S - loops(LM, Rt.transpose())).cwiseAbs().maxCoeff(), 1e-12) << (eigen ? "eigen" : "default");
  }
  kernels::set_gemm_uses_eigen(false);
#if !defined(__EMSCRIPTEN__)
  kernels::set_gemm_uses_eigen(true);
#endif
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

// Column-major operands and outputs (Eigen's default layout, as composition's
// factors are stored): operands read in place, a column-major C written as
// C^T = B^T A^T; only C's block changes.
TEST(Kernels, MatmulTakesColumnMajorOperandsAndOutputs) {
  using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Eigen::MatrixXf X = Eigen::MatrixXf::Random(300, 40), Y = Eigen::MatrixXf::Random(90, 270);
  const RowMat Z = RowMat::Random(70, 280);
  const auto A = X.block(10, 3, 261, 33).transpose();  // [33, 261], column-major storage transposed
  const auto B = Y.block(7, 5, 70, 261).transpose();   // [261, 70]
  const auto Bc = Y.block(2, 4, 261, 70);              // [261, 70] column-major as it is
  for (bool eigen : {false, true}) {
    kernels::set_gemm_uses_eigen(eigen);
    for (bool accumulate : {false, true})
      for (bool col_b : {false, true}) {
        Eigen::MatrixXf C = Eigen::MatrixXf::Random(50, 80);  // column-major output
        const Eigen::MatrixXd C0 = C.cast<double>();
        if (col_b)
          kernels::matmul(A, Bc, C.block(4, 6, 33, 70), accumulate);
        else
          kernels::matmul(A, B, C.block(4, 6, 33, 70), accumulate);
        Eigen::MatrixXd want = C0;
        if (!accumulate) want.block(4, 6, 33, 70).setZero();
        const Eigen::MatrixXd b = col_b ? Eigen::MatrixXd(Bc.cast<double>()) : Eigen::MatrixXd(B.cast<double>());
        want.block(4, 6, 33, 70) += A.cast<double>() * b;
        EXPECT_LT((C.cast<double>() - want).cwiseAbs().maxCoeff(), 1e-4)
            << (eigen ? "eigen" : "default") << (col_b ? " B column-major" : " B^T") << (accumulate ? " +=" : "");
        RowMat R(33, 70);  // a row-major output of a column-major A and a row-major B^T
        kernels::matmul(A, Z.block(0, 11, 70, 261).transpose(), R);
        const Eigen::MatrixXd wantR = A.cast<double>() * Z.block(0, 11, 70, 261).cast<double>().transpose();
        EXPECT_LT((R.cast<double>() - wantR).cwiseAbs().maxCoeff(), 1e-4);
      }
  }
  kernels::set_gemm_uses_eigen(false);
#if !defined(__EMSCRIPTEN__)
  kernels::set_gemm_uses_eigen(true);
#endif
}

// gram_lower: the lower triangle of X^T X (added to G's with accumulate)
// against double loops, X stored as it is or transposed with padded strides,
// on widths around its panels (64) and the packed blocks; G's entries past d
// in a row stay untouched. Both implementations (Eigen's rank update and the
// packed panels) in each build.
TEST(Kernels, GramLowerMatchesLoops) {
  Rng rng(31);
  const std::pair<Index, Index> shapes[] = {{0, 5}, {5, 0}, {1, 1}, {7, 3}, {300, 63}, {17, 64}, {130, 65}, {9, 129}, {260, 200}};
  for (bool eigen : {false, true}) {
    kernels::set_gemm_uses_eigen(eigen);
    for (const auto& [n, d] : shapes)
      for (int mode = 0; mode < 4; ++mode) {
        const bool tx = mode & 1, accumulate = mode & 2;
        kernels::MatView X{nullptr, n, d, (tx ? n : d) + 2, tx};
        const std::vector<float> x = random_values<float>(rng, size_t(std::max<Index>(1, (tx ? d : n) * X.stride)));
        X.data = x.data();
        const Index ldg = d + 3;
        const std::vector<float> g0 = random_values<float>(rng, size_t(std::max<Index>(1, d * ldg)));
        std::vector<float> g = g0;
        kernels::gram_lower(X, g.data(), ldg, accumulate);
        int bad = 0;
        for (Index i = 0; i < d; ++i) {
          for (Index j = d; j < ldg; ++j)
            if (g[size_t(i * ldg + j)] != g0[size_t(i * ldg + j)] && bad++ < 3) ADD_FAILURE() << "wrote past row " << i;
          for (Index j = 0; j <= i; ++j) {
            const double start = accumulate ? double(g0[size_t(i * ldg + j)]) : 0.0;
            double want = start, abs_sum = std::abs(start);
            for (Index p = 0; p < n; ++p) {
              const double a = tx ? x[size_t(i * X.stride + p)] : x[size_t(p * X.stride + i)];
              const double b = tx ? x[size_t(j * X.stride + p)] : x[size_t(p * X.stride + j)];
              want += a * b;
              abs_sum += std::abs(a * b);
            }
            // a float sum of n + 1 terms: rounding grows with n (the diagonal's terms all have one sign)
            if (!(std::abs(g[size_t(i * ldg + j)] - want) <= (1e-6 + 3e-8 * double(n)) * abs_sum + 1e-30) && bad++ < 3)
              ADD_FAILURE() << (eigen ? "eigen " : "packed ") << n << "x" << d << (tx ? " X^T" : "")
                            << (accumulate ? " accumulated" : "") << ": entry "
                            << i << "," << j << " is " << g[size_t(i * ldg + j)] << ", loops give " << want;
          }
        }
      }
  }
  kernels::set_gemm_uses_eigen(false);
#if !defined(__EMSCRIPTEN__)
  kernels::set_gemm_uses_eigen(true);
#endif
  float g[4];
  const float x[4] = {};
  EXPECT_THROW(kernels::gram_lower({x, 2, 2, 2}, g, 1), Error) << "ldg below d";
}

// Row and column statistics against double loops (mean, then the mean square
// of the centred values), on ragged lengths and padded strides, with an offset
// mean so that a one-pass sum of squares would lose digits.
TEST(Kernels, RowAndColumnStatisticsMatchLoops) {
  Rng rng(37);
  for (Index n : kSizes)
    for (Index d : {Index(1), Index(3), Index(8), Index(9), Index(64), Index(257), Index(1030)}) {
      const Index pad = 5;
      std::vector<float> a = random_values<float>(rng, size_t(std::max<Index>(1, std::max(n, d) * (std::max(n, d) + pad))));
      for (float& v : a) v += 100.f;
      for (bool cols : {false, true}) {
        const Index lda = (cols ? n : d) + pad;
        std::vector<float> mean(size_t(n) + 1, 55.f), var(size_t(n) + 1, 66.f);
        if (cols)
          kernels::col_mean_var(a.data(), d, n, lda, mean.data(), var.data());
        else
          kernels::row_mean_var(a.data(), n, d, lda, mean.data(), var.data());
        auto at = [&](Index i, Index k) { return double(cols ? a[size_t(k * lda + i)] : a[size_t(i * lda + k)]); };
        for (Index i = 0; i < n; ++i) {
          double mu = 0;
          for (Index k = 0; k < d; ++k) mu += at(i, k);
          mu /= double(d);
          double q = 0;
          for (Index k = 0; k < d; ++k) q += (at(i, k) - mu) * (at(i, k) - mu);
          q /= double(d);
          // a float sum of d terms of about 100: rounding up to about d * 2^-24 of it
          EXPECT_NEAR(mean[size_t(i)], mu, 1.2e-7 * double(d) * 101) << (cols ? "column " : "row ") << i << " of " << n << ", d " << d;
          EXPECT_NEAR(var[size_t(i)], q, 1e-4 * q + 1e-4) << (cols ? "column " : "row ") << i << " of " << n << ", d " << d;
        }
        EXPECT_EQ(mean[size_t(n)], 55.f) << "wrote past mean";
        EXPECT_EQ(var[size_t(n)], 66.f) << "wrote past var";
      }
    }
}

// normalize_rows against double loops (LayerNorm without weights: centred,
// divided by sqrt(variance + eps)), on ragged lengths and padded strides,
// more rows than its blocks of 64; the padding stays untouched.
TEST(Kernels, NormalizeRowsMatchesLoops) {
  Rng rng(41);
  const float eps = 1e-5f;
  for (Index n : {Index(0), Index(1), Index(63), Index(65), Index(130)})
    for (Index d : {Index(1), Index(3), Index(8), Index(9), Index(257)}) {
      const Index lda = d + 3;
      std::vector<float> a = random_values<float>(rng, size_t(std::max<Index>(1, n * lda)));
      for (float& v : a) v = 3.f * v + 2.f;
      const std::vector<float> a0 = a;
      kernels::normalize_rows(a.data(), n, d, lda, eps);
      int bad = 0;
      for (Index i = 0; i < n; ++i) {
        double mu = 0, q = 0;
        for (Index k = 0; k < d; ++k) mu += a0[size_t(i * lda + k)];
        mu /= double(d);
        for (Index k = 0; k < d; ++k) q += (a0[size_t(i * lda + k)] - mu) * (a0[size_t(i * lda + k)] - mu);
        const double inv = 1.0 / std::sqrt(q / double(d) + eps);
        for (Index k = 0; k < lda; ++k) {
          const size_t at = size_t(i * lda + k);
          const double want = (a0[at] - mu) * inv;
          const bool ok = k < d ? std::abs(a[at] - want) <= 1e-4 * (1 + std::abs(want)) : a[at] == a0[at];
          if (!ok && bad++ < 3) ADD_FAILURE() << n << "x" << d << ": entry " << i << "," << k << " is " << a[at];
        }
      }
    }
}

// add_to_double adds each float into its double (nothing past n).
TEST(Kernels, AddToDoubleAddsEachFloat) {
  Rng rng(43);
  for (Index n : {Index(0), Index(1), Index(3), Index(4), Index(17), Index(1000)}) {
    const std::vector<float> x = random_values<float>(rng, size_t(n) + 1);
    std::vector<double> y(size_t(n) + 1);
    for (size_t i = 0; i < y.size(); ++i) y[i] = 0.1 * double(i) + 1e9;
    const std::vector<double> y0 = y;
    kernels::add_to_double(x.data(), n, y.data());
    for (Index i = 0; i < n; ++i) EXPECT_EQ(y[size_t(i)], y0[size_t(i)] + double(x[size_t(i)])) << i << " of " << n;
    EXPECT_EQ(y[size_t(n)], y0[size_t(n)]) << "wrote past n";
  }
}

// sum_exp against long-double exp on every length of the tails (the 8- and
// 4-wide loops and the 1-3 left), over a softmax's range: logits spread by
// tens of nats below the shift, some so far below that expf underflows, some
// at the shift itself. Each term is within a few float ulps (the polynomial
// in wasm, Eigen's exp natively); the sum within 1e-6 relative.
TEST(Kernels, SumExpMatchesLongDoubleExp) {
  Rng rng(31);
  for (Index n : kSizes) {
    for (float spread : {1.f, 10.f, 60.f}) {
      std::vector<float> x = random_values<float>(rng, size_t(std::max<Index>(1, n)));
      float mx = -INFINITY;
      for (Index i = 0; i < n; ++i) {
        x[size_t(i)] *= spread;
        if (i % 11 == 5) x[size_t(i)] = -200.f;  // exp underflows: the term is (about) 0
        mx = std::max(mx, x[size_t(i)]);
      }
      for (float shift : {mx, mx + 3.f}) {
        long double want = 0;
        for (Index i = 0; i < n; ++i) want += std::exp((long double)x[size_t(i)] - (long double)shift);
        const float got = kernels::sum_exp(x.data(), n, shift);
        EXPECT_NEAR(double(got), double(want), 1e-6 * double(want) + 1e-37)
            << "n " << n << " spread " << spread << " shift " << shift - mx;
      }
    }
  }
}

}  // namespace
}  // namespace cs
