//! Shared helpers for the model tests: run prompts, greedy decoding, oracle loading.
#![allow(dead_code)]

use ferrite_gguf::GgmlType;
use ferrite_models::{Batch, Context, ContextParams, GeluImpl, Model};
use std::path::{Path, PathBuf};

pub fn hf_tiny(model: &str) -> PathBuf {
    ferrite_testdata::refdata_dir().join("hf-tiny").join(model)
}

pub fn json(path: impl AsRef<Path>) -> serde_json::Value {
    let p = path.as_ref();
    let s = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&s).unwrap()
}

pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("id array")
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// A one-sequence context computing GELU as llama.cpp does.
pub fn ctx(model: &Model, n_ctx: usize, kv_type: GgmlType, n_threads: usize) -> Context<'_> {
    ctx_gelu(model, n_ctx, kv_type, n_threads, GeluImpl::Ggml)
}

pub fn ctx_gelu(
    model: &Model,
    n_ctx: usize,
    kv_type: GgmlType,
    n_threads: usize,
    gelu: GeluImpl,
) -> Context<'_> {
    Context::new(
        model,
        ContextParams {
            n_ctx,
            n_seq: 1,
            n_batch: 512,
            n_threads,
            kv_type,
            gelu,
        },
    )
    .unwrap()
}

/// Feed `tokens` at positions `pos0..` of sequence 0; logits of every position when `all`,
/// else of the last one.
pub fn run(ctx: &mut Context<'_>, tokens: &[u32], pos0: u32, all: bool) -> Vec<f32> {
    let n = tokens.len();
    let pos: Vec<u32> = (pos0..pos0 + n as u32).collect();
    let seq = vec![0u32; n];
    let want: Vec<bool> = (0..n).map(|i| all || i == n - 1).collect();
    ctx.decode(&Batch {
        tokens,
        pos: &pos,
        seq_id: &seq,
        want_logits: &want,
    })
    .unwrap()
    .to_vec()
}

pub fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

/// Greedy decoding of `n` tokens after `prompt` (one prompt batch, then one token per step);
/// returns the tokens and the last-position logits of every step.
pub fn greedy(ctx: &mut Context<'_>, prompt: &[u32], n: usize) -> (Vec<u32>, Vec<Vec<f32>>) {
    ctx.kv_cache_mut().clear();
    let mut logits = run(ctx, prompt, 0, false);
    let mut out = vec![];
    let mut steps = vec![];
    for pos in prompt.len() as u32..(prompt.len() + n) as u32 {
        let t = argmax(&logits) as u32;
        out.push(t);
        steps.push(logits.clone());
        logits = run(ctx, &[t], pos, false);
    }
    (out, steps)
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// log-softmax value of `id`.
pub fn logprob(logits: &[f32], id: usize) -> f64 {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let z: f64 = logits.iter().map(|&v| (v as f64 - m).exp()).sum();
    logits[id] as f64 - m - z.ln()
}
