#!/usr/bin/python3
"""Writes the fuzz targets' seed corpora, tests/fuzz/corpus/<target>/ (run once
and committed; tests/fuzz/README.md). Small real files of each kind: models
written by the native CLI (`circuitscope make-random`, `encode`), the bundled
models' config.json and tokenizer.json, the PyTorch test fixtures, and tiny
PyTorch checkpoints saved by torch itself when python3 can import torch (the
pth and pickle seeds are kept as they are otherwise).

Usage: tests/fuzz/make-seeds.py CIRCUITSCOPE_BINARY
A target reading several files takes them joined by SEP (fuzz_input.h).
"""
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SEP = b"\n--next-file--\n"
CLI = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "circuitscope")


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read(*path):
    with open(os.path.join(*path), "rb") as f:
        return f.read()


def wordlevel(n):
    vocab = {f"t{i}": i for i in range(n)}
    return json.dumps({"version": "1.0", "added_tokens": [],
                       "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "t0"},
                       "pre_tokenizer": {"type": "Whitespace"}}).encode()


def byte_bpe():
    # A byte-level BPE of the 256 byte symbols, three merges and an end-of-text token.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    vocab = {chr(c): i for i, c in enumerate(cs)}
    merges = ["t h", "th e", "\u0120 t"]
    for m in merges:
        vocab[m.replace(" ", "")] = len(vocab)
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return json.dumps({"version": "1.0",
                       "added_tokens": [{"id": len(vocab), "content": "<|endoftext|>", "special": True}],
                       "normalizer": None, "pre_tokenizer": bl, "post_processor": bl, "decoder": bl,
                       "model": {"type": "BPE", "vocab": vocab, "merges": merges}}).encode()


TEXT = "the cat sat on the mat. The cat sat on the mat!  12345 \u00e9\u3042\U0001F600\n\tend".encode()

MODELS = {  # name: make-random arguments
    "ln-2l": ["--layers", "2", "--d-model", "8", "--heads", "2", "--d-head", "4", "--ctx", "16", "--vocab", "24"],
    "lnpre-1l-f16": ["--layers", "1", "--d-model", "6", "--heads", "3", "--d-head", "2", "--ctx", "8", "--vocab", "12",
                     "--norm", "LNPre", "--pos", "shortformer", "--f16"],
    "none-0l": ["--layers", "0", "--d-model", "4", "--ctx", "4", "--vocab", "10", "--norm", "none"],
    "nopos-1l": ["--layers", "1", "--d-model", "4", "--heads", "1", "--d-head", "4", "--ctx", "6", "--vocab", "8",
                 "--pos", "none"],
}


