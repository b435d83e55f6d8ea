#!/usr/bin/env python3
"""PyTorch CPU baselines for the copying-score and composition benchmarks
(bench_native / bench_wasm: copying_scores_16_heads, composition_4l).

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
Composition (composition_4l): the Q-, K- and V-composition scores of every
pair of heads of a 4-layer model of the same widths, the way TransformerLens'
all_composition_scores does: left = OV = FactoredMatrix(W_V, W_O), right =
QK, QK^T or OV, broadcast over [L, H, L, H]; a FactoredMatrix's norm from the
singular values of the factors (svd of A and B, then of the small middle
matrix), the product (left @ right.A) @ right.B kept factored.

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


def factored_norm(A, B):
    """Frobenius norm of A @ B ([..., d, r] @ [..., r, d']) as FactoredMatrix.norm() computes it."""
    U_A, S_A, Vh_A = torch.linalg.svd(A, full_matrices=False)
    U_B, S_B, Vh_B = torch.linalg.svd(B, full_matrices=False)
    middle = S_A[..., :, None] * (Vh_A @ U_B) * S_B[..., None, :]
    return torch.linalg.svdvals(middle).pow(2).sum(-1).sqrt()


def composition_scores(m):
    """{"Q", "K", "V"}: [L, H, L, H] composition scores (all pairs, as TransformerLens; l1 >= l2 not masked)."""
    W_Q, W_K, W_V, W_O = m["W_Q"], m["W_K"], m["W_V"], m["W_O"]
    left_norm = factored_norm(W_V, W_O)  # [L, H]
    out = {}
    for mode in ("Q", "K", "V"):
        if mode == "Q":
            A2, B2 = W_Q, W_K.transpose(-1, -2)
        elif mode == "K":
            A2, B2 = W_K, W_Q.transpose(-1, -2)
        else:
            A2, B2 = W_V, W_O
        right_norm = factored_norm(A2, B2)  # [L, H]
        # (left @ right.A) @ right.B = FactoredMatrix(W_V1, (W_O1 A2) B2), broadcast over pairs.
        B = (W_O[:, :, None, None] @ A2[None, None]) @ B2[None, None]  # [L, H, L, H, d_head, d_model]
        A = W_V[:, :, None, None].expand(*B.shape[:4], *W_V.shape[-2:])
        out[mode] = factored_norm(A, B) / left_norm[:, :, None, None] / right_norm[None, None]
    return out


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
    g = torch.Generator().manual_seed(99)
    m4 = {n: torch.randn(4, N_HEADS, *shape, generator=g) * 0.05
          for n, shape in (("W_Q", (D_MODEL, D_HEAD)), ("W_K", (D_MODEL, D_HEAD)), ("W_V", (D_MODEL, D_HEAD)),
                           ("W_O", (D_HEAD, D_MODEL)))}
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        out.append(time_it(f"torch_composition_4l_t{threads}", lambda: composition_scores(m4)))
    torch.set_num_threads(default_threads)
    ov, qk = copying_scores(m)
    print(f"torch {torch.__version__}; OV scores {ov.flatten()[:4].tolist()}..., "
          f"QK scores {qk.flatten()[:4].tolist()}...", file=sys.stderr)
    print(json.dumps({"benchmarks": out, "torch": torch.__version__, "default_threads": default_threads}))


if __name__ == "__main__":
    main()
