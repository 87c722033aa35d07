//! `ferrite embed` and `ferrite serve`'s `/v1/embeddings` end to end on all-MiniLM-L6-v2,
//! converted to GGUF by `ferrite convert` in each test.
//!
//! Oracle: refdata/hf-tiny/minilm-l6-v2/expected/embeddings.npy (transformers BertModel f32,
//! mean pooling over the attention mask, L2 norm) for the five sentences of expected.json:
//! max |Δ| ≤ 1e-4 and cosine > 0.9999 per sentence. The server suite
//! (crates/server/tests/py/test_embeddings.py) names its oracles per test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ferrite_testdata::Model;

fn ferrite(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap()
}

fn expected_dir() -> PathBuf {
    Model::MiniLm.refdata().join("expected")
}

/// `ferrite convert` the MiniLM checkpoint to an F32 GGUF in `dir`.
fn convert(dir: &Path) -> PathBuf {
    let src = Model::MiniLm.path();
    assert!(
        src.join("model.safetensors").is_file(),
        "{} missing: scripts/fetch-models.sh minilm",
        src.display()
    );
    let out = dir.join("minilm-f32.gguf");
    let o = ferrite(&[
        "convert",
        src.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--outtype",
        "f32",
        "-t",
        "2",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

fn texts() -> Vec<String> {
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(expected_dir().join("expected.json")).unwrap())
            .unwrap();
    j["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn embed_prints_one_json_array_matching_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    let gguf = convert(tmp.path());
    let texts = texts();
    let mut args = vec!["embed", gguf.to_str().unwrap(), "-t", "2"];
    args.extend(texts.iter().map(String::as_str));
    let o = ferrite(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8(o.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one JSON array");
    let got: Vec<Vec<f32>> = serde_json::from_str(&stdout).unwrap();
    let (shape, want) = ferrite_testdata::read_npy_f32(expected_dir().join("embeddings.npy"));
    assert_eq!(shape, vec![5, 384]);
    assert_eq!(got.len(), 5);
    for (i, (g, w)) in got.iter().zip(want.chunks_exact(384)).enumerate() {
        assert_eq!(g.len(), 384);
        let d = g
            .iter()
            .zip(w)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let dot: f64 = g.iter().zip(w).map(|(&a, &b)| a as f64 * b as f64).sum();
        let n = |v: &[f32]| v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
        let cos = dot / (n(g) * n(w));
        eprintln!("sentence {i}: max |Δ| {d:.3e}, cosine {cos:.9}");
        assert!(d <= 1e-4 && cos > 0.9999, "sentence {i}: {d} {cos}");
    }
}

#[test]
fn embed_errors_name_the_file() {
    let o = ferrite(&["embed", "/nonexistent/x.gguf", "hello"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("/nonexistent/x.gguf"), "{err}");

    // A decoder model: a clear error naming the file and the architecture.
    let smol = Model::SmolLM2.path();
    if smol.is_file() {
        let o = ferrite(&["embed", smol.to_str().unwrap(), "hello"]);
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(smol.file_name().unwrap().to_str().unwrap())
                && err.contains("llama")
                && err.contains("encoder"),
            "{err}"
        );
    }
    // No text: clap refuses.
    let o = ferrite(&["embed", "/nonexistent/x.gguf"]);
    assert!(!o.status.success());
}

#[test]
fn serve_embeddings_openai_client_suite() {
    let has = Command::new("python3")
        .args(["-c", "import openai, numpy"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        has,
        "python3 with `openai` and `numpy` is needed: python3 -m pip install openai numpy"
    );
    let tmp = tempfile::tempdir().unwrap();
    let gguf = convert(tmp.path());
    let py = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../server/tests/py");
    let out = Command::new("python3")
        .arg(py.join("test_embeddings.py"))
        .current_dir(&py)
        .env("FERRITE_BIN", env!("CARGO_BIN_EXE_ferrite"))
        .env("FERRITE_EMBED_MODEL", &gguf)
        .env("FERRITE_EMBED_EXPECTED", expected_dir())
        .output()
        .expect("running python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "test_embeddings.py failed:\n{stdout}");
}
