//! Checkpoint folders built from refdata/hf-tiny/llama-f32 with one thing changed: the errors
//! must name the file and key or tensor; a sharded copy must convert to the same bytes as
//! llama.cpp's llama-f32-f32.gguf (the oracle).

mod common;
use common::*;

use std::path::Path;

use ferrite_convert::{convert, ConvertError, ConvertOptions, OutType};
use serde_json::Value as Json;

/// A writable copy of an hf-tiny checkpoint (HF files only, not the oracle GGUFs).
fn copy_model(model: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(hf_tiny(model)).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_file() && !name.contains(".gguf") {
            std::fs::copy(&p, tmp.path().join(&name)).unwrap();
        }
    }
    tmp
}

fn try_convert(dir: &Path) -> Result<ferrite_convert::ConvertReport, ConvertError> {
    let opts = ConvertOptions {
        input_dir: dir.to_owned(),
        output: Some(dir.join("out.gguf")),
        outtype: OutType::F32,
        threads: 2,
        progress: false,
    };
    convert(&opts)
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Map<String, Json>)) {
    let p = dir.join("config.json");
    let mut v: Json = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    f(v.as_object_mut().unwrap());
    std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// Rewrite model.safetensors with `edit` applied to the (name, dtype, shape, bytes) list, in
/// `n_shards` files plus an index when more than one.
fn rewrite_weights(
    dir: &Path,
    n_shards: usize,
    edit: impl FnOnce(&mut Vec<(String, String, Vec<usize>, Vec<u8>)>),
) {
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(str::to_owned).collect();
    names.sort();
    let mut list: Vec<(String, String, Vec<usize>, Vec<u8>)> = names
        .iter()
        .map(|n| {
            let t = st.tensor(n).unwrap();
            (
                n.clone(),
                format!("{:?}", t.dtype()),
                t.shape().to_vec(),
                t.data().to_vec(),
            )
        })
        .collect();
    edit(&mut list);
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let per = list.len().div_ceil(n_shards);
    let mut weight_map = serde_json::Map::new();
    for (i, chunk) in list.chunks(per).enumerate() {
        let file = if n_shards == 1 {
            "model.safetensors".to_owned()
        } else {
            format!("model-{:05}-of-{:05}.safetensors", i + 1, n_shards)
        };
        let mut header = serde_json::Map::new();
        header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
        let mut data = Vec::new();
        for (name, dtype, shape, b) in chunk {
            header.insert(name.clone(), serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [data.len(), data.len() + b.len()]}));
            data.extend_from_slice(b);
            weight_map.insert(name.clone(), Json::String(file.clone()));
        }
        let mut h = serde_json::to_vec(&Json::Object(header)).unwrap();
        while !h.len().is_multiple_of(8) {
            h.push(b' ');
        }
        let mut out = (h.len() as u64).to_le_bytes().to_vec();
        out.extend(h);
        out.extend(data);
        std::fs::write(dir.join(file), out).unwrap();
    }
    if n_shards > 1 {
        let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
        std::fs::write(
            dir.join("model.safetensors.index.json"),
            serde_json::to_vec_pretty(&index).unwrap(),
        )
        .unwrap();
    }
}

#[test]
fn missing_config_json_is_named() {
    let tmp = copy_model("llama-f32");
    std::fs::remove_file(tmp.path().join("config.json")).unwrap();
    let e = try_convert(tmp.path()).unwrap_err();
    assert!(matches!(e, ConvertError::MissingConfig { .. }), "{e:?}");
    assert!(e.to_string().contains("config.json"), "{e}");
}

#[test]
fn unknown_architecture_lists_the_supported_ones() {
    let tmp = copy_model("llama-f32");
    edit_config(tmp.path(), |c| {
        c.insert(
            "architectures".into(),
            serde_json::json!(["GPTBigCodeForCausalLM"]),
        );
    });
    let e = try_convert(tmp.path()).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, ConvertError::UnknownArchitecture { .. }),
        "{e:?}"
    );
    for s in [
        "GPTBigCodeForCausalLM",
        "config.json",
        "LlamaForCausalLM",
        "Qwen3MoeForCausalLM",
        "Gemma3ForCausalLM",
        "BertModel",
    ] {
        assert!(msg.contains(s), "{msg} should mention {s}");
    }
}

#[test]
fn truncated_safetensors_is_rejected_naming_the_file() {
    let tmp = copy_model("llama-f32");
    let p = tmp.path().join("model.safetensors");
    let len = std::fs::metadata(&p).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(len - 1000).unwrap();
    drop(f);
    let e = try_convert(tmp.path()).unwrap_err();
    assert!(matches!(e, ConvertError::Safetensors { .. }), "{e:?}");
    assert!(e.to_string().contains("model.safetensors"), "{e}");
    assert!(
        !tmp.path().join("out.gguf").exists(),
        "no output on failure"
    );
}

