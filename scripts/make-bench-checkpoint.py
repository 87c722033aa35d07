#!/usr/bin/env python3
"""Assemble a random-weight LlamaForCausalLM checkpoint for conversion benchmarks.

    scripts/make-bench-checkpoint.py OUT_DIR [--layers 16] [--hidden 2048] [--ffn 5632]
                                             [--heads 32] [--kv-heads 8] [--shards 2] [--seed 0]

The defaults give ~0.73 B parameters (~1.46 GB of BF16) in 2 shards with
model.safetensors.index.json, as `transformers` saves a sharded checkpoint. The tokenizer
(SentencePiece "spm-llama", vocab 2000) is copied from refdata/hf-tiny/llama-bf16, so
config.json's vocab_size is 2000. The weights are N(0, 0.02) rounded to BF16 (norms
1 + N(0, 0.02)); they mean nothing, they only have to be converted.

Needs only numpy: the safetensors files are written directly (8-byte little-endian header length,
JSON header, raw little-endian data), because numpy has no bfloat16 for the `safetensors`
package's numpy API. When the `safetensors` package is installed, the result is re-read with
it as a check. Not part of the default test run; used by scripts/compare-convert.
"""
import argparse
import json
import os
import shutil
import struct
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZER_SRC = os.path.join(REPO, "..", "shared", "refdata", "hf-tiny", "llama-bf16")
TOKENIZER_FILES = ["tokenizer.json", "tokenizer.model", "tokenizer_config.json",
                   "special_tokens_map.json", "generation_config.json"]
VOCAB = 2000


def bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 → bfloat16 bit patterns, round to nearest even (as torch does)."""
    b = x.astype(np.float32).view(np.uint32)
    b = b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))
    return (b >> np.uint32(16)).astype("<u2")


def random_bf16(rng, shape, norm=False, chunk=1 << 24):
    n = int(np.prod(shape))
    out = np.empty(n, dtype="<u2")
    for i in range(0, n, chunk):
        m = min(chunk, n - i)
        x = rng.standard_normal(m, dtype=np.float32) * np.float32(0.02)
        if norm:
            x += np.float32(1.0)
        out[i:i + m] = bf16_bits(x)
    return out


def tensor_specs(a):
    hd = a.hidden // a.heads
    kv = hd * a.kv_heads
    layers = []
    for i in range(a.layers):
        p = f"model.layers.{i}."
        layers.append([
            (p + "input_layernorm.weight", [a.hidden], True),
            (p + "mlp.down_proj.weight", [a.hidden, a.ffn], False),
            (p + "mlp.gate_proj.weight", [a.ffn, a.hidden], False),
            (p + "mlp.up_proj.weight", [a.ffn, a.hidden], False),
            (p + "post_attention_layernorm.weight", [a.hidden], True),
            (p + "self_attn.k_proj.weight", [kv, a.hidden], False),
            (p + "self_attn.o_proj.weight", [a.hidden, a.hidden], False),
            (p + "self_attn.q_proj.weight", [a.hidden, a.hidden], False),
            (p + "self_attn.v_proj.weight", [kv, a.hidden], False),
        ])
    first = [("model.embed_tokens.weight", [VOCAB, a.hidden], False)]
    last = [("lm_head.weight", [VOCAB, a.hidden], False), ("model.norm.weight", [a.hidden], True)]
    # Split the layers over the shards; embeddings go to the first, head and final norm to the last.
    per = -(-a.layers // a.shards)
    shards = []
    for s in range(a.shards):
        specs = [t for layer in layers[s * per:(s + 1) * per] for t in layer]
        if s == 0:
            specs = first + specs
        if s == a.shards - 1:
            specs = specs + last
        shards.append(sorted(specs))  # safetensors writes tensors sorted by name
    return shards


def write_shard(path, specs, rng):
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, _ in specs:
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # data starts 8-aligned, as safetensors pads it
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, shape, norm in specs:
            f.write(random_bf16(rng, shape, norm).tobytes())
    return off


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--ffn", type=int, default=5632)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.shards < 1 or a.shards > a.layers:
        sys.exit("--shards must be in 1..layers")

    os.makedirs(a.out, exist_ok=True)
    for f in TOKENIZER_FILES:
        shutil.copyfile(os.path.join(TOKENIZER_SRC, f), os.path.join(a.out, f))
    config = {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "head_dim": a.hidden // a.heads,
        "hidden_act": "silu",
        "hidden_size": a.hidden,
        "initializer_range": 0.02,
        "intermediate_size": a.ffn,
        "max_position_embeddings": 4096,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": a.heads,
        "num_hidden_layers": a.layers,
        "num_key_value_heads": a.kv_heads,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.57.6",
        "use_cache": True,
        "vocab_size": VOCAB,
    }
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)

    rng = np.random.default_rng(a.seed)
    shards = tensor_specs(a)
    weight_map, total, n_params = {}, 0, 0
    for s, specs in enumerate(shards):
        name = f"model-{s + 1:05d}-of-{len(shards):05d}.safetensors"
        total += write_shard(os.path.join(a.out, name), specs, rng)
        for t, shape, _ in specs:
            weight_map[t] = name
            n_params += int(np.prod(shape))
        print(f"wrote {name}", file=sys.stderr)
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)

    try:
        from safetensors import safe_open
    except ImportError:
        pass
    else:
        for name in sorted(set(weight_map.values())):
            with safe_open(os.path.join(a.out, name), framework="numpy") as f:
                assert all(weight_map[k] == name for k in f.keys())  # header parses, names agree
    print(f"{a.out}: {n_params / 1e9:.3f} B parameters, {total / 2**30:.2f} GiB BF16 in {len(shards)} shards")


if __name__ == "__main__":
    main()
