#!/usr/bin/env python3
"""PyTorch CPU baselines of the native benchmarks (tests/bench/bench_native.cpp),
the way a TransformerLens user computes the same things: batched over heads,
float32 (the small copying eigen-problems in float64, as natively), torch.topk.

    python3 tests/bench/torch_baselines.py [FILTER] [--threads N] [--list]

FILTER: a regular expression; only rows whose name or matched native row it
finds run (as BENCH_FILTER; 'ov_row|copying' works). --threads N: torch on N
threads (default: torch.get_num_threads() as torch starts, what a
TransformerLens user gets). --list: print the row names and the native rows
they are compared with (without importing torch).
Prints {"benchmarks":[{"name","native","ms","min_ms","reps","threads",
"native_threads"}, ...], "torch", "default_threads", "cores"} on stdout and a
line per row on stderr. Timings are never asserted.

Each row is named like the native row it does the same work as; "native"
names the native row it is to be compared with: the *_all_cores one where
bench_native has both a one-thread and an all-cores version, else the
one-thread row ("native_threads": that row's thread count, "threads":
torch's). scripts/bench (--torch) prints them as the "torch" column of its
table, on the "native" row. torch.get_num_threads()'s default is reported as
default_threads: 1 on the 2-core build machine (Debian's torch 1.13); there
2 threads were slower than 1 while another build ran (forward_1024
1.79 s against 1.35 s on one; composition_4l 350 s against 21 s: the batched
SVDs' OpenMP threads wait on each other when a core is taken).

The model: random, the shapes of tests/bench/bench_common.cpp as the page and
the benchmarks load it (processed: LN folded, so every normalization is
LNPre, (x - mean) / sqrt(var + eps); b_V folded into b_O); not the same
weights, only the same shapes: 2 layers, d_model 512, 8 heads of 64, n_ctx
1024, d_vocab 48262, standard positions. The rows:

  forward_1024             run_with_cache of 1,024 tokens to the logits
                           [1024, 48262]: embedding + positions, per block
                           LNPre, q, k, v of all heads batched, causal softmax,
                           every head's output z W_O kept (as the native cache),
                           their sum + b_O; LNPre, W_U, b_U. The cache keeps the
                           residuals, patterns and head outputs.
  bigram_top_next_k10      one row of the direct path, LNPre(W_E[s]) W_U + b_U,
                           its torch.topk(10) and their probabilities
                           (logsumexp); 64 source tokens in turn.
  copying_scores_16_heads  the OV and QK copying scores of all 16 heads by
                           TransformerLens' FactoredMatrix route, from
                           E = LNPre(W_E) (the native row normalises W_E too):
                           OV = FactoredMatrix(E W_V, W_O W_U), QK =
                           FactoredMatrix(E W_Q, W_K^T E^T); .eigenvalues are
                           torch.linalg.eigvals of the d_head x d_head product
                           B @ A; score = (sum eig / sum |eig|).real.
  copying_eigen_16_heads   the same scores with the vocabulary sums given (the
                           native row's split): W_O (W_U E) W_V and
                           W_K^T (E^T E) W_Q, batched, float64, eigvals.
  composition_4l           Q-, K-, V-composition scores of every pair of a
                           4-layer, 8-head model, as TransformerLens'
                           all_composition_scores: FactoredMatrix products
                           broadcast over [L, H, L, H], norms from SVDs.
  ov_top_entries_n100      the 100 largest entries of head 0.0's full OV circuit
                           LNPre(W_E) W_V W_O W_U (48262 x 48262, never formed
                           whole: 9.3 GB): L = E W_V [V, 64], R = W_O W_U [64, V];
                           blocks of OV_BLOCK = 1024 rows L[r0:r1] @ R into one
                           preallocated buffer (torch.mm out=, 198 MB); of each
                           block only the rows whose max can still place (amax,
                           then torch.topk) go to torch.topk, merged with the best
                           so far. The fastest torch way found: torch.topk of
                           every whole flattened block (plain=True) took 43 s
                           against 8.7 s (2 threads, busy machine), the GEMM being
                           about 7 s of it; 256 / 1024 / 4096-row blocks took
                           10.4 / 8.7 / 8.2 s.
  gemm_2048x512x48262      torch.mm of [2048, 512] by W_U [512, 48262] into a
                           preallocated [2048, 48262] output (out=; the native
                           row writes blocks of 4096 columns into one buffer).

Needs `import torch` (Debian: python3-torch); scripts/setup does not install
it. scripts/bench runs this when a python3 can import torch (--torch: always).
"""
import json
import os
import re
import sys
import time

