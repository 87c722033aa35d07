//! Oracle: llama.cpp's convert_hf_to_gguf.py output for the 12 hf-tiny checkpoints
//! (refdata/hf-tiny/<model>/<model>-f32.gguf and the bf16 / q8_0 variants; see its README).
//!
//! Compared: every tensor (name, order, type, shape, data bytes) and every metadata key and
//! value in llama.cpp's key order, with these exceptions:
//! - `general.name` for phi3 only: the oracle was converted with `--model-name tiny-random-p3`
//!   (llama.cpp's Phi-3 vocab hacks trigger on a name containing "phi3"); everywhere else the
//!   title made from the folder name is compared too.
//! - keys we write on purpose that llama.cpp's converter drops: `llama.attention.sliding_window`
//!   (mistral), `{gemma2,gemma3}.attention.query_pre_attn_scalar` and
//!   `{gemma2,gemma3}.attention.sliding_window_pattern` (one bool per layer). Their values are
//!   checked against config.json in separate tests.

mod common;
use common::*;

use ferrite_convert::OutType;
use ferrite_gguf::{keys, GgufFile, Value, ValueType};

fn check_f32(model: &str, exempt: &[&str], extra: &[String]) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = hf_tiny(model);
    let r = convert_to(&dir, OutType::F32, tmp.path());
    assert_eq!(r.outtype, OutType::F32);
    assert_same_gguf(
        &r.output,
        &dir.join(format!("{model}-f32.gguf")),
        exempt,
        extra,
    );
}

fn k(arch: &str, suffix: &str) -> String {
    keys::arch::key(arch, suffix)
}

fn gemma_extra(arch: &str) -> Vec<String> {
    vec![
        k(arch, keys::arch::ATTENTION_QUERY_PRE_ATTN_SCALAR),
        k(arch, keys::arch::ATTENTION_SLIDING_WINDOW_PATTERN),
    ]
}

#[test]
fn llama_f32_matches_llama_cpp() {
    check_f32("llama-f32", &[], &[]);
}

/// Source weights stored as BF16 with a transformers-5 config (`rope_parameters`, `dtype`).
#[test]
fn llama_bf16_to_f32_matches_llama_cpp() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = hf_tiny("llama-bf16");
    let r = convert_to(&dir, OutType::F32, tmp.path());
    assert_same_gguf(&r.output, &dir.join("llama-bf16-f32.gguf"), &[], &[]);
}

#[test]
fn llama_tied_matches_llama_cpp() {
    check_f32("llama-tied", &[], &[]);
}

/// Includes the computed `rope_freqs` tensor (llama-3 rope scaling factors).
#[test]
fn llama_rope_llama3_matches_llama_cpp() {
    check_f32("llama-rope-llama3", &[], &[]);
}

#[test]
fn mistral_matches_llama_cpp() {
    check_f32(
        "mistral",
        &[],
        &[k("llama", keys::arch::ATTENTION_SLIDING_WINDOW)],
    );
}

#[test]
fn mixtral_matches_llama_cpp() {
    check_f32("mixtral", &[], &[]);
}

/// vocab_size 2048 > 2000 tokenizer tokens: `[PAD2000]`.. padding, all 2048 embedding rows.
#[test]
fn qwen2_matches_llama_cpp() {
    check_f32("qwen2", &[], &[]);
}

/// Chat template from chat_template.jinja; tied embeddings.
#[test]
fn qwen3_matches_llama_cpp() {
    check_f32("qwen3", &[], &[]);
}

#[test]
fn qwen3_moe_matches_llama_cpp() {
    check_f32("qwen3-moe", &[], &[]);
}

/// Norms stored as 1 + w; transformers-4 config with `rope_local_base_freq` and linear scaling.
#[test]
fn gemma3_matches_llama_cpp() {
    check_f32("gemma3", &[], &gemma_extra("gemma3"));
}

#[test]
fn gemma2_matches_llama_cpp() {
    check_f32("gemma2", &[], &gemma_extra("gemma2"));
}

/// Fused qkv / gate_up kept fused; partial rotary (rope.dimension_count 12).
#[test]
fn phi3_matches_llama_cpp() {
    check_f32("phi3", &[keys::general::NAME], &[]);
}

/// Oracle: llama-f32-bf16.gguf (gguf-py's round-to-nearest-even BF16; norms stay F32).
#[test]
fn llama_f32_to_bf16_matches_llama_cpp() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = hf_tiny("llama-f32");
    let r = convert_to(&dir, OutType::BF16, tmp.path());
    assert_same_gguf(&r.output, &dir.join("llama-f32-bf16.gguf"), &[], &[]);
}

/// Oracle: llama-f32-q8_0.gguf.
#[test]
fn llama_f32_to_q8_0_matches_llama_cpp() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = hf_tiny("llama-f32");
    let r = convert_to(&dir, OutType::Q8_0, tmp.path());
    assert_same_gguf(&r.output, &dir.join("llama-f32-q8_0.gguf"), &[], &[]);
}

