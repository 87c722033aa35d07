//! The tokenizer half of the GGUF: `tokenizer.ggml.*` and the chat template, written the way
//! llama.cpp's converter does for each kind of vocabulary:
//!
//! - SentencePiece (`tokenizer.model`): `llama` model, pieces/scores/types from the protobuf,
//!   overridden by `added_tokens.json` and `tokenizer_config.json`'s `added_tokens_decoder`.
//! - SPM-style BPE in tokenizer.json only (byte_fallback, ▁): `llama` model (LlamaHfVocab).
//! - byte-level BPE (tokenizer.json): `gpt2` model with merges and `tokenizer.ggml.pre`.
//! - WordPiece (BERT): `bert` model, phantom-space vocabulary.
//!
//! Special token ids, add_bos/add_eos/add_sep and the chat template come from gguf-py's
//! `SpecialVocab` rules (ported in [`special`]).

pub(crate) mod pre;
pub(crate) mod sentencepiece;
mod special;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use ferrite_gguf::keys::tokenizer as tk;
use serde_json::Value as Json;

use crate::error::{ConvertError, Result};
use crate::hf::{read_json_opt, HfConfig};
use crate::meta::Kv;
use sentencepiece::PieceType;
pub(crate) use special::SpecialVocab;

/// gguf `TokenType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub(crate) enum TokType {
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

/// What the vocabulary step tells the rest of the conversion.
#[derive(Debug, Clone, Default)]
pub(crate) struct VocabInfo {
    pub n_tokens: usize,
    pub model: &'static str,
    pub pre: Option<String>,
    /// Informational notes (e.g. the pre-tokenizer fallback).
    pub notes: Vec<String>,
}