def main():
    tmp = tempfile.mkdtemp()
    try:
        for name, args in MODELS.items():
            d = os.path.join(tmp, name)
            subprocess.run([CLI, "make-random", d, *args], check=True, stdout=subprocess.DEVNULL)
            cfg, st = read(d, "config.json"), read(d, "model.safetensors")
            vocab = json.loads(cfg)["d_vocab"]
            put("safetensors", name + ".safetensors", st)
            put("config", name + ".json", cfg)
            put("model_folder", name, cfg + SEP + st + SEP + wordlevel(vocab))
        put("model_folder", "ln-2l-no-tokenizer",
            read(tmp, "ln-2l", "config.json") + SEP + read(tmp, "ln-2l", "model.safetensors"))
        for m in ("attn-only-0l", "attn-only-1l", "attn-only-2l", "attn-only-2l-before", "demo"):
            put("config", m + ".json", read(ROOT, "assets", "models", m, "config.json"))
        put("config", "pth-tiny-2l.json", read(ROOT, "tests", "fixtures", "pth", "tiny-2l", "config.json"))

        bundled_tok = read(ROOT, "assets", "models", "attn-only-2l", "tokenizer.json")
        put("tokenizer", "bundled-bpe-2048", bundled_tok + SEP + TEXT)
        put("tokenizer", "demo", read(ROOT, "assets", "models", "demo", "tokenizer.json") + SEP + TEXT)
        put("tokenizer", "wordlevel", wordlevel(24) + SEP + b"t1 t2 t3 nosuch t23")
        put("tokenizer", "byte-bpe", byte_bpe() + SEP + TEXT + b"<|endoftext|>the")

        # Token files: `circuitscope encode` of a text with the bundled tokenizer.
        text_path = os.path.join(tmp, "text.txt")
        with open(text_path, "wb") as f:
            f.write(TEXT * 3)
        tok_path = os.path.join(tmp, "tokenizer.json")
        with open(tok_path, "wb") as f:
            f.write(bundled_tok)
        out = os.path.join(tmp, "text.u16")
        subprocess.run([CLI, "encode", text_path, "--tokenizer", tok_path, "--out", out], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        put("token_file", "encoded-u16", read(out + ".json") + SEP + read(out))
        put("token_file", "u32", json.dumps({"dtype": "uint32", "n_tokens": 3, "vocab_size": 70000,
                                             "bos_id": 1, "byte_order": "little"}).encode()
            + SEP + bytes([1, 0, 0, 0, 0x60, 0x11, 1, 0, 5, 0, 0, 0]))

        # Links (fuzz_link shows a 2-layer model with the bundled id "fuzz").
        for i, q in enumerate([
                "model=fuzz", "model=fuzz&view=head&head.layer=1&head.head=1",
                "view=prompt&prompt.text=t1%20t2%20t3%20t1%20t2&prompt.ablate=%5B%221.0%22%5D",
                "view=%3Cscript%3E&nosuch.x=1&head.nosuch=2&head.layer=one&head.k=5&prompt.text=",
                "model=file:model.safetensors&view=virtual", "view=composition", "view=induction",
                "view=terms", "view=skip_trigrams&skip_trigrams.layer=0", "view=heads",
                "view=bigram&bigram.token=3&bigram.k=5", "head.layer=1e400&head.head=-1&view=head&view=prompt",
                "%ZZ&&==&model&view=&head.=1&.layer=2"]):
            put("link", f"query-{i:02d}", q.encode())

        # PyTorch checkpoints: the hostile fixtures as they are; tiny real ones from torch.
        hostile = os.path.join(ROOT, "tests", "fixtures", "pth", "hostile")
        for f in sorted(os.listdir(hostile)):
            if f.endswith(".pth") and os.path.getsize(os.path.join(hostile, f)) < 4096:
                put("pth", "hostile-" + f, read(hostile, f))
        try:
            import torch
        except ImportError:
            print("make-seeds: no torch: pth and pickle seeds left as they are", file=sys.stderr)
            return
        torch.manual_seed(0)
        sd = {"embed.W_E": torch.randn(10, 4), "blocks.0.attn.W_Q": torch.randn(1, 4, 2),
              "blocks.0.attn.IGNORE": torch.tensor(-1e5), "blocks.0.attn.mask": torch.ones(6, 6).bool().tril()}
        variants = {
            "f32": sd,
            "f16": {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()},
            "bf16": {k: (v.bfloat16() if v.is_floating_point() else v) for k, v in sd.items()},
            "view": {"a": torch.randn(6, 4)[1:3], "b": torch.randn(4, 6).t()},
        }
        for name, d in variants.items():
            buf = io.BytesIO()
            torch.save(d, buf)
            data = buf.getvalue()
            put("pth", name + ".pth", data)
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                pkl = next(n for n in z.namelist() if n.endswith("data.pkl"))
                put("pickle", name + ".pkl", z.read(pkl))
        buf = io.BytesIO()
        torch.save(variants["f32"], buf, _use_new_zipfile_serialization=False)
        put("pth", "legacy-f32.pth", buf.getvalue())
        put("pickle", "legacy-f32", buf.getvalue())  # the header, the state dict, the keys, the storages
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