/// Oracle: llama-bf16-bf16.gguf. `Auto` must pick BF16 for a BF16 checkpoint, as llama.cpp.
#[test]
fn llama_bf16_to_bf16_and_auto_match_llama_cpp() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = hf_tiny("llama-bf16");
    let oracle = dir.join("llama-bf16-bf16.gguf");
    let r = convert_to(&dir, OutType::BF16, tmp.path());
    assert_same_gguf(&r.output, &oracle, &[], &[]);
    let auto = convert_to(&dir, OutType::Auto, tmp.path());
    assert_eq!(auto.outtype, OutType::BF16);
    assert_same_gguf(&auto.output, &oracle, &[], &[]);
}

/// `Auto` on an F32 checkpoint is F16 (llama.cpp's default); 2-D weights F16, norms F32, and the
/// F16 values are the round-to-nearest of the F32 oracle's.
#[test]
fn llama_f32_auto_is_f16() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = hf_tiny("llama-f32");
    let r = convert_to(&dir, OutType::Auto, tmp.path());
    assert_eq!(r.outtype, OutType::F16);
    let ours = GgufFile::open(&r.output).unwrap();
    let oracle = GgufFile::open(dir.join("llama-f32-f32.gguf")).unwrap();
    assert_eq!(ours.get::<u32>(keys::general::FILE_TYPE).unwrap(), 1);
    for t in oracle.tensors() {
        let o = ours.tensor_info(&t.name).unwrap();
        let f32s: Vec<f32> = oracle
            .data_of(t)
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        if t.dims.len() == 1 {
            assert_eq!(o.ty, ferrite_gguf::GgmlType::F32, "{}", t.name);
            continue;
        }
        assert_eq!(o.ty, ferrite_gguf::GgmlType::F16, "{}", t.name);
        let want: Vec<u8> = f32s
            .iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect();
        assert_eq!(ours.data_of(o), want.as_slice(), "{}", t.name);
    }
}

/// Oracle: config.json of mistral (sliding_window 32), the only value llama.cpp drops there.
#[test]
fn mistral_sliding_window_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let r = convert_to(&hf_tiny("mistral"), OutType::F32, tmp.path());
    let f = GgufFile::open(&r.output).unwrap();
    assert_eq!(
        f.get::<u32>(&k("llama", keys::arch::ATTENTION_SLIDING_WINDOW))
            .unwrap(),
        32
    );
    // Mixtral's config has sliding_window null: no key.
    let r = convert_to(&hf_tiny("mixtral"), OutType::F32, tmp.path());
    let f = GgufFile::open(&r.output).unwrap();
    assert!(!f.contains_key(&k("llama", keys::arch::ATTENTION_SLIDING_WINDOW)));
}

fn bools(f: &GgufFile, key: &str) -> Vec<bool> {
    match f
        .value(key)
        .unwrap_or_else(|| panic!("{key} missing"))
        .to_owned_raw()
    {
        Value::Array(ValueType::Bool, v) => v
            .into_iter()
            .map(|b| matches!(b, Value::Bool(true)))
            .collect(),
        other => panic!("{key}: {other:?}"),
    }
}

/// Oracle: config.json — gemma3 `layer_types` [sliding, sliding, full], query_pre_attn_scalar 24;
/// gemma2 `layer_types` [sliding, full], query_pre_attn_scalar 24.
#[test]
fn gemma_layer_pattern_and_query_scalar_are_written() {
    let tmp = tempfile::tempdir().unwrap();
    for (model, arch, pattern) in [
        ("gemma3", "gemma3", vec![true, true, false]),
        ("gemma2", "gemma2", vec![true, false]),
    ] {
        let r = convert_to(&hf_tiny(model), OutType::F32, tmp.path());
        let f = GgufFile::open(&r.output).unwrap();
        assert_eq!(
            f.get::<u32>(&k(arch, keys::arch::ATTENTION_QUERY_PRE_ATTN_SCALAR))
                .unwrap(),
            24,
            "{model}"
        );
        assert_eq!(
            bools(&f, &k(arch, keys::arch::ATTENTION_SLIDING_WINDOW_PATTERN)),
            pattern,
            "{model}"
        );
    }
}

/// The report names the tokenizer facts; the qwen2 pre-tokenizer came from the regex fallback
/// (the tiny vocabulary's hash is unknown to llama.cpp too, see the README).
#[test]
fn report_describes_the_conversion() {
    let tmp = tempfile::tempdir().unwrap();
    let r = convert_to(&hf_tiny("qwen2"), OutType::F32, tmp.path());
    assert_eq!(r.gguf_architecture, "qwen2");
    assert_eq!(r.n_vocab, 2048);
    assert_eq!(r.tokenizer_model, "gpt2");
    assert_eq!(r.tokenizer_pre.as_deref(), Some("qwen2"));
    assert!(
        r.notes.iter().any(|n| n.contains("split regex")),
        "{:?}",
        r.notes
    );
    assert_eq!(r.n_tensors, 27);
    assert_eq!(r.file_bytes, std::fs::metadata(&r.output).unwrap().len());
}
