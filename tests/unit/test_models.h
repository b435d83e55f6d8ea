// Small hand-built models the unit tests share.
#pragma once
#include <Eigen/Core>

#include "core/model.h"

namespace cs::testmodels {

// One head on 6 tokens with W_E = W_V = W_O = I (d_model = d_head = d_vocab = 6)
// and W_U a chosen matrix P: the full OV circuit is P itself.
inline Model identity_head(const Eigen::MatrixXf& P) {
  ModelConfig c;
  c.n_layers = 1;
  c.d_model = 6;
  c.n_heads = 1;
  c.d_head = 6;
  c.n_ctx = 4;
  c.d_vocab = 6;
  c.normalization = Norm::None;
  c.positional = PosEmbed::None;
  Model m(c);
  m.W_E().setIdentity();
  m.W_V(0, 0).setIdentity();
  m.W_O(0, 0).setIdentity();
  m.W_U() = P;
  return m;
}

}  // namespace cs::testmodels
