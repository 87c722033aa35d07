//! Tokenizer built from GGUF metadata alone, matching llama.cpp's `llama-vocab.cpp` (commit
//! 0c1e570) token for token:
//!
//! - **SPM** (`tokenizer.ggml.model` = `llama`): llama.cpp's SentencePiece-style BPE over token
//!   scores (bigram priority queue), `<0xXX>` byte fallback, space prefix, `▁` escaping.
//! - **BPE** (`gpt2`): byte-level BPE over merge ranks, with the pre-tokenizer named by
//!   `tokenizer.ggml.pre` (see [`pre_table`](crate) for the names; an unknown name is an error).
//! - **WPM** (`bert`): WordPiece with llama.cpp's normalisation (lowercase, NFD accent
//!   stripping, punctuation and CJK splitting).
//!
//! Special tokens (control, user-defined, unknown) are matched in the text longest first, as
//! llama.cpp's `tokenizer_st_partition` does: user-defined tokens always, control and unknown
//! tokens only with `parse_special`.
//!
//! Detokenization follows `llama_token_to_piece` / `llama_detokenize`;
//! [`StreamingDetokenizer`] turns a token stream into text that never splits a UTF-8 character.

mod error;
mod index;
mod pre;
mod pre_table;
mod stream;
mod unicode;

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::path::Path;

use ferrite_gguf::keys::tokenizer as k;
use ferrite_gguf::{GgufFile, ValueRef, ValueType};

pub use error::TokenizerError;
pub use stream::StreamingDetokenizer;

use index::{MergeTable, Strings, TextIndex};
use pre::PreTokenizer;

pub type TokenId = u32;
type Result<T> = std::result::Result<T, TokenizerError>;

/// Token attributes (llama.cpp's `llama_token_attr` bits).
pub mod attr {
    pub const UNDEFINED: u32 = 0;
    pub const UNKNOWN: u32 = 1 << 0;
    pub const UNUSED: u32 = 1 << 1;
    pub const NORMAL: u32 = 1 << 2;
    pub const CONTROL: u32 = 1 << 3;
    pub const USER_DEFINED: u32 = 1 << 4;
    pub const BYTE: u32 = 1 << 5;
    pub const NORMALIZED: u32 = 1 << 6;
    pub const LSTRIP: u32 = 1 << 7;
    pub const RSTRIP: u32 = 1 << 8;
    pub const SINGLE_WORD: u32 = 1 << 9;
}

/// `tokenizer.ggml.token_type` values.
pub mod token_type {
    pub const UNDEFINED: i32 = 0;
    pub const NORMAL: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const UNUSED: i32 = 5;
    pub const BYTE: i32 = 6;
}

const FIM_PRE_ID: &str = "tokenizer.ggml.fim_pre_token_id";
const FIM_SUF_ID: &str = "tokenizer.ggml.fim_suf_token_id";
const FIM_MID_ID: &str = "tokenizer.ggml.fim_mid_token_id";
const FIM_PAD_ID: &str = "tokenizer.ggml.fim_pad_token_id";
const FIM_REP_ID: &str = "tokenizer.ggml.fim_rep_token_id";
const FIM_SEP_ID: &str = "tokenizer.ggml.fim_sep_token_id";
const PREFIX_ID: &str = "tokenizer.ggml.prefix_token_id";
const SUFFIX_ID: &str = "tokenizer.ggml.suffix_token_id";
const MIDDLE_ID: &str = "tokenizer.ggml.middle_token_id";
const NORMALIZER_LOWERCASE: &str = "tokenizer.ggml.normalizer.lowercase";
const NORMALIZER_STRIP_ACCENTS: &str = "tokenizer.ggml.normalizer.strip_accents";

/// The tokenizer algorithm (`tokenizer.ggml.model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VocabType {
    /// `llama`: SentencePiece-style BPE over scores.
    Spm,
    /// `gpt2`: byte-level BPE over merge ranks.
    Bpe,
    /// `bert`: WordPiece.
    Wpm,
}

/// Special token ids (`None` where the vocabulary has none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    pub bos: Option<TokenId>,
    pub eos: Option<TokenId>,
    pub eot: Option<TokenId>,
    pub eom: Option<TokenId>,
    pub unk: Option<TokenId>,
    pub sep: Option<TokenId>,
    pub pad: Option<TokenId>,
    /// `tokenizer.ggml.cls_token_id` (llama.cpp itself uses BOS as CLS for BERT).
    pub cls: Option<TokenId>,
    pub mask: Option<TokenId>,
    pub fim_pre: Option<TokenId>,
    pub fim_suf: Option<TokenId>,
    pub fim_mid: Option<TokenId>,
    pub fim_pad: Option<TokenId>,
    pub fim_rep: Option<TokenId>,
    pub fim_sep: Option<TokenId>,
    /// The newline token (llama.cpp's `linefeed_id`).
    pub nl: Option<TokenId>,
}

#[derive(Debug, Clone, Copy)]
struct TokenData {
    score: f32,
    attr: u32,
}

/// A tokenizer built from a GGUF file's `tokenizer.ggml.*` metadata.
pub struct Tokenizer {
    vtype: VocabType,
    model: String,
    pre_name: String,
    pre: Option<PreTokenizer>,
    /// All token texts, back to back.
    texts: Strings,
    data: Vec<TokenData>,
    token_to_id: TextIndex,
    /// BPE merge ranks keyed by the text of both halves.
    merges: MergeTable,
    special: SpecialTokens,
    eog: Vec<TokenId>,
    /// Control, user-defined and unknown tokens, longest text first.
    special_cache: Vec<TokenId>,
    /// `token_to_piece(id, special = true)` for every token.
    pieces: Vec<u8>,
    piece_offs: Vec<u32>,
    add_bos: bool,
    add_eos: bool,
    add_sep: bool,
    add_space_prefix: bool,
    remove_extra_whitespaces: bool,
    clean_spaces: bool,
    ignore_merges: bool,
    escape_whitespaces: bool,
    lowercase: bool,
    strip_accents: bool,
    max_token_len: usize,
}

/// Reads keys, turning reader errors into errors naming the file and the key.
struct Meta<'a> {
    f: &'a GgufFile,
    file: String,
}

impl<'a> Meta<'a> {
    fn bad(&self, key: &str, what: impl Into<String>) -> TokenizerError {
        TokenizerError::BadKey {
            file: self.file.clone(),
            key: key.to_string(),
            what: what.into(),
        }
    }

    fn missing(&self, key: &str) -> TokenizerError {
        TokenizerError::MissingKey {
            file: self.file.clone(),
            key: key.to_string(),
        }
    }