/// llama.cpp's `does_token_look_special`.
pub(crate) fn looks_special(t: &str) -> bool {
    matches!(t, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (t.starts_with("<|") && t.ends_with("|>"))
        || (t.starts_with("<\u{ff5c}") && t.ends_with("\u{ff5c}>"))
        || (t.starts_with("<unused") && t.ends_with('>'))
}

fn tok_err(path: &Path, what: impl Into<String>) -> ConvertError {
    ConvertError::Tokenizer {
        path: path.to_owned(),
        what: what.into(),
    }
}

fn write_tokens(kv: &mut Kv, tokens: Vec<String>, scores: Option<Vec<f32>>, types: &[TokType]) {
    kv.strings(tk::TOKENS, tokens);
    if let Some(s) = scores {
        kv.f32s(tk::SCORES, s);
    }
    kv.i32s(tk::TOKEN_TYPE, types.iter().map(|t| *t as i32));
}

/// `_set_vocab_sentencepiece`: `tokenizer.model` + tokenizer_config overrides.
pub(crate) fn set_vocab_sentencepiece(
    dir: &Path,
    cfg: &HfConfig,
    kv: &mut Kv,
) -> Result<VocabInfo> {
    let path = dir.join("tokenizer.model");
    let pieces = sentencepiece::load(&path)?;
    let vocab_size = match cfg.find_u64(&["vocab_size_per_layer_input", "vocab_size"])? {
        Some(v) if v > 0 => v as usize,
        _ => pieces.len(),
    };
    let mut tokens: Vec<String> = (0..vocab_size).map(|i| format!("[PAD{i}]")).collect();
    let mut scores = vec![-10000.0f32; vocab_size];
    let mut types = vec![TokType::Unused; vocab_size];
    for (id, p) in pieces.iter().enumerate().take(vocab_size) {
        tokens[id] = p.piece.clone();
        scores[id] = p.score;
        types[id] = match p.kind {
            PieceType::Unknown => TokType::Unknown,
            PieceType::Control => TokType::Control,
            PieceType::Unused => TokType::Unused,
            PieceType::Byte => TokType::Byte,
            // sentencepiece's user-defined pieces stay NORMAL here, as in llama.cpp.
            PieceType::Normal | PieceType::UserDefined => TokType::Normal,
        };
    }
    let added_path = dir.join("added_tokens.json");
    if let Some(Json::Object(added)) = read_json_opt(&added_path)? {
        for (text, id) in added {
            let Some(id) = id.as_u64().map(|i| i as usize) else {
                continue;
            };
            if id >= vocab_size {
                continue;
            }
            tokens[id] = text;
            scores[id] = -1000.0;
            types[id] = TokType::UserDefined;
        }
    }
    let tc_path = dir.join("tokenizer_config.json");
    if let Some(tc) = read_json_opt(&tc_path)? {
        if let Some(Json::Object(dec)) = tc.get("added_tokens_decoder") {
            for (id, data) in dec {
                let Ok(id) = id.parse::<usize>() else {
                    continue;
                };
                let Some(mut content) = data
                    .get("content")
                    .and_then(Json::as_str)
                    .map(str::to_owned)
                else {
                    continue;
                };
                if id >= vocab_size {
                    continue;
                }
                let special = data.get("special").and_then(Json::as_bool).unwrap_or(false);
                if special || looks_special(&content) {
                    types[id] = TokType::Control;
                } else {
                    content = content.replace('\u{2581}', " ");
                    types[id] = TokType::UserDefined;
                }
                scores[id] = -1000.0;
                tokens[id] = content;
            }
        }
    }
    let n = tokens.len();
    kv.add(tk::MODEL, "llama");
    kv.add(tk::PRE, "default");
    write_tokens(kv, tokens, Some(scores), &types);
    SpecialVocab::load(dir, false, Some(n))?.add_to(kv);
    Ok(VocabInfo {
        n_tokens: n,
        model: "llama",
        pre: Some("default".into()),
        notes: vec![],
    })
}

/// A tokenizer.json loaded through the `tokenizers` library, with the padding and truncation
/// some checkpoints ship (MiniLM: Fixed(128)) switched off, as transformers' `encode` does.
pub(crate) struct HfTokenizer {
    pub path: PathBuf,
    pub json: Json,
    pub tok: tokenizers::Tokenizer,
}

impl HfTokenizer {
    pub fn load(dir: &Path) -> Result<Option<HfTokenizer>> {
        let path = dir.join("tokenizer.json");
        let Some(json) = read_json_opt(&path)? else {
            return Ok(None);
        };
        let mut tok = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| tok_err(&path, format!("cannot load: {e}")))?;
        tok.with_padding(None);
        tok.with_truncation(None)
            .map_err(|e| tok_err(&path, e.to_string()))?;
        Ok(Some(HfTokenizer { path, json, tok }))
    }

    fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        self.tok
            .encode(text, add_special)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| tok_err(&self.path, format!("encoding failed: {e}")))
    }

    /// llama.cpp's `get_vocab_base_pre`: hash lookup, then the exact-regex fallback.
    fn pre(&self, notes: &mut Vec<String>) -> Result<String> {
        let ids = self.encode(pre::CHKTXT, true)?;
        let hash = pre::chkhsh(&ids);
        if let Some(name) = pre::lookup(&hash) {
            return Ok(name.to_owned());
        }
        match pre::by_regex(&self.json) {
            Some(name) => {
                notes.push(format!(
                    "BPE pre-tokenizer hash {hash} is not a known one; its split regex is exactly {name}'s, so tokenizer.ggml.pre = {name}"
                ));
                Ok(name.to_owned())
            }
            None => Err(ConvertError::UnknownPreTokenizer {
                path: self.path.clone(),
                hash,
            }),
        }
    }

    fn model_type(&self) -> &str {
        self.json
            .get("model")
            .and_then(|m| m.get("type"))
            .and_then(Json::as_str)
            .unwrap_or("")
    }
}

/// `get_vocab_base`: tokens and types for ids `0..vocab_size` (hparams `vocab_size`), padded
/// with `[PAD{i}]` where the tokenizer has no token, and the pre-tokenizer name.
fn vocab_base(
    t: &HfTokenizer,
    cfg: &HfConfig,
    notes: &mut Vec<String>,
) -> Result<(Vec<String>, Vec<TokType>, String)> {
    let vocab = t.tok.get_vocab(true);
    let max_id = vocab.values().copied().max().unwrap_or(0) as usize;
    let vocab_size = match cfg.find_u64(&["vocab_size"])? {
        Some(v) => v as usize,
        None => vocab.len(),
    };
    if max_id >= vocab_size {
        return Err(cfg.bad(
            "vocab_size",
            format!(
                "{vocab_size} but {} has token id {max_id}",
                t.path.display()
            ),
        ));
    }
    let pre = t.pre(notes)?;
    let mut reverse: HashMap<u32, &str> = HashMap::with_capacity(vocab.len());
    for (s, &id) in &vocab {
        reverse.insert(id, s.as_str());
    }
    let added = t.tok.get_added_tokens_decoder();
    let mut tokens = Vec::with_capacity(vocab_size);
    let mut types = Vec::with_capacity(vocab_size);
    for i in 0..vocab_size {
        let id = i as u32;
        let Some(&tok) = reverse.get(&id) else {
            tokens.push(format!("[PAD{i}]"));
            types.push(TokType::Unused);
            continue;
        };
        let mut token = tok.to_owned();
        match added.get(&id).filter(|a| a.content == token) {
            Some(a) => {
                if !a.normalized {
                    let ids = t.encode(&token, false)?;
                    token = t
                        .tok
                        .decode(&ids, false)
                        .map_err(|e| tok_err(&t.path, format!("decoding failed: {e}")))?;
                }
                if a.special || looks_special(&token) {
                    types.push(TokType::Control);
                } else {
                    token = token.replace('\u{2581}', " ");
                    types.push(TokType::UserDefined);
                }
            }
            None => types.push(TokType::Normal),
        }
        tokens.push(token);
    }
    Ok((tokens, types, pre))
}

