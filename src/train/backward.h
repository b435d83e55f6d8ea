// Training-time forward and backward pass of the attention-only transformer
// (same semantics as core/forward.h, TransformerLens convention, x @ W), over
// a batch of sequences, in the style of llm.c: each layer's forward sits next
// to its backward, and the gradients live in one flat block with exactly the
// layout of Model::data() (so grads[spec.offset + i] is d loss / d param).
#pragma once
#include <span>
#include <vector>

#include "core/model.h"

namespace cs::train {

// tokens: [B, T] row-major. The loss is the mean next-token cross-entropy over
// the B * (T - 1) predictions (position t predicts tokens[b, t + 1]).
// Positions with loss_mask[b, t] == 0 (when a mask is given, [B, T]) do not
// count; the mean is over the positions that do.
struct BatchView {
  std::span<const int> tokens;
  int B = 0, T = 0;
  std::span<const float> loss_mask;  // empty: every position counts
};

// Forward + backward. Writes d mean_loss / d param into grads (size m.size(),
// overwritten, not accumulated) and returns the mean loss. Splits the batch
// over n_threads worker threads (1 in wasm). Throws cs::Error on bad shapes or
// token ids, as forward() does.
float loss_and_grad(const Model& m, const BatchView& batch, std::span<float> grads, int n_threads = 1);

// Forward only, the same arithmetic: mean loss over the batch (for evaluation).
float batch_loss(const Model& m, const BatchView& batch, int n_threads = 1);

}  // namespace cs::train
