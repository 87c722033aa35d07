//! Phi-3 LongRoPE end to end: the tiny random Phi-3 of refdata/hf-tiny/phi3 with a `longrope`
//! rope_scaling (original context 64, max 256), converted by ferrite and run by ferrite, gives
//! transformers' last-position logits within 1e-4. Oracle: tests/fixtures/phi3-longrope (made by
//! scripts/make-longrope-fixture.py with transformers 4.57, f32, eager attention): a 40-token
//! input, where transformers uses the short factors, run in a 64-cell context (llama.cpp's rule:
//! short factors while the context fits the original one), and a 100-token input (long factors
//! in both) in a 128-cell context.

#[path = "../../models/tests/common/mod.rs"]
mod common;

use std::path::Path;

use common::*;
use ferrite_convert::{convert, ConvertOptions, OutType};
use ferrite_gguf::{GgmlType, GgufFile};
use ferrite_models::{GeluImpl, Model};
use ferrite_testdata::read_npy_f32;

const TOL: f32 = 1e-4;

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/phi3-longrope")
}

#[test]
fn phi3_longrope_matches_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("phi3-longrope");
    std::fs::create_dir(&dir).unwrap();
    for e in std::fs::read_dir(hf_tiny("phi3")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_owned();
        if p.is_file() && name != "config.json" && !name.ends_with(".gguf") {
            std::fs::copy(&p, dir.join(&name)).unwrap();
        }
    }
    std::fs::copy(fixture().join("config.json"), dir.join("config.json")).unwrap();
    let out = tmp.path().join("phi3-longrope.gguf");
    convert(&ConvertOptions {
        input_dir: dir,
        output: Some(out.clone()),
        outtype: OutType::F32,
        threads: 2,
        progress: false,
    })
    .unwrap();

    // The converter's facts, as llama.cpp's Phi3MiniModel writes them.
    let f = GgufFile::open(&out).unwrap();
    let attn: f32 = f.get("phi3.rope.scaling.attn_factor").unwrap();
    let want = (1.0 + 4f64.ln() / 64f64.ln()).sqrt() as f32;
    assert!((attn - want).abs() < 1e-6, "attn_factor {attn} vs {want}");
    assert_eq!(
        f.get::<u32>("phi3.rope.scaling.original_context_length")
            .unwrap(),
        64
    );
    for t in ["rope_factors_long.weight", "rope_factors_short.weight"] {
        assert_eq!(f.tensor_info(t).expect(t).n_elements(), 6, "{t}");
    }

    let model = Model::open(&out).unwrap();
    let meta = json(fixture().join("meta.json"));
    for (len, n_ctx) in [("len40", 64), ("len100", 128)] {
        let prompt = ids(&meta["sequences"][len]);
        let mut ctx = ctx_gelu(&model, n_ctx, GgmlType::F32, 2, GeluImpl::Exact);
        let got = run(&mut ctx, &prompt, 0, false);
        let (_, want) = read_npy_f32(fixture().join(format!("logits_{len}_last.npy")));
        let d = max_abs_diff(&got, &want);
        assert!(d < TOL, "{len} (n_ctx {n_ctx}): max abs diff {d} ≥ {TOL}");
    }
}
