//! Oracle: shared/refdata/hf-tiny/*/expected/chat_template.json, transformers 5.24's
//! `apply_chat_template(..., tokenize=False)` for two conversations × add_generation_prompt,
//! with `error` where the template raises (Mistral/Mixtral with a system role). Each model's
//! template is loaded two ways: from the HF folder (tokenizer_config.json `chat_template` or
//! chat_template.jinja, special tokens from tokenizer_config.json) and from the
//! `<model>-f32.gguf` llama.cpp made (tokenizer.chat_template, special tokens by id).

mod common;

use common::{check_against, hf_tiny, read_json, render_both};
use ferrite_chat::{ChatTemplate, RenderOptions};
use ferrite_gguf::GgufFile;
use serde_json::Value as Json;

const MODELS: &[&str] = &[
    "gemma2",
    "gemma3",
    "llama-bf16",
    "llama-f32",
    "llama-rope-llama3",
    "llama-tied",
    "mistral",
    "mixtral",
    "phi3",
    "qwen2",
    "qwen3",
    "qwen3-moe",
];

/// A special token of tokenizer_config.json: a string, an AddedToken dict, or null.
fn special(config: &Json, key: &str) -> Option<String> {
    match config.get(key)? {
        Json::String(s) => Some(s.clone()),
        Json::Object(o) => o.get("content").and_then(Json::as_str).map(str::to_owned),
        _ => None,
    }
}

fn hf_template(model: &str) -> ChatTemplate {
    let dir = hf_tiny(model);
    let config = read_json(&dir.join("tokenizer_config.json"));
    let source = match config.get("chat_template").and_then(Json::as_str) {
        Some(s) => s.to_owned(),
        None => std::fs::read_to_string(dir.join("chat_template.jinja")).unwrap_or_else(|e| {
            panic!("hf-tiny/{model}: no chat_template in tokenizer_config.json and no chat_template.jinja: {e}")
        }),
    };
    let bos = special(&config, "bos_token");
    let eos = special(&config, "eos_token");
    ChatTemplate::named(
        format!("hf-tiny/{model}"),
        &source,
        bos.as_deref(),
        eos.as_deref(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn gguf_template(model: &str) -> ChatTemplate {
    let path = hf_tiny(model).join(format!("{model}-f32.gguf"));
    let gguf = GgufFile::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ChatTemplate::from_gguf(&gguf)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("{} has no tokenizer.chat_template", path.display()))
}

fn check_model(model: &str, template: &ChatTemplate, how: &str) -> usize {
    let expected = read_json(&hf_tiny(model).join("expected/chat_template.json"));
    let cases = expected
        .as_object()
        .expect("chat_template.json is an object");
    assert_eq!(
        cases.len(),
        4,
        "hf-tiny/{model}: expected 4 recorded renders"
    );
    for (key, case) in cases {
        let agp = match key.rsplit_once("add_generation_prompt=") {
            Some((_, "True")) => true,
            Some((_, "False")) => false,
            _ => panic!("hf-tiny/{model}: unexpected case key {key}"),
        };
        let opts = RenderOptions::generation_prompt(agp);
        let got = render_both(template, &case["messages"], &opts);
        check_against(&format!("hf-tiny/{model} [{how}] {key}"), got, case);
    }
    cases.len()
}

#[test]
fn hf_tiny_templates_from_hf_files_match_transformers() {
    let mut n = 0;
    for model in MODELS {
        n += check_model(model, &hf_template(model), "tokenizer_config");
    }
    assert_eq!(n, 4 * MODELS.len());
}

#[test]
fn hf_tiny_templates_from_gguf_match_transformers() {
    let mut n = 0;
    for model in MODELS {
        let from_gguf = gguf_template(model);
        // llama.cpp's converter copies the template verbatim.
        assert_eq!(
            from_gguf.source(),
            hf_template(model).source(),
            "hf-tiny/{model}: GGUF template differs from the HF one"
        );
        n += check_model(model, &from_gguf, "gguf");
    }
    assert_eq!(n, 4 * MODELS.len());
}

/// The GGUF special tokens are the HF ones wherever the HF tokenizer defines them (the
/// templates that print bos_token/eos_token depend on it).
#[test]
fn hf_tiny_gguf_special_tokens_match_tokenizer_config() {
    for model in MODELS {
        let dir = hf_tiny(model);
        let config = read_json(&dir.join("tokenizer_config.json"));
        let t = gguf_template(model);
        if let Some(bos) = special(&config, "bos_token") {
            assert_eq!(t.bos_token(), Some(bos.as_str()), "hf-tiny/{model} bos");
        }
        if let Some(eos) = special(&config, "eos_token") {
            assert_eq!(t.eos_token(), Some(eos.as_str()), "hf-tiny/{model} eos");
        }
    }
}

/// The built-in templates that are copies of an hf-tiny model's template render like
/// transformers on that model's recorded conversations.
#[test]
fn builtin_templates_match_transformers_on_hf_tiny() {
    for (name, model) in [
        ("llama2", "llama-f32"),
        ("mistral", "mistral"),
        ("gemma", "gemma3"),
    ] {
        let dir = hf_tiny(model);
        let config = read_json(&dir.join("tokenizer_config.json"));
        let bos = special(&config, "bos_token");
        let eos = special(&config, "eos_token");
        let t = ChatTemplate::builtin(name, bos.as_deref(), eos.as_deref()).unwrap();
        check_model(model, &t, &format!("builtin:{name}"));
    }
}