    fn value(&self, key: &str) -> Option<ValueRef<'a>> {
        self.f.value(key)
    }

    fn str_opt(&self, key: &str) -> Result<Option<&'a str>> {
        match self.value(key) {
            None => Ok(None),
            Some(ValueRef::String(b)) => std::str::from_utf8(b)
                .map(Some)
                .map_err(|_| self.bad(key, "string is not UTF-8")),
            Some(v) => Err(self.bad(key, format!("expected a string, found {}", v.type_name()))),
        }
    }

    fn bool_opt(&self, key: &str) -> Result<Option<bool>> {
        match self.value(key) {
            None => Ok(None),
            Some(ValueRef::Bool(b)) => Ok(Some(b)),
            Some(v) => Err(self.bad(key, format!("expected a bool, found {}", v.type_name()))),
        }
    }

    /// An id key: any integer type; negative values read as absent.
    fn id_opt(&self, key: &str) -> Result<Option<i64>> {
        match self.value(key) {
            None => Ok(None),
            Some(v) => match v.as_i128() {
                Some(x) if x < 0 => Ok(None),
                Some(x) => Ok(Some(x.min(i64::MAX as i128) as i64)),
                None => Err(self.bad(key, format!("expected an integer, found {}", v.type_name()))),
            },
        }
    }

    fn array(&self, key: &str) -> Result<Option<ferrite_gguf::ArrayRef<'a>>> {
        match self.value(key) {
            None => Ok(None),
            Some(ValueRef::Array(a)) => Ok(Some(a)),
            Some(v) => Err(self.bad(key, format!("expected an array, found {}", v.type_name()))),
        }
    }

    fn check_len(&self, key: &str, len: u64, n_tokens: u64) -> Result<()> {
        if len < n_tokens {
            return Err(TokenizerError::LengthMismatch {
                file: self.file.clone(),
                key: key.to_string(),
                len,
                tokens_key: k::TOKENS.to_string(),
                n_tokens,
            });
        }
        Ok(())
    }
}

const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const EOM_TEXTS: &[&str] = &["<|eom_id|>"];
const FIM_PRE_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_TEXTS: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_TEXTS: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

impl Tokenizer {
    /// Open a GGUF file and build its tokenizer.
    pub fn open(path: impl AsRef<Path>) -> Result<Tokenizer> {
        let f = GgufFile::open(path)?;
        Tokenizer::from_gguf(&f)
    }

