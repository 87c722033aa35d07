//! Every preset on the tiny f32/bf16 GGUFs converted by llama.cpp's convert_hf_to_gguf.py
//! (refdata/hf-tiny), run through the engine.
//! Oracles: the engine's logits on the unquantized file; for Q8_0 the logits must stay within
//! 0.05 · max|logit| (max abs difference) of the source model's, and the argmax must agree
//! where the source's top-2 gap is clear; F32 of an f32 source within 1e-5 · max|logit|.

use std::path::PathBuf;

use ferrite_models::{Batch, Context, ContextParams, Model};
use ferrite_quantize::{quantize_file, FileType, Params};
use ferrite_testdata::refdata_dir;

const MODELS: &[&str] = &[
    "llama-f32/llama-f32-f32.gguf",
    "llama-bf16/llama-bf16-bf16.gguf",
    "llama-tied/llama-tied-f32.gguf",
    "qwen2/qwen2-f32.gguf",
    "qwen3/qwen3-f32.gguf",
    "gemma3/gemma3-f32.gguf",
    "mixtral/mixtral-f32.gguf",
];

fn logits(path: &PathBuf) -> Vec<f32> {
    let model = Model::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut ctx = Context::new(
        &model,
        ContextParams {
            n_ctx: 64,
            n_seq: 1,
            n_batch: 16,
            n_threads: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let tokens: Vec<u32> = (0..12)
        .map(|i| 1 + (i * 37) % (model.n_vocab as u32 - 1))
        .collect();
    let pos: Vec<u32> = (0..tokens.len() as u32).collect();
    let seq = vec![0u32; tokens.len()];
    let want = vec![true; tokens.len()];
    ctx.decode(&Batch {
        tokens: &tokens,
        pos: &pos,
        seq_id: &seq,
        want_logits: &want,
    })
    .unwrap()
    .to_vec()
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0
}

#[test]
fn every_preset_runs_and_q8_0_tracks_f32() {
    let dir = tempfile::tempdir().unwrap();
    for m in MODELS {
        let src = refdata_dir().join("hf-tiny").join(m);
        let base = logits(&src);
        let n_vocab = Model::open(&src).unwrap().n_vocab;
        for ft in FileType::ALL {
            let out = dir.path().join(format!("{}.gguf", ft.name()));
            let mut p = Params::new(ft);
            p.n_threads = 2;
            quantize_file(&src, &out, &p, |_| {}).unwrap_or_else(|e| panic!("{m} {ft}: {e}"));
            let f = ferrite_gguf::GgufFile::open(&out).unwrap();
            assert_eq!(
                f.get::<u32>("general.file_type").unwrap(),
                ft.id(),
                "{m} {ft}"
            );
            let l = logits(&out);
            assert_eq!(l.len(), base.len());
            assert!(
                l.iter().all(|x| x.is_finite()),
                "{m} {ft}: non-finite logits"
            );
            if matches!(
                ft,
                FileType::Q8_0 | FileType::F32 | FileType::F16 | FileType::BF16
            ) {
                let scale = base.iter().fold(0f32, |a, x| a.max(x.abs()));
                let diff = base
                    .iter()
                    .zip(&l)
                    .fold(0f32, |a, (x, y)| a.max((x - y).abs()));
                // F32 from an f32 file is the same model; from a bf16 file the engine's bf16
                // matmul (activations rounded to bf16) is the approximate side.
                let tol = if ft == FileType::F32 && !m.contains("bf16") {
                    1e-5
                } else {
                    0.05
                };
                eprintln!("{m} {ft}: max |Δlogit| = {diff:.5} (max |logit| {scale:.3})");
                assert!(
                    diff <= tol * scale,
                    "{m} {ft}: max |Δlogit| {diff} > {tol}·{scale}"
                );
                for (row, (a, b)) in base.chunks(n_vocab).zip(l.chunks(n_vocab)).enumerate() {
                    let (ia, ib) = (argmax(a), argmax(b));
                    // a near-tie may flip: only require agreement where the f32 top-2 gap is clear
                    let mut s = a.to_vec();
                    s.sort_by(|x, y| y.total_cmp(x));
                    if s[0] - s[1] > 2.0 * diff {
                        assert_eq!(ia, ib, "{m} {ft}: argmax differs at row {row}");
                    }
                }
            }
        }
    }
}
