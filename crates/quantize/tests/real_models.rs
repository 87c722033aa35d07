//! Quantizing the real Q4_K_M models (Gemma 3 270M, Qwen2.5-Coder-0.5B) with --allow-requantize.
//!
//! Oracles:
//! - type choice: the input files were written by llama.cpp's llama-quantize with Q4_K_M, so
//!   re-planning Q4_K_M must give every tensor the type it has in the file (exact);
//! - data: every converted row equals ferrite-quants' ggml-exact quantizer applied to the
//!   dequantized source row (exact bytes); unchanged tensors are copied byte for byte;
//! - metadata: every input key is kept, `general.file_type` and
//!   `general.quantization_version` (2) are last, as llama-quantize writes them.

use std::time::Instant;

use ferrite_gguf::{GgmlType, GgufFile, GgufModel};
use ferrite_quantize::{plan, quantize_file, FileType, Params, QuantizeError};
use ferrite_testdata::Model;

fn params(ft: FileType) -> Params {
    let mut p = Params::new(ft);
    p.n_threads = 2;
    p.allow_requantize = true;
    p
}

/// The layer-dependent choices (attn_v, ffn_down) follow a counter over the tensors in
/// llama.cpp's order. Today's llama.cpp (0c1e570, the reference) sorts tensors by layer number;
/// the Qwen file was written by an older llama-quantize that counted them in file order
/// (`blk.0, blk.1, blk.10, blk.11, ...`), so for it the k-th counted layer of the file gets
/// the type our k-th layer gets. The Gemma file was written with today's order.
fn counted_layer(m: Model, k: usize, n_layer: usize) -> usize {
    if m == Model::Qwen25Coder {
        let mut lex: Vec<usize> = (0..n_layer).collect();
        lex.sort_by_key(|l| l.to_string());
        lex[k]
    } else {
        k
    }
}

#[test]
fn q4_k_m_plan_reproduces_llama_quantize_types() {
    for m in [Model::Gemma3, Model::Qwen25Coder] {
        let model = GgufModel::open(m.path()).unwrap();
        let (plan, _) = plan(&model, &params(FileType::Q4_K_M)).unwrap();
        assert_eq!(plan.len(), model.n_tensors());
        let n_layer = plan
            .iter()
            .filter(|t| t.name.ends_with("attn_v.weight"))
            .count();
        let mut n_q6 = 0;
        for t in &plan {
            let mut orig_name = t.name.clone();
            if t.name.ends_with("attn_v.weight") || t.name.ends_with("ffn_down.weight") {
                let k = ferrite_quantize::rules::layer_of(&t.name).unwrap() as usize;
                let l = counted_layer(m, k, n_layer);
                orig_name = t
                    .name
                    .replacen(&format!("blk.{k}."), &format!("blk.{l}."), 1);
            }
            let orig = model.tensor_info(&orig_name).unwrap().ty;
            assert_eq!(t.to, orig, "{m:?} {} (file's {orig_name})", t.name);
            n_q6 += (t.to == GgmlType::Q6_K
                || (t.to == GgmlType::Q8_0 && orig_name.contains("blk.")))
                as usize;
        }
        assert!(
            n_q6 > 0,
            "{m:?}: the mixture gives some attn_v/ffn_down Q6_K (or its Q8_0 fallback)"
        );
    }
}

#[test]
fn requantizing_needs_permission() {
    let model = GgufModel::open(Model::Gemma3.path()).unwrap();
    let mut p = params(FileType::Q8_0);
    p.allow_requantize = false;
    match plan(&model, &p) {
        Err(QuantizeError::Requantize { .. }) => {}
        other => panic!("expected a requantize refusal, got {other:?}"),
    }
}

