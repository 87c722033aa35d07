#!/usr/bin/env python3
"""Oracle for Phi-3 LongRoPE (crates/convert/tests/phi3_longrope.rs), made with transformers.

Takes the tiny random Phi-3 checkpoint of refdata/hf-tiny/phi3 (its weights unchanged), gives it
a `longrope` rope_scaling (original context 64, max 256: factor 4, attention factor
sqrt(1 + ln 4 / ln 64)), and saves transformers' last-position logits (f32, eager attention) for
a 40-token input (positions < 64: transformers uses the short factors) and a 100-token input
(positions beyond 64: the long factors). Needs torch + transformers (4.57 was used):

    python scripts/make-longrope-fixture.py ../shared/refdata/hf-tiny/phi3 crates/convert/tests/fixtures/phi3-longrope
"""
import json, shutil, sys, tempfile
from pathlib import Path

import numpy as np
import torch
import transformers

src, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
cfg = json.loads((src / "config.json").read_text())
n_rot_half = int(cfg["head_dim"] * cfg["partial_rotary_factor"]) // 2
rng = np.random.default_rng(7)
cfg.update(
    max_position_embeddings=256,
    original_max_position_embeddings=64,
    rope_scaling={
        "type": "longrope",
        "long_factor": [round(float(x), 4) for x in rng.uniform(1.0, 8.0, n_rot_half)],
        "short_factor": [round(float(x), 4) for x in rng.uniform(1.0, 1.5, n_rot_half)],
    },
)
(out / "config.json").write_text(json.dumps(cfg, indent=1) + "\n")

with tempfile.TemporaryDirectory() as tmp:
    for f in src.iterdir():
        if f.is_file() and f.name != "config.json" and not f.name.endswith(".gguf"):
            shutil.copy(f, tmp)
    shutil.copy(out / "config.json", tmp)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        tmp, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    seqs = {}
    for name, n in (("len40", 40), ("len100", 100)):
        ids = [int(x) for x in rng.integers(0, cfg["vocab_size"] - 5, n)]
        seqs[name] = ids
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, -1].float().numpy()
        np.save(out / f"logits_{name}_last.npy", logits.astype(np.float32))
(out / "meta.json").write_text(json.dumps({
    "made_by": "scripts/make-longrope-fixture.py",
    "transformers": transformers.__version__, "torch": torch.__version__,
    "weights": "refdata/hf-tiny/phi3/model.safetensors (unchanged)",
    "sequences": seqs}, indent=1) + "\n")
print("wrote", out)
