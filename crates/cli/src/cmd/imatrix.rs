//! `ferrite imatrix MODEL -f TEXT [-o imatrix.gguf]`: llama.cpp's `llama-imatrix`.
//!
//! The text is cut into chunks as `perplexity` does (BOS first in each chunk when the model
//! adds one; at least two chunks of text); every weight product of the forward pass is observed
//! and `Σ_t x_t²` per input column is summed per weight (per expert for MoE stacks), with the
//! token counts, by [`ferrite_quantize::ImatrixCollector`]. The result is written in llama.cpp's
//! GGUF imatrix format every `--output-frequency` chunks and at the end (temp file + rename).
//! The perplexity of the second half of each chunk is reported as llama.cpp does (`--no-ppl`
//! skips it, and then no logits are computed unless `--process-output`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use ferrite_models::{Context, ContextParams, MatmulEvent, Model};
use ferrite_quantize::{ImatrixCollector, QuantizeError};
use ferrite_tokenizer::Tokenizer;

use super::chunks::{eval_chunk, require_two_chunks, tokenize_file};
use super::common::{resolve_model, threads};
use super::perplexity::log_prob;

#[derive(clap::Args)]
pub struct Args {
    /// GGUF model (default: SmolLM2-135M-Instruct from the model cache).
    pub model: Option<PathBuf>,
    /// Text file to collect the statistics on.
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Output imatrix file (GGUF).
    #[arg(short = 'o', long = "output", default_value = "imatrix.gguf")]
    pub output: PathBuf,
    /// Chunk (context) size in tokens.
    #[arg(short = 'c', long = "ctx-size", default_value_t = 512)]
    pub ctx_size: usize,
    /// Tokens per forward pass (at most the chunk size).
    #[arg(short = 'b', long = "batch-size", default_value_t = 512)]
    pub batch_size: usize,
    /// Process only the first N chunks.
    #[arg(long)]
    pub chunks: Option<usize>,
    /// Threads (default: all cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Also collect output.weight (skipped by default, as llama.cpp does).
    #[arg(long)]
    pub process_output: bool,
    /// Save the imatrix every N chunks (0: only at the end).
    #[arg(long = "output-frequency", default_value_t = 10)]
    pub output_frequency: usize,
    /// Do not compute the perplexity of the chunks.
    #[arg(long)]
    pub no_ppl: bool,
}

struct Shared {
    collector: ImatrixCollector,
    error: Option<QuantizeError>,
}

