//! `ferrite serve` end to end: the built binary on a free loopback port with SmolLM2, driven
//! by the official `openai` Python client (crates/server/tests/py). Oracles are named in each
//! Python test: `ferrite run`'s greedy text, /tokenize counts, the non-streamed answer, solo
//! runs for concurrent ones, OpenAI's error shapes.

use std::path::PathBuf;
use std::process::Command;

use ferrite_testdata::Model;

fn py_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../server/tests/py")
}

fn run_py(script: &str, args: &[&str]) {
    let has_openai = Command::new("python3")
        .args(["-c", "import openai"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        has_openai,
        "python3 with the `openai` package is needed: python3 -m pip install openai"
    );
    let model = Model::SmolLM2.path();
    assert!(
        model.is_file(),
        "{} missing: scripts/fetch-models.sh smollm2",
        model.display()
    );
    let gemma = Model::Gemma3.path();
    let out = Command::new("python3")
        .arg(py_dir().join(script))
        .args(args)
        .current_dir(py_dir())
        .env("FERRITE_BIN", env!("CARGO_BIN_EXE_ferrite"))
        .env("FERRITE_MODEL", &model)
        .env(
            "FERRITE_GEMMA",
            if gemma.is_file() {
                gemma
            } else {
                PathBuf::new()
            },
        )
        .output()
        .expect("running python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{script} failed:\n{stdout}");
}

#[test]
fn serve_openai_client_suite() {
    run_py("test_openai.py", &[]);
}

#[test]
fn serve_64_clients_half_disconnecting() {
    run_py("test_load.py", &["test_64_clients_half_disconnect"]);
}

#[test]
fn serve_8_streams_match_solo_runs() {
    run_py("test_load.py", &["test_8_streams_match_solo_runs"]);
}
