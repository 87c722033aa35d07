//! `ferrite bench MODEL [-p 512] [-n 128] [-t 1,2] [-r 5] [-o md|json]`: llama-bench's tests.
//!
//! `ppN`: one prompt of N random tokens decoded in batches of `-b` into an empty cache;
//! `tgN`: N tokens decoded one at a time into an empty cache. One warm-up run, then `-r`
//! timed runs; tokens/s mean ± sample standard deviation.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use ferrite_models::{Batch, Context, ContextParams, Model};
use serde_json::json;

use super::common::resolve_model;

#[derive(clap::Args)]
pub struct Args {
    /// GGUF model (default: SmolLM2-135M-Instruct from the model cache).
    pub model: Option<PathBuf>,
    /// Prompt lengths to test (comma separated; 0 skips).
    #[arg(
        short = 'p',
        long = "n-prompt",
        value_delimiter = ',',
        default_value = "512"
    )]
    pub n_prompt: Vec<usize>,
    /// Generation lengths to test (comma separated; 0 skips).
    #[arg(
        short = 'n',
        long = "n-gen",
        value_delimiter = ',',
        default_value = "128"
    )]
    pub n_gen: Vec<usize>,
    /// Thread counts (comma separated; default: all cores).
    #[arg(short = 't', long, value_delimiter = ',')]
    pub threads: Vec<usize>,
    /// Timed repetitions per test.
    #[arg(short = 'r', long, default_value_t = 5)]
    pub repetitions: usize,
    /// Batch size for prompt processing.
    #[arg(short = 'b', long = "batch-size", default_value_t = 2048)]
    pub batch_size: usize,
    /// Output format: md or json.
    #[arg(short = 'o', long, default_value = "md")]
    pub output: String,
}

struct Rng(u64);
impl Rng {
    fn next(&mut self, n: usize) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as u32
    }
}

fn run_pp(
    ctx: &mut Context<'_>,
    n: usize,
    n_batch: usize,
    rng: &mut Rng,
    n_vocab: usize,
) -> Result<()> {
    ctx.kv_cache_mut().clear();
    let mut i = 0;
    while i < n {
        let m = n_batch.min(n - i);
        let tokens: Vec<u32> = (0..m).map(|_| rng.next(n_vocab)).collect();
        let pos: Vec<u32> = (i as u32..(i + m) as u32).collect();
        let seq = vec![0u32; m];
        let mut want = vec![false; m];
        want[m - 1] = true;
        ctx.decode(&Batch {
            tokens: &tokens,
            pos: &pos,
            seq_id: &seq,
            want_logits: &want,
        })?;
        i += m;
    }
    Ok(())
}

fn run_tg(ctx: &mut Context<'_>, n: usize, rng: &mut Rng, n_vocab: usize) -> Result<()> {
    ctx.kv_cache_mut().clear();
    for p in 0..n {
        let t = [rng.next(n_vocab)];
        ctx.decode(&Batch {
            tokens: &t,
            pos: &[p as u32],
            seq_id: &[0],
            want_logits: &[true],
        })?;
    }
    Ok(())
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let sd = if v.len() > 1 {
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (m, sd)
}

fn human_params(n: u64) -> String {
    if n >= 1_000_000_000 {
        format!("{:.2} B", n as f64 / 1e9)
    } else {
        format!("{:.2} M", n as f64 / 1e6)
    }
}

pub fn run(a: Args) -> Result<()> {
    if a.output != "md" && a.output != "json" {
        bail!("unknown output format '{}'; use md or json", a.output);
    }
    if a.repetitions == 0 {
        bail!("-r must be at least 1");
    }
    let path = resolve_model(&a.model)?;
    let model = Model::open(&path).with_context(|| format!("loading {}", path.display()))?;
    let meta = model.gguf().meta();
    let n_params: u64 = model.gguf().tensors().map(|t| t.n_elements()).sum();
    let size: u64 = model.gguf().tensors().map(|t| t.n_bytes).sum();
    let arch = meta
        .get_opt::<String>("general.architecture")?
        .unwrap_or_default();
    let label = meta
        .get_opt::<String>("general.size_label")?
        .unwrap_or_else(|| human_params(n_params).replace(' ', ""));
    // the type most of the weight bytes are in, as a stand-in for the file type
    let mut by_type: std::collections::BTreeMap<&str, u64> = Default::default();
    for t in model.gguf().tensors() {
        *by_type.entry(t.ty.name()).or_default() += t.n_bytes;
    }
    let main_type = by_type
        .iter()
        .max_by_key(|(_, b)| **b)
        .map(|(t, _)| t.to_uppercase())
        .unwrap_or_default();
    let model_name = format!("{arch} {label} {main_type}");
    let threads = if a.threads.is_empty() {
        vec![std::thread::available_parallelism().map_or(1, |n| n.get())]
    } else {
        a.threads.clone()
    };
    let n_vocab = model.n_vocab;
    let mut rows = Vec::new();
    if a.output == "md" {
        println!("| model | size | params | backend | threads | test | t/s |");
        println!("| --- | ---: | ---: | --- | ---: | ---: | ---: |");
    }
    let mut rng = Rng(1234);
    for &t in &threads {
        let tests: Vec<(String, usize, usize)> = a
            .n_prompt
            .iter()
            .filter(|&&p| p > 0)
            .map(|&p| (format!("pp{p}"), p, 0))
            .chain(
                a.n_gen
                    .iter()
                    .filter(|&&g| g > 0)
                    .map(|&g| (format!("tg{g}"), 0, g)),
            )
            .collect();
        for (name, np, ng) in tests {
            let n_ctx = np + ng;
            let n_batch = if np > 0 { a.batch_size.min(np) } else { 1 };
            let mut ctx = Context::new(
                &model,
                ContextParams {
                    n_ctx,
                    n_seq: 1,
                    n_batch,
                    n_threads: t,
                    ..Default::default()
                },
            )?;
            let once = |ctx: &mut Context<'_>, rng: &mut Rng| -> Result<()> {
                if np > 0 {
                    run_pp(ctx, np, n_batch, rng, n_vocab)
                } else {
                    run_tg(ctx, ng, rng, n_vocab)
                }
            };
            once(&mut ctx, &mut rng)?; // warm-up
            let mut samples = Vec::with_capacity(a.repetitions);
            for _ in 0..a.repetitions {
                let t0 = Instant::now();
                once(&mut ctx, &mut rng)?;
                samples.push((np + ng) as f64 / t0.elapsed().as_secs_f64());
            }
            let (m, sd) = mean_sd(&samples);
            if a.output == "md" {
                println!(
                    "| {model_name} | {:.2} MiB | {} | CPU | {t} | {name} | {m:.2} ± {sd:.2} |",
                    size as f64 / 1048576.0,
                    human_params(n_params)
                );
            }
            rows.push(json!({
                "model_filename": path.display().to_string(),
                "model_type": model_name,
                "model_size": size,
                "model_n_params": n_params,
                "n_threads": t,
                "n_batch": n_batch,
                "test": name,
                "n_prompt": np,
                "n_gen": ng,
                "avg_ts": m,
                "stddev_ts": sd,
                "samples_ts": samples,
            }));
        }
    }
    if a.output == "json" {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    Ok(())
}
