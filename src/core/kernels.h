// Matrix-vector products on the page's hot paths. A row or column of a
// vocab x vocab circuit is one pass over a [d_vocab, d_model] matrix (W_E, or
// W_U read by columns): 25 M multiply-adds at the toy shape, a lookup the
// student waits for. Natively these are Eigen's kernels. In wasm Eigen 3.4 has
// no SIMD128 kernels (its scalar path ran about 2.8x slower than native on
// these shapes), so they are hand-written with wasm_simd128.h intrinsics.
// Both compute the same sums; only the float summation order differs.
// Measurements: tests/bench/RESULTS.md.
//
// Row-major storage with a row stride, so a block of rows or columns of a
// larger matrix is passed without copying.
#pragma once
#include <cstddef>

namespace cs::kernels {

using Index = std::ptrdiff_t;

// y = A x: y[i] = sum_k A[i * lda + k] x[k], for i < n, k < d.
// A: [n, d] row-major with row stride lda >= d; x: [d]; y: [n].
void gemv(const float* A, Index n, Index d, Index lda, const float* x, float* y);

// y = A^T x (x^T A as a row): y[j] = sum_k x[k] A[k * lda + j], for j < n, k < d.
// A: [d, n] row-major with row stride lda >= n; x: [d]; y: [n].
void gemv_t(const float* A, Index d, Index n, Index lda, const float* x, float* y);

// Which implementation this build uses: "eigen" or "wasm-simd128".
const char* gemv_backend();

}  // namespace cs::kernels