/// Expected type of a quantizable tensor for Q8_0 / Q4_0, derived by hand from llama.cpp's
/// rules: Q8_0 everywhere; Q4_0 except the output matrix (the tied token_embd for Gemma),
/// which gets Q6_K, and falls back to Q8_0 since n_embd (640, 896) is not a multiple of 256.
fn expected_legacy(ft: FileType, name: &str, tied: bool) -> GgmlType {
    let is_output = name == "output.weight" || (tied && name == "token_embd.weight");
    match ft {
        FileType::Q8_0 => GgmlType::Q8_0,
        FileType::Q4_0 if is_output => GgmlType::Q8_0,
        FileType::Q4_0 => GgmlType::Q4_0,
        _ => unreachable!(),
    }
}

#[test]
fn quantize_real_models_tensor_by_tensor() {
    let dir = tempfile::tempdir().unwrap();
    for m in [Model::Gemma3, Model::Qwen25Coder] {
        let src = GgufFile::open(m.path()).unwrap();
        let tied = src.tensor_info("output.weight").is_none();
        for ft in [FileType::Q8_0, FileType::Q4_0, FileType::Q4_K_M] {
            let out_path = dir.path().join(format!("{}.gguf", ft.name()));
            let t0 = Instant::now();
            let report = quantize_file(&m.path(), &out_path, &params(ft), |_| {}).unwrap();
            eprintln!(
                "{m:?} -> {ft}: {:.2} s, {:.1} MiB, 2 threads",
                t0.elapsed().as_secs_f64(),
                report.out_bytes as f64 / 1048576.0
            );
            let out = GgufFile::open(&out_path).unwrap();
            // metadata
            for (k, v) in src.metadata() {
                if k == "general.file_type" || k == "general.quantization_version" {
                    continue;
                }
                assert_eq!(
                    out.value(k).map(|x| x.to_owned_raw()),
                    Some(v.to_owned_raw()),
                    "{m:?} {ft} key {k}"
                );
            }
            let keys: Vec<&str> = out.metadata().map(|(k, _)| k).collect();
            assert_eq!(
                &keys[keys.len() - 2..],
                ["general.quantization_version", "general.file_type"]
            );
            assert_eq!(out.get::<u32>("general.file_type").unwrap(), ft.id());
            assert_eq!(out.get::<u32>("general.quantization_version").unwrap(), 2);
            // tensors
            assert_eq!(out.tensors().len(), src.tensors().len());
            for t in out.tensors() {
                let s = src.tensor_info(&t.name).unwrap();
                assert_eq!(t.dims, s.dims, "{}", t.name);
                let quantizable = s.dims.len() >= 2
                    && t.name.ends_with("weight")
                    && !t.name.ends_with("_norm.weight");
                if !quantizable {
                    assert_eq!(t.ty, s.ty, "{m:?} {ft} {}", t.name);
                } else if ft == FileType::Q4_K_M {
                    // the choice itself is checked by q4_k_m_plan_reproduces_llama_quantize_types
                    let layer_dependent =
                        t.name.ends_with("attn_v.weight") || t.name.ends_with("ffn_down.weight");
                    assert!(layer_dependent || t.ty == s.ty, "{m:?} {ft} {}", t.name);
                } else {
                    assert_eq!(
                        t.ty,
                        expected_legacy(ft, &t.name, tied),
                        "{m:?} {ft} {}",
                        t.name
                    );
                }
                let (sd, od) = (src.data_of(s), out.data_of(t));
                if t.ty == s.ty {
                    assert!(sd == od, "{m:?} {ft} {}: copied tensor differs", t.name);
                    continue;
                }
                let n = s.dims[0] as usize;
                let (rin, rout) = (
                    s.ty.row_size(n as u64).unwrap() as usize,
                    t.ty.row_size(n as u64).unwrap() as usize,
                );
                let mut row = vec![0f32; n];
                let mut q = vec![0u8; rout];
                for (i, (a, b)) in sd.chunks(rin).zip(od.chunks(rout)).enumerate() {
                    ferrite_quants::dequantize_row(s.ty, a, &mut row).unwrap();
                    ferrite_quants::quantize_row(t.ty, &row, &mut q).unwrap();
                    assert!(
                        q == b,
                        "{m:?} {ft} {} row {i} differs from the reference quantizer",
                        t.name
                    );
                }
            }
        }
    }
}
