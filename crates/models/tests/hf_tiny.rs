//! The llama.cpp-converted GGUFs of the hf-tiny models (refdata/hf-tiny, see its README) against
//! transformers' float32 logits and greedy generations, or against llama.cpp's own logits where
//! the GGUF lacks a setting transformers uses.

mod common;
use common::*;
use ferrite_gguf::{keys, GgmlType, GgufFile, GgufWriter, Value};
use ferrite_models::{GeluImpl, Model};
use ferrite_testdata::read_npy_f32;

/// f32 GGUFs: transformers' f32 logits differ from f64 by ≤ 1e-5 (meta.json), llama.cpp's from
/// transformers' by ≤ 1.1e-5; 1e-4 absolute leaves room for summation order only.
const F32_TOL: f32 = 1e-4;

struct Case {
    model: &'static str,
    gguf: String,
    tol: f32,
    check_generation: bool,
}

fn f32_case(model: &'static str) -> Case {
    Case {
        model,
        gguf: format!("{model}-f32.gguf"),
        tol: F32_TOL,
        check_generation: true,
    }
}

/// Oracle: expected/logits_{len1,len7,len40}_last.npy (transformers, f32, eager attention) and
/// expected/generate.json (20 greedy tokens from len7). F32 KV cache, as llama.cpp's crosscheck,
/// and the exact tanh GELU, as transformers.
fn check_against_transformers(c: &Case) -> f32 {
    let dir = hf_tiny(c.model);
    let model = Model::open(dir.join(&c.gguf)).unwrap_or_else(|e| panic!("{}: {e}", c.gguf));
    let meta = json(dir.join("expected/meta.json"));
    let mut worst = 0f32;
    for (nth, len) in [(1, "len1"), (2, "len7"), (2, "len40")] {
        let prompt = ids(&meta["sequences"][len]);
        let mut ctx = ctx_gelu(&model, 64, GgmlType::F32, nth, GeluImpl::Exact);
        let got = run(&mut ctx, &prompt, 0, false);
        let (_, want) = read_npy_f32(dir.join(format!("expected/logits_{len}_last.npy")));
        let d = max_abs_diff(&got, &want);
        worst = worst.max(d);
        assert!(d < c.tol, "{} {len}: max abs diff {d} ≥ {}", c.gguf, c.tol);
    }
    if c.check_generation {
        let gen = json(dir.join("expected/generate.json"));
        let prompt = ids(&gen["prompt_ids"]);
        let want = ids(&gen["generate_ids"]);
        let mut ctx = ctx_gelu(&model, 64, GgmlType::F32, 2, GeluImpl::Exact);
        let (got, _) = greedy(&mut ctx, &prompt, want.len());
        assert_eq!(
            got, want,
            "{}: greedy generation differs from transformers",
            c.gguf
        );
    }
    eprintln!("{}: max abs logit diff vs transformers {worst:.3e}", c.gguf);
    worst
}

/// Oracle: expected/llamacpp_logits_len40.npy (libllama on the same GGUF, F32 KV cache, one
/// batch), every position. GELU as ggml computes it (f16 table).
fn check_against_llamacpp(model_name: &str, tol: f32) -> f32 {
    let dir = hf_tiny(model_name);
    let model = Model::open(dir.join(format!("{model_name}-f32.gguf"))).unwrap();
    let meta = json(dir.join("expected/meta.json"));
    let prompt = ids(&meta["sequences"]["len40"]);
    let mut ctx = ctx(&model, 64, GgmlType::F32, 2);
    let got = run(&mut ctx, &prompt, 0, true);
    let (shape, want) = read_npy_f32(dir.join("expected/llamacpp_logits_len40.npy"));
    assert_eq!(shape, vec![40, model.n_vocab]);
    let d = max_abs_diff(&got, &want);
    assert!(
        d < tol,
        "{model_name}: max abs diff vs llama.cpp {d} ≥ {tol}"
    );
    eprintln!("{model_name}-f32.gguf: max abs logit diff vs llama.cpp (40 positions) {d:.3e}");
    d
}

/// Copy a GGUF adding metadata the llama.cpp converter drops (what ferrite's converter writes).
fn patched(model_name: &str, extra: &[(String, Value)]) -> (tempfile::TempDir, std::path::PathBuf) {
    let src = GgufFile::open(hf_tiny(model_name).join(format!("{model_name}-f32.gguf"))).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("patched.gguf");
    let mut w = GgufWriter::new(&path);
    w.copy_layout_from(&src).unwrap();
    for (k, v) in extra {
        w.add_kv(k.clone(), v.clone());
    }
    let mut d = w.begin_data().unwrap();
    for t in src.tensors() {
        d.write_tensor(&t.name, src.data_of(t)).unwrap();
    }
    d.finish().unwrap();
    (tmp, path)
}

#[test]
fn llama_f32() {
    check_against_transformers(&f32_case("llama-f32"));
}

/// llama-bf16 holds bf16(llama-f32) weights; its f32 GGUF is exact.
#[test]
fn llama_bf16() {
    check_against_transformers(&f32_case("llama-bf16"));
}

