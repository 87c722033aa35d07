//! `ferrite tokenize` against llama.cpp's `llama-tokenize`: the tricky strings of
//! refdata/llamacpp/*/tokenizer_tricky.json (ids with BOS as the model says and special
//! tokens parsed, `--no-bos`, `--no-special`), and llama.cpp's own tokenizer test vectors on
//! the vocab-only files of refdata/vocab (no tensors: only the tokenizer is read). Exact ids.

use std::path::Path;
use std::process::Command;

use ferrite_testdata::{refdata_dir, Model};
use serde_json::Value;

fn tokenize(model: &Path, text: &str, flags: &[&str]) -> Vec<u64> {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .arg("tokenize")
        .arg(model)
        .arg(format!("--prompt={text}"))
        .args(flags)
        .output()
        .expect("run ferrite");
    assert!(
        out.status.success(),
        "ferrite tokenize {} {text:?}: {}",
        model.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON array of ids")
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

#[test]
fn tricky_strings_match_llama_tokenize() {
    for m in [Model::SmolLM2, Model::Gemma3, Model::Qwen25Coder] {
        let cases: Value = serde_json::from_slice(
            &std::fs::read(m.refdata().join("tokenizer_tricky.json")).unwrap(),
        )
        .unwrap();
        for c in cases.as_array().unwrap() {
            let text = c["text"].as_str().unwrap();
            let p = m.path();
            assert_eq!(tokenize(&p, text, &[]), ids(&c["ids"]), "{m:?} {text:?}");
            assert_eq!(
                tokenize(&p, text, &["--no-bos"]),
                ids(&c["ids_no_bos"]),
                "{m:?} --no-bos {text:?}"
            );
            assert_eq!(
                tokenize(&p, text, &["--no-special"]),
                ids(&c["ids_no_parse_special"]),
                "{m:?} --no-special {text:?}"
            );
        }
    }
}

/// The first three texts of every vocab file, as llama.cpp's test-tokenizer-0 runs them
/// (no BOS/EOS, no special-token parsing; format in refdata/vocab/README.md).
#[test]
fn vocab_only_files_match_llamacpp_test_vectors() {
    let dir = refdata_dir().join("vocab");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "gguf") {
            continue;
        }
        let inp = std::fs::read_to_string(p.with_extension("gguf.inp")).unwrap();
        let out = std::fs::read_to_string(p.with_extension("gguf.out")).unwrap();
        let inp = inp.strip_suffix("\n__ggml_vocab_test__\n").unwrap_or(&inp);
        for (text, want) in inp
            .split("\n__ggml_vocab_test__\n")
            .zip(out.lines())
            .take(3)
        {
            if text.is_empty() {
                continue;
            }
            let want: Vec<u64> = want
                .split_whitespace()
                .map(|x| x.parse().unwrap())
                .collect();
            let got = tokenize(&p, text, &["--no-bos", "--no-special"]);
            assert_eq!(got, want, "{} {text:?}", p.display());
            n += 1;
        }
    }
    assert!(n >= 20, "only {n} cases found in {}", dir.display());
}

#[test]
fn missing_text_and_bad_file_are_clear_errors() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ferrite"))
            .arg("tokenize")
            .args(args)
            .output()
            .unwrap()
    };
    let p = Model::SmolLM2.path();
    let o = run(&[p.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("-p TEXT"));
    let o = run(&["/nonexistent.gguf", "-p", "x"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent.gguf"));
}
