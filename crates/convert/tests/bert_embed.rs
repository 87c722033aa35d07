//! all-MiniLM-L6-v2 end to end: the checkpoint converted by ferrite_convert (F32 and F16), the
//! five reference sentences tokenized by ferrite-tokenizer and embedded by ferrite-models'
//! `Embedder` (mean pooling + L2, erf GELU).
//!
//! Oracle: refdata/hf-tiny/minilm-l6-v2/expected — `embeddings.npy` [5, 384] (transformers
//! BertModel f32, attention-mask mean pooling, L2 norm) and `expected.json` (each sentence's
//! unpadded `input_ids`). Tolerances: F32 weights max |Δ| ≤ 1e-4 and cosine > 0.9999 per
//! sentence (measured: ≤ 1.2e-7, cosine 1 - 1e-9); F16 weights (activations rounded to f16 in
//! the matmuls, as ggml does) max |Δ| ≤ 5e-4 and cosine > 0.99999 (measured: ≤ 1.3e-4, cosine
//! ≥ 0.99999975). Batch of 5 vs one at a time: ≤ 1e-6.

mod common;
use common::*;

use ferrite_convert::OutType;
use ferrite_models::{EmbedParams, Embedder, Model, ModelError, Pooling};
use ferrite_testdata::Model as TestModel;
use ferrite_tokenizer::Tokenizer;

struct Expected {
    texts: Vec<String>,
    ids: Vec<Vec<u32>>,
    emb: Vec<Vec<f32>>,
}

fn expected() -> Expected {
    let dir = TestModel::MiniLm.refdata().join("expected");
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let sents = j["sentences"].as_array().unwrap();
    let texts = sents
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_owned())
        .collect();
    let ids = sents
        .iter()
        .map(|s| {
            s["input_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect()
        })
        .collect();
    let (shape, data) = ferrite_testdata::read_npy_f32(dir.join("embeddings.npy"));
    assert_eq!(shape, vec![5, 384]);
    let emb = data.chunks_exact(384).map(|r| r.to_vec()).collect();
    Expected { texts, ids, emb }
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
    let na: f64 = a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Convert, tokenize, embed one at a time and as one batch; compare with the oracle. Returns
/// the model file (in `tmp`) and the largest |Δ| of the solo embeddings.
fn check(
    tmp: &std::path::Path,
    outtype: OutType,
    tol_abs: f32,
    tol_cos: f64,
) -> (std::path::PathBuf, f32) {
    let r = convert_to(&TestModel::MiniLm.path(), outtype, tmp);
    let model = Model::open(&r.output).unwrap();
    assert_eq!(model.hp.pooling, Pooling::Mean, "bert.pooling_type = 1");
    let tok = Tokenizer::from_gguf(model.gguf().meta()).unwrap();
    let exp = expected();

    let ids: Vec<Vec<u32>> = exp
        .texts
        .iter()
        .map(|t| tok.tokenize(t, true, true))
        .collect();
    for (i, (got, want)) in ids.iter().zip(&exp.ids).enumerate() {
        assert_eq!(
            got, want,
            "sentence {i}: tokens differ from the unpadded tokenization"
        );
    }

    let mut e = Embedder::new(
        &model,
        EmbedParams {
            n_threads: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let solo: Vec<Vec<f32>> = ids
        .iter()
        .map(|s| e.embed(&[s]).unwrap().remove(0))
        .collect();
    let seqs: Vec<&[u32]> = ids.iter().map(|v| v.as_slice()).collect();
    let batch = e.embed(&seqs).unwrap();
    let mut worst = 0f32;
    for (i, (s, want)) in solo.iter().zip(&exp.emb).enumerate() {
        let (d, c) = (max_abs(s, want), cosine(s, want));
        eprintln!(
            "{}: sentence {i} ({} tokens): max |Δ| {d:.3e}, cosine {c:.9}",
            outtype.name(),
            ids[i].len()
        );
        assert!(d <= tol_abs, "sentence {i}: max |Δ| {d} > {tol_abs}");
        worst = worst.max(d);
        assert!(c > tol_cos, "sentence {i}: cosine {c} ≤ {tol_cos}");
        // Packed with the other four: each token sees only its own sequence, and every row
        // of the matmuls is computed alike whatever the batch.
        let db = max_abs(&batch[i], s);
        assert!(
            db <= 1e-6,
            "sentence {i}: batch of 5 differs from one at a time by {db}"
        );
    }
    (r.output, worst)
}

#[test]
fn minilm_f32_embeddings_match_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, erf_worst) = check(tmp.path(), OutType::F32, 1e-4, 0.9999);

    // llama.cpp's GELU (tanh approximation via an f16 table) is measurably further from
    // transformers' erf GELU: why the erf form is the default.
    let model = Model::open(&path).unwrap();
    let tok = Tokenizer::from_gguf(model.gguf().meta()).unwrap();
    let exp = expected();
    let mut e = Embedder::new(
        &model,
        EmbedParams {
            n_threads: 2,
            gelu: ferrite_models::GeluImpl::Ggml,
            ..Default::default()
        },
    )
    .unwrap();
    let ggml_worst = exp
        .texts
        .iter()
        .zip(&exp.emb)
        .map(|(t, want)| max_abs(&e.embed(&[&tok.tokenize(t, true, true)]).unwrap()[0], want))
        .fold(0f32, f32::max);
    eprintln!("f32 max |Δ|: erf GELU {erf_worst:.3e}, ggml GELU {ggml_worst:.3e}");
    assert!(ggml_worst > erf_worst);
}

#[test]
fn minilm_f16_embeddings_match_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    check(tmp.path(), OutType::F16, 5e-4, 0.99999);
}

/// Bad input is a typed error, never a panic; decoding an encoder says what to use instead.
#[test]
fn minilm_bad_input_and_wrong_api_are_typed_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let r = convert_to(&TestModel::MiniLm.path(), OutType::F16, tmp.path());
    let model = Model::open(&r.output).unwrap();
    let mut e = Embedder::new(&model, EmbedParams::default()).unwrap();
    assert_eq!(e.n_ctx(), 512);
    let long = vec![101u32; 513];
    match e.embed(&[&[101, 102], &long]) {
        Err(ModelError::SeqTooLong {
            seq: 1,
            n_tokens: 513,
            n_ctx: 512,
        }) => {}
        other => panic!("expected SeqTooLong, got {:?}", other.map(|v| v.len())),
    }
    assert!(matches!(
        e.embed(&[&[]]),
        Err(ModelError::Batch(m)) if m.contains("empty")
    ));
    assert!(matches!(
        e.embed(&[&[30522]]),
        Err(ModelError::BadToken { id: 30522, .. })
    ));
    // A whole-context sequence works.
    let full = vec![1996u32; 512];
    assert_eq!(e.embed(&[&full]).unwrap()[0].len(), 384);

    let mut ctx = ferrite_models::Context::new(&model, Default::default()).unwrap();
    let err = ctx
        .decode(&ferrite_models::Batch {
            tokens: &[101],
            pos: &[0],
            seq_id: &[0],
            want_logits: &[true],
        })
        .expect_err("decode on bert must fail");
    assert!(
        matches!(
            &err,
            ModelError::Unsupported {
                op: "decode",
                arch: "bert",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("Embedder"), "{err}");
}
