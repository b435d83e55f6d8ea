#!/usr/bin/env python3
"""PyTorch CPU baseline for the copying-score benchmarks (bench_native /
bench_wasm: copying_scores_16_heads).

Builds a random model of the same shapes as tests/bench/bench_common.cpp (the
attn-only-2l shape: 2 layers, d_model 512, 8 heads of 64, d_vocab 48262; not
the same weights, only the same shapes) and computes the OV and QK copying
scores of all 16 heads the way TransformerLens does with FactoredMatrix:

  OV: W_E @ model.OV @ W_U = FactoredMatrix(A = W_E W_V, B = W_O W_U); its
      .eigenvalues are torch.linalg.eig(B @ A) of the d_head x d_head product.
  QK: W_E @ model.QK @ W_E.T = FactoredMatrix(A = W_E W_Q, B = W_K^T W_E^T).
  copying score = (sum(eig) / sum(|eig|)).real

batched over layers and heads as TransformerLens' tensors are [n_layers,
n_heads, ...], in float32. W_E is used as is (TransformerLens' recipe does not
normalise it; the C++ benchmark also applies ln1 to W_E, an extra O(d_vocab
d_model) pass). Prints {"benchmarks":[{"name","ms","min_ms","reps"}, ...]} on
stdout and a line per benchmark on stderr. Timings are never asserted.
Needs `import torch` (Debian: python3-torch); scripts/bench runs it when that works.
"""
import json
import sys
import time

import torch

N_LAYERS, D_MODEL, N_HEADS, D_HEAD, D_VOCAB = 2, 512, 8, 64, 48262


def random_model(seed=1234, scale=0.05):
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g) * scale  # noqa: E731
    return {
        "W_E": r(D_VOCAB, D_MODEL),                     # [d_vocab, d_model]
        "W_U": r(D_MODEL, D_VOCAB),                     # [d_model, d_vocab]
        "W_Q": r(N_LAYERS, N_HEADS, D_MODEL, D_HEAD),   # x @ W_Q, as TransformerLens
        "W_K": r(N_LAYERS, N_HEADS, D_MODEL, D_HEAD),
        "W_V": r(N_LAYERS, N_HEADS, D_MODEL, D_HEAD),
        "W_O": r(N_LAYERS, N_HEADS, D_HEAD, D_MODEL),
    }


def copying_score(eig):
    return (eig.sum(-1) / eig.abs().sum(-1)).real


def copying_scores(m):
    """OV and QK copying scores [n_layers, n_heads] each, the FactoredMatrix route."""
    W_E, W_U = m["W_E"], m["W_U"]
    # OV: A = W_E W_V [L, H, d_vocab, d_head], B = W_O W_U [L, H, d_head, d_vocab]
    A = W_E @ m["W_V"]
    B = m["W_O"] @ W_U
    ov = copying_score(torch.linalg.eigvals(B @ A))
    del A, B
    # QK: A = W_E W_Q, B = W_K^T W_E^T = (W_E W_K)^T
    A = W_E @ m["W_Q"]
    B = (W_E @ m["W_K"]).transpose(-1, -2)
    qk = copying_score(torch.linalg.eigvals(B @ A))
    return ov, qk


def time_it(name, fn, min_reps=3, min_seconds=2.0):
    fn()  # warm-up
    total, best, reps = 0.0, float("inf"), 0
    while reps < min_reps or total < min_seconds * 1e3:
        t0 = time.perf_counter()
        fn()
        ms = (time.perf_counter() - t0) * 1e3
        total += ms
        best = min(best, ms)
        reps += 1
    print(f"{name:32s} {total / reps:10.1f} ms (min {best:.1f}, {reps} reps)", file=sys.stderr)
    return {"name": name, "ms": total / reps, "min_ms": best, "reps": reps}


def main():
    torch.set_grad_enabled(False)
    m = random_model()
    default_threads = torch.get_num_threads()
    out = []
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        out.append(time_it(f"torch_copying_scores_16_heads_t{threads}", lambda: copying_scores(m)))
    torch.set_num_threads(default_threads)
    ov, qk = copying_scores(m)
    print(f"torch {torch.__version__}; OV scores {ov.flatten()[:4].tolist()}..., "
          f"QK scores {qk.flatten()[:4].tolist()}...", file=sys.stderr)
    print(json.dumps({"benchmarks": out, "torch": torch.__version__, "default_threads": default_threads}))


if __name__ == "__main__":
    main()
