//! `ferrite run` and `ferrite chat` end to end on the real models.
//! Oracle for `run`: llama.cpp's `llama-simple` greedy output
//! (refdata/llamacpp/*/greedy_llama_simple.json, `stdout_raw`), compared byte for byte.

use std::io::Write as _;
use std::process::{Command, Stdio};

use ferrite_testdata::Model;
use serde_json::Value;

fn ferrite() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferrite"))
}

fn greedy_cases(m: Model) -> Vec<Value> {
    let p = m.refdata().join("greedy_llama_simple.json");
    serde_json::from_slice::<Vec<Value>>(&std::fs::read(&p).unwrap()).unwrap()
}

fn check_run(m: Model, n_cases: usize) {
    for case in greedy_cases(m).iter().take(n_cases) {
        let prompt = case["prompt"].as_str().unwrap();
        let n = case["n_predict"].as_u64().unwrap().to_string();
        let out = ferrite()
            .args([
                "run",
                m.path().to_str().unwrap(),
                "-p",
                prompt,
                "-n",
                &n,
                "--temp",
                "0",
                "-t",
                "2",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let want = case["stdout_raw"].as_str().unwrap();
        assert_eq!(
            stdout.trim_end_matches('\n'),
            want.trim_end_matches('\n'),
            "{m:?} prompt {prompt:?}"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("t/s"), "timings on stderr: {stderr}");
    }
}

#[test]
fn run_smollm2_matches_llama_simple() {
    check_run(Model::SmolLM2, 2);
}

#[test]
fn run_qwen_matches_llama_simple() {
    check_run(Model::Qwen25Coder, 1);
}

#[test]
fn run_errors_are_clear() {
    let out = ferrite()
        .args(["run", "/nonexistent/model.gguf", "-p", "hi"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/model.gguf"));
    // A prompt longer than the context is an error, not a crash.
    let long = "word ".repeat(200);
    let out = ferrite()
        .args([
            "run",
            Model::SmolLM2.path().to_str().unwrap(),
            "-p",
            &long,
            "-c",
            "64",
            "-n",
            "4",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("context size 64"), "{err}");
}

/// Two turns through `ferrite chat` (stdin piped): the first answer equals `ferrite run` on
/// the template's rendering of the same conversation (both greedy), and the second turn
/// decodes only the new tokens (the KV cache is kept across turns).
#[test]
fn chat_keeps_the_cache_across_turns() {
    let m = Model::SmolLM2;
    let mut child = ferrite()
        .args([
            "chat",
            m.path().to_str().unwrap(),
            "--temp",
            "0",
            "-n",
            "16",
            "-t",
            "2",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"What is the capital of France?\nAnd of Italy?\n")
        .unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let answers: Vec<&str> = stdout.lines().filter(|l| !l.is_empty()).collect();
    assert!(!answers.is_empty(), "no answer: {stderr}");

    // The same first turn through `run` with SmolLM2's template rendered by hand.
    let rendered = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n";
    let run = ferrite()
        .args([
            "run",
            m.path().to_str().unwrap(),
            "-p",
            rendered,
            "-n",
            "16",
            "--temp",
            "0",
            "-t",
            "2",
        ])
        .output()
        .unwrap();
    let run_out = String::from_utf8(run.stdout).unwrap();
    let first_answer = run_out.strip_prefix(rendered).unwrap().trim_end();
    assert!(
        stdout.starts_with(first_answer.split("<|im_end|>").next().unwrap()),
        "chat: {stdout:?}\nrun: {first_answer:?}"
    );

    // Prompt tokens per turn, from the timing lines: the second turn reuses the first.
    let prompts: Vec<usize> = stderr
        .lines()
        .filter_map(|l| l.split("prompt: ").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    assert_eq!(prompts.len(), 2, "{stderr}");
    assert!(
        prompts[1] < 20,
        "second turn processed {} tokens: history was re-processed",
        prompts[1]
    );
}