N_LAYERS, D_MODEL, N_HEADS, D_HEAD, N_CTX, D_VOCAB = 2, 512, 8, 64, 1024, 48262
EPS = 1e-5
OV_BLOCK = 1024     # rows of the OV circuit per block in ov_top_entries_n100
GEMM_ROWS = 2048

# name, the native row it is compared with, whether that native row runs on all cores.
ROWS = [
    ("forward_1024", "forward_1024_all_cores", True),
    ("bigram_top_next_k10", "bigram_top_next_k10", False),
    ("copying_scores_16_heads", "copying_scores_16_heads_all_cores", True),
    ("copying_eigen_16_heads", "copying_eigen_16_heads_all_cores", True),
    ("composition_4l", "composition_4l", True),
    ("ov_top_entries_n100", "ov_top_entries_n100_all_cores", True),
    ("gemm_2048x512x48262", "gemm_2048x512x48262_all_cores", True),
]

if __name__ == "__main__" and "--list" in sys.argv[1:]:
    print("\n".join(f"{n} {m}" for n, m, _ in ROWS))
    sys.exit(0)

import torch  # noqa: E402


def random_model(seed=1234, scale=0.05):
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g) * scale  # noqa: E731
    return {
        "W_E": r(D_VOCAB, D_MODEL),                     # [d_vocab, d_model]
        "W_pos": r(N_CTX, D_MODEL),                     # [n_ctx, d_model]
        "W_U": r(D_MODEL, D_VOCAB),                     # [d_model, d_vocab]
        "b_U": r(D_VOCAB),
        "W_Q": r(N_LAYERS, N_HEADS, D_MODEL, D_HEAD),   # x @ W_Q, as TransformerLens
        "W_K": r(N_LAYERS, N_HEADS, D_MODEL, D_HEAD),
        "W_V": r(N_LAYERS, N_HEADS, D_MODEL, D_HEAD),
        "W_O": r(N_LAYERS, N_HEADS, D_HEAD, D_MODEL),
        "b_Q": r(N_LAYERS, N_HEADS, D_HEAD),
        "b_K": r(N_LAYERS, N_HEADS, D_HEAD),
        "b_O": r(N_LAYERS, D_MODEL),                    # b_V folded in
    }


def token_sequence(n, seed=7):
    return torch.randint(0, D_VOCAB, (n,), generator=torch.Generator().manual_seed(seed))


def ln_pre(x):
    """TransformerLens' LNPre (LN with w and b folded away), over the last dimension."""
    x = x - x.mean(-1, keepdim=True)
    return x / (x.pow(2).mean(-1, keepdim=True) + EPS).sqrt()


# ---- forward_1024 --------------------------------------------------------------------

def forward(m, tokens):
    """(logits [T, d_vocab], cache) as run_with_cache of an attn-only LNPre model."""
    T = tokens.shape[0]
    x = m["W_E"][tokens] + m["W_pos"][:T]
    cache = {"resid": [x], "pattern": [], "head_out": []}
    mask = torch.ones(T, T, dtype=torch.bool).triu_(1)  # key after query
    for l in range(N_LAYERS):
        y = ln_pre(x)                                               # [T, d_model]
        q = torch.matmul(y, m["W_Q"][l]) + m["b_Q"][l][:, None]     # [H, T, d_head]
        k = torch.matmul(y, m["W_K"][l]) + m["b_K"][l][:, None]
        v = torch.matmul(y, m["W_V"][l])
        scores = torch.matmul(q, k.transpose(-1, -2)) / D_HEAD ** 0.5  # [H, T(query), T(key)]
        scores.masked_fill_(mask, float("-inf"))
        pattern = scores.softmax(-1)
        z = torch.matmul(pattern, v)                                # [H, T, d_head]
        head_out = torch.matmul(z, m["W_O"][l])                     # [H, T, d_model]
        x = x + head_out.sum(0) + m["b_O"][l]
        cache["pattern"].append(pattern)
        cache["head_out"].append(head_out)
        cache["resid"].append(x)
    logits = ln_pre(x) @ m["W_U"] + m["b_U"]
    return logits, cache


