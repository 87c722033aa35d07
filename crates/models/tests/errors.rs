//! Bad input is an error naming what is wrong, never a panic.

mod common;
use common::*;
use ferrite_gguf::{keys, GgmlType, GgufFile, GgufWriter, Value};
use ferrite_models::{Batch, Model, ModelError};

/// Copy the tiny llama GGUF, changing metadata and dropping tensors.
fn variant(
    set: &[(&str, Value)],
    drop_tensor: Option<&str>,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let src = GgufFile::open(hf_tiny("llama-f32").join("llama-f32-f32.gguf")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("x.gguf");
    let mut w = GgufWriter::new(&path);
    w.copy_layout_from(&src).unwrap();
    for (k, v) in set {
        w.add_kv(*k, v.clone());
    }
    // Re-declare tensors without the dropped one.
    let mut w2 = GgufWriter::new(&path);
    for (k, v) in src.metadata() {
        w2.add_kv(k, v.to_owned_value());
    }
    for (k, v) in set {
        w2.add_kv(*k, v.clone());
    }
    let kept: Vec<_> = src
        .tensors()
        .iter()
        .filter(|t| Some(t.name.as_str()) != drop_tensor)
        .collect();
    for t in &kept {
        w2.add_tensor(&t.name, t.ty, &t.dims).unwrap();
    }
    drop(w);
    let mut d = w2.begin_data().unwrap();
    for t in &kept {
        d.write_tensor(&t.name, src.data_of(t)).unwrap();
    }
    d.finish().unwrap();
    (tmp, path)
}

#[test]
fn unsupported_architecture_is_named_with_the_supported_list() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("foo.gguf");
    let mut w = GgufWriter::new(&path);
    w.add_kv(keys::general::ARCHITECTURE, Value::from("foo"));
    w.add_tensor("token_embd.weight", GgmlType::F32, &[4, 2])
        .unwrap();
    let mut d = w.begin_data().unwrap();
    d.write_tensor("token_embd.weight", &[0u8; 32]).unwrap();
    d.finish().unwrap();
    let err = Model::open(&path).err().expect("foo must be rejected");
    assert!(
        matches!(&err, ModelError::UnsupportedArch { name, .. } if name == "foo"),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("\"foo\"")
            && msg.contains("llama")
            && msg.contains("gemma3")
            && msg.contains("qwen3moe"),
        "{msg}"
    );
}

#[test]
fn missing_tensor_is_named() {
    let (_t, path) = variant(&[], Some("blk.1.ffn_down.weight"));
    let err = Model::open(&path)
        .err()
        .expect("missing tensor must be rejected");
    assert!(
        matches!(&err, ModelError::MissingTensor { name } if name == "blk.1.ffn_down.weight"),
        "{err}"
    );
}

#[test]
fn missing_key_is_named() {
    let src = GgufFile::open(hf_tiny("llama-f32").join("llama-f32-f32.gguf")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("x.gguf");
    let mut w = GgufWriter::new(&path);
    w.copy_layout_from(&src).unwrap();
    w.remove_kv("llama.attention.layer_norm_rms_epsilon");
    let mut d = w.begin_data().unwrap();
    for t in src.tensors() {
        d.write_tensor(&t.name, src.data_of(t)).unwrap();
    }
    d.finish().unwrap();
    let err = Model::open(&path)
        .err()
        .expect("missing key must be rejected");
    assert!(
        matches!(&err, ModelError::MissingKey { key } if key == "llama.attention.layer_norm_rms_epsilon"),
        "{err}"
    );
}

#[test]
fn shape_mismatch_names_tensor_and_expected_shape() {
    // Claim 8 heads of 16 (n_embd 64 → q rows 128): attn_q is [64, 64], expected [64, 128].
    let (_t, path) = variant(
        &[
            ("llama.attention.key_length", Value::U32(32)),
            ("llama.attention.value_length", Value::U32(32)),
        ],
        None,
    );
    let err = Model::open(&path)
        .err()
        .expect("shape mismatch must be rejected");
    match &err {
        ModelError::TensorShape {
            name,
            expected,
            got,
        } => {
            assert_eq!(name, "blk.0.attn_q.weight");
            assert_eq!(expected, &vec![64, 128]);
            assert_eq!(got, &vec![64, 64]);
        }
        _ => panic!("{err}"),
    }
}

#[test]
fn prompt_longer_than_context_is_an_error_and_leaves_the_cache_intact() {
    let model = Model::open(hf_tiny("llama-f32").join("llama-f32-f32.gguf")).unwrap();
    let mut c = ctx(&model, 16, GgmlType::F32, 1);
    let tokens: Vec<u32> = (100..120).collect();
    let pos: Vec<u32> = (0..20).collect();
    let seq = vec![0; 20];
    let want = vec![true; 20];
    let err = c
        .decode(&Batch {
            tokens: &tokens,
            pos: &pos,
            seq_id: &seq,
            want_logits: &want,
        })
        .unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::ContextFull {
                needed: 20,
                n_ctx: 16,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(c.kv_cache().n_used(), 0);
    // Filling up by steps: the 17th token fails.
    let l = run(&mut c, &tokens[..16], 0, false);
    assert_eq!(l.len(), model.n_vocab);
    let err = c
        .decode(&Batch {
            tokens: &[5],
            pos: &[16],
            seq_id: &[0],
            want_logits: &[true],
        })
        .unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::ContextFull { .. } | ModelError::PosBeyondContext { .. }
        ),
        "{err}"
    );
    // Bad token ids and sequences are errors too.
    c.kv_cache_mut().clear();
    let err = c
        .decode(&Batch {
            tokens: &[2000],
            pos: &[0],
            seq_id: &[0],
            want_logits: &[true],
        })
        .unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::BadToken {
                id: 2000,
                n_vocab: 2000
            }
        ),
        "{err}"
    );
    let err = c
        .decode(&Batch {
            tokens: &[5],
            pos: &[0],
            seq_id: &[3],
            want_logits: &[true],
        })
        .unwrap_err();
    assert!(
        matches!(err, ModelError::BadSeq { seq: 3, n_seq: 1 }),
        "{err}"
    );
}