/// `_set_vocab_gpt2`: byte-level BPE.
pub(crate) fn set_vocab_gpt2(dir: &Path, cfg: &HfConfig, kv: &mut Kv) -> Result<VocabInfo> {
    let t = HfTokenizer::load(dir)?.ok_or_else(|| {
        tok_err(
            &dir.join("tokenizer.json"),
            "missing (needed for a BPE vocabulary)",
        )
    })?;
    let mut notes = Vec::new();
    let (tokens, types, pre) = vocab_base(&t, cfg, &mut notes)?;
    let n = tokens.len();
    kv.add(tk::MODEL, "gpt2");
    kv.add(tk::PRE, pre.as_str());
    write_tokens(kv, tokens, None, &types);
    let sv = SpecialVocab::load(dir, true, None)?;
    if sv.merges.is_empty() {
        notes.push("adding merges was requested but the tokenizer has none".into());
    }
    sv.add_to(kv);
    Ok(VocabInfo {
        n_tokens: n,
        model: "gpt2",
        pre: Some(pre),
        notes,
    })
}

/// `BertModel.set_vocab`: WordPiece with llama.cpp's phantom-space spelling.
pub(crate) fn set_vocab_wpm(dir: &Path, cfg: &HfConfig, kv: &mut Kv) -> Result<VocabInfo> {
    let t = HfTokenizer::load(dir)?.ok_or_else(|| {
        tok_err(
            &dir.join("tokenizer.json"),
            "missing (needed for a WordPiece vocabulary)",
        )
    })?;
    let mut notes = Vec::new();
    let (tokens, types, pre) = vocab_base(&t, cfg, &mut notes)?;
    kv.u32(tk::TOKEN_TYPE_COUNT, cfg.u64_or("type_vocab_size", 1)?);
    let tokens: Vec<String> = tokens
        .into_iter()
        .zip(&types)
        .map(|(tok, ty)| match (ty, tok.strip_prefix("##")) {
            (TokType::Control, _) => tok,
            (_, Some(rest)) => rest.to_owned(),
            (_, None) => format!("\u{2581}{tok}"),
        })
        .collect();
    let n = tokens.len();
    kv.add(tk::MODEL, "bert");
    kv.add(tk::PRE, pre.as_str());
    write_tokens(kv, tokens, None, &types);
    SpecialVocab::load(dir, false, Some(n))?.add_to(kv);
    Ok(VocabInfo {
        n_tokens: n,
        model: "bert",
        pre: Some(pre),
        notes,
    })
}

/// Is tokenizer.json an SPM-style BPE (byte_fallback, `Sequence` decoder) that
/// `LlamaHfVocab` accepts? `Err` = it is llama-3 style (must go the gpt2 way).
fn is_llama_hf(t: &HfTokenizer) -> std::result::Result<bool, ()> {
    let m = t.json.get("model").cloned().unwrap_or(Json::Null);
    let ty = m.get("type").and_then(Json::as_str);
    let byte_fallback = m.get("byte_fallback").and_then(Json::as_bool);
    let ignore_merges = m
        .get("ignore_merges")
        .and_then(Json::as_bool)
        .unwrap_or(false);
    if ty == Some("BPE") && ignore_merges && !byte_fallback.unwrap_or(true) {
        return Err(());
    }
    let decoder = t
        .json
        .get("decoder")
        .and_then(|d| d.get("type"))
        .and_then(Json::as_str);
    Ok(ty == Some("BPE") && byte_fallback.unwrap_or(false) && decoder == Some("Sequence"))
}

