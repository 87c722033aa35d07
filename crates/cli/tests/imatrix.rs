//! `ferrite imatrix` end to end.
//!
//! Oracles:
//! - layer 0 (hf-tiny llama-f32): the input of `blk.0.attn_{q,k,v}` is
//!   `rmsnorm(token_embd[tok]) ⊙ attn_norm`, computed here in f64 straight from the GGUF tensors
//!   and the tokens of each chunk (first one replaced by BOS); `in_sum2` must equal its sum of
//!   squares within 1e-5 relative, `counts` the number of tokens;
//! - MoE (hf-tiny qwen3-moe, top-2 of 4): every token reaches exactly `n_expert_used` experts
//!   with the router's input, so `Σ_e in_sum2[ffn_gate_exps][e] = 2 · in_sum2[ffn_gate_inp]`
//!   (1e-5 relative) and `Σ_e counts = 2 · tokens`;
//! - format: the file read back by ferrite-quantize's reader equals the raw GGUF tensors
//!   (exactly), with llama.cpp's shapes `[n_cols, n_mat]` / `[1, n_mat]`, and `ferrite quantize
//!   --imatrix` records its entry count;
//! - use: SmolLM2 requantized to Q2_K with an imatrix from GPL-3 has a lower KL divergence
//!   against the source model on another text (GFDL-1.3) than without one.

use std::path::Path;
use std::process::{Command, Output};

use ferrite_gguf::{GgmlType, GgufFile};
use ferrite_quantize::Imatrix;
use ferrite_testdata::{refdata_dir, Model};
use ferrite_tokenizer::Tokenizer;

const GPL3: &str = "/usr/share/common-licenses/GPL-3";
const GFDL: &str = "/usr/share/common-licenses/GFDL-1.3";

fn ferrite(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "ferrite failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn rel_close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (j, (&g, &w)) in got.iter().zip(want).enumerate() {
        let r = (g as f64 - w).abs() / w.abs().max(1e-30);
        assert!(r <= tol, "{what}[{j}]: {g} vs {w} (rel {r:.2e})");
    }
}

/// The raw tensors of an imatrix file agree with what the quantize reader returns.
fn check_layout(path: &Path, im: &Imatrix) {
    let f = GgufFile::open(path).unwrap();
    assert_eq!(
        f.get::<&str>(ferrite_gguf::keys::general::TYPE).unwrap(),
        "imatrix"
    );
    for (name, s) in &im.stats {
        let n_mat = s.counts.len() as u64;
        let t = f.tensor_info(&format!("{name}.in_sum2")).unwrap();
        let c = f.tensor_info(&format!("{name}.counts")).unwrap();
        assert_eq!((t.ty, c.ty), (GgmlType::F32, GgmlType::F32));
        assert_eq!(
            t.dims,
            vec![s.in_sum2.len() as u64 / n_mat, n_mat],
            "{name}"
        );
        assert_eq!(c.dims, vec![1, n_mat], "{name}");
        assert_eq!(f32s(f.data_of(t)), s.in_sum2, "{name}");
        assert_eq!(f32s(f.data_of(c)), s.counts, "{name}");
    }
}

