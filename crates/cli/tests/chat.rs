//! `ferrite chat` end to end on SmolLM2 with stdin piped, as a user types.
//! Oracles: `ferrite run` (greedy) on the template's rendering of the same conversation — itself
//! checked against llama.cpp in run.rs — and the per-turn prompt token counts that chat prints
//! on stderr (`prompt: N tokens`), which show whether history was re-processed.

use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferrite_testdata::Model;

fn ferrite() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferrite"))
}

/// `prompt: N tokens` of each turn's timing line.
fn prompt_counts(stderr: &str) -> Vec<usize> {
    stderr
        .lines()
        .filter_map(|l| l.split("prompt: ").nth(1)?.split(' ').next()?.parse().ok())
        .collect()
}

/// Two turns: the first answer equals `ferrite run` on the rendered conversation (both
/// greedy), and the second turn decodes only the tokens the template added since the first.
#[test]
fn chat_keeps_the_cache_across_turns() {
    let m = Model::SmolLM2;
    let model = m.path();
    let mut child = ferrite()
        .args(["chat", model.to_str().unwrap()])
        .args(["--temp", "0", "-n", "16", "-t", "2"])
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
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");

    // SmolLM2's template (refdata/llamacpp/smollm2-135m-instruct-Q4_1/chat_template.jinja)
    // adds its default system message when the conversation has none.
    let rendered = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n";
    let run = ferrite()
        .args(["run", model.to_str().unwrap(), "-p", rendered])
        .args(["-n", "16", "--temp", "0", "-t", "2"])
        .output()
        .unwrap();
    assert!(run.status.success());
    let run_out = String::from_utf8(run.stdout).unwrap();
    let first = run_out.strip_prefix(rendered).unwrap().trim_end();
    let first = first.split("<|im_end|>").next().unwrap();
    assert!(!first.is_empty());
    assert!(
        stdout.starts_with(first),
        "chat: {stdout:?}\nrun: {first:?}"
    );

    let prompts = prompt_counts(&stderr);
    assert_eq!(prompts.len(), 2, "{stderr}");
    // "<|im_end|>\n<|im_start|>user\nAnd of Italy?<|im_end|>\n<|im_start|>assistant\n" is
    // ~14 tokens; the first turn alone was 37.
    assert!(prompts[0] > 30, "{prompts:?}");
    assert!(
        prompts[1] < 20,
        "second turn processed {} tokens: history was re-processed\n{stderr}",
        prompts[1]
    );
}

/// Ctrl-C (SIGINT) while an answer streams stops that answer only: chat says so, the next
/// turn is answered, and the process exits 0 at end of input.
#[test]
fn ctrl_c_stops_the_answer_not_the_chat() {
    let model = Model::SmolLM2.path();
    let mut child = ferrite()
        .args(["chat", model.to_str().unwrap()])
        .args(["--temp", "0", "-n", "200", "-t", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"Write a very long story about a dragon.\n")
        .unwrap();
    stdin.flush().unwrap();
    // Wait for the answer to start streaming, then interrupt it.
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        let t0 = Instant::now();
        while seen.len() < 40 && t0.elapsed() < Duration::from_secs(120) {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        (stdout, seen)
    });
    let (mut stdout, seen) = reader.join().unwrap();
    assert!(seen.len() >= 40, "no streamed answer");
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    stdin.write_all(b"Thanks. Say hi.\n").unwrap();
    drop(stdin);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("[stopped]"), "{stderr}");
    let prompts = prompt_counts(&stderr);
    assert_eq!(prompts.len(), 2, "both turns answered: {stderr}");
    // The interrupted answer stays in the cache: the second turn is only its own tokens.
    assert!(prompts[1] < 25, "{prompts:?}");
}
