//! Convert with ferrite, run with ferrite: for all 12 hf-tiny checkpoints, the GGUF our
//! converter writes gives transformers' last-position logits within 1e-4 (len1, len7, len40)
//! and the same 20-token greedy generation. Oracle: hf-tiny/<model>/expected/ (transformers
//! f32, eager attention). This covers the three models whose llama.cpp conversion loses a
//! setting (mistral's sliding window, gemma2/3's query_pre_attn_scalar and layer pattern):
//! our converter writes those keys and the engine reads them.

#[path = "../../models/tests/common/mod.rs"]
mod common;

use common::*;
use ferrite_convert::{convert, ConvertOptions, OutType};
use ferrite_gguf::GgmlType;
use ferrite_models::{GeluImpl, Model};
use ferrite_testdata::read_npy_f32;

/// transformers' f32 vs f64 logits differ by ≤ 1e-5 (meta.json); 1e-4 leaves room for
/// summation order only.
const TOL: f32 = 1e-4;

fn convert_and_check(name: &str) {
    let dir = hf_tiny(name);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join(format!("{name}.gguf"));
    convert(&ConvertOptions {
        input_dir: dir.clone(),
        output: Some(out.clone()),
        outtype: OutType::F32,
        threads: 2,
        progress: false,
    })
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    let model = Model::open(&out).unwrap_or_else(|e| panic!("{name}: {e}"));
    let meta = json(dir.join("expected/meta.json"));
    for len in ["len1", "len7", "len40"] {
        let prompt = ids(&meta["sequences"][len]);
        let mut ctx = ctx_gelu(&model, 64, GgmlType::F32, 2, GeluImpl::Exact);
        let got = run(&mut ctx, &prompt, 0, false);
        let (_, want) = read_npy_f32(dir.join(format!("expected/logits_{len}_last.npy")));
        let d = max_abs_diff(&got, &want);
        assert!(d < TOL, "{name} {len}: max abs diff {d} ≥ {TOL}");
    }
    let gen = json(dir.join("expected/generate.json"));
    let prompt = ids(&gen["prompt_ids"]);
    let want = ids(&gen["generate_ids"]);
    let mut ctx = ctx_gelu(&model, 64, GgmlType::F32, 2, GeluImpl::Exact);
    let (got, _) = greedy(&mut ctx, &prompt, want.len());
    assert_eq!(
        got, want,
        "{name}: greedy generation differs from transformers"
    );
}

macro_rules! cases {
    ($($f:ident => $name:literal),* $(,)?) => {$(
        #[test]
        fn $f() {
            convert_and_check($name);
        }
    )*};
}

cases! {
    llama_f32 => "llama-f32",
    llama_bf16 => "llama-bf16",
    llama_tied => "llama-tied",
    llama_rope_llama3 => "llama-rope-llama3",
    mistral => "mistral",
    mixtral => "mixtral",
    qwen2 => "qwen2",
    qwen3 => "qwen3",
    qwen3_moe => "qwen3-moe",
    gemma2 => "gemma2",
    gemma3 => "gemma3",
    phi3 => "phi3",
}