#[test]
fn imatrix_layer0_matches_direct_computation_and_feeds_quantize() {
    let model = refdata_dir().join("hf-tiny/llama-f32/llama-f32-f32.gguf");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("im.gguf");
    let (n_ctx, n_chunk) = (64usize, 3usize);
    let o = ok(ferrite(&[
        "imatrix",
        model.to_str().unwrap(),
        "-f",
        GPL3,
        "-o",
        out.to_str().unwrap(),
        "-c",
        "64",
        "--chunks",
        "3",
        "-t",
        "2",
        "--process-output",
    ]));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Final estimate: PPL"));

    let im = Imatrix::load(&out).unwrap();
    check_layout(&out, &im);
    assert_eq!(im.datasets, vec![GPL3.to_string()]);
    assert_eq!(
        (im.chunk_count, im.chunk_size),
        (n_chunk as u32, n_ctx as u32)
    );
    // 2 layers × 7 weights, plus output.weight (--process-output); never token_embd.
    assert_eq!(im.stats.len(), 15, "{:?}", im.stats.keys());
    assert!(!im.stats.contains_key("token_embd.weight"));
    let n_tok = (n_ctx * n_chunk) as f32;
    for (name, s) in &im.stats {
        assert_eq!(s.counts, vec![n_tok], "{name}");
    }

    // Oracle for the input of layer 0's projections.
    let g = GgufFile::open(&model).unwrap();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    let text = String::from_utf8_lossy(&std::fs::read(GPL3).unwrap()).into_owned();
    let tokens = tok.tokenize(&text, true, false);
    assert!(tok.add_bos());
    let bos = tok.bos().unwrap();
    let eps = g
        .get::<f32>("llama.attention.layer_norm_rms_epsilon")
        .unwrap() as f64;
    let embd = f32s(g.data_of(g.tensor_info("token_embd.weight").unwrap()));
    let norm = f32s(g.data_of(g.tensor_info("blk.0.attn_norm.weight").unwrap()));
    let ne = norm.len();
    let mut want = vec![0f64; ne];
    for c in 0..n_chunk {
        for (i, &t) in tokens[c * n_ctx..(c + 1) * n_ctx].iter().enumerate() {
            let t = if i == 0 { bos } else { t } as usize;
            let x = &embd[t * ne..(t + 1) * ne];
            let ms = x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / ne as f64;
            let r = 1.0 / (ms + eps).sqrt();
            for j in 0..ne {
                want[j] += (x[j] as f64 * r * norm[j] as f64).powi(2);
            }
        }
    }
    for w in ["attn_q", "attn_k", "attn_v"] {
        let name = format!("blk.0.{w}.weight");
        rel_close(&im.stats[&name].in_sum2, &want, 1e-5, &name);
    }

    // ferrite quantize reads it and records it.
    let q = dir.path().join("q.gguf");
    ok(ferrite(&[
        "quantize",
        model.to_str().unwrap(),
        q.to_str().unwrap(),
        "Q5_0",
        "--imatrix",
        out.to_str().unwrap(),
        "-q",
    ]));
    let qf = GgufFile::open(&q).unwrap();
    assert_eq!(qf.get::<u32>("quantize.imatrix.entries_count").unwrap(), 15);
    assert_eq!(qf.get::<u32>("quantize.imatrix.chunks_count").unwrap(), 3);
}

#[test]
fn imatrix_moe_counts_per_expert() {
    let model = refdata_dir().join("hf-tiny/qwen3-moe/qwen3-moe-f32.gguf");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("moe.gguf");
    ok(ferrite(&[
        "imatrix",
        model.to_str().unwrap(),
        "-f",
        GPL3,
        "-o",
        out.to_str().unwrap(),
        "-c",
        "64",
        "--chunks",
        "2",
        "-t",
        "2",
        "--no-ppl",
    ]));
    let im = Imatrix::load(&out).unwrap();
    check_layout(&out, &im);
    let g = GgufFile::open(&model).unwrap();
    let k = g.get::<u32>("qwen3moe.expert_used_count").unwrap() as f32;
    let n_expert = g.get::<u32>("qwen3moe.expert_count").unwrap() as usize;
    let n_tok = 128f32;
    for il in 0..2 {
        let inp = &im.stats[&format!("blk.{il}.ffn_gate_inp.weight")];
        assert_eq!(inp.counts, vec![n_tok]);
        let gate = &im.stats[&format!("blk.{il}.ffn_gate_exps.weight")];
        let up = &im.stats[&format!("blk.{il}.ffn_up_exps.weight")];
        let down = &im.stats[&format!("blk.{il}.ffn_down_exps.weight")];
        assert_eq!(gate.counts.len(), n_expert);
        assert_eq!(gate.counts.iter().sum::<f32>(), k * n_tok);
        assert_eq!(gate, up, "gate and up experts see the same rows");
        assert_eq!(down.counts, gate.counts);
        let ne = inp.in_sum2.len();
        let summed: Vec<f32> = (0..ne)
            .map(|j| (0..n_expert).map(|e| gate.in_sum2[e * ne + j]).sum())
            .collect();
        let want: Vec<f64> = inp.in_sum2.iter().map(|&v| k as f64 * v as f64).collect();
        rel_close(&summed, &want, 1e-5, "Σ_e gate_exps");
    }
}

