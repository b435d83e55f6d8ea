// Matrix-vector and matrix-matrix products on the page's hot paths. A row or column of a
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
#include <type_traits>

#include <Eigen/Core>

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

// ---- matrix products (docs/speed.md, "The GEMM kernel") ----------------------------
//
// The forward pass's products (projections, scores q k^T, A v, z W_O, the
// unembedding [T, d_model] @ W_U [d_model, d_vocab]), the blocks of a full
// vocab x vocab scan ([rows, r] @ [r, cols]) and the trainer's dense products
// go through gemm (usually as matmul, below). Natively it is Eigen's kernels
// (AVX2/AVX-512 with FMA under -march=native); in wasm a packed,
// register-blocked kernel with a SIMD128 micro-kernel (Eigen 3.4 has none for
// wasm; the kernel runs these shapes about 2x faster than Eigen there).

// An operand: element (i, j) at data[i * stride + j], or at data[j * stride + i]
// when `transposed` (a row-major matrix read as its transpose, e.g. B^T for
// A @ B^T with B stored [n, k]). rows x cols is the operand's logical shape.
template <class T>
struct MatViewOf {
  const T* data = nullptr;
  Index rows = 0, cols = 0;
  Index stride = 0;  // >= cols (>= rows when transposed)
  bool transposed = false;
};
using MatView = MatViewOf<float>;    // the model's weights and activations
using MatViewD = MatViewOf<double>;  // the small circuits' products (eigenvalues, composition)

// C = A @ B, or C += A @ B when `accumulate`: A [m, k], B [k, n], C [m, n]
// row-major with row stride ldc >= n. C must not overlap A or B. In float,
// or in double (the products behind eigenvalues and composition scores:
// Eigen multiplies doubles one at a time in wasm).
void gemm(const MatView& A, const MatView& B, float* C, Index ldc, bool accumulate = false);
void gemm(const MatViewD& A, const MatViewD& B, double* C, Index ldc, bool accumulate = false);

// The packed implementation behind gemm in wasm: B in panels of two SIMD128
// vectors (8 float or 4 double columns), A in panels of 4 rows, a tile of C
// in registers over a block of k. Built natively too (with a portable
// micro-kernel) so its packing and edges are tested against loops there; the
// same packing runs with SIMD128 in wasm.
void gemm_packed(const MatView& A, const MatView& B, float* C, Index ldc, bool accumulate = false);
void gemm_packed(const MatViewD& A, const MatViewD& B, double* C, Index ldc, bool accumulate = false);

// Throws cs::Error: matmul's output is rows x cols where the product is m x n.
[[noreturn]] void throw_output_shape(Index rows, Index cols, Index m, Index n);

// The same product through Eigen's kernels (what gemm is natively).
void gemm_eigen(const MatView& A, const MatView& B, float* C, Index ldc, bool accumulate = false);
void gemm_eigen(const MatViewD& A, const MatViewD& B, double* C, Index ldc, bool accumulate = false);

// What gemm uses now: "eigen", "wasm-simd128" (the packed kernel in wasm) or
// "packed" (the packed kernel with its portable micro-kernel, natively).
const char* gemm_backend();

// Makes gemm use Eigen (true) or the packed kernel (false), e.g. for a
// benchmark that compares the two in one run. The default is the packed kernel
// in wasm and Eigen natively. Process-wide; not to be changed while products
// run on other threads.
void set_gemm_uses_eigen(bool eigen);

// A row-major or column-major Eigen matrix, map or block of one (data(),
// rows(), cols(), outerStride()) as an operand; a column-major one is its
// storage read transposed (element (i, j) at data[j * outerStride + i]).
template <class M>
MatViewOf<typename M::Scalar> view(const M& m) {
  return {m.data(), m.rows(), m.cols(), m.outerStride(), !bool(M::IsRowMajor)};
}

// The operand read as its transpose (no copy): gemm(view(q), transpose(view(k)), ...) is q k^T.
template <class T>
MatViewOf<T> transpose(const MatViewOf<T>& M) {
  return {M.data, M.cols, M.rows, M.stride, !M.transposed};
}