    /// Build the tokenizer from a GGUF file's metadata.
    pub fn from_gguf(f: &GgufFile) -> Result<Tokenizer> {
        let m = Meta {
            f,
            file: f
                .path()
                .map_or_else(|| "<memory>".to_string(), |p| p.display().to_string()),
        };

        let model = m.str_opt(k::MODEL)?.ok_or_else(|| m.missing(k::MODEL))?;
        let mut pre_name = m.str_opt(k::PRE)?.unwrap_or("").to_string();

        let mut sp = SpecialTokens::default();
        type Defaults = (VocabType, [Option<i64>; 6]);
        let (vtype, [mut bos, mut eos, mut unk, mut sep, mut pad, mut mask]): Defaults = match model
        {
            "llama" => (
                VocabType::Spm,
                [Some(1), Some(2), Some(0), None, None, None],
            ),
            "bert" => (
                VocabType::Wpm,
                [Some(101), None, Some(100), Some(102), Some(0), Some(103)],
            ),
            "gpt2" => (VocabType::Bpe, [Some(11), Some(11), None, None, None, None]),
            "gemma4" => {
                pre_name = "gemma4".to_string();
                (VocabType::Bpe, [None; 6])
            }
            "no_vocab" | "none" | "t5" | "rwkv" | "plamo2" | "hybriddna" | "whitespace" => {
                return Err(TokenizerError::UnsupportedModel {
                    file: m.file.clone(),
                    key: k::MODEL.to_string(),
                    model: model.to_string(),
                })
            }
            other => {
                return Err(TokenizerError::UnknownModel {
                    file: m.file.clone(),
                    key: k::MODEL.to_string(),
                    model: other.to_string(),
                })
            }
        };

        let mut add_bos = false;
        let mut add_eos = false;
        let mut add_sep = false;
        let mut add_space_prefix = false;
        let clean_spaces;
        let mut ignore_merges = false;
        let mut escape_whitespaces = true;
        let mut pre = None;
        match vtype {
            VocabType::Bpe => {
                escape_whitespaces = false;
                let name = if pre_name.is_empty() {
                    "default"
                } else {
                    pre_name.as_str()
                };
                let info =
                    pre_table::lookup(name).ok_or_else(|| TokenizerError::UnknownPreTokenizer {
                        file: m.file.clone(),
                        key: k::PRE.to_string(),
                        pre: pre_name.clone(),
                    })?;
                clean_spaces = info.clean_spaces;
                ignore_merges = info.ignore_merges;
                add_bos |= info.add_bos;
                add_sep |= info.add_sep;
                escape_whitespaces |= info.escape_whitespaces;
                if info.bos_null {
                    bos = None;
                }
                pre = Some(PreTokenizer::new(&info).map_err(|what| {
                    TokenizerError::UnsupportedPreTokenizer {
                        file: m.file.clone(),
                        key: k::PRE.to_string(),
                        pre: pre_name.clone(),
                        what,
                    }
                })?);
            }
            VocabType::Spm => {
                add_space_prefix = true;
                clean_spaces = false;
                add_bos = true;
                add_eos = false;
            }
            VocabType::Wpm => {
                add_space_prefix = false;
                clean_spaces = true;
                add_bos = true;
                add_eos = false;
                add_sep = true;
            }
        }
        if let Some(v) = m.bool_opt(k::ADD_SPACE_PREFIX)? {
            add_space_prefix = v;
        }
        let remove_extra_whitespaces = m.bool_opt(k::REMOVE_EXTRA_WHITESPACES)?.unwrap_or(false);

        // Token texts, scores, types.
        let tokens = m.array(k::TOKENS)?.ok_or_else(|| m.missing(k::TOKENS))?;
        let Some(strings) = tokens.strings() else {
            return Err(m.bad(
                k::TOKENS,
                format!("expected an array of strings, found {}", tokens.type_name()),
            ));
        };
        let n_tokens = tokens.len();
        if n_tokens > u32::MAX as u64 / 2 {
            return Err(m.bad(k::TOKENS, format!("{n_tokens} tokens is too many")));
        }
        let n = n_tokens as usize;

        let scores: Option<Vec<f32>> = match m.array(k::SCORES)? {
            None => None,
            Some(a) => {
                m.check_len(k::SCORES, a.len(), n_tokens)?;
                match a.elem_type() {
                    ValueType::F32 => a.to_vec::<f32>(),
                    ValueType::I32 => a
                        .to_vec::<i32>()
                        .map(|v| v.into_iter().map(|x| x as f32).collect()),
                    _ => None,
                }
                .map(Some)
                .ok_or_else(|| {
                    m.bad(
                        k::SCORES,
                        format!("expected array[f32] or array[i32], found {}", a.type_name()),
                    )
                })?
            }
        };
        let types: Option<Vec<i32>> = match m.array(k::TOKEN_TYPE)? {
            None => None,
            Some(a) => {
                m.check_len(k::TOKEN_TYPE, a.len(), n_tokens)?;
                Some(a.to_vec::<i32>().ok_or_else(|| {
                    m.bad(
                        k::TOKEN_TYPE,
                        format!("expected array[i32], found {}", a.type_name()),
                    )
                })?)
            }
        };

        let mut texts = Strings::with_capacity(n);
        let mut data = Vec::with_capacity(n);
        let mut token_to_id = TextIndex::with_capacity(n);
        let mut max_token_len = 0;
        for (i, word) in strings.enumerate() {
            let empty;
            let word: &[u8] = if word.is_empty() {
                empty = format!("[EMPTY_{i}]");
                empty.as_bytes()
            } else {
                word
            };
            if !texts.push(word) {
                return Err(m.bad(k::TOKENS, "token texts exceed 4 GiB"));
            }
            if let Err(first) = token_to_id.insert(&texts, i as TokenId) {
                return Err(TokenizerError::DuplicateToken {
                    file: m.file.clone(),
                    key: k::TOKENS.to_string(),
                    text: String::from_utf8_lossy(word).into_owned(),
                    first,
                    second: i as u32,
                });
            }
            max_token_len = max_token_len.max(word.len());
            let attr = match types.as_ref().map(|t| t[i]) {
                None => attr::NORMAL,
                Some(token_type::UNKNOWN) => attr::UNKNOWN,
                Some(token_type::UNUSED) => attr::UNUSED,
                Some(token_type::NORMAL) => attr::NORMAL,
                Some(token_type::CONTROL) => attr::CONTROL,
                Some(token_type::USER_DEFINED) => attr::USER_DEFINED,
                Some(token_type::BYTE) => attr::BYTE,
                Some(_) => attr::UNDEFINED,
            };
            data.push(TokenData {
                score: scores.as_ref().map_or(0.0, |s| s[i]),
                attr,
            });
        }

        // BPE merges.
        let mut merges = MergeTable::default();
        if vtype == VocabType::Bpe {
            let a = m.array(k::MERGES)?.ok_or_else(|| m.missing(k::MERGES))?;
            let Some(list) = a.strings() else {
                return Err(m.bad(
                    k::MERGES,
                    format!("expected an array of strings, found {}", a.type_name()),
                ));
            };
            merges = MergeTable::with_capacity(a.len() as usize);
            for w in list {
                // llama.cpp splits at the first space after the first byte.
                let (first, second): (&[u8], &[u8]) =
                    match w.iter().skip(1).position(|&b| b == b' ') {
                        Some(p) => (&w[..p + 1], &w[p + 2..]),
                        None => (b"", b""),
                    };
                if !merges.push(first, second) {
                    return Err(m.bad(k::MERGES, "merge texts exceed 4 GiB"));
                }
            }
        }

        // Special token ids: defaults (dropped when out of range), then the keys.
        let in_range = |id: Option<i64>| id.filter(|&x| (x as u64) < n_tokens);
        let mut eot = None;
        let mut eom = None;
        let mut fim = [None::<i64>; 6];
        bos = in_range(bos);
        eos = in_range(eos);
        unk = in_range(unk);
        sep = in_range(sep);
        pad = in_range(pad);
        mask = in_range(mask);
        {
            let set = |key: &str, slot: &mut Option<i64>| -> Result<()> {
                if let Some(v) = m.id_opt(key)? {
                    if (v as u64) < n_tokens {
                        *slot = Some(v);
                    }
                }
                Ok(())
            };
            set(k::BOS_ID, &mut bos)?;
            set(k::EOS_ID, &mut eos)?;
            set(k::EOT_ID, &mut eot)?;
            set(k::EOM_ID, &mut eom)?;
            set(k::UNK_ID, &mut unk)?;
            set(k::SEP_ID, &mut sep)?;
            set(k::PAD_ID, &mut pad)?;
            set(k::MASK_ID, &mut mask)?;
            let [fp, fs, fm, fpad, frep, fsep] = &mut fim;
            set(FIM_PRE_ID, fp)?;
            set(FIM_SUF_ID, fs)?;
            set(FIM_MID_ID, fm)?;
            set(FIM_PAD_ID, fpad)?;
            set(FIM_REP_ID, frep)?;
            set(FIM_SEP_ID, fsep)?;
            set(PREFIX_ID, fp)?;
            set(SUFFIX_ID, fs)?;
            set(MIDDLE_ID, fm)?;
            let mut cls = None;
            set(k::CLS_ID, &mut cls)?;
            sp.cls = cls.map(|x| x as TokenId);
        }
        let id = |x: Option<i64>| x.map(|v| v as TokenId);
        sp.bos = id(bos);
        sp.eos = id(eos);
        sp.eot = id(eot);
        sp.eom = id(eom);
        sp.unk = id(unk);
        sp.sep = id(sep);
        sp.pad = id(pad);
        sp.mask = id(mask);
        sp.fim_pre = id(fim[0]);
        sp.fim_suf = id(fim[1]);
        sp.fim_mid = id(fim[2]);
        sp.fim_pad = id(fim[3]);
        sp.fim_rep = id(fim[4]);
        sp.fim_sep = id(fim[5]);
        if sp.cls.is_none() && vtype == VocabType::Wpm {
            sp.cls = sp.bos;
        }

        if let Some(v) = m.bool_opt(k::ADD_BOS)? {
            add_bos = v;
        }
        if let Some(v) = m.bool_opt(k::ADD_EOS)? {
            add_eos = v;
        }
        if let Some(v) = m.bool_opt(k::ADD_SEP)? {
            add_sep = v;
        }
        if pre_name == "gemma4" || pre_name == "granite-embed-multi-311m" {
            add_bos = true;
        }
        for (on, slot, key, id_key) in [
            (add_bos, sp.bos, k::ADD_BOS, k::BOS_ID),
            (add_eos, sp.eos, k::ADD_EOS, k::EOS_ID),
            (add_sep, sp.sep, k::ADD_SEP, k::SEP_ID),
        ] {
            if on && slot.is_none() {
                return Err(TokenizerError::MissingSpecialToken {
                    file: m.file.clone(),
                    key: key.to_string(),
                    id_key: id_key.to_string(),
                });
            }
        }

        let lowercase = m.bool_opt(NORMALIZER_LOWERCASE)?.unwrap_or(true);
        let strip_accents = m.bool_opt(NORMALIZER_STRIP_ACCENTS)?.unwrap_or(lowercase);

        let mut t = Tokenizer {
            vtype,
            model: model.to_string(),
            pre_name,
            pre,
            texts,
            data,
            token_to_id,
            merges,
            special: sp,
            eog: Vec::new(),
            special_cache: Vec::new(),
            pieces: Vec::new(),
            piece_offs: Vec::new(),
            add_bos,
            add_eos,
            add_sep,
            add_space_prefix,
            remove_extra_whitespaces,
            clean_spaces,
            ignore_merges,
            escape_whitespaces,
            lowercase,
            strip_accents,
            max_token_len,
        };
        t.detect_special_tokens();
        t.build_caches();
        let model_name = m.str_opt(ferrite_gguf::keys::general::NAME)?.unwrap_or("");
        let arch = m
            .str_opt(ferrite_gguf::keys::general::ARCHITECTURE)?
            .unwrap_or("");
        t.apply_model_attrs(&model_name.to_lowercase(), arch);
        t.special.nl = t.find_newline();
        Ok(t)
    }