#[test]
fn unexpected_tensor_is_rejected_like_llama_cpp() {
    let tmp = copy_model("llama-f32");
    rewrite_weights(tmp.path(), 1, |l| {
        l.push((
            "model.layers.0.mlp.extra_proj.weight".into(),
            "F32".into(),
            vec![2, 2],
            vec![0; 16],
        ));
    });
    let e = try_convert(tmp.path()).unwrap_err();
    assert!(matches!(e, ConvertError::UnexpectedTensor { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("model.layers.0.mlp.extra_proj.weight"),
        "{e}"
    );
}

#[test]
fn missing_tensor_is_named() {
    let tmp = copy_model("llama-f32");
    rewrite_weights(tmp.path(), 1, |l| {
        l.retain(|t| t.0 != "model.layers.1.self_attn.k_proj.weight")
    });
    let e = try_convert(tmp.path()).unwrap_err();
    assert!(matches!(e, ConvertError::MissingTensor { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("model.layers.1.self_attn.k_proj.weight"),
        "{e}"
    );
}

#[test]
fn integer_weights_are_a_bad_dtype() {
    let tmp = copy_model("llama-f32");
    rewrite_weights(tmp.path(), 1, |l| {
        let t = l.iter_mut().find(|t| t.0 == "model.norm.weight").unwrap();
        t.1 = "I32".into();
    });
    let e = try_convert(tmp.path()).unwrap_err();
    assert!(matches!(e, ConvertError::BadDtype { .. }), "{e:?}");
    assert!(e.to_string().contains("model.norm.weight"), "{e}");
}

/// Oracle: llama-f32-f32.gguf. The same tensors split over 3 shards with an index convert to
/// the same file.
#[test]
fn sharded_checkpoint_converts_like_the_single_file() {
    let tmp = copy_model("llama-f32");
    rewrite_weights(tmp.path(), 3, |_| {});
    assert!(tmp
        .path()
        .join("model-00003-of-00003.safetensors")
        .is_file());
    let r = try_convert(tmp.path()).unwrap();
    // The copy's folder name is random: general.name differs by construction.
    assert_same_gguf(
        &r.output,
        &hf_tiny("llama-f32").join("llama-f32-f32.gguf"),
        &[ferrite_gguf::keys::general::NAME],
        &[],
    );
}

/// An index that lists a tensor no shard holds names it.
#[test]
fn index_listing_a_missing_tensor_is_named() {
    let tmp = copy_model("llama-f32");
    rewrite_weights(tmp.path(), 2, |_| {});
    let p = tmp.path().join("model.safetensors.index.json");
    let mut v: Json = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    v["weight_map"]["model.layers.9.mlp.up_proj.weight"] =
        Json::String("model-00001-of-00002.safetensors".into());
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    let e = try_convert(tmp.path()).unwrap_err();
    assert!(matches!(e, ConvertError::MissingTensor { .. }), "{e:?}");
    assert!(
        e.to_string().contains("model.layers.9.mlp.up_proj.weight"),
        "{e}"
    );
}

/// The default output path is `<dir>/<folder name>-<outtype>.gguf`.
#[test]
fn default_output_path() {
    let tmp = copy_model("llama-tied");
    let opts = ConvertOptions {
        input_dir: tmp.path().to_owned(),
        outtype: OutType::Q8_0,
        ..Default::default()
    };
    let r = convert(&opts).unwrap();
    let folder = tmp
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(r.output, tmp.path().join(format!("{folder}-q8_0.gguf")));
    assert!(r.output.is_file());
}

/// Without tokenizer.model, an SPM-style BPE tokenizer.json (byte_fallback, `Sequence`
/// decoder) goes llama.cpp's LlamaHfVocab way: the same tokens and token types as the
/// SentencePiece path of the oracle llama-f32-f32.gguf, every score -1000.
#[test]
fn spm_style_tokenizer_json_alone_gives_the_same_vocabulary() {
    use ferrite_gguf::{keys::tokenizer as tk, GgufFile};
    let tmp = copy_model("llama-f32");
    std::fs::remove_file(tmp.path().join("tokenizer.model")).unwrap();
    let r = try_convert(tmp.path()).unwrap();
    assert_eq!(r.tokenizer_model, "llama");
    let ours = GgufFile::open(&r.output).unwrap();
    let oracle = GgufFile::open(hf_tiny("llama-f32").join("llama-f32-f32.gguf")).unwrap();
    for key in [
        tk::TOKENS,
        tk::TOKEN_TYPE,
        tk::MODEL,
        tk::PRE,
        tk::BOS_ID,
        tk::EOS_ID,
        tk::UNK_ID,
        tk::ADD_BOS,
        tk::ADD_EOS,
    ] {
        assert_eq!(
            ours.value(key).map(|v| v.to_owned_raw()),
            oracle.value(key).map(|v| v.to_owned_raw()),
            "{key}"
        );
    }
    let scores: Vec<f32> = ours.get_array(tk::SCORES).unwrap().to_vec().unwrap();
    assert_eq!(scores.len(), 2000);
    assert!(scores.iter().all(|&s| s == -1000.0));
}
