#!/usr/bin/env python3
"""Independent NumPy reference for the Mini-GPT: logits of a fixed input.

Reads models/mini-gpt/{config.json,model.safetensors} by hand (8-byte header length, JSON
header, raw little-endian f32) and runs the forward pass from the definition: token
embedding + sinusoidal positions, pre-LayerNorm blocks with causal multi-head attention and
a GELU (tanh) MLP, final LayerNorm, LM head tied to the token embedding. Writes
tests/reference/mini_gpt_logits.json, which the Rust test compares against.

Run from the repository root: python3 tests/reference/mini_gpt_reference.py
"""
import json
import struct

import numpy as np

CHARS = " abcdefghijklmnopqrstuvwxyz0123456789.,!?'-:;\"()/&*"
BOS, SEP, SPECIALS = 1, 2, 5
TEXT = "the quick brown fox jumps over the lazy dog"


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", name
        start, end = info["data_offsets"]
        out[name] = np.frombuffer(data[base + start : base + end], dtype="<f4").reshape(info["shape"]).astype(np.float64)
    return out


def layer_norm(x, g, b):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * g + b


def gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def positions(ctx, d):
    pos = np.arange(ctx)[:, None]
    i = np.arange(d)[None, :]
    angle = pos / 10000 ** ((2 * (i // 2)) / d)
    return np.where(i % 2 == 0, np.sin(angle), np.cos(angle))


def forward(w, cfg, tokens):
    d, nh = cfg["d_model"], cfg["n_head"]
    hd, t = d // nh, len(tokens)
    x = w["tok_emb"][tokens] + positions(cfg["context"], d)[:t]
    mask = np.triu(np.full((t, t), -np.inf), 1)
    for i in range(cfg["n_layer"]):
        p = lambda s: w[f"blocks.{i}.{s}"]
        h = layer_norm(x, p("ln1.weight"), p("ln1.bias"))
        qkv = h @ p("attn.qkv.weight") + p("attn.qkv.bias")
        q, k, v = qkv[:, :d], qkv[:, d : 2 * d], qkv[:, 2 * d :]
        heads = []
        for j in range(nh):
            sl = slice(j * hd, (j + 1) * hd)
            s = q[:, sl] @ k[:, sl].T / np.sqrt(hd) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            heads.append(s @ v[:, sl])
        x = x + np.concatenate(heads, -1) @ p("attn.out.weight") + p("attn.out.bias")
        h = layer_norm(x, p("ln2.weight"), p("ln2.bias"))
        x = x + gelu(h @ p("mlp.fc.weight") + p("mlp.fc.bias")) @ p("mlp.proj.weight") + p("mlp.proj.bias")
    x = layer_norm(x, w["ln_f.weight"], w["ln_f.bias"])
    return x @ w["tok_emb"].T


def main():
    cfg = json.load(open("models/mini-gpt/config.json"))
    w = load("models/mini-gpt/model.safetensors")
    tokens = [BOS] + [CHARS.index(c) + SPECIALS for c in TEXT] + [SEP]
    logits = forward(w, cfg, tokens)
    out = {
        "text": TEXT,
        "tokens": tokens,
        "logits": [[round(float(v), 8) for v in row] for row in logits],
        "numpy": np.__version__,
    }
    with open("tests/reference/mini_gpt_logits.json", "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote logits of {len(tokens)} positions")


if __name__ == "__main__":
    main()