    fn find_id(&self, text: &str) -> Option<TokenId> {
        self.token_to_id.find(&self.texts, text.as_bytes())
    }

    fn make_control(&mut self, id: TokenId) {
        self.data[id as usize].attr |= attr::CONTROL;
    }

    /// llama.cpp's text-based detection of EOT/EOM/FIM tokens, unused tokens and the
    /// end-of-generation set. llama.cpp walks an unordered map; where several candidates exist
    /// (e.g. `<|im_end|>` and `<|endoftext|>` for EOT) this takes the lowest id.
    fn detect_special_tokens(&mut self) {
        let n = self.n_tokens();
        // One pass over the vocabulary; every candidate text starts with one of these bytes.
        type Slot = fn(&mut SpecialTokens) -> &mut Option<TokenId>;
        let lists: [(Slot, &[&str]); 8] = [
            (|s| &mut s.eot, EOT_TEXTS),
            (|s| &mut s.eom, EOM_TEXTS),
            (|s| &mut s.fim_pre, FIM_PRE_TEXTS),
            (|s| &mut s.fim_suf, FIM_SUF_TEXTS),
            (|s| &mut s.fim_mid, FIM_MID_TEXTS),
            (|s| &mut s.fim_pad, FIM_PAD_TEXTS),
            (|s| &mut s.fim_rep, FIM_REP_TEXTS),
            (|s| &mut s.fim_sep, FIM_SEP_TEXTS),
        ];
        let preset: Vec<bool> = lists
            .iter()
            .map(|(slot, _)| slot(&mut self.special).is_some())
            .collect();
        let mut eog_by_text: Vec<TokenId> = Vec::new();
        for id in 0..n as TokenId {
            let text = self.token_text(id);
            if !matches!(text.first(), Some(b'<' | b'[' | b'_' | 0xE2)) {
                continue;
            }
            let hits: Vec<usize> = (0..lists.len())
                .filter(|&i| !preset[i] && lists[i].1.iter().any(|s| s.as_bytes() == text))
                .collect();
            if EOG_TEXTS.iter().any(|s| s.as_bytes() == text) {
                eog_by_text.push(id);
            }
            for i in hits {
                let slot = lists[i].0;
                if slot(&mut self.special).is_none() {
                    *slot(&mut self.special) = Some(id);
                    self.make_control(id);
                }
            }
        }

        // Control tokens whose text says "unused" are unused.
        for id in 0..n {
            let a = self.data[id].attr;
            if a & attr::CONTROL != 0
                && a & attr::UNUSED == 0
                && memchr::memmem::find(self.token_text(id as TokenId), b"unused").is_some()
            {
                self.data[id].attr |= attr::UNUSED;
            }
        }

        let mut eog: Vec<TokenId> = Vec::new();
        for s in [
            self.special.fim_pad,
            self.special.fim_rep,
            self.special.fim_sep,
        ]
        .into_iter()
        .flatten()
        {
            eog.push(s);
        }
        for id in eog_by_text {
            eog.push(id);
            self.make_control(id);
        }
        // gpt-oss: these are always rendered.
        for text in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"] {
            if let Some(id) = self.find_id(text) {
                self.data[id as usize].attr = attr::USER_DEFINED;
            }
        }
        for s in [self.special.eos, self.special.eot, self.special.eom]
            .into_iter()
            .flatten()
        {
            eog.push(s);
        }
        eog.sort_unstable();
        eog.dedup();
        // o200k_harmony / solar-open: "<|end|>" is not end-of-generation there.
        let has = |t: &Tokenizer, eog: &[TokenId], text: &str| {
            t.find_id(text)
                .is_some_and(|id| eog.binary_search(&id).is_ok())
        };
        if has(self, &eog, "<|end|>") {
            let call = has(self, &eog, "<|call|>") || has(self, &eog, "<|calls|>");
            if call && (has(self, &eog, "<|return|>") || has(self, &eog, "<|flush|>")) {
                if let Some(end) = self.find_id("<|end|>") {
                    eog.retain(|&x| x != end);
                    self.data[end as usize].attr = attr::USER_DEFINED;
                }
            }
        }
        // gemma4 / paddleocr: "</s>" is not end-of-generation when "<|tool_response>" is.
        if has(self, &eog, "<|tool_response>") && has(self, &eog, "</s>") {
            if let Some(s) = self.find_id("</s>") {
                eog.retain(|&x| x != s);
                self.data[s as usize].attr = attr::NORMAL;
            }
        }
        self.eog = eog;
    }

    fn build_caches(&mut self) {
        let n = self.n_tokens();
        let mut cache: Vec<TokenId> = (0..n as TokenId)
            .filter(|&id| {
                self.data[id as usize].attr & (attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN)
                    != 0
            })
            .collect();
        cache.sort_by_key(|&id| std::cmp::Reverse(self.token_text(id).len()));
        self.special_cache = cache;

        let mut pieces = Vec::with_capacity(self.texts.buf.len());
        let mut offs = Vec::with_capacity(n + 1);
        offs.push(0u32);
        for id in 0..n as TokenId {
            self.compute_piece(id, &mut pieces);
            offs.push(pieces.len().min(u32::MAX as usize) as u32);
        }
        self.pieces = pieces;
        self.piece_offs = offs;
    }

    /// llama.cpp's per-model attribute fix-ups (after the caches, as llama.cpp does).
    fn apply_model_attrs(&mut self, model_name: &str, arch: &str) {
        let pre = self.pre_name.clone();
        if ["jina-v2-de", "jina-v2-es", "jina-v2-code"]
            .iter()
            .any(|s| pre.contains(s))
            || ["nomic-bert-moe", "jina-bert-v3"]
                .iter()
                .any(|s| arch.contains(s))
        {
            if let Some(id) = self.find_id("<mask>") {
                self.data[id as usize].attr |= attr::LSTRIP;
            }
        } else if model_name.contains("phi-3") || model_name.contains("phi3") {
            for i in 0..self.special_cache.len() {
                let id = self.special_cache[i];
                self.data[id as usize].attr |= attr::RSTRIP;
            }
            if let Some(id) = self.find_id("</s>") {
                self.data[id as usize].attr |= attr::RSTRIP;
            }
            for t in ["<unk>", "<s>", "<|endoftext|>"] {
                if let Some(id) = self.find_id(t) {
                    self.data[id as usize].attr &= !attr::RSTRIP;
                }
            }
        } else if model_name.contains("modern-bert") {
            if let Some(id) = self.find_id("[MASK]") {
                self.data[id as usize].attr |= attr::LSTRIP;
            }
        }
    }

    fn find_newline(&self) -> Option<TokenId> {
        match self.vtype {
            VocabType::Spm => self.byte_to_token(b'\n').or(self.special.pad),
            VocabType::Wpm => self.special.pad,
            VocabType::Bpe => self
                .tokenize("\n", false, false)
                .first()
                .copied()
                .or(self.special.pad),
        }
    }

    // ---------------------------------------------------------------- accessors

    pub fn vocab_type(&self) -> VocabType {
        self.vtype
    }
    /// `tokenizer.ggml.model`.
    pub fn model(&self) -> &str {
        &self.model
    }
    /// `tokenizer.ggml.pre` (empty when absent).
    pub fn pre(&self) -> &str {
        &self.pre_name
    }
    pub fn n_tokens(&self) -> usize {
        self.data.len()
    }
    pub fn n_merges(&self) -> usize {
        self.merges.len()
    }
    /// The token's text as stored in the vocabulary (`▁` and byte-level encodings included).
    pub fn token_text(&self, id: TokenId) -> &[u8] {
        self.texts.get(id)
    }
    pub fn token_score(&self, id: TokenId) -> f32 {
        self.data.get(id as usize).map_or(0.0, |d| d.score)
    }
    /// The token's [`attr`] bits (0 for an id out of range).
    pub fn token_attr(&self, id: TokenId) -> u32 {
        self.data
            .get(id as usize)
            .map_or(attr::UNDEFINED, |d| d.attr)
    }
    /// The id of a token text, if it is in the vocabulary.
    pub fn token_id(&self, text: &[u8]) -> Option<TokenId> {
        self.token_to_id.find(&self.texts, text)
    }
    pub fn special(&self) -> &SpecialTokens {
        &self.special
    }
    pub fn bos(&self) -> Option<TokenId> {
        self.special.bos
    }
    pub fn eos(&self) -> Option<TokenId> {
        self.special.eos
    }
    /// End of generation: EOS, EOT, EOM and the tokens llama.cpp recognises by text
    /// (`<|im_end|>`, `<|endoftext|>`, `<end_of_turn>`, `<|eot_id|>`, ...).
    pub fn is_eog(&self, id: TokenId) -> bool {
        self.eog.binary_search(&id).is_ok()
    }
    /// The end-of-generation set, ascending.
    pub fn eog_ids(&self) -> &[TokenId] {
        &self.eog
    }
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }
    pub fn add_sep(&self) -> bool {
        self.add_sep
    }
    pub fn add_space_prefix(&self) -> bool {
        self.add_space_prefix
    }
    /// Whether detokenization applies llama.cpp's `clean_up_tokenization_spaces` passes.
    pub fn clean_spaces(&self) -> bool {
        self.clean_spaces
    }
    /// `tokenizer.ggml.remove_extra_whitespaces` (read; only llama.cpp's UGM uses it).
    pub fn remove_extra_whitespaces(&self) -> bool {
        self.remove_extra_whitespaces
    }

    // ---------------------------------------------------------------- tokenize

    /// Tokenize like `llama_tokenize`: `add_special` adds BOS/EOS (SEP for WPM) as the model
    /// says; `parse_special` matches control tokens in the text (user-defined tokens are
    /// always matched).
    pub fn tokenize(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<TokenId> {
        let raw = text.as_bytes();
        let frags = if raw.is_empty() {
            Vec::new()
        } else {
            self.partition(raw, parse_special)
        };
        let mut out = Vec::new();
        match self.vtype {
            VocabType::Spm => {
                let mut is_prev_special = true;
                if add_special && self.add_bos {
                    out.extend(self.special.bos);
                }
                let mut buf = Vec::new();
                for f in &frags {
                    match *f {
                        Frag::Text(o, l) => {
                            buf.clear();
                            if self.add_space_prefix && is_prev_special {
                                buf.extend_from_slice("▁".as_bytes());
                            }
                            escape_whitespace(&raw[o..o + l], &mut buf);
                            self.spm_tokenize(&buf, &mut out);
                            is_prev_special = false;
                        }
                        Frag::Token(id) => {
                            out.push(id);
                            is_prev_special = true;
                        }
                    }
                }
                if add_special && self.add_eos {
                    out.extend(self.special.eos);
                }
            }
            VocabType::Bpe => {
                if add_special && self.add_bos {
                    out.extend(self.special.bos);
                }
                let mut esc = Vec::new();
                for f in &frags {
                    match *f {
                        Frag::Text(o, l) => {
                            let piece = &text[o..o + l];
                            if self.escape_whitespaces {
                                esc.clear();
                                escape_whitespace(piece.as_bytes(), &mut esc);
                                // Escaping keeps the text valid UTF-8.
                                let s = String::from_utf8_lossy(&esc).into_owned();
                                self.bpe_tokenize(&s, &mut out);
                            } else {
                                self.bpe_tokenize(piece, &mut out);
                            }
                        }
                        Frag::Token(id) => out.push(id),
                    }
                }
                if add_special && self.add_eos {
                    out.extend(self.special.eos);
                }
            }
            VocabType::Wpm => {
                if add_special {
                    out.extend(self.special.bos);
                }
                for f in &frags {
                    match *f {
                        Frag::Text(o, l) => self.wpm_tokenize(&text[o..o + l], &mut out),
                        Frag::Token(id) => out.push(id),
                    }
                }
                if add_special {
                    out.extend(self.special.sep);
                }
            }
        }
        out
    }

    /// llama.cpp's `tokenizer_st_partition`: cut the special tokens out of the text, longest
    /// first. Fragment boundaries fall on special-token boundaries, which are UTF-8 boundaries
    /// since token texts are UTF-8.
    fn partition(&self, raw: &[u8], parse_special: bool) -> Vec<Frag> {
        let mut frags = vec![Frag::Text(0, raw.len())];
        for &sid in &self.special_cache {
            let a = self.data[sid as usize].attr;
            if !parse_special && a & (attr::CONTROL | attr::UNKNOWN) != 0 {
                continue;
            }
            let pat = self.token_text(sid);
            if pat.is_empty() || !frags.iter().any(|f| matches!(f, Frag::Text(..))) {
                continue;
            }
            let finder = memchr::memmem::Finder::new(pat);
            let mut out = Vec::with_capacity(frags.len() + 2);
            for f in frags {
                let Frag::Text(off, len) = f else {
                    out.push(f);
                    continue;
                };
                let (mut base, mut blen) = (off, len);
                loop {
                    let Some(m) = finder.find(&raw[base..base + blen]) else {
                        if blen > 0 {
                            out.push(Frag::Text(base, blen));
                        }
                        break;
                    };
                    let mstart = base + m;
                    let mut left = m;
                    if a & attr::LSTRIP != 0 {
                        while left > 0 && is_c_space(raw[base + left - 1]) {
                            left -= 1;
                        }
                    }
                    if left > 0 {
                        out.push(Frag::Text(base, left));
                    }
                    out.push(Frag::Token(sid));
                    let mut rstart = mstart + pat.len();
                    let end = base + blen;
                    if rstart >= end {
                        break;
                    }
                    let mut rlen = end - rstart;
                    if a & attr::RSTRIP != 0 {
                        while rlen > 0 && is_c_space(raw[rstart]) {
                            rstart += 1;
                            rlen -= 1;
                        }
                    }
                    base = rstart;
                    blen = rlen;
                }
            }
            frags = out;
        }
        frags
    }

    fn byte_to_token(&self, b: u8) -> Option<TokenId> {
        match self.vtype {
            VocabType::Spm => {
                let hex = format!("<0x{b:02X}>");
                self.token_to_id
                    .find(&self.texts, hex.as_bytes())
                    .or_else(|| self.token_to_id.find(&self.texts, &[b]))
            }
            VocabType::Bpe | VocabType::Wpm => {
                let mut enc = Vec::new();
                unicode::byte_encode(&[b], &mut enc);
                self.token_to_id.find(&self.texts, &enc)
            }
        }
    }

    /// llama.cpp's `llm_tokenizer_spm_session::tokenize` on an escaped fragment.
    fn spm_tokenize(&self, text: &[u8], out: &mut Vec<TokenId>) {
        #[derive(Clone, Copy)]
        struct Sym {
            start: usize,
            n: usize,
            prev: isize,
            next: isize,
        }
        struct Bigram {
            left: usize,
            right: usize,
            score: f32,
            size: usize,
        }
        impl PartialEq for Bigram {
            fn eq(&self, o: &Self) -> bool {
                self.cmp(o) == Ordering::Equal
            }
        }
        impl Eq for Bigram {}
        impl PartialOrd for Bigram {
            fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
                Some(self.cmp(o))
            }
        }
        impl Ord for Bigram {
            // Highest score first; on ties, the leftmost.
            fn cmp(&self, o: &Self) -> Ordering {
                self.score
                    .total_cmp(&o.score)
                    .then_with(|| o.left.cmp(&self.left))
            }
        }

        let mut syms: Vec<Sym> = Vec::with_capacity(text.len());
        let mut offs = 0;
        while offs < text.len() {
            let n = unicode::utf8_len(text[offs]).min(text.len() - offs);
            let idx = syms.len() as isize;
            offs += n;
            syms.push(Sym {
                start: offs - n,
                n,
                prev: idx - 1,
                next: if offs == text.len() { -1 } else { idx + 1 },
            });
        }
        let mut queue = BinaryHeap::new();
        let try_add = |syms: &[Sym], queue: &mut BinaryHeap<Bigram>, l: isize, r: isize| {
            if l < 0 || r < 0 {
                return;
            }
            let (l, r) = (l as usize, r as usize);
            let s = syms[l].start;
            let size = syms[l].n + syms[r].n;
            let Some(id) = self.token_to_id.find(&self.texts, &text[s..s + size]) else {
                return;
            };
            queue.push(Bigram {
                left: l,
                right: r,
                score: self.data[id as usize].score,
                size,
            });
        };
        for i in 1..syms.len() {
            try_add(&syms, &mut queue, i as isize - 1, i as isize);
        }
        while let Some(b) = queue.pop() {
            let (ln, rn) = (syms[b.left].n, syms[b.right].n);
            if ln == 0 || rn == 0 || ln + rn != b.size {
                continue;
            }
            syms[b.left].n += rn;
            syms[b.right].n = 0;
            let rnext = syms[b.right].next;
            syms[b.left].next = rnext;
            if rnext >= 0 {
                syms[rnext as usize].prev = b.left as isize;
            }
            let lprev = syms[b.left].prev;
            try_add(&syms, &mut queue, lprev, b.left as isize);
            try_add(&syms, &mut queue, b.left as isize, rnext);
        }
        // Every merged symbol is a token by construction; a symbol that is not one is a single
        // character absent from the vocabulary, which llama.cpp's `resegment` writes as bytes.
        let mut i: isize = if syms.is_empty() { -1 } else { 0 };
        while i >= 0 {
            let s = syms[i as usize];
            let piece = &text[s.start..s.start + s.n];
            match self.token_to_id.find(&self.texts, piece) {
                Some(id) => out.push(id),
                None => {
                    for &byte in piece {
                        // llama.cpp throws when a byte has no token; ferrite falls back to UNK.
                        if let Some(id) = self.byte_to_token(byte).or(self.special.unk) {
                            out.push(id);
                        }
                    }
                }
            }
            i = s.next;
        }
    }

    /// llama.cpp's `llm_tokenizer_bpe_session::tokenize` on one text fragment.
    fn bpe_tokenize(&self, text: &str, out: &mut Vec<TokenId>) {
        let Some(pre) = &self.pre else { return };
        #[derive(Clone, Copy)]
        struct Sym {
            start: usize,
            n: usize,
            prev: isize,
            next: isize,
        }
        #[derive(PartialEq, Eq)]
        struct Bigram {
            rank: u32,
            left: usize,
            right: usize,
            ln: usize,
            rn: usize,
        }
        impl PartialOrd for Bigram {
            fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
                Some(self.cmp(o))
            }
        }
        impl Ord for Bigram {
            // Lowest rank first; on ties, the leftmost.
            fn cmp(&self, o: &Self) -> Ordering {
                o.rank.cmp(&self.rank).then_with(|| o.left.cmp(&self.left))
            }
        }
        let mut syms: Vec<Sym> = Vec::new();
        let mut queue = BinaryHeap::new();
        for word in pre.split(text) {
            let w = &word[..];
            syms.clear();
            queue.clear();
            if self.ignore_merges {
                if let Some(id) = self.token_to_id.find(&self.texts, w) {
                    out.push(id);
                    continue;
                }
            }
            let mut offset = 0;
            while offset < w.len() {
                let n = unicode::utf8_len(w[offset]).min(w.len() - offset);
                let idx = syms.len() as isize;
                syms.push(Sym {
                    start: offset,
                    n,
                    prev: idx - 1,
                    next: if offset + n == w.len() { -1 } else { idx + 1 },
                });
                offset += n;
            }
            let add = |syms: &[Sym], queue: &mut BinaryHeap<Bigram>, l: isize, r: isize| {
                if l < 0 || r < 0 {
                    return;
                }
                let (a, b) = (&syms[l as usize], &syms[r as usize]);
                let rank = self
                    .merges
                    .rank(&w[a.start..a.start + a.n], &w[b.start..b.start + b.n]);
                if let Some(rank) = rank {
                    queue.push(Bigram {
                        rank,
                        left: l as usize,
                        right: r as usize,
                        ln: a.n,
                        rn: b.n,
                    });
                }
            };
            for i in 1..syms.len() {
                add(&syms, &mut queue, i as isize - 1, i as isize);
            }
            while let Some(b) = queue.pop() {
                let (l, r) = (syms[b.left], syms[b.right]);
                if l.n == 0 || r.n == 0 || l.n != b.ln || r.n != b.rn {
                    continue;
                }
                let merged = &mut syms[b.left];
                merged.n += r.n;
                merged.next = r.next;
                let prev = merged.prev;
                syms[b.right].n = 0;
                if r.next >= 0 {
                    syms[r.next as usize].prev = b.left as isize;
                }
                add(&syms, &mut queue, prev, b.left as isize);
                add(&syms, &mut queue, b.left as isize, r.next);
            }
            for s in syms.iter().filter(|s| s.n > 0) {
                match self
                    .token_to_id
                    .find(&self.texts, &w[s.start..s.start + s.n])
                {
                    Some(id) => out.push(id),
                    None => {
                        for &byte in &w[s.start..s.start + s.n] {
                            let id = if pre.byte_encode {
                                self.token_to_id.find(&self.texts, &[byte])
                            } else {
                                self.find_id(&format!("<0x{byte:02X}>"))
                            };
                            out.extend(id);
                        }
                    }
                }
            }
        }
    }

    /// llama.cpp's `llm_tokenizer_wpm_session::tokenize`.
    fn wpm_tokenize(&self, text: &str, out: &mut Vec<TokenId>) {
        let mut word1 = Vec::new();
        for word in self.wpm_preprocess(text) {
            if word.is_empty() {
                continue;
            }
            word1.clear();
            word1.extend_from_slice("▁".as_bytes());
            word1.extend_from_slice(word.as_bytes());
            let n = word1.len();
            let current = out.len();
            let mut i = 0;
            while i < n {
                let mut matched = false;
                let mut j = n.min(i + self.max_token_len + 1);
                while j > i {
                    if let Some(id) = self.token_to_id.find(&self.texts, &word1[i..j]) {
                        out.push(id);
                        matched = true;
                        i = j - 1;
                        break;
                    }
                    j -= 1;
                }
                if !matched {
                    out.truncate(current);
                    break;
                }
                i += 1;
            }
            if out.len() == current {
                out.extend(self.special.unk);
            }
        }
    }

    fn wpm_preprocess(&self, text: &str) -> Vec<String> {
        let mut words = vec![String::new()];
        for c in text.chars() {
            let mut cpt = c as u32;
            if self.strip_accents {
                cpt = unicode::nfd_first(cpt);
            }
            let f = unicode::flags(cpt);
            if f.is_whitespace() {
                if !words.last().is_some_and(|w| w.is_empty()) {
                    words.push(String::new());
                }
                continue;
            }
            if cpt == 0 || cpt == 0xFFFD || f.is_control() {
                continue;
            }
            if self.strip_accents && f.is_accent_mark() {
                continue;
            }
            let out_cpt = if self.lowercase {
                unicode::to_lower(cpt)
            } else {
                cpt
            };
            let ch = char::from_u32(out_cpt).unwrap_or('\u{FFFD}');
            if f.is_punctuation() || (cpt < 0x7F && f.is_symbol()) || is_chinese_char(cpt) {
                if !words.last().is_some_and(|w| w.is_empty()) {
                    words.push(String::new());
                }
                if let Some(last) = words.last_mut() {
                    last.push(ch);
                }
                words.push(String::new());
            } else if let Some(last) = words.last_mut() {
                last.push(ch);
            }
        }
        if words.last().is_some_and(|w| w.is_empty()) {
            words.pop();
        }
        words
    }

    // ---------------------------------------------------------------- detokenize

    fn compute_piece(&self, id: TokenId, out: &mut Vec<u8>) {
        let a = self.data[id as usize].attr;
        let text = self.token_text(id);
        if a & (attr::UNKNOWN | attr::CONTROL | attr::USER_DEFINED) != 0 {
            out.extend_from_slice(text);
        } else if a & attr::NORMAL != 0 {
            if self.vtype == VocabType::Bpe && !self.escape_whitespaces {
                decode_byte_level(text, out);
            } else {
                unescape_whitespace(text, out);
            }
        } else if a & attr::BYTE != 0 {
            out.push(parse_hex_byte(text));
        }
    }

    fn piece(&self, id: TokenId) -> &[u8] {
        let i = id as usize;
        if i + 1 >= self.piece_offs.len() {
            return &[];
        }
        &self.pieces[self.piece_offs[i] as usize..self.piece_offs[i + 1] as usize]
    }

    /// The bytes of one token, like `llama_token_to_piece(id, lstrip = 0, special)`: control and
    /// unknown tokens are empty unless `special`; an id out of range is empty.
    pub fn token_to_piece(&self, id: TokenId, special: bool) -> Vec<u8> {
        self.piece_lstrip(id, special, false).to_vec()
    }

    fn piece_lstrip(&self, id: TokenId, special: bool, lstrip: bool) -> &[u8] {
        if !special && self.token_attr(id) & (attr::UNKNOWN | attr::CONTROL) != 0 {
            return &[];
        }
        let p = self.piece(id);
        if lstrip && p.first() == Some(&b' ') {
            &p[1..]
        } else {
            p
        }
    }

    /// The raw concatenation `llama_detokenize` builds before its space clean-up: the first
    /// piece loses its leading space when the vocab adds a space prefix.
    fn raw_detokenize(
        &self,
        ids: &[TokenId],
        remove_special: bool,
        unparse_special: bool,
    ) -> Vec<u8> {
        let mut ids = ids;
        let mut remove_space = self.add_space_prefix;
        if remove_special && self.add_bos {
            if let (Some(&first), Some(bos)) = (ids.first(), self.special.bos) {
                if first == bos {
                    remove_space = false;
                    ids = &ids[1..];
                }
            }
        }
        if remove_special && self.add_eos {
            if let (Some(&last), Some(eos)) = (ids.last(), self.special.eos) {
                if last == eos {
                    ids = &ids[..ids.len() - 1];
                }
            }
        }
        let mut out = Vec::new();
        for &id in ids {
            out.extend_from_slice(self.piece_lstrip(id, unparse_special, remove_space));
            remove_space = false;
        }
        out
    }

    /// Like `llama_detokenize`: concatenated pieces, the leading space removed for vocabs with
    /// a space prefix, leading BOS / trailing EOS dropped with `remove_special` (when the model
    /// adds them), control tokens rendered with `unparse_special`, and the
    /// `clean_up_tokenization_spaces` passes for the vocabs that use them.
    pub fn detokenize(
        &self,
        ids: &[TokenId],
        remove_special: bool,
        unparse_special: bool,
    ) -> Vec<u8> {
        let mut text = self.raw_detokenize(ids, remove_special, unparse_special);
        if self.clean_spaces {
            clean_spaces(&mut text);
        }
        text
    }

    /// [`detokenize`](Self::detokenize) as a `String` (invalid UTF-8 replaced by U+FFFD).
    pub fn detokenize_string(
        &self,
        ids: &[TokenId],
        remove_special: bool,
        unparse_special: bool,
    ) -> String {
        String::from_utf8_lossy(&self.detokenize(ids, remove_special, unparse_special)).into_owned()
    }

    /// A streaming detokenizer over this vocabulary (see [`StreamingDetokenizer`]).
    pub fn streaming(&self, unparse_special: bool) -> StreamingDetokenizer<'_> {
        StreamingDetokenizer::new(self, unparse_special)
    }
}

