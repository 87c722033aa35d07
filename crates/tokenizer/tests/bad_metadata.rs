//! Bad metadata gives typed errors naming the file and the key, never a panic. The GGUFs are
//! written here with ferrite's own writer.

use ferrite_gguf::{GgufWriter, Value, ValueType};
use ferrite_tokenizer::{Tokenizer, TokenizerError};

fn write(kvs: Vec<(&str, Value)>) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("vocab.gguf");
    let mut w = GgufWriter::new(&p);
    for (k, v) in kvs {
        w.add_kv(k, v);
    }
    w.begin_data().unwrap().finish().unwrap();
    (dir, p)
}

fn tokens(n: usize) -> Value {
    Value::strings((0..n).map(|i| format!("t{i}")))
}

fn err(kvs: Vec<(&str, Value)>) -> (TokenizerError, String) {
    let (_d, p) = write(kvs);
    let e = match Tokenizer::open(&p) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    };
    let msg = e.to_string();
    assert!(msg.contains("vocab.gguf"), "message names the file: {msg}");
    (e, msg)
}

#[test]
fn unknown_pre_tokenizer_is_named() {
    let (e, msg) = err(vec![
        ("tokenizer.ggml.model", "gpt2".into()),
        ("tokenizer.ggml.pre", "no-such-pre".into()),
        ("tokenizer.ggml.tokens", tokens(4)),
        ("tokenizer.ggml.merges", Value::strings(["t t0"])),
    ]);
    assert!(
        matches!(e, TokenizerError::UnknownPreTokenizer { ref pre, .. } if pre == "no-such-pre")
    );
    assert!(
        msg.contains("'no-such-pre'") && msg.contains("tokenizer.ggml.pre"),
        "{msg}"
    );
}

#[test]
fn missing_tokens() {
    let (e, msg) = err(vec![("tokenizer.ggml.model", "llama".into())]);
    assert!(
        matches!(e, TokenizerError::MissingKey { ref key, .. } if key == "tokenizer.ggml.tokens")
    );
    assert!(msg.contains("tokenizer.ggml.tokens"), "{msg}");
}

#[test]
fn missing_model() {
    let (e, _) = err(vec![("tokenizer.ggml.tokens", tokens(3))]);
    assert!(
        matches!(e, TokenizerError::MissingKey { ref key, .. } if key == "tokenizer.ggml.model")
    );
}

#[test]
fn unknown_model_type() {
    let (e, msg) = err(vec![
        ("tokenizer.ggml.model", "sentencepiece9".into()),
        ("tokenizer.ggml.tokens", tokens(3)),
    ]);
    assert!(
        matches!(e, TokenizerError::UnknownModel { ref model, .. } if model == "sentencepiece9")
    );
    assert!(msg.contains("tokenizer.ggml.model"), "{msg}");
}

#[test]
fn mismatched_scores_and_types() {
    let (e, msg) = err(vec![
        ("tokenizer.ggml.model", "llama".into()),
        ("tokenizer.ggml.tokens", tokens(5)),
        (
            "tokenizer.ggml.scores",
            Value::Array(ValueType::F32, vec![Value::F32(0.0); 3]),
        ),
    ]);
    assert!(matches!(
        e,
        TokenizerError::LengthMismatch {
            len: 3,
            n_tokens: 5,
            ..
        }
    ));
    assert!(msg.contains("tokenizer.ggml.scores"), "{msg}");
    let (e, _) = err(vec![
        ("tokenizer.ggml.model", "llama".into()),
        ("tokenizer.ggml.tokens", tokens(5)),
        (
            "tokenizer.ggml.token_type",
            Value::Array(ValueType::I32, vec![Value::I32(1); 2]),
        ),
    ]);
    assert!(
        matches!(e, TokenizerError::LengthMismatch { ref key, .. } if key == "tokenizer.ggml.token_type")
    );
}

#[test]
fn wrong_types() {
    let (e, _) = err(vec![
        ("tokenizer.ggml.model", "llama".into()),
        (
            "tokenizer.ggml.tokens",
            Value::Array(ValueType::I32, vec![Value::I32(1)]),
        ),
    ]);
    assert!(matches!(e, TokenizerError::BadKey { ref key, .. } if key == "tokenizer.ggml.tokens"));
    let (e, _) = err(vec![
        ("tokenizer.ggml.model", Value::U32(3)),
        ("tokenizer.ggml.tokens", tokens(2)),
    ]);
    assert!(matches!(e, TokenizerError::BadKey { ref key, .. } if key == "tokenizer.ggml.model"));
}

#[test]
fn bpe_without_merges() {
    let (e, _) = err(vec![
        ("tokenizer.ggml.model", "gpt2".into()),
        ("tokenizer.ggml.pre", "qwen2".into()),
        ("tokenizer.ggml.tokens", tokens(3)),
    ]);
    assert!(
        matches!(e, TokenizerError::MissingKey { ref key, .. } if key == "tokenizer.ggml.merges")
    );
}

#[test]
fn duplicate_tokens_and_missing_bos() {
    let (e, _) = err(vec![
        ("tokenizer.ggml.model", "llama".into()),
        ("tokenizer.ggml.tokens", Value::strings(["a", "b", "a"])),
    ]);
    assert!(matches!(
        e,
        TokenizerError::DuplicateToken {
            first: 0,
            second: 2,
            ..
        }
    ));
    // add_bos (the SPM default) with a BOS id out of range: llama.cpp refuses it too.
    let (e, msg) = err(vec![
        ("tokenizer.ggml.model", "llama".into()),
        ("tokenizer.ggml.tokens", tokens(1)),
    ]);
    assert!(
        matches!(e, TokenizerError::MissingSpecialToken { .. }),
        "{msg}"
    );
}

/// A minimal valid SPM vocab builds and tokenizes with byte fallback.
#[test]
fn minimal_vocab_works() {
    let mut toks: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    toks.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    toks.push("▁a".into());
    let n = toks.len();
    let mut types = vec![Value::I32(3); 3];
    types[0] = Value::I32(2);
    types.extend((0..256).map(|_| Value::I32(6)));
    types.push(Value::I32(1));
    let (_d, p) = write(vec![
        ("tokenizer.ggml.model", "llama".into()),
        ("tokenizer.ggml.tokens", Value::strings(toks)),
        (
            "tokenizer.ggml.token_type",
            Value::Array(ValueType::I32, types),
        ),
        (
            "tokenizer.ggml.scores",
            Value::Array(ValueType::F32, vec![Value::F32(0.0); n]),
        ),
    ]);
    let tok = Tokenizer::open(&p).unwrap();
    let ids = tok.tokenize("a!", true, false);
    assert_eq!(ids, vec![1, (n - 1) as u32, 3 + b'!' as u32]);
    assert_eq!(tok.detokenize_string(&ids[1..], false, false), "a!");
    // llama.cpp keeps the prefix space when `remove_special` drops a leading BOS.
    assert_eq!(tok.detokenize_string(&ids, true, false), " a!");
    assert_eq!(tok.detokenize_string(&ids, false, true), "<s> a!");
}
