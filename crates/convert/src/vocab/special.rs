//! gguf-py's `SpecialVocab`: merges, special token ids, add_bos/add_eos/add_sep and the chat
//! template, from tokenizer.json, tokenizer_config.json, chat_template.{jinja,json} and
//! config.json, with the same precedence.

use std::path::Path;

use ferrite_gguf::keys::tokenizer as tk;
use serde_json::Value as Json;

use crate::error::{ConvertError, Result};
use crate::hf::{read_json_opt, read_text_opt};
use crate::meta::Kv;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ChatTemplate {
    One(String),
    /// `[{name, template}]`, the first named `default`.
    Named(Vec<(String, String)>),
}

#[derive(Debug, Default)]
pub(crate) struct SpecialVocab {
    pub merges: Vec<String>,
    /// In insertion order (the order gguf-py writes them).
    pub ids: Vec<(String, u32)>,
    pub add: Vec<(String, bool)>,
    pub chat_template: Option<ChatTemplate>,
    /// tokenizer.json's normalizer flags (Lowercase / StripAccents / BertNormalizer).
    pub normalizer_lowercase: Option<bool>,
    pub normalizer_strip_accents: Option<bool>,
    types: Vec<String>,
    n_vocab: Option<usize>,
}

fn truthy(v: Option<&Json>) -> bool {
    match v {
        None | Some(Json::Null) => false,
        Some(Json::Bool(b)) => *b,
        Some(Json::String(s)) => !s.is_empty(),
        Some(Json::Array(a)) => !a.is_empty(),
        Some(Json::Object(o)) => !o.is_empty(),
        Some(Json::Number(n)) => n.as_f64() != Some(0.0),
    }
}

fn special_id(entry: &Json) -> Option<&str> {
    entry.get("SpecialToken")?.get("id")?.as_str()
}

/// Python `x in (a, b)` where `x` is a string and `a`, `b` JSON values.
fn is_one_of(x: &str, cands: &[&Option<Json>]) -> bool {
    cands
        .iter()
        .any(|c| matches!(c, Some(Json::String(s)) if s == x))
}

impl SpecialVocab {
    pub fn load(dir: &Path, load_merges: bool, n_vocab: Option<usize>) -> Result<SpecialVocab> {
        let mut sv = SpecialVocab {
            types: ["bos", "eos", "unk", "sep", "pad", "cls", "mask"]
                .map(String::from)
                .to_vec(),
            n_vocab,
            ..Default::default()
        };
        sv.read_tokenizer_json(dir, load_merges)?;
        sv.read_config_json(dir)?;
        if load_merges && sv.merges.is_empty() {
            sv.read_merges_txt(dir)?;
        }
        Ok(sv)
    }

    /// gguf-py's `_parse_normalizer`: a standalone Lowercase/StripAccents, a BertNormalizer's
    /// attributes, or either nested in a Sequence.
    fn parse_normalizer(&mut self, n: &Json) {
        match n.get("type").and_then(Json::as_str) {
            Some("Lowercase") => self.normalizer_lowercase = Some(true),
            Some("StripAccents") => self.normalizer_strip_accents = Some(true),
            Some("BertNormalizer") => {
                if let Some(v) = n.get("lowercase") {
                    self.normalizer_lowercase = v.as_bool();
                }
                if let Some(v) = n.get("strip_accents") {
                    self.normalizer_strip_accents = v.as_bool();
                }
            }
            Some("Sequence") => {
                if let Some(Json::Array(list)) = n.get("normalizers") {
                    for m in list {
                        self.parse_normalizer(m);
                    }
                }
            }
            _ => {}
        }
    }

    fn set_add(&mut self, typ: &str, v: bool) {
        match self.add.iter_mut().find(|(t, _)| t == typ) {
            Some(slot) => slot.1 = v,
            None => self.add.push((typ.to_owned(), v)),
        }
    }

    fn set_special(&mut self, path: &Path, typ: &str, id: Option<&Json>) -> Result<()> {
        let Some(Json::Number(n)) = id else {
            return Ok(());
        };
        let Some(v) = n.as_i64() else { return Ok(()) };
        if v < 0 {
            return Err(ConvertError::Tokenizer {
                path: path.to_owned(),
                what: format!("invalid value for special token type {typ}: {v}"),
            });
        }
        if self.n_vocab.is_none_or(|n| (v as usize) < n) && !self.ids.iter().any(|(t, _)| t == typ)
        {
            self.ids.push((typ.to_owned(), v as u32));
        }
        Ok(())
    }