#[derive(Debug, Clone, Copy)]
enum Frag {
    /// Byte offset and length in the raw text.
    Text(usize, usize),
    Token(TokenId),
}

/// C `isspace` in the "C" locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

fn escape_whitespace(text: &[u8], out: &mut Vec<u8>) {
    for &b in text {
        if b == b' ' {
            out.extend_from_slice("▁".as_bytes());
        } else {
            out.push(b);
        }
    }
}

fn unescape_whitespace(text: &[u8], out: &mut Vec<u8>) {
    let esc = "▁".as_bytes();
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with(esc) {
            out.push(b' ');
            i += esc.len();
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
}

/// `strtol(text.substr(3, 2), 16)` as llama.cpp reads `<0xXX>` (0 when it is not hex).
fn parse_hex_byte(text: &[u8]) -> u8 {
    let digits = text.get(3..text.len().min(5)).unwrap_or(&[]);
    let mut v: u32 = 0;
    for &d in digits {
        match (d as char).to_digit(16) {
            Some(x) => v = v * 16 + x,
            None => break,
        }
    }
    v as u8
}

/// llama.cpp's `llama_decode_text`: byte-level alphabet back to bytes.
fn decode_byte_level(text: &[u8], out: &mut Vec<u8>) {
    for c in String::from_utf8_lossy(text).chars() {
        match unicode::cpt_to_byte(c as u32) {
            Some(b) => out.push(b),
            None => {
                out.extend_from_slice(b"[UNK_BYTE_0x");
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.extend_from_slice(format!("{b:02x}").as_bytes());
                }
                out.extend_from_slice(text);
                out.push(b']');
            }
        }
    }
}