/// BF16 and Q8_0 weight files: activations are rounded to the weight's vec_dot type (bf16 /
/// q8_0) as in ggml. llama.cpp's own error on these files vs transformers (crosscheck json):
/// bf16 0.06–0.08, q8_0 0.31 with argmax 38/40. Tolerances: bf16 0.15, q8_0 0.5, no
/// generation check (a quantization-size logit error can flip near-ties).
#[test]
fn llama_quantized_files() {
    for (model, gguf, tol) in [
        ("llama-f32", "llama-f32-bf16.gguf", 0.15),
        ("llama-f32", "llama-f32-q8_0.gguf", 0.5),
        ("llama-bf16", "llama-bf16-bf16.gguf", 0.15),
    ] {
        check_against_transformers(&Case {
            model,
            gguf: gguf.into(),
            tol,
            check_generation: false,
        });
    }
}

#[test]
fn llama_tied() {
    check_against_transformers(&f32_case("llama-tied"));
}

/// llama3 rope scaling: the GGUF carries it as `rope_freqs.weight`.
#[test]
fn llama_rope_llama3() {
    check_against_transformers(&f32_case("llama-rope-llama3"));
}

/// Our llama3 factor formula reproduces the converter's `rope_freqs` tensor (config: factor 8,
/// low 1, high 4, original_max_position_embeddings 64, theta 5e5, head_dim 16). Tolerance 1e-5
/// relative (f32 vs the converter's f64/f32 arithmetic).
#[test]
fn llama3_freq_factors_match_converter() {
    let f =
        GgufFile::open(hf_tiny("llama-rope-llama3").join("llama-rope-llama3-f32.gguf")).unwrap();
    let bytes = f.tensor_data("rope_freqs.weight").unwrap();
    let want: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let got = ferrite_compute::llama3_freq_factors(16, 5e5, 8.0, 1.0, 4.0, 64);
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-5 * w.abs(), "{got:?} vs {want:?}");
    }
}

#[test]
fn mixtral() {
    check_against_transformers(&f32_case("mixtral"));
}

#[test]
fn qwen2() {
    check_against_transformers(&f32_case("qwen2"));
}

#[test]
fn qwen3() {
    check_against_transformers(&f32_case("qwen3"));
}

#[test]
fn qwen3_moe() {
    check_against_transformers(&f32_case("qwen3-moe"));
}

#[test]
fn phi3() {
    check_against_transformers(&f32_case("phi3"));
}

/// The llama.cpp GGUF of mistral has no `llama.attention.sliding_window` (transformers uses
/// sliding_window 32), so llama.cpp runs full attention: compare with llama.cpp's logits.
/// The window only matters from position 32 on, so len1/len7 still match transformers.
#[test]
fn mistral_as_converted_matches_llamacpp() {
    check_against_llamacpp("mistral", F32_TOL);
}

/// With the missing key added (what ferrite's converter writes), transformers' logits and
/// generation are reproduced, including len40 which crosses the 32-token window.
#[test]
fn mistral_with_sliding_window_matches_transformers() {
    let (_tmp, path) = patched(
        "mistral",
        &[(
            keys::arch::key("llama", keys::arch::ATTENTION_SLIDING_WINDOW),
            Value::U32(32),
        )],
    );
    check_against_transformers(&Case {
        model: "mistral",
        gguf: path.to_str().unwrap().into(),
        tol: F32_TOL,
        check_generation: true,
    });
}

/// The gemma GGUFs lack query_pre_attn_scalar (24 here; llama.cpp then uses 1/√head_dim) and
/// gemma3's layer pattern (llama.cpp assumes 5 local + 1 global, so all 3 layers are local):
/// compare with llama.cpp's logits (GELU through ggml's f16 table, as llama.cpp).
#[test]
fn gemma3_as_converted_matches_llamacpp() {
    check_against_llamacpp("gemma3", F32_TOL);
}

#[test]
fn gemma2_as_converted_matches_llamacpp() {
    check_against_llamacpp("gemma2", F32_TOL);
}

/// With query_pre_attn_scalar = 24 and the layer pattern (period 3: local, local, global)
/// added, transformers' logits and generation are reproduced.
#[test]
fn gemma3_with_missing_keys_matches_transformers() {
    let k = |s| keys::arch::key("gemma3", s);
    let (_tmp, path) = patched(
        "gemma3",
        &[
            (
                k(keys::arch::ATTENTION_QUERY_PRE_ATTN_SCALAR),
                Value::U32(24),
            ),
            (
                k(keys::arch::ATTENTION_SLIDING_WINDOW_PATTERN),
                Value::U32(3),
            ),
        ],
    );
    check_against_transformers(&Case {
        model: "gemma3",
        gguf: path.to_str().unwrap().into(),
        tol: F32_TOL,
        check_generation: true,
    });
}

#[test]
fn gemma2_with_query_pre_attn_scalar_matches_transformers() {
    let (_tmp, path) = patched(
        "gemma2",
        &[(
            keys::arch::key("gemma2", keys::arch::ATTENTION_QUERY_PRE_ATTN_SCALAR),
            Value::U32(24),
        )],
    );
    check_against_transformers(&Case {
        model: "gemma2",
        gguf: path.to_str().unwrap().into(),
        tol: F32_TOL,
        check_generation: true,
    });
}
