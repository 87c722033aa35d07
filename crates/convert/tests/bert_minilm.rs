//! all-MiniLM-L6-v2 (models/all-minilm-l6-v2, a sentence-transformers BERT checkpoint) → `bert`
//! GGUF. No llama.cpp file of it exists here; the oracle is llama.cpp's BertModel converter as
//! its source states it (tensor names and which stay F32, `bert.*` keys from config.json,
//! pooling from 1_Pooling/config.json, the phantom-space WordPiece vocabulary, SpecialVocab's
//! ids and add_* flags from the TemplateProcessing post-processor), and the safetensors
//! values themselves for the data.

mod common;
use common::*;

use ferrite_convert::OutType;
use ferrite_gguf::{keys, GgmlType, GgufFile};

fn minilm() -> std::path::PathBuf {
    ferrite_testdata::Model::MiniLm.path()
}

fn safetensor_bytes(dir: &std::path::Path, name: &str) -> Vec<u8> {
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensor(name).unwrap().data().to_vec()
}

#[test]
fn minilm_converts_to_llama_cpp_bert_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = minilm();
    let r = convert_to(&dir, OutType::F32, tmp.path());
    assert_eq!(r.gguf_architecture, "bert");
    let f = GgufFile::open(&r.output).unwrap();
    let u = |k: &str| f.get::<u32>(k).unwrap_or_else(|e| panic!("{k}: {e}"));
    // config.json: 6 layers, 384 hidden, 1536 ff, 12 heads, 512 positions, eps 1e-12.
    assert_eq!(u("bert.block_count"), 6);
    assert_eq!(u("bert.context_length"), 512);
    assert_eq!(u("bert.embedding_length"), 384);
    assert_eq!(u("bert.feed_forward_length"), 1536);
    assert_eq!(u("bert.attention.head_count"), 12);
    assert!(
        !f.contains_key("bert.attention.head_count_kv"),
        "no num_key_value_heads in config.json"
    );
    assert_eq!(
        f.get::<f32>("bert.attention.layer_norm_epsilon").unwrap(),
        1e-12f32
    );
    assert!(!f.get::<bool>("bert.attention.causal").unwrap());
    assert_eq!(
        u("bert.pooling_type"),
        1,
        "1_Pooling/config.json: mean pooling"
    );
    assert_eq!(u(keys::general::FILE_TYPE), 0);

    // WordPiece with phantom spaces; control tokens kept as is.
    assert_eq!(f.get::<&str>(keys::tokenizer::MODEL).unwrap(), "bert");
    assert_eq!(u(keys::tokenizer::TOKEN_TYPE_COUNT), 2);
    let toks: Vec<String> = f
        .get_array(keys::tokenizer::TOKENS)
        .unwrap()
        .to_vec()
        .unwrap();
    assert_eq!(toks.len(), 30522);
    assert_eq!(toks[0], "[PAD]");
    assert_eq!(toks[101], "[CLS]");
    assert_eq!(toks[1996], "\u{2581}the");
    assert_eq!(toks[2015], "s", "`##s` loses its prefix");
    let types: Vec<i32> = f
        .get_array(keys::tokenizer::TOKEN_TYPE)
        .unwrap()
        .to_vec()
        .unwrap();
    assert_eq!(
        (types[0], types[100], types[101], types[1996]),
        (3, 3, 3, 1)
    );
    // bert-base-uncased vocabulary: llama.cpp's hash table says jina-v2-en (same hash as bge).
    assert_eq!(f.get::<&str>(keys::tokenizer::PRE).unwrap(), "jina-v2-en");
    for (k, v) in [
        (keys::tokenizer::BOS_ID, 101),
        (keys::tokenizer::EOS_ID, 102),
        (keys::tokenizer::UNK_ID, 100),
        (keys::tokenizer::SEP_ID, 102),
        (keys::tokenizer::PAD_ID, 0),
        (keys::tokenizer::MASK_ID, 103),
    ] {
        assert_eq!(u(k), v, "{k}");
    }
    // gguf-py (0c1e570) has no writer for cls_token_id, so llama.cpp's file lacks it.
    assert!(!f.contains_key(keys::tokenizer::CLS_ID));
    // tokenizer.json's BertNormalizer: lowercase true, strip_accents null (not written).
    assert!(f
        .get::<bool>(keys::tokenizer::NORMALIZER_LOWERCASE)
        .unwrap());
    assert!(!f.contains_key(keys::tokenizer::NORMALIZER_STRIP_ACCENTS));
    assert!(f.get::<bool>(keys::tokenizer::ADD_BOS).unwrap());
    assert!(f.get::<bool>(keys::tokenizer::ADD_EOS).unwrap());
    assert!(!f.get::<bool>(keys::tokenizer::ADD_SEP).unwrap());

    // 104 safetensors tensors less position_ids and the pooler's weight and bias.
    assert_eq!(f.tensors().len(), 101);
    let dims = |n: &str| {
        f.tensor_info(n)
            .unwrap_or_else(|| panic!("{n} missing"))
            .dims
            .clone()
    };
    assert_eq!(dims("token_embd.weight"), vec![384, 30522]);
    assert_eq!(dims("position_embd.weight"), vec![384, 512]);
    assert_eq!(dims("token_types.weight"), vec![384, 2]);
    assert_eq!(dims("token_embd_norm.bias"), vec![384]);
    for il in 0..6 {
        for (n, d) in [
            ("attn_q.weight", vec![384, 384]),
            ("attn_k.bias", vec![384]),
            ("attn_output.weight", vec![384, 384]),
            ("attn_output_norm.weight", vec![384]),
            ("ffn_up.weight", vec![384, 1536]),
            ("ffn_down.weight", vec![1536, 384]),
            ("layer_output_norm.bias", vec![384]),
        ] {
            assert_eq!(dims(&format!("blk.{il}.{n}")), d, "blk.{il}.{n}");
        }
    }
    // Data: the safetensors values unchanged (no permutation for BERT).
    for (g, hf) in [
        ("token_embd.weight", "embeddings.word_embeddings.weight"),
        (
            "blk.0.attn_q.weight",
            "encoder.layer.0.attention.self.query.weight",
        ),
        (
            "blk.5.layer_output_norm.bias",
            "encoder.layer.5.output.LayerNorm.bias",
        ),
    ] {
        let t = f.tensor_info(g).unwrap();
        assert_eq!(f.data_of(t), safetensor_bytes(&dir, hf).as_slice(), "{g}");
    }
}