/// llama.cpp's three `clean_spaces` passes of `llama_detokenize`, in place.
fn clean_spaces(text: &mut Vec<u8>) {
    // Pass 1: " ?", " !", " .", " ," lose the space.
    let n = text.len();
    let mut total = usize::from(n > 0);
    for i in 1..n {
        let x = text[i];
        if text[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            total -= 1;
        }
        text[total] = x;
        total += 1;
    }
    text.truncate(total);
    // Pass 2: a single apostrophe between spaces loses both spaces.
    let n = text.len();
    let mut total = usize::from(n > 0);
    let mut i = 1;
    while i < n {
        let x = text[i];
        if x == b'\'' && i + 1 < n && text[i - 1] == b' ' && text[i + 1] == b' ' {
            total -= 1;
            i += 1;
            text[i] = 0;
        }
        text[total] = x;
        total += 1;
        i += 1;
    }
    text.truncate(total);
    // Pass 3: " 's", " 'm", " 're", " 've" lose the space.
    let n = text.len();
    let mut total = usize::from(n > 0);
    for i in 1..n {
        let x = text[i];
        if text[i - 1] == b' ' && x == b'\'' && i + 1 < n {
            let x1 = text[i + 1];
            if x1 == b's' || x1 == b'm' {
                total -= 1;
            } else if x1 != b't' && x1 != b'd' && i + 2 < n {
                let x2 = text[i + 2];
                if (x1 == b'r' || x1 == b'v') && x2 == b'e' {
                    total -= 1;
                }
            }
        }
        text[total] = x;
        total += 1;
    }
    text.truncate(total);
}

