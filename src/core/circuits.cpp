// OV / QK circuits and the eigenvalue copying score (circuits.h).
// TransformerLens convention throughout: row vectors, x @ W.
#include "core/circuits.h"

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "core/forward.h"

namespace cs {

namespace {

void check_head(const Model& m, int layer, int head, const char* fn) {
  const ModelConfig& c = m.config();
  if (layer < 0 || layer >= c.n_layers)
    throw Error(std::string(fn) + ": layer " + std::to_string(layer) + " is outside [0, n_layers = " +
                std::to_string(c.n_layers) + ")");
  if (head < 0 || head >= c.n_heads)
    throw Error(std::string(fn) + ": head " + std::to_string(head) + " is outside [0, n_heads = " +
                std::to_string(c.n_heads) + ")");
}

void check_square(const Model& m, const char* fn) {
  const ModelConfig& c = m.config();
  if (c.vocab_out() != c.d_vocab)
    throw Error(std::string(fn) + ": the full OV circuit is not square (d_vocab " + std::to_string(c.d_vocab) +
                ", d_vocab_out " + std::to_string(c.vocab_out()) + ")");
}

}  // namespace

RowMat ov_circuit(const Model& m, int layer, int head) {
  check_head(m, layer, head, "ov_circuit");
  // [d_model, d_head] @ [d_head, d_model]
  return m.W_V(layer, head) * m.W_O(layer, head);
}

RowMat qk_circuit(const Model& m, int layer, int head) {
  check_head(m, layer, head, "qk_circuit");
  // [d_model, d_head] @ [d_head, d_model]
  return m.W_Q(layer, head) * m.W_K(layer, head).transpose();
}

RowMat embed_for_layer(const Model& m, int layer, const CircuitOptions& opt) {
  RowMat E = m.W_E();  // [d_vocab, d_model]
  if (opt.normalize_embed) normalize_rows(m, E, layer);
  return E;
}

RowMat full_ov_circuit(const Model& m, int layer, int head, const CircuitOptions& opt) {
  check_head(m, layer, head, "full_ov_circuit");
  const RowMat E = embed_for_layer(m, layer, opt);
  // ([d_vocab, d_model] @ [d_model, d_head]) @ [d_head, d_model] @ [d_model, d_vocab_out]
  const RowMat EV = E * m.W_V(layer, head);
  const RowMat EVO = EV * m.W_O(layer, head);
  return EVO * m.W_U();
}

Eigen::MatrixXd ov_small_matrix(const Model& m, int layer, int head, const CircuitOptions& opt) {
  check_head(m, layer, head, "ov_small_matrix");
  const Eigen::MatrixXd E = embed_for_layer(m, layer, opt).cast<double>();  // [d_vocab, d_model]
  const Eigen::MatrixXd W_V = m.W_V(layer, head).cast<double>();          // [d_model, d_head]
  const Eigen::MatrixXd W_O = m.W_O(layer, head).cast<double>();          // [d_head, d_model]
  const Eigen::MatrixXd W_U = m.W_U().cast<double>();                     // [d_model, d_vocab_out]
  const Eigen::MatrixXd EV = E * W_V;                                      // [d_vocab, d_head]
  const Eigen::MatrixXd UEV = W_U * EV;                                    // [d_model, d_head]
  return W_O * UEV;                                                        // [d_head, d_head]
}

std::vector<std::complex<double>> ov_eigenvalues(const Model& m, int layer, int head, const CircuitOptions& opt) {
  check_head(m, layer, head, "ov_eigenvalues");
  check_square(m, "ov_eigenvalues");
  const Eigen::MatrixXd S = ov_small_matrix(m, layer, head, opt);
  Eigen::EigenSolver<Eigen::MatrixXd> solver(S, /*computeEigenvectors=*/false);
  if (solver.info() != Eigen::Success)
    throw Error("ov_eigenvalues: the eigenvalue solver did not converge for head " + std::to_string(layer) + "." +
                std::to_string(head));
  std::vector<std::complex<double>> ev(solver.eigenvalues().begin(), solver.eigenvalues().end());
  std::stable_sort(ev.begin(), ev.end(),
                   [](const std::complex<double>& a, const std::complex<double>& b) { return std::abs(a) > std::abs(b); });
  return ev;
}

double copying_score(std::span<const std::complex<double>> eigenvalues) {
  double re = 0, mag = 0;
  for (const auto& l : eigenvalues) {
    re += l.real();
    mag += std::abs(l);
  }
  return mag > 0 ? re / mag : 0.0;
}

RowMat copying_scores(const Model& m, const CircuitOptions& opt) {
  const ModelConfig& c = m.config();
  check_square(m, "copying_scores");
  RowMat out(c.n_layers, c.n_heads);
  for (int l = 0; l < c.n_layers; ++l)
    for (int h = 0; h < c.n_heads; ++h) out(l, h) = float(copying_score(ov_eigenvalues(m, l, h, opt)));
  return out;
}

}  // namespace cs