fn lock(s: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn run(a: Args) -> Result<()> {
    let path = resolve_model(&a.model)?;
    let n_ctx = a.ctx_size;
    if n_ctx < 4 {
        bail!("context size {n_ctx} is too small");
    }
    // Fail before the work, not after it, when the output cannot be written.
    let out_dir = a
        .output
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    tempfile::NamedTempFile::new_in(out_dir)
        .with_context(|| format!("cannot write {}", a.output.display()))?;

    let model = Model::open(&path).with_context(|| format!("loading {}", path.display()))?;
    let tok = Tokenizer::from_gguf(model.gguf().meta())
        .with_context(|| format!("tokenizer of {}", path.display()))?;
    let tokens = tokenize_file(&tok, &a.file)?;
    require_two_chunks(tokens.len(), n_ctx, "compute an importance matrix")?;
    if n_ctx > model.hp.n_ctx_train {
        eprintln!(
            "imatrix: warning: the model was trained on only {} context tokens ({n_ctx} specified)",
            model.hp.n_ctx_train
        );
    }
    let n_chunk_max = tokens.len() / n_ctx;
    let n_chunk = a.chunks.map_or(n_chunk_max, |c| c.min(n_chunk_max));
    if n_chunk == 0 {
        bail!("--chunks 0: nothing to do");
    }
    let n_batch = a.batch_size.min(n_ctx).max(1);
    let n_threads = threads(a.threads);
    let bos = tok.bos().filter(|_| tok.add_bos());
    let n_vocab = model.n_vocab;
    let want_logits = !a.no_ppl || a.process_output;
    let mut ctx = Context::new(
        &model,
        ContextParams {
            n_ctx,
            n_seq: 1,
            n_batch,
            n_threads,
            ..Default::default()
        },
    )?;

    let shared = Arc::new(Mutex::new(Shared {
        collector: ImatrixCollector::new(n_ctx, a.process_output),
        error: None,
    }));
    let sink = Arc::clone(&shared);
    ctx.set_matmul_observer(Some(Box::new(move |ev: MatmulEvent<'_>| {
        let mut s = lock(&sink);
        if s.error.is_some() {
            return;
        }
        let r = match ev.expert {
            None => s
                .collector
                .add_dense(ev.weight, ev.input, ev.n_tokens, ev.n_cols),
            Some(x) => s.collector.add_expert(
                ev.weight,
                x.id,
                x.n_expert,
                ev.input,
                ev.n_tokens,
                ev.n_cols,
            ),
        };
        if let Err(e) = r {
            s.error = Some(e);
        }
    })));

    let dataset = a.file.display().to_string();
    let save = |s: &Shared| -> Result<()> {
        if s.collector.is_empty() {
            bail!("no weight products were observed: nothing to save");
        }
        for (name, pct) in s.collector.partial_entries() {
            eprintln!("imatrix: warning: entry '{name}' has partial data ({pct:.2}%)");
        }
        s.collector
            .to_imatrix(vec![dataset.clone()])
            .save(&a.output)
            .with_context(|| format!("writing {}", a.output.display()))
    };

    eprintln!(
        "imatrix: {} tokens, computing over {n_chunk} chunks, n_ctx={n_ctx}, batch_size={n_batch}, {n_threads} threads",
        tokens.len()
    );
    let t0 = Instant::now();
    let mut logits = if want_logits {
        vec![0f32; n_ctx * n_vocab]
    } else {
        Vec::new()
    };
    let (mut nll, mut nll2, mut count) = (0f64, 0f64, 0usize);
    let first = n_ctx / 2;
    for i in 0..n_chunk {
        let chunk = &tokens[i * n_ctx..(i + 1) * n_ctx];
        let dst = want_logits.then_some(&mut logits[..]);
        eval_chunk(&mut ctx, chunk, n_batch, bos, dst)?;
        if let Some(e) = lock(&shared).error.take() {
            return Err(e).context(format!("collecting statistics in chunk {}", i + 1));
        }
        if i == 0 {
            let per_chunk = t0.elapsed().as_secs_f64();
            eprintln!(
                "imatrix: {per_chunk:.2} seconds per pass - ETA {:.2} minutes",
                per_chunk * n_chunk as f64 / 60.0
            );
        }
        if a.no_ppl {
            eprint!("[{}]", i + 1);
        } else {
            for p in first..n_ctx - 1 {
                let v = -log_prob(
                    &logits[p * n_vocab..(p + 1) * n_vocab],
                    chunk[p + 1] as usize,
                );
                nll += v;
                nll2 += v * v;
                count += 1;
            }
            eprint!("[{}]{:.4},", i + 1, (nll / count as f64).exp());
        }
        if a.output_frequency > 0 && (i + 1) % a.output_frequency == 0 && i + 1 < n_chunk {
            eprintln!();
            save(&lock(&shared))?;
            eprintln!(
                "imatrix: saved after {} chunks to {}",
                i + 1,
                a.output.display()
            );
        }
    }
    eprintln!();
    ctx.set_matmul_observer(None);
    if !a.no_ppl {
        let n = count as f64;
        let m = nll / n;
        let var = nll2 / n - m * m;
        if var > 0.0 {
            println!(
                "Final estimate: PPL = {:.4} +/- {:.5}",
                m.exp(),
                (var / (n - 1.0)).sqrt() * m.exp()
            );
        }
    }
    let s = lock(&shared);
    save(&s)?;
    eprintln!(
        "imatrix: {} entries, {} chunks of {n_ctx} tokens, saved to {} ({:.2} s, {:.1} tokens/s)",
        s.collector.len(),
        s.collector.chunk_count(),
        a.output.display(),
        t0.elapsed().as_secs_f64(),
        (n_chunk * n_ctx) as f64 / t0.elapsed().as_secs_f64()
    );
    Ok(())
}