    fn read_merges_txt(&mut self, dir: &Path) -> Result<()> {
        let Some(text) = read_text_opt(&dir.join("merges.txt"))? else {
            return Ok(());
        };
        let mut lines = text.lines().peekable();
        if lines.peek().is_some_and(|l| l.trim().starts_with('#')) {
            lines.next();
        }
        for line in lines {
            let parts: Vec<&str> = line.split_whitespace().collect();
            if parts.len() == 2 {
                self.merges.push(format!("{} {}", parts[0], parts[1]));
            }
        }
        Ok(())
    }

    fn read_tokenizer_json(&mut self, dir: &Path, load_merges: bool) -> Result<()> {
        let tok_path = dir.join("tokenizer.json");
        let tokenizer = read_json_opt(&tok_path)?;
        let mut added_tokens: Vec<Json> = Vec::new();
        if let Some(t) = &tokenizer {
            if load_merges {
                if let Some(Json::Array(merges)) = t.get("model").and_then(|m| m.get("merges")) {
                    match merges.first() {
                        None => {}
                        Some(Json::String(_)) => {
                            self.merges = merges
                                .iter()
                                .filter_map(|m| m.as_str().map(str::to_owned))
                                .collect();
                        }
                        Some(Json::Array(p)) if p.len() == 2 && p[0].is_string() => {
                            // transformers ≥ 4.45 pairs; spaces inside a part are spelled U+0120.
                            let enc = |s: &str| {
                                s.chars()
                                    .map(|c| if c == ' ' { '\u{120}' } else { c })
                                    .collect::<String>()
                            };
                            for m in merges {
                                let pair = m.as_array().filter(|p| p.len() == 2);
                                let (Some(a), Some(b)) = (
                                    pair.and_then(|p| p[0].as_str()),
                                    pair.and_then(|p| p[1].as_str()),
                                ) else {
                                    return Err(ConvertError::Tokenizer {
                                        path: tok_path,
                                        what: format!("bad merge entry {m}"),
                                    });
                                };
                                self.merges.push(format!("{} {}", enc(a), enc(b)));
                            }
                        }
                        Some(_) => {
                            return Err(ConvertError::Tokenizer {
                                path: tok_path,
                                what: "unknown tokenizer merges format".into(),
                            })
                        }
                    }
                }
            }
            if let Some(n) = t.get("normalizer") {
                self.parse_normalizer(n);
            }
            if let Some(Json::Array(a)) = t.get("added_tokens") {
                added_tokens = a.clone();
            }
        }
        let tc_path = dir.join("tokenizer_config.json");
        let mut tc = read_json_opt(&tc_path)?;
        if let Some(t) = &tokenizer {
            self.parse_post_processor(t, &mut tc);
        }
        // `if not tokenizer_config: return` (an empty object counts as absent).
        let Some(tc) = tc.filter(|t| truthy(Some(t))) else {
            return Ok(());
        };

        let jinja = read_text_opt(&dir.join("chat_template.jinja"))?;
        let mut alt: Option<ChatTemplate> = None;
        if let Some(j) = jinja {
            let mut extra: Vec<(String, String)> = Vec::new();
            let add_dir = dir.join("additional_chat_templates");
            if let Ok(rd) = std::fs::read_dir(&add_dir) {
                let mut files: Vec<_> = rd
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "jinja"))
                    .collect();
                files.sort();
                for p in files {
                    let name = p
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let text = std::fs::read_to_string(&p).map_err(|e| ConvertError::io(&p, e))?;
                    extra.push((name, text));
                }
            }
            alt = Some(if extra.is_empty() {
                ChatTemplate::One(j)
            } else {
                let mut v = vec![("default".to_owned(), j)];
                v.extend(extra);
                ChatTemplate::Named(v)
            });
        } else if let Some(j) = read_json_opt(&dir.join("chat_template.json"))? {
            alt = parse_template(j.get("chat_template"));
        }
        self.chat_template = match tc.get("chat_template") {
            Some(v) => parse_template(Some(v)),
            None => alt,
        };

        for typ in self.types.clone() {
            if let Some(Json::Bool(b)) = tc.get(format!("add_{typ}_token").as_str()) {
                self.set_add(&typ, *b);
            }
            let content = match tc.get(format!("{typ}_token").as_str()) {
                Some(Json::String(s)) => s.clone(),
                Some(Json::Object(o)) => match o.get("content") {
                    Some(Json::String(s)) => s.clone(),
                    _ => continue,
                },
                _ => continue,
            };
            let id = added_tokens
                .iter()
                .find(|a| a.get("content").and_then(Json::as_str) == Some(content.as_str()))
                .and_then(|a| a.get("id"))
                .cloned();
            self.set_special(&tc_path, &typ, id.as_ref())?;
        }
        // llama.cpp 0c1e570 (the hf-tiny oracle) writes add_eos_token = false right after
        // add_bos_token when the files decide BOS but say nothing about EOS (the byte-level BPE
        // tokenizer_configs saved by transformers 5 have add_bos_token only).
        if self.add.iter().any(|(t, _)| t == "bos") && !self.add.iter().any(|(t, _)| t == "eos") {
            self.set_add("eos", false);
        }
        Ok(())
    }

    /// The crude TemplateProcessing / RobertaProcessing reading of gguf-py, which decides
    /// add_bos / add_eos / add_sep (and may redirect eos to eot/eom).
    fn parse_post_processor(&mut self, tokenizer: &Json, tc: &mut Option<Json>) {
        let get = |tc: &Option<Json>, k: &str| tc.as_ref().and_then(|t| t.get(k)).cloned();
        let has_tc = tc.as_ref().is_some_and(|t| truthy(Some(t)));
        let set_tc = |tc: &mut Option<Json>, k: &str, v: Option<Json>| {
            if let Some(Json::Object(o)) = tc.as_mut() {
                o.insert(k.to_owned(), v.unwrap_or(Json::Null));
            }
        };
        let mut special_bos = get(tc, "bos_token");
        let mut special_cls = get(tc, "cls_token");
        let mut special_eos = get(tc, "eos_token");
        let mut special_sep = get(tc, "sep_token");
        if !truthy(special_bos.as_ref()) && truthy(special_cls.as_ref()) && has_tc {
            special_bos = special_cls.clone();
            set_tc(tc, "bos_token", special_bos.clone());
        }
        if !truthy(special_eos.as_ref()) && truthy(special_sep.as_ref()) && has_tc {
            special_eos = special_sep.clone();
            set_tc(tc, "eos_token", special_eos.clone());
        }
        let Some(pp) = tokenizer.get("post_processor").filter(|p| truthy(Some(p))) else {
            return;
        };
        let procs: Vec<Json> = match pp.get("processors").and_then(Json::as_array) {
            Some(a) => a.clone(),
            None => vec![pp.clone()],
        };
        for p in procs {
            match p.get("type").and_then(Json::as_str) {
                Some("RobertaProcessing") => {
                    self.set_add("bos", true);
                    self.set_add("eos", true);
                    self.set_add("sep", true);
                    if !truthy(special_cls.as_ref()) && has_tc {
                        special_cls = p
                            .get("cls")
                            .and_then(|c| c.get(0))
                            .cloned()
                            .or(special_bos.clone());
                        set_tc(tc, "cls_token", special_cls.clone());
                    }
                    if !truthy(special_sep.as_ref()) && has_tc {
                        special_sep = p
                            .get("sep")
                            .and_then(|c| c.get(0))
                            .cloned()
                            .or(special_eos.clone());
                        set_tc(tc, "sep_token", special_sep.clone());
                    }
                }
                Some("TemplateProcessing") => {
                    let single: Vec<Json> = p
                        .get("single")
                        .and_then(Json::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let pair: Vec<Json> = p
                        .get("pair")
                        .and_then(Json::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let mut special_first: Option<String> = None;
                    let mut special_last: Option<String> = None;
                    if single.len() > 1 {
                        special_first = special_id(&single[0])
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned);
                        if let Some(first) = &special_first {
                            if !has_tc {
                                special_bos = Some(Json::String(first.clone()));
                            }
                            self.set_add("bos", is_one_of(first, &[&special_bos, &special_cls]));
                        }
                        special_last = special_id(&single[single.len() - 1])
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned);
                        if let Some(last) = &special_last {
                            let last_json = Some(Json::String(last.clone()));
                            if !has_tc {
                                special_eos = last_json.clone();
                            } else if special_eos != last_json {
                                if !self.types.iter().any(|t| t == "eot") {
                                    self.types.push("eot".into());
                                    set_tc(tc, "eot_token", special_eos.clone());
                                } else if !self.types.iter().any(|t| t == "eom") {
                                    self.types.push("eom".into());
                                    set_tc(tc, "eom_token", special_eos.clone());
                                }
                                special_eos = last_json.clone();
                                set_tc(tc, "eos_token", special_eos.clone());
                            }
                            self.set_add("eos", special_eos == last_json);
                        }
                    }
                    if !pair.is_empty() {
                        let start = usize::from(
                            special_first.is_some()
                                && special_id(&pair[0]) == special_first.as_deref(),
                        );
                        let stop_trim = special_last.is_some()
                            && special_id(&pair[pair.len() - 1]) == special_last.as_deref();
                        let end = if stop_trim {
                            pair.len() - 1
                        } else {
                            pair.len()
                        };
                        let mid: &[Json] = if start < end { &pair[start..end] } else { &[] };
                        if !mid.is_empty() {
                            let seq = |e: &Json| {
                                e.get("Sequence")
                                    .and_then(|s| s.get("id"))
                                    .and_then(Json::as_str)
                                    .map(str::to_owned)
                            };
                            let (a, b) = (seq(&mid[0]), seq(&mid[mid.len() - 1]));
                            if a.as_deref() == Some("A")
                                && b.as_deref() == Some("B")
                                && mid.len() > 2
                            {
                                let inner = &mid[1..mid.len() - 1];
                                let mut add_sep = false;
                                if let Some(e) = special_id(&inner[0]).filter(|s| !s.is_empty()) {
                                    if is_one_of(e, &[&special_sep, &special_eos])
                                        && special_last.is_none()
                                    {
                                        add_sep = true;
                                    }
                                }
                                if inner.len() == 2 {
                                    if let Some(e) = special_id(&inner[1]).filter(|s| !s.is_empty())
                                    {
                                        if is_one_of(e, &[&special_sep, &special_eos]) {
                                            add_sep = true;
                                        }
                                    }
                                }
                                self.set_add("sep", add_sep);
                                if add_sep && !truthy(special_sep.as_ref()) && has_tc {
                                    set_tc(tc, "sep_token", special_eos.clone());
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn read_config_json(&mut self, dir: &Path) -> Result<()> {
        let path = dir.join("config.json");
        let Some(cfg) = read_json_opt(&path)? else {
            return Ok(());
        };
        for typ in self.types.clone() {
            let key = format!("{typ}_token_id");
            let mut id = cfg.get(key.as_str()).cloned();
            if id.as_ref().is_none_or(Json::is_null) {
                if let Some(tc) = cfg.get("text_config") {
                    id = tc.get(key.as_str()).cloned();
                }
            }
            self.set_special(&path, &typ, id.as_ref())?;
        }
        Ok(())
    }

    /// Write merges, ids, add_* flags and the chat template, in gguf-py's order.
    pub fn add_to(&self, kv: &mut Kv) {
        if !self.merges.is_empty() {
            kv.strings(tk::MERGES, self.merges.iter().cloned());
        }
        for (typ, id) in &self.ids {
            let key = match typ.as_str() {
                "bos" => tk::BOS_ID,
                "eos" => tk::EOS_ID,
                "unk" => tk::UNK_ID,
                "sep" => tk::SEP_ID,
                "pad" => tk::PAD_ID,
                // gguf-py's GGUFWriter has no add_cls_token_id: skipped, as it does.
                "mask" => tk::MASK_ID,
                "eot" => tk::EOT_ID,
                "eom" => tk::EOM_ID,
                _ => continue,
            };
            kv.u32(key, u64::from(*id));
        }
        for (typ, v) in &self.add {
            let key = match typ.as_str() {
                "bos" => tk::ADD_BOS,
                "eos" => tk::ADD_EOS,
                "sep" => tk::ADD_SEP,
                _ => continue,
            };
            kv.add(key, *v);
        }
        match &self.chat_template {
            None => {}
            Some(ChatTemplate::One(t)) => kv.add(tk::CHAT_TEMPLATE, t.as_str()),
            Some(ChatTemplate::Named(list)) => {
                let mut names = Vec::new();
                for (name, t) in list {
                    if name == "default" {
                        kv.add(tk::CHAT_TEMPLATE, t.as_str());
                    } else {
                        kv.add(format!("{}.{name}", tk::CHAT_TEMPLATE), t.as_str());
                        names.push(name.clone());
                    }
                }
                if !names.is_empty() {
                    kv.strings("tokenizer.chat_templates", names);
                }
            }
        }
        if let Some(v) = self.normalizer_lowercase {
            kv.add(tk::NORMALIZER_LOWERCASE, v);
        }
        if let Some(v) = self.normalizer_strip_accents {
            kv.add(tk::NORMALIZER_STRIP_ACCENTS, v);
        }
    }
}

fn parse_template(v: Option<&Json>) -> Option<ChatTemplate> {
    match v? {
        Json::String(s) => Some(ChatTemplate::One(s.clone())),
        Json::Array(a) => {
            let list: Vec<(String, String)> = a
                .iter()
                .filter_map(|e| {
                    Some((
                        e.get("name")?.as_str()?.to_owned(),
                        e.get("template")?.as_str()?.to_owned(),
                    ))
                })
                .collect();
            Some(ChatTemplate::Named(list))
        }
        _ => None,
    }
}