/// `_set_vocab_llama_hf`: SPM-style BPE from tokenizer.json alone. Every score is -1000, byte
/// tokens `<0xXX>` are BYTE, special tokens CONTROL, added tokens past the base vocabulary
/// USER_DEFINED (CONTROL when special).
fn set_vocab_llama_hf(dir: &Path, t: &HfTokenizer, kv: &mut Kv) -> Result<VocabInfo> {
    let base = t.tok.get_vocab_size(false);
    let vocab = t.tok.get_vocab(true);
    let mut reverse: HashMap<u32, String> = HashMap::new();
    for (s, id) in vocab {
        reverse.insert(id, s);
    }
    let added = t.tok.get_added_tokens_decoder();
    let mut special_ids: HashSet<u32> = added
        .iter()
        .filter(|(_, a)| a.special)
        .map(|(id, _)| *id)
        .collect();
    let tc = read_json_opt(&dir.join("tokenizer_config.json"))?.unwrap_or(Json::Null);
    let mut special_texts: Vec<String> = Vec::new();
    for k in [
        "bos_token",
        "eos_token",
        "unk_token",
        "sep_token",
        "pad_token",
        "cls_token",
        "mask_token",
    ] {
        match tc.get(k) {
            Some(Json::String(s)) => special_texts.push(s.clone()),
            Some(Json::Object(o)) => {
                special_texts.extend(o.get("content").and_then(Json::as_str).map(str::to_owned))
            }
            _ => {}
        }
    }
    for s in tc
        .get("additional_special_tokens")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        special_texts.extend(s.as_str().map(str::to_owned));
    }
    for s in &special_texts {
        if let Some(id) = t.tok.token_to_id(s) {
            special_ids.insert(id);
        }
    }
    let is_byte = |s: &str| {
        s.len() == 6
            && s.starts_with("<0x")
            && s.ends_with('>')
            && s[3..5].chars().all(|c| c.is_ascii_hexdigit())
    };
    let mut tokens = Vec::new();
    let mut types = Vec::new();
    for id in 0..base as u32 {
        let s = reverse
            .get(&id)
            .cloned()
            .ok_or_else(|| tok_err(&t.path, format!("no token with id {id}")))?;
        types.push(if is_byte(&s) {
            TokType::Byte
        } else if special_ids.contains(&id) {
            TokType::Control
        } else {
            TokType::Normal
        });
        tokens.push(s);
    }
    let mut extra: Vec<(u32, String)> = added
        .iter()
        .filter(|(id, _)| **id as usize >= base)
        .map(|(id, a)| (*id, a.content.clone()))
        .collect();
    extra.sort();
    for (id, s) in extra {
        types.push(if special_ids.contains(&id) {
            TokType::Control
        } else {
            TokType::UserDefined
        });
        tokens.push(s);
    }
    let n = tokens.len();
    kv.add(tk::MODEL, "llama");
    kv.add(tk::PRE, "default");
    write_tokens(kv, tokens, Some(vec![-1000.0; n]), &types);
    SpecialVocab::load(dir, false, Some(n))?.add_to(kv);
    Ok(VocabInfo {
        n_tokens: n,
        model: "llama",
        pre: Some("default".into()),
        notes: vec![],
    })
}

/// LlamaModel's chain: tokenizer.model, else an SPM-style tokenizer.json, else byte-level BPE.
pub(crate) fn set_vocab_llama_chain(dir: &Path, cfg: &HfConfig, kv: &mut Kv) -> Result<VocabInfo> {
    if dir.join("tokenizer.model").is_file() {
        return set_vocab_sentencepiece(dir, cfg, kv);
    }
    if let Some(t) = HfTokenizer::load(dir)? {
        if t.model_type() == "BPE" && is_llama_hf(&t) == Ok(true) {
            return set_vocab_llama_hf(dir, &t, kv);
        }
    }
    set_vocab_gpt2(dir, cfg, kv)
}

/// SentencePiece when `tokenizer.model` exists, else byte-level BPE (Qwen2/3, Gemma 3).
pub(crate) fn set_vocab_spm_or_gpt2(dir: &Path, cfg: &HfConfig, kv: &mut Kv) -> Result<VocabInfo> {
    if dir.join("tokenizer.model").is_file() {
        set_vocab_sentencepiece(dir, cfg, kv)
    } else {
        set_vocab_gpt2(dir, cfg, kv)
    }
}
