//! `ferrite quantize`, `perplexity`, `bench` end to end.
//!
//! Oracles: llama.cpp's `llama-perplexity -f GPL-3 -c 512` figures in
//! refdata/llamacpp/*/perplexity_gpl3.json (final PPL and running per-chunk values): equal to
//! the 4 printed decimals at every chunk (the kernels, flash attention included, follow
//! llama.cpp's float order) for SmolLM2 over the whole file and Gemma 3 over four chunks; a model compared against its own saved log-probs has KLD < 1e-4 and 100% top-token
//! agreement (the file format stores log-probs to 16 bits over a 16-nat range).

use std::path::Path;
use std::process::{Command, Output};

use ferrite_testdata::Model;
use serde_json::Value;

const GPL3: &str = "/usr/share/common-licenses/GPL-3";

fn ferrite(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn only_file(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn quantize_rejects_bad_input_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.gguf");
    let out_s = out.to_str().unwrap();
    let smol = Model::SmolLM2.path();
    let smol_s = smol.to_str().unwrap();

    let o = ferrite(&["quantize", smol_s, out_s, "Q7_X"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    for name in ["Q4_0", "Q4_K_M", "Q8_0", "IQ4_XS", "BF16"] {
        assert!(e.contains(name), "valid types listed: {e}");
    }

    let text = dir.path().join("not.gguf");
    std::fs::write(&text, b"hello, not a model").unwrap();
    let o = ferrite(&["quantize", text.to_str().unwrap(), out_s, "Q8_0"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).to_lowercase().contains("magic") || stderr(&o).contains("GGUF"),
        "{}",
        stderr(&o)
    );

    let o = ferrite(&["quantize", smol_s, out_s, "Q8_0"]);
    assert!(!o.status.success(), "Q4_1 → Q8_0 needs --allow-requantize");
    assert!(stderr(&o).contains("--allow-requantize"), "{}", stderr(&o));

    let o = ferrite(&[
        "quantize",
        smol_s,
        "/nonexistent-dir/x/out.gguf",
        "Q8_0",
        "--allow-requantize",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("/nonexistent-dir/x/out.gguf"),
        "{}",
        stderr(&o)
    );

    assert_eq!(
        only_file(dir.path()),
        vec!["not.gguf".to_string()],
        "no partial output left behind"
    );
}

#[test]
fn quantize_cli_accepts_lowercase_type_and_sets_file_type() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("smol-q8.gguf");
    let o = ferrite(&[
        "quantize",
        Model::SmolLM2.path().to_str().unwrap(),
        out.to_str().unwrap(),
        "q8_0",
        "--allow-requantize",
        "-t",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).to_lowercase().contains("converting to q8_0"),
        "{}",
        stderr(&o)
    );
    let f = ferrite_gguf::GgufFile::open(&out).unwrap();
    assert_eq!(
        f.get::<u32>("general.file_type").unwrap(),
        7,
        "LLAMA_FTYPE_MOSTLY_Q8_0"
    );
}

fn reference(m: Model) -> Value {
    serde_json::from_slice(&std::fs::read(m.refdata().join("perplexity_gpl3.json")).unwrap())
        .unwrap()
}

fn running_values(stdout: &str) -> Vec<f64> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("[1]"))
        .expect("running estimate line");
    line.trim_end_matches(',')
        .split(',')
        .map(|s| s.split(']').nth(1).unwrap().parse().unwrap())
        .collect()
}

fn final_ppl(stdout: &str) -> (f64, f64) {
    let l = stdout
        .lines()
        .find(|l| l.starts_with("Final estimate: PPL = "))
        .expect("final line");
    let v: Vec<&str> = l
        .trim_start_matches("Final estimate: PPL = ")
        .split(" +/- ")
        .collect();
    (v[0].parse().unwrap(), v[1].parse().unwrap())
}

#[test]
fn perplexity_smollm2_full_file_matches_llama_cpp() {
    let m = Model::SmolLM2;
    let o = ferrite(&[
        "perplexity",
        m.path().to_str().unwrap(),
        "-f",
        GPL3,
        "-c",
        "512",
        "-t",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    let r = reference(m);
    let want = r["final_ppl"].as_f64().unwrap();
    let (ppl, err) = final_ppl(&out);
    let got = running_values(&out);
    let want_run: Vec<f64> = r["running_ppl_per_chunk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(got.len(), 14);
    // Equal as printed (4 decimals): the same log-probabilities to ~1e-7.
    for (i, (g, w)) in got.iter().zip(&want_run).enumerate() {
        assert!(
            (g - w).abs() < 5e-5,
            "chunk {}: {g} vs llama.cpp {w}",
            i + 1
        );
    }
    assert!((ppl - want).abs() < 5e-5, "PPL {ppl} vs llama.cpp {want}");
    let want_err = r["final_ppl_stderr"].as_f64().unwrap();
    assert!(
        (err - want_err).abs() < 5e-6,
        "stderr {err} vs llama.cpp {want_err}"
    );
}

#[test]
fn perplexity_gemma3_first_chunks_match_llama_cpp() {
    let m = Model::Gemma3;
    let o = ferrite(&[
        "perplexity",
        m.path().to_str().unwrap(),
        "-f",
        GPL3,
        "-c",
        "512",
        "-t",
        "2",
        "--chunks",
        "4",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got = running_values(&String::from_utf8(o.stdout).unwrap());
    let r = reference(m);
    assert_eq!(got.len(), 4);
    for (i, g) in got.iter().enumerate() {
        let want = r["running_ppl_per_chunk"][i].as_f64().unwrap();
        assert!(
            (g - want).abs() < 5e-5,
            "chunk {}: {g} vs llama.cpp {want}",
            i + 1
        );
    }
}

#[test]
fn perplexity_errors_and_self_kl_divergence() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.txt");
    std::fs::write(&short, "A short text, far from two chunks of 512 tokens.").unwrap();
    let smol = Model::SmolLM2.path();
    let smol_s = smol.to_str().unwrap();
    let o = ferrite(&["perplexity", smol_s, "-f", short.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("you need at least 1024 tokens"),
        "{}",
        stderr(&o)
    );

    let base = dir.path().join("base.kld");
    let b = base.to_str().unwrap();
    let o = ferrite(&[
        "perplexity",
        smol_s,
        "-f",
        GPL3,
        "--chunks",
        "1",
        "-t",
        "2",
        "--kl-divergence-base",
        b,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = ferrite(&[
        "perplexity",
        smol_s,
        "--kl-divergence",
        "--kl-divergence-base",
        b,
        "-t",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    let field = |name: &str| -> f64 {
        let l = out
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {out}"));
        l.split(':')
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(field("Mean KLD").abs() < 1e-4, "{out}");
    assert_eq!(field("Same top p"), 100.0, "{out}");
}

#[test]
fn bench_json_has_every_test() {
    let o = ferrite(&[
        "bench",
        Model::SmolLM2.path().to_str().unwrap(),
        "-p",
        "32",
        "-n",
        "8",
        "-t",
        "1,2",
        "-r",
        "2",
        "-o",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    let tests: Vec<(String, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["test"].as_str().unwrap().to_owned(),
                r["n_threads"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        tests,
        [
            ("pp32".into(), 1),
            ("tg8".into(), 1),
            ("pp32".into(), 2),
            ("tg8".into(), 2)
        ]
    );
    for r in &rows {
        assert!(r["avg_ts"].as_f64().unwrap() > 0.0);
        assert_eq!(r["samples_ts"].as_array().unwrap().len(), 2);
    }
}