fn is_chinese_char(cpt: u32) -> bool {
    (0x04E00..=0x09FFF).contains(&cpt)
        || (0x03400..=0x04DBF).contains(&cpt)
        || (0x20000..=0x2A6DF).contains(&cpt)
        || (0x2A700..=0x2B73F).contains(&cpt)
        || (0x2B740..=0x2B81F).contains(&cpt)
        || (0x2B920..=0x2CEAF).contains(&cpt)
        || (0x0F900..=0x0FAFF).contains(&cpt)
        || (0x2F800..=0x2FA1F).contains(&cpt)
}

#[cfg(test)]
pub(crate) use clean_spaces as clean_spaces_in_place;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_spaces_passes() {
        let run = |s: &str| {
            let mut v = s.as_bytes().to_vec();
            clean_spaces(&mut v);
            String::from_utf8(v).unwrap()
        };
        assert_eq!(run("Hello , world !"), "Hello, world!");
        assert_eq!(run(" ?"), "?");
        assert_eq!(run("a ' b"), "a'b");
        assert_eq!(
            run("it 's I 'm we 're they 've I 'll"),
            "it's I'm we're they've I 'll"
        );
        assert_eq!(run(""), "");
    }

    #[test]
    fn hex_byte() {
        assert_eq!(parse_hex_byte(b"<0x0A>"), 10);
        assert_eq!(parse_hex_byte(b"<0xfF>"), 255);
        assert_eq!(parse_hex_byte(b"<0x>"), 0);
    }
}