# ---- bigram_top_next_k10 -------------------------------------------------------------

def bigram_top_next(m, source, k=10):
    """(ids, logits, probabilities) of the k most likely next tokens after `source` (direct path)."""
    row = ln_pre(m["W_E"][source]) @ m["W_U"] + m["b_U"]  # [d_vocab]
    lse = torch.logsumexp(row, 0)
    vals, ids = torch.topk(row, k)
    return ids, vals, (vals - lse).exp()


# ---- copying scores ------------------------------------------------------------------

def copying_score(eig):
    return (eig.sum(-1) / eig.abs().sum(-1)).real


def copying_scores(m):
    """OV and QK copying scores [n_layers, n_heads] each, the FactoredMatrix route."""
    E, W_U = ln_pre(m["W_E"]), m["W_U"]
    # OV: A = E W_V [L, H, d_vocab, d_head], B = W_O W_U [L, H, d_head, d_vocab]
    A = E @ m["W_V"]
    B = m["W_O"] @ W_U
    ov = copying_score(torch.linalg.eigvals(B @ A))
    del A, B
    # QK: A = E W_Q, B = W_K^T E^T = (E W_K)^T
    A = E @ m["W_Q"]
    B = (E @ m["W_K"]).transpose(-1, -2)
    qk = copying_score(torch.linalg.eigvals(B @ A))
    return ov, qk


def embed_grams(m):
    """E^T E and W_U E [d_model, d_model], float64: the vocabulary sums the small matrices need."""
    E = ln_pre(m["W_E"])
    return (E.T @ E).double(), (m["W_U"] @ E).double()


def copying_eigen(m, grams):
    """The same scores from the sums: eigvals of W_O (W_U E) W_V and W_K^T (E^T E) W_Q."""
    EtE, UE = grams
    ov = copying_score(torch.linalg.eigvals(m["W_O64"] @ UE @ m["W_V64"]))
    qk = copying_score(torch.linalg.eigvals(m["W_K64"].transpose(-1, -2) @ EtE @ m["W_Q64"]))
    return ov, qk


# ---- composition_4l ------------------------------------------------------------------

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


# ---- ov_top_entries_n100 -------------------------------------------------------------