/// F16: matrices F16, but position and token-type embeddings and every 1-D tensor stay F32
/// (llama.cpp's forced-F32 list).
#[test]
fn minilm_f16_keeps_llama_cpps_f32_tensors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = minilm();
    let r = convert_to(&dir, OutType::F16, tmp.path());
    let f = GgufFile::open(&r.output).unwrap();
    let ty = |n: &str| f.tensor_info(n).unwrap().ty;
    assert_eq!(ty("token_embd.weight"), GgmlType::F16);
    assert_eq!(ty("blk.3.ffn_up.weight"), GgmlType::F16);
    assert_eq!(ty("position_embd.weight"), GgmlType::F32);
    assert_eq!(ty("token_types.weight"), GgmlType::F32);
    assert_eq!(ty("blk.3.ffn_up.bias"), GgmlType::F32);
    assert_eq!(ty("token_embd_norm.weight"), GgmlType::F32);
    let want: Vec<u8> = safetensor_bytes(&dir, "embeddings.word_embeddings.weight")
        .chunks_exact(4)
        .flat_map(|c| half::f16::from_f32(f32::from_le_bytes(c.try_into().unwrap())).to_le_bytes())
        .collect();
    assert_eq!(
        f.data_of(f.tensor_info("token_embd.weight").unwrap()),
        want.as_slice()
    );
}