#[test]
fn imatrix_rejects_bad_input_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("im.gguf");
    let out_s = out.to_str().unwrap();
    let model = refdata_dir().join("hf-tiny/llama-f32/llama-f32-f32.gguf");
    let model_s = model.to_str().unwrap();
    let err = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();

    let not_gguf = dir.path().join("not.gguf");
    std::fs::write(&not_gguf, b"hello, not a model").unwrap();
    let o = ferrite(&[
        "imatrix",
        not_gguf.to_str().unwrap(),
        "-f",
        GPL3,
        "-o",
        out_s,
    ]);
    assert!(!o.status.success());
    assert!(
        err(&o).to_lowercase().contains("magic") || err(&o).contains("GGUF"),
        "{}",
        err(&o)
    );

    let short = dir.path().join("short.txt");
    std::fs::write(&short, "Only a few words of text.").unwrap();
    let o = ferrite(&[
        "imatrix",
        model_s,
        "-f",
        short.to_str().unwrap(),
        "-o",
        out_s,
    ]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("you need at least 1024 tokens"),
        "{}",
        err(&o)
    );

    let o = ferrite(&[
        "imatrix",
        model_s,
        "-f",
        GPL3,
        "-o",
        "/nonexistent-dir/x/im.gguf",
    ]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("/nonexistent-dir/x/im.gguf"),
        "{}",
        err(&o)
    );

    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, vec!["not.gguf", "short.txt"], "no partial output");
}

fn mean_kld(stdout: &[u8]) -> f64 {
    let s = String::from_utf8_lossy(stdout);
    let line = s
        .lines()
        .find(|l| l.starts_with("Mean KLD"))
        .unwrap_or_else(|| panic!("no KLD line in {s}"));
    line.split(':')
        .nth(1)
        .unwrap()
        .split('±')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn imatrix_improves_low_bit_requantization() {
    let src = Model::SmolLM2.path();
    let src_s = src.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let (im, plain, with, base) = (p("im.gguf"), p("plain.gguf"), p("with.gguf"), p("base.bin"));
    ok(ferrite(&[
        "imatrix", src_s, "-f", GPL3, "-o", &im, "-c", "512", "--chunks", "4", "--no-ppl",
    ]));
    ok(ferrite(&[
        "quantize",
        src_s,
        &plain,
        "Q2_K",
        "--allow-requantize",
        "-q",
    ]));
    ok(ferrite(&[
        "quantize",
        src_s,
        &with,
        "Q2_K",
        "--allow-requantize",
        "--imatrix",
        &im,
        "-q",
    ]));
    ok(ferrite(&[
        "perplexity",
        src_s,
        "-f",
        GFDL,
        "-c",
        "512",
        "--chunks",
        "2",
        "--kl-divergence-base",
        &base,
    ]));
    let kld = |m: &str| {
        let o = ok(ferrite(&[
            "perplexity",
            m,
            "--kl-divergence-base",
            &base,
            "--kl-divergence",
        ]));
        mean_kld(&o.stdout)
    };
    let (k_plain, k_with) = (kld(&plain), kld(&with));
    eprintln!("Q2_K KLD vs source on GFDL-1.3: without imatrix {k_plain:.6}, with {k_with:.6}");
    // Measured: 0.387 without, 0.265 with (± 0.01 each).
    assert!(
        k_with < 0.85 * k_plain,
        "imatrix should lower the KL divergence: {k_with} vs {k_plain}"
    );
}
