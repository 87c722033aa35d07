//! Oracle: tests/fixtures/jinja2_renders.json, made by tests/gen/make_jinja2_renders.py with
//! the real jinja2 3.1.6 set up exactly as transformers' apply_chat_template sets it up
//! (trim_blocks, lstrip_blocks, loopcontrols, transformers' tojson / raise_exception). Cases:
//! - the real models' own templates, loaded from their GGUFs in models/ (SmolLM2,
//!   Qwen2.5-Coder incl. tools, tool calls and tool responses);
//! - this crate's built-in templates;
//! - inline templates exercising one engine feature each.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::{check_against, read_json, render_both};
use ferrite_chat::{ChatTemplate, RenderOptions};
use ferrite_gguf::GgufFile;
use ferrite_testdata::Model;
use serde_json::Value as Json;

fn fixture() -> Json {
    read_json(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jinja2_renders.json"))
}

fn model_of(short: &str) -> Model {
    match short {
        "smollm2" => Model::SmolLM2,
        "qwen2.5-coder" => Model::Qwen25Coder,
        other => panic!("fixture names unknown model {other}"),
    }
}

/// The template of a case, built the way a user of the crate would get it.
fn template_of(case: &Json, cache: &mut BTreeMap<String, ChatTemplate>) -> ChatTemplate {
    let src = &case["template"];
    let bos = case["bos_token"].as_str();
    let eos = case["eos_token"].as_str();
    match src["kind"].as_str().unwrap() {
        "model" => {
            let short = src["model"].as_str().unwrap();
            if let Some(t) = cache.get(short) {
                return t.clone();
            }
            let model = model_of(short);
            let gguf = GgufFile::open(model.path()).unwrap();
            let t = ChatTemplate::from_gguf(&gguf)
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|| panic!("{model:?} has no chat template"));
            // The GGUF holds the template refdata recorded from llama.cpp, byte for byte.
            let refdata = ferrite_testdata::refdata_dir().join(src["refdata"].as_str().unwrap());
            let want = std::fs::read_to_string(&refdata)
                .unwrap_or_else(|e| panic!("oracle {} missing: {e}", refdata.display()));
            assert_eq!(
                t.source(),
                want,
                "{model:?}: GGUF template differs from refdata"
            );
            // The fixture was rendered with the GGUF's special tokens.
            assert_eq!(t.bos_token(), bos, "{model:?} bos_token");
            assert_eq!(t.eos_token(), eos, "{model:?} eos_token");
            cache.insert(short.to_owned(), t.clone());
            t
        }
        "builtin" => ChatTemplate::builtin(src["name"].as_str().unwrap(), bos, eos)
            .unwrap_or_else(|e| panic!("{e}")),
        "inline" => ChatTemplate::named(
            case["id"].as_str().unwrap(),
            src["source"].as_str().unwrap(),
            bos,
            eos,
        )
        .unwrap_or_else(|e| panic!("{e}")),
        other => panic!("unknown template kind {other}"),
    }
}

fn run(filter: impl Fn(&str) -> bool) -> usize {
    let fixture = fixture();
    let mut cache = BTreeMap::new();
    let mut n = 0;
    for case in fixture["cases"].as_array().unwrap() {
        let id = case["id"].as_str().unwrap();
        if !filter(case["template"]["kind"].as_str().unwrap()) {
            continue;
        }
        let t = template_of(case, &mut cache);
        let opts = RenderOptions {
            add_generation_prompt: case["add_generation_prompt"].as_bool().unwrap(),
            tools: (!case["tools"].is_null()).then(|| case["tools"].clone()),
            documents: None,
            extra: case["extra"].as_object().cloned().unwrap_or_default(),
        };
        check_against(id, render_both(&t, &case["messages"], &opts), case);
        n += 1;
    }
    n
}

#[test]
fn real_model_templates_from_gguf_match_jinja2() {
    let n = run(|kind| kind == "model");
    assert_eq!(
        n,
        2 * 4 + 2 * 8,
        "fixture case count (SmolLM2 4×2, Qwen2.5-Coder 8×2)"
    );
}

#[test]
fn builtin_templates_match_jinja2() {
    let n = run(|kind| kind == "builtin");
    assert_eq!(n, ferrite_chat::BUILTIN_NAMES.len() * 4 * 2);
}

#[test]
fn engine_features_match_jinja2() {
    let n = run(|kind| kind == "inline");
    assert!(n >= 14 * 6, "fixture has {n} feature cases");
}