def ov_top_entries(m, layer=0, head=0, n=100, block=OV_BLOCK, buf=None, plain=False):
    """(values, rows, cols) of the n largest entries of E W_V W_O W_U, by decreasing value.
    Each block of rows is one torch.mm into `buf`; only its rows that can hold one of the
    n largest entries go to torch.topk: rows whose max beats the n-th best so far, at most
    the n rows of largest max (a row holding one of a block's n largest entries has a max
    at least the n-th). plain=True: torch.topk of every whole flattened block instead."""
    L = ln_pre(m["W_E"]) @ m["W_V"][layer, head]   # [V, d_head]
    R = m["W_O"][layer, head] @ m["W_U"]           # [d_head, V]
    V, C = L.shape[0], R.shape[1]
    if buf is None or buf.shape[0] < block or buf.shape[1] != C:
        buf = torch.empty(block, C)
    best_v, best_i = torch.empty(0), torch.empty(0, dtype=torch.long)
    for r0 in range(0, V, block):
        r1 = min(V, r0 + block)
        out = buf[: r1 - r0]
        torch.mm(L[r0:r1], R, out=out)
        if plain:
            v, i = torch.topk(out.reshape(-1), min(n, out.numel()))
            flat = i + r0 * C
        else:
            row_max = out.amax(1)
            rm, rows = torch.topk(row_max, min(n, r1 - r0))
            if best_v.numel() >= n:
                rows = rows[rm > best_v[-1]]
                if rows.numel() == 0:
                    continue
            sub = out[rows]                         # [rows, C]
            v, i = torch.topk(sub.reshape(-1), min(n, sub.numel()))
            flat = (rows[i // C] + r0) * C + i % C  # flat index into the whole [V, C] matrix
        best_v, j = torch.topk(torch.cat([best_v, v]), min(n, best_v.numel() + v.numel()))
        best_i = torch.cat([best_i, flat])[j]
    return best_v, best_i // C, best_i % C


# ---- timing --------------------------------------------------------------------------

def time_it(name, fn, min_reps=3, min_seconds=2.0, max_seconds=10.0):
    """Mean and min wall time of fn() after a warm-up call: at least min_reps calls and
    min_seconds, or one call when the warm-up took over max_seconds / 2."""
    t0 = time.perf_counter()
    fn()  # warm-up
    warm = time.perf_counter() - t0
    total, best, reps = 0.0, float("inf"), 0
    while reps < 1 or (total < max_seconds * 1e3 and warm < max_seconds / 2
                       and (reps < min_reps or total < min_seconds * 1e3)):
        t0 = time.perf_counter()
        fn()
        ms = (time.perf_counter() - t0) * 1e3
        total += ms
        best = min(best, ms)
        reps += 1
    return {"ms": total / reps, "min_ms": best, "reps": reps}


def main(argv):
    args, threads_opt, filt = list(argv), None, None
    if "--threads" in args:
        i = args.index("--threads")
        threads_opt = int(args[i + 1])
        del args[i:i + 2]
    if args:
        filt = re.compile(args[0])
    torch.set_grad_enabled(False)
    default_threads = torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    m = random_model()
    m.update({f"{n}64": m[n].double() for n in ("W_Q", "W_K", "W_V", "W_O")})
    tokens = token_sequence(1024)
    sources = token_sequence(64, seed=8).tolist()
    turn = [0]

    def next_source():
        turn[0] += 1
        return sources[turn[0] % len(sources)]

    g = torch.Generator().manual_seed(99)
    m4 = {n: torch.randn(4, N_HEADS, *shape, generator=g) * 0.05
          for n, shape in (("W_Q", (D_MODEL, D_HEAD)), ("W_K", (D_MODEL, D_HEAD)), ("W_V", (D_MODEL, D_HEAD)),
                           ("W_O", (D_HEAD, D_MODEL)))}
    grams = embed_grams(m)
    X = torch.randn(GEMM_ROWS, D_MODEL, generator=g)
    state = {}

    def gemm():
        if "gemm_out" not in state:
            state["gemm_out"] = torch.empty(GEMM_ROWS, D_VOCAB)
        torch.mm(X, m["W_U"], out=state["gemm_out"])

    def top_entries():
        if "ov_buf" not in state:
            state["ov_buf"] = torch.empty(OV_BLOCK, D_VOCAB)
        ov_top_entries(m, buf=state["ov_buf"])

    fns = {
        "forward_1024": lambda: forward(m, tokens),
        "bigram_top_next_k10": lambda: bigram_top_next(m, next_source()),
        "copying_scores_16_heads": lambda: copying_scores(m),
        "copying_eigen_16_heads": lambda: copying_eigen(m, grams),
        "composition_4l": lambda: composition_scores(m4),
        "ov_top_entries_n100": top_entries,
        "gemm_2048x512x48262": gemm,
    }
    out = []
    for name, native, all_cores in ROWS:
        if filt and not (filt.search(name) or filt.search(native)):
            continue
        threads = threads_opt or default_threads
        torch.set_num_threads(threads)
        r = time_it(name, fns[name])
        state.clear()
        row = {"name": name, "native": native, **r, "threads": threads, "native_threads": cores if all_cores else 1}
        print(f"{name:26s} {r['ms']:10.2f} ms (min {r['min_ms']:.2f}, {r['reps']} reps, {threads} threads;"
              f" compare with native {native})", file=sys.stderr)
        out.append(row)
    torch.set_num_threads(default_threads)
    print(f"torch {torch.__version__}, default threads {default_threads}, {cores} cores", file=sys.stderr)
    print(json.dumps({"benchmarks": out, "torch": torch.__version__, "default_threads": default_threads,
                      "cores": cores}))


if __name__ == "__main__":
    main(sys.argv[1:])
