// Eigenvalues of dense matrices for the tests of the factored ones: Eigen's
// general solver on a matrix built with loops (naive_reference.h), and a
// multiset match between the small matrix's eigenvalues and the dense ones.
#pragma once
#include <gtest/gtest.h>

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <complex>
#include <string>
#include <vector>

#include "naive_reference.h"

namespace cs {

using cd = std::complex<double>;

// Eigenvalues of a dense square matrix whose modulus exceeds tol * the largest modulus.
inline std::vector<cd> nonzero_dense_eigenvalues(const naive::Mat& a, double tol) {
  const Eigen::Index n = Eigen::Index(a.size());
  Eigen::MatrixXd M(n, n);
  for (Eigen::Index i = 0; i < n; ++i)
    for (Eigen::Index j = 0; j < n; ++j) M(i, j) = a[size_t(i)][size_t(j)];
  Eigen::EigenSolver<Eigen::MatrixXd> es(M, false);
  std::vector<cd> all(es.eigenvalues().begin(), es.eigenvalues().end()), out;
  double top = 0;
  for (const cd& x : all) top = std::max(top, std::abs(x));
  for (const cd& x : all)
    if (std::abs(x) > tol * top) out.push_back(x);
  return out;
}

// Every dense eigenvalue has its own match among the small ones; the small
// matrix's others are (numerically) zero.
inline void expect_eigen_match(const std::vector<cd>& small, const std::vector<cd>& dense, const std::string& what) {
  std::vector<bool> used(small.size(), false);
  for (const cd& x : dense) {
    size_t best = 0;
    double dist = 1e300;
    for (size_t i = 0; i < small.size(); ++i)
      if (!used[i] && std::abs(small[i] - x) < dist) dist = std::abs(small[i] - x), best = i;
    EXPECT_LT(dist, 1e-4 * std::max(1.0, std::abs(x))) << what << " eigenvalue " << x;
    used[best] = true;
  }
  // The small matrix's other eigenvalues are (numerically) zero.
  double top = 0;
  for (const cd& x : small) top = std::max(top, std::abs(x));
  for (size_t i = 0; i < small.size(); ++i)
    if (!used[i]) EXPECT_LT(std::abs(small[i]), 1e-5 * std::max(1.0, top)) << what;
}

}  // namespace cs
