//! Streaming detokenizer properties, on vocabularies from `shared/refdata/vocab` (GPT-2: BPE
//! with llama.cpp's space clean-up; llama-spm: SentencePiece with a space prefix and byte
//! tokens; bert-bge: WordPiece with clean-up) and the hf-tiny Qwen 2 BPE vocab. Feeding the
//! tokens one by one must give exactly `detokenize` of the whole sequence (lossily decoded),
//! and every chunk is whole UTF-8 characters.

mod common;

use std::sync::OnceLock;

use ferrite_tokenizer::Tokenizer;
use proptest::prelude::*;

fn vocabs() -> &'static [Tokenizer] {
    static V: OnceLock<Vec<Tokenizer>> = OnceLock::new();
    V.get_or_init(|| {
        let v = common::refdata("vocab");
        let h = common::refdata("hf-tiny");
        vec![
            common::load(&v.join("ggml-vocab-gpt-2.gguf")),
            common::load(&v.join("ggml-vocab-llama-spm.gguf")),
            common::load(&v.join("ggml-vocab-bert-bge.gguf")),
            common::load(&h.join("qwen2/qwen2-f32.gguf")),
        ]
    })
}

/// Ids biased towards the tokens that exercise the hard paths: byte tokens and partial UTF-8
/// (low ids in SPM / byte-level vocabs), spaces, apostrophes and punctuation.
fn pick(tok: &Tokenizer, raw: u32) -> u32 {
    let n = tok.n_tokens() as u32;
    let interesting: Vec<u32> = [
        " ", "'", "s", "?", ",", "'s", " '", "re", "é", "▁", "Ġ", "Ġ'",
    ]
    .iter()
    .filter_map(|t| tok.token_id(t.as_bytes()))
    .collect();
    match raw % 4 {
        0 => (raw / 4) % n.min(300),
        1 if !interesting.is_empty() => interesting[(raw / 4) as usize % interesting.len()],
        _ => (raw / 4) % n,
    }
}

fn check(tok: &Tokenizer, ids: &[u32], special: bool) -> Result<(), TestCaseError> {
    let want = String::from_utf8_lossy(&tok.detokenize(ids, false, special)).into_owned();
    let mut s = tok.streaming(special);
    let mut got = String::new();
    for &id in ids {
        let chunk = s.push(id);
        // A String is valid UTF-8 by construction; a chunk is also never a lone replacement
        // for a character that later completes: the final text must match exactly.
        got.push_str(&chunk);
    }
    got.push_str(&s.finish());
    prop_assert_eq!(got, want, "ids {:?}", ids);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn streaming_equals_batch(v in 0usize..4, raw in prop::collection::vec(any::<u32>(), 0..40), special: bool) {
        let tok = &vocabs()[v];
        let ids: Vec<u32> = raw.iter().map(|&r| pick(tok, r)).collect();
        check(tok, &ids, special)?;
    }
}

/// Oracle: the tokenizer itself; a multi-byte character split over byte tokens is held back
/// until complete (llama-spm has `<0xXX>` byte tokens).
#[test]
fn split_character_is_held_back() {
    let tok = &vocabs()[1];
    let ids = tok.tokenize("a🦙b", false, false);
    let mut s = tok.streaming(false);
    let chunks: Vec<String> = ids.iter().map(|&id| s.push(id)).collect();
    let fin = s.finish();
    assert!(chunks.iter().all(|c| !c.contains('\u{FFFD}')), "{chunks:?}");
    assert!(chunks.iter().any(|c| c.contains('🦙')), "{chunks:?}");
    assert_eq!(chunks.concat() + &fin, "a🦙b");
    // A truncated sequence flushes one replacement character at the end.
    let cut = &ids[..ids.len() - 2];
    let mut s = tok.streaming(false);
    let text: String = cut.iter().map(|&id| s.push(id)).collect::<String>() + &s.finish();
    assert_eq!(text, "a\u{FFFD}");
}