// A transposed Eigen matrix (m.transpose()) as an operand.
template <class M>
MatViewOf<typename M::Scalar> view(const Eigen::Transpose<M>& t) {
  return transpose(view(t.nestedExpression()));
}

// C = A @ B (C += A @ B when accumulate) through gemm, for Eigen matrices,
// maps, blocks or their .transpose(), row- or column-major, float or double
// (one scalar type for all three); C must already be A.rows() x B.cols().
// E.g. matmul(q, k.transpose(), S) for S = q k^T. A column-major C is
// computed as C^T = B^T A^T, which is row-major in C's storage.
template <class MA, class MB, class MC>
void matmul(const MA& A, const MB& B, MC&& C, bool accumulate = false) {
  if (C.rows() != A.rows() || C.cols() != B.cols()) throw_output_shape(C.rows(), C.cols(), A.rows(), B.cols());
  if constexpr (std::remove_cvref_t<MC>::IsRowMajor)
    gemm(view(A), view(B), C.data(), C.outerStride(), accumulate);
  else
    gemm(transpose(view(B)), transpose(view(A)), C.data(), C.outerStride(), accumulate);
}

// A @ B as a new column-major matrix (Eigen's default layout) through matmul:
// e.g. S = product(product(L, M), R) for a head's small matrix in double.
template <class MA, class MB>
Eigen::Matrix<typename MA::Scalar, Eigen::Dynamic, Eigen::Dynamic> product(const MA& A, const MB& B) {
  Eigen::Matrix<typename MA::Scalar, Eigen::Dynamic, Eigen::Dynamic> P(A.rows(), B.cols());
  matmul(A, B, P);
  return P;
}

// ---- Gram matrices and row statistics --------------------------------------------------

// The lower triangle (with the diagonal) of G = X^T X for X [n, d]: G [d, d]
// row-major with row stride ldg; the entries above the diagonal are left
// unspecified. Natively Eigen's symmetric rank update; in wasm the packed
// kernel on panels of columns (each panel from the diagonal down), about
// half the multiply-adds of the whole product. With accumulate, adds X^T X
// to the lower triangle of G instead.
void gram_lower(const MatView& X, float* G, Index ldg, bool accumulate = false);

// Statistics of each of n rows of A [n, d] (row-major, row stride lda >= d):
// mean[i] = sum_k A[i, k] / d and var[i] = sum_k (A[i, k] - mean[i])^2 / d
// (centred first, as LayerNorm computes them).
void row_mean_var(const float* A, Index n, Index d, Index lda, float* mean, float* var);

// The same for each of n columns of A [d, n] (row-major, row stride lda >= n):
// a column of W_U [d_model, d_vocab_out] read in place.
void col_mean_var(const float* A, Index d, Index n, Index lda, float* mean, float* var);

// Each of n rows of A [n, d] (row-major, row stride lda) centred and scaled
// to unit variance in place: a[k] = (a[k] - mean) / sqrt(var + eps), with
// row_mean_var's statistics (LayerNorm without its weights).
void normalize_rows(float* A, Index n, Index d, Index lda, float eps);

// y[i] += x[i] for i < n, in double: float partial sums added into double totals.
void add_to_double(const float* x, Index n, double* y);

// sum_i exp(x[i] - shift) for i < n, with shift >= every x[i] (a softmax's
// normalizer, e.g. shift = max x): Eigen's vectorized exp natively; in wasm
// (where Eigen's exp is scalar libm) a SIMD128 polynomial, within a few float
// ulps of expf for each term (docs/speed.md, "The logits' summary").
float sum_exp(const float* x, Index n, float shift);
// The same terms written back: x[i] = exp(x[i] - shift) for i < n, returning
// their sum (a softmax's numerators and normalizer in one pass; the trainer's
// softmaxes).
float exp_shift(float* x, Index n, float shift);
// The largest of x[0..n), n >= 1 (no NaN handling: the callers check the result).
float max_value(const float* x, Index n);
// A softmax's backward over one row, in place: da[i] = a[i] (da[i] - sum_j a[j] da[j]),
// for a = softmax(s) and da = d loss / d a on entry, d loss / d s on return.
void softmax_backward_row(const float* a, float* da, Index n);

}  // namespace cs::kernels
