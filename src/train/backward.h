// Training-time forward and backward pass of the attention-only transformer
// (same semantics as core/forward.h, TransformerLens convention, x @ W), over
// a batch of sequences, in the style of llm.c: each layer's forward sits next
// to its backward, and the gradients live in one flat block with exactly the
// layout of Model::data() (so grads[spec.offset + i] is d loss / d param).
#pragma once
#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "core/model.h"

namespace cs::train {

// tokens: [B, T] row-major. The loss is the mean next-token cross-entropy over
// the B * (T - 1) predictions (position t predicts tokens[b, t + 1]).
// Positions with loss_mask[b, t] == 0 (when a mask is given, [B, T]) do not
// count; the mean is over the positions that do.
// (loss_mask[b, t] belongs to the prediction made AT position t, i.e. of
// tokens[b, t + 1]; column T - 1 predicts nothing and is ignored. Entries must
// be finite and >= 0; they act as weights, loss = sum(mask * loss) / sum(mask),
// which for a 0/1 mask is the mean over the counted positions. A mask that
// counts no position at all is an error.)
struct BatchView {
  std::span<const int> tokens;
  int B = 0, T = 0;
  std::span<const float> loss_mask;  // empty: every position counts
};

// Buffers reused from call to call: each worker's activations and gradient
// accumulator, and the weights repacked for one GEMM per layer. Holding one
// (e.g. in the trainer) avoids reallocating per step; a Workspace must not be
// used by two calls at the same time. The overloads without one use a
// thread_local Workspace of the calling thread.
class Workspace {
 public:
  Workspace();
  ~Workspace();
  Workspace(Workspace&&) noexcept;
  Workspace& operator=(Workspace&&) noexcept;
  size_t bytes() const;  // memory currently held
  void clear();          // frees it all

  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// Forward + backward. Writes d mean_loss / d param into grads (size m.size(),
// overwritten, not accumulated) and returns the mean loss. Splits the batch
// over n_threads worker threads (1 in wasm). Throws cs::Error on bad shapes or
// token ids, as forward() does.
// (The batch's sequences are split into min(n_threads, B) contiguous groups,
// each with its own gradient accumulator, summed in group order: for a fixed
// n_threads the result is deterministic. In wasm the groups run one after the
// other on the calling thread, so the arithmetic is that of n_threads groups.)
float loss_and_grad(const Model& m, const BatchView& batch, std::span<float> grads, int n_threads = 1);
float loss_and_grad(const Model& m, const BatchView& batch, std::span<float> grads, Workspace& ws,
                    int n_threads = 1);

// loss_and_grad in pieces, for a caller that must not block for a whole batch
// (the page's Train view): begin_loss_and_grad checks the batch (cs::Error as
// loss_and_grad) and splits it into min(groups, B) groups of sequences, which
// it returns; loss_and_grad_group(ws, i) runs group i's forward and backward
// (each group once, in any order, on any thread); finish_loss_and_grad sums
// the groups into grads and returns the mean loss. The same arithmetic as
// loss_and_grad(m, batch, grads, ws, groups). m, the batch and grads must
// stay as they are until finish, and ws must not be used for anything else
// meanwhile.
int begin_loss_and_grad(const Model& m, const BatchView& batch, std::span<float> grads, Workspace& ws, int groups);
void loss_and_grad_group(Workspace& ws, int group);
float finish_loss_and_grad(Workspace& ws);

// Forward only, the same arithmetic: mean loss over the batch (for evaluation).
float batch_loss(const Model& m, const BatchView& batch, int n_threads = 1);
float batch_loss(const Model& m, const BatchView& batch, Workspace& ws, int n_threads = 1);

// Floating-point operations of one loss_and_grad call on a [B, T] batch,
// counted analytically (a multiply-add is 2): the products only, i.e. the
// Q/K/V and W_O projections and the unembedding (forward GEMM plus the two
// backward GEMMs, d input and d weight: 3 x 2 x rows x in x out each) and the
// attention products over the causal triangle (scores q k^T and A v forward,
// dA, dv, dq, dk backward: 6 products of T (T + 1) / 2 x d_head
// multiply-adds per head and sequence). Softmax, LayerNorm and elementwise
// work are not counted. Forward only (batch_loss) is one third of it.
double train_flops(const ModelConfig& c, int B, int T);

}  // namespace cs::train
