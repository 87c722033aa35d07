//! `ferrite perplexity MODEL -f TEXT [-c 512] [-b N]`: llama.cpp's `llama-perplexity` method.
//!
//! The whole file is tokenized with the model's special tokens (BOS) but no special-token
//! parsing; it is cut into non-overlapping chunks of `c` tokens; the first token of each chunk
//! becomes BOS when the model adds one; only the second half of each chunk is scored.
//! `--kl-divergence-base FILE` saves the scored log-probabilities in llama.cpp's format
//! (`_logits_`, n_ctx, n_vocab, n_chunk, tokens, then per token 2 f32 + uint16 log-probs);
//! `--kl-divergence` compares this model against such a file.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use ferrite_models::{Context, ContextParams, Model};
use ferrite_tokenizer::Tokenizer;

use super::chunks::{eval_chunk, require_two_chunks, tokenize_file};
use super::common::{resolve_model, threads};

#[derive(clap::Args)]
pub struct Args {
    /// GGUF model (default: SmolLM2-135M-Instruct from the model cache).
    pub model: Option<PathBuf>,
    /// Text file to score.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Chunk (context) size in tokens.
    #[arg(short = 'c', long = "ctx-size", default_value_t = 512)]
    pub ctx_size: usize,
    /// Tokens per forward pass (at most the chunk size).
    #[arg(short = 'b', long = "batch-size", default_value_t = 2048)]
    pub batch_size: usize,
    /// Score only the first N chunks.
    #[arg(long)]
    pub chunks: Option<usize>,
    /// Threads (default: all cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// File of base-model log-probabilities: written unless --kl-divergence is given, then read.
    #[arg(long)]
    pub kl_divergence_base: Option<PathBuf>,
    /// Compare against --kl-divergence-base (KLD, Δp, top-token agreement).
    #[arg(long)]
    pub kl_divergence: bool,
}

/// Running negative log-likelihood sums, as llama.cpp keeps them.
#[derive(Default)]
struct Nll {
    nll: f64,
    nll2: f64,
    count: usize,
}

/// `log_softmax(logits)[tok]` with llama.cpp's arithmetic (f32 max, f64 sum of expf).
pub(crate) fn log_prob(logits: &[f32], tok: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| ((l - max).exp()) as f64).sum();
    (logits[tok] - max) as f64 - sum.ln()
}

/// llama.cpp's `nearest_int`.
fn nearest_int(f: f32) -> i32 {
    let v = f + 12582912.0;
    (v.to_bits() as i32 & 0x007fffff) - 0x00400000
}

/// llama.cpp's compressed log-probs of one position: `[scale, min_log_prob]` as 4 u16, then one
/// u16 per vocab entry (padded to even). Returns the token's negative log-likelihood.
fn compress(logits: &[f32], tok: usize, out: &mut [u16]) -> f64 {
    let mut max = logits[0];
    let mut min = logits[0];
    for &l in &logits[1..] {
        max = max.max(l);
        min = min.min(l);
    }
    let min = min.max(max - 16.0);
    let sum: f64 = logits.iter().map(|&l| (l - max).exp() as f64).sum();
    let lse = sum.ln() as f32;
    let min_log_prob = min - max - lse;
    let scale = (max - min) / 65535.0;
    let (head, body) = out.split_at_mut(4);
    let s = scale.to_le_bytes();
    let m = min_log_prob.to_le_bytes();
    head[0] = u16::from_le_bytes([s[0], s[1]]);
    head[1] = u16::from_le_bytes([s[2], s[3]]);
    head[2] = u16::from_le_bytes([m[0], m[1]]);
    head[3] = u16::from_le_bytes([m[2], m[3]]);
    body.fill(0);
    if scale != 0.0 {
        let inv = 1.0 / scale;
        for (o, &l) in body.iter_mut().zip(logits) {
            *o = if l > min {
                nearest_int(inv * (l - min)) as u16
            } else {
                0
            };
        }
    }
    (max + lse - logits[tok]) as f64
}

#[derive(Default)]
struct Kld {
    nll: f64,
    nll2: f64,
    nll_base: f64,
    nll_base2: f64,
    kld: f64,
    kld2: f64,
    p_diff: f64,
    p_diff2: f64,
    max_p_diff: f32,
    same_top: usize,
    count: usize,
}

impl Kld {
    /// One position against its base record (llama.cpp's KLD `log_softmax`).
    fn add(&mut self, logits: &[f32], base: &[u16], tok: usize) {
        let (mut max, mut imax) = (logits[0], 0);
        for (i, &l) in logits.iter().enumerate().skip(1) {
            if l > max {
                max = l;
                imax = i;
            }
        }
        let sum: f64 = logits.iter().map(|&l| (l - max).exp() as f64).sum();
        let lse = sum.ln() as f32;
        let f = |a: u16, b: u16| {
            let [x0, x1] = a.to_le_bytes();
            let [y0, y1] = b.to_le_bytes();
            f32::from_le_bytes([x0, x1, y0, y1])
        };
        let scale = f(base[0], base[1]);
        let min_log_prob = f(base[2], base[3]);
        let base = &base[4..];
        let nll = max + lse - logits[tok];
        let nll_base = -(scale * base[tok] as f32 + min_log_prob);
        self.nll += nll as f64;
        self.nll2 += (nll * nll) as f64;
        self.nll_base += nll_base as f64;
        self.nll_base2 += (nll_base * nll_base) as f64;
        let top = max + lse;
        let mut sum = 0f64;
        let (mut imax_base, mut pmax) = (0usize, 0f32);
        for (i, &l) in logits.iter().enumerate() {
            let lp = scale * base[i] as f32 + min_log_prob;
            if i == 0 || lp > pmax {
                pmax = lp;
                imax_base = i;
            }
            if lp > -16.0 {
                sum += (lp.exp() * (lp - l + top)) as f64;
            }
        }
        self.kld += sum;
        self.kld2 += sum * sum;
        self.count += 1;
        self.same_top += (imax == imax_base) as usize;
        let p_diff = (-nll).exp() - (-nll_base).exp();
        self.p_diff += p_diff as f64;
        self.p_diff2 += (p_diff * p_diff) as f64;
        self.max_p_diff = self.max_p_diff.max(p_diff.abs());
    }

    fn report(&self) {
        let n = self.count as f64;
        let mean_err = |s: f64, s2: f64| {
            let m = s / n;
            let var = (s2 / n - m * m).max(0.0);
            (m, (var / (n - 1.0)).sqrt())
        };
        let (nll, nll_e) = mean_err(self.nll, self.nll2);
        let (nllb, nllb_e) = mean_err(self.nll_base, self.nll_base2);
        println!(
            "Mean PPL(Q)      : {:10.6} ± {:10.6}",
            nll.exp(),
            nll.exp() * nll_e
        );
        println!(
            "Mean PPL(base)   : {:10.6} ± {:10.6}",
            nllb.exp(),
            nllb.exp() * nllb_e
        );
        println!("Mean ln(PPL(Q)/PPL(base)): {:10.6}", nll - nllb);
        let (kld, kld_e) = mean_err(self.kld, self.kld2);
        println!("Mean KLD         : {kld:10.6} ± {kld_e:10.6}");
        let (dp, dp_e) = mean_err(self.p_diff, self.p_diff2);
        println!(
            "Mean Δp          : {:8.3} ± {:.3} %",
            100.0 * dp,
            100.0 * dp_e
        );
        println!("Maximum Δp       : {:8.3} %", 100.0 * self.max_p_diff);
        println!(
            "RMS Δp           : {:8.3} %",
            100.0 * (self.p_diff2 / n).sqrt()
        );
        let p = self.same_top as f64 / n;
        println!(
            "Same top p       : {:8.3} ± {:.3} %",
            100.0 * p,
            100.0 * (p * (1.0 - p) / (n - 1.0)).sqrt()
        );
    }
}

struct BaseFile {
    n_ctx: usize,
    n_vocab: usize,
    n_chunk: usize,
    tokens: Vec<u32>,
    reader: BufReader<File>,
}

fn read_i32(r: &mut impl Read) -> Result<i32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(i32::from_le_bytes(b))
}

fn open_base(path: &PathBuf) -> Result<BaseFile> {
    let mut r =
        BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?);
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)
        .with_context(|| format!("reading {}", path.display()))?;
    if &magic != b"_logits_" {
        bail!(
            "{} is not a llama.cpp/ferrite logits file (magic {:?})",
            path.display(),
            magic
        );
    }
    let n_ctx = read_i32(&mut r)?;
    let n_vocab = read_i32(&mut r)?;
    let n_chunk = read_i32(&mut r)?;
    if n_ctx < 4 || n_vocab < 1 || n_chunk < 1 {
        bail!(
            "{}: bad header n_ctx {n_ctx} n_vocab {n_vocab} n_chunk {n_chunk}",
            path.display()
        );
    }
    let (n_ctx, n_vocab, n_chunk) = (n_ctx as usize, n_vocab as usize, n_chunk as usize);
    let mut tokens = vec![0u32; n_ctx * n_chunk];
    for t in tokens.iter_mut() {
        *t = read_i32(&mut r)? as u32;
    }
    Ok(BaseFile {
        n_ctx,
        n_vocab,
        n_chunk,
        tokens,
        reader: r,
    })
}

pub fn run(a: Args) -> Result<()> {
    let path = resolve_model(&a.model)?;
    let model = Model::open(&path).with_context(|| format!("loading {}", path.display()))?;
    let tok = Tokenizer::from_gguf(model.gguf().meta())
        .with_context(|| format!("tokenizer of {}", path.display()))?;
    let n_vocab = model.n_vocab;

    let mut base = None;
    let (tokens, n_ctx) = if a.kl_divergence {
        let p = a
            .kl_divergence_base
            .as_ref()
            .context("--kl-divergence needs --kl-divergence-base FILE")?;
        let b = open_base(p)?;
        if b.n_vocab != n_vocab {
            bail!(
                "{}: n_vocab {} differs from the model's {n_vocab}",
                p.display(),
                b.n_vocab
            );
        }
        let t = (b.tokens.clone(), b.n_ctx);
        base = Some(b);
        t
    } else {
        let f = a
            .file
            .as_ref()
            .context("give the text to score with -f FILE")?;
        (tokenize_file(&tok, f)?, a.ctx_size)
    };
    if n_ctx < 4 {
        bail!("context size {n_ctx} is too small");
    }
    if base.is_none() {
        require_two_chunks(tokens.len(), n_ctx, "evaluate perplexity")?;
    }
    let n_chunk_max = base.as_ref().map_or(tokens.len() / n_ctx, |b| b.n_chunk);
    let n_chunk = a.chunks.map_or(n_chunk_max, |c| c.min(n_chunk_max));
    let n_batch = a.batch_size.min(n_ctx).max(1);
    let n_threads = threads(a.threads);
    let add_bos = tok.add_bos();
    let bos = tok.bos();
    let first = n_ctx / 2;
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

    // --kl-divergence-base without --kl-divergence: write the base file (temp + rename).
    let mut writer = None;
    if let (Some(p), false) = (&a.kl_divergence_base, a.kl_divergence) {
        let dir = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let tmp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("creating a file beside {}", p.display()))?;
        let mut w = BufWriter::new(tmp);
        w.write_all(b"_logits_")?;
        for v in [n_ctx as i32, n_vocab as i32, n_chunk as i32] {
            w.write_all(&v.to_le_bytes())?;
        }
        for &t in &tokens[..n_chunk * n_ctx] {
            w.write_all(&(t as i32).to_le_bytes())?;
        }
        writer = Some((w, p.clone()));
    }
    let nv = 2 * n_vocab.div_ceil(2) + 4;
    let mut record = vec![0u16; nv];

    eprintln!(
        "perplexity: {} tokens, {n_chunk} chunks, n_ctx={n_ctx}, batch_size={n_batch}, {n_threads} threads",
        tokens.len()
    );
    let t0 = Instant::now();
    let mut acc = Nll::default();
    let mut kld = Kld::default();
    let mut logits = vec![0f32; n_ctx * n_vocab];
    let mut out = std::io::stdout().lock();
    for i in 0..n_chunk {
        let start = i * n_ctx;
        eval_chunk(
            &mut ctx,
            &tokens[start..start + n_ctx],
            n_batch,
            bos.filter(|_| add_bos),
            Some(&mut logits),
        )?;
        if i == 0 {
            let per_chunk = t0.elapsed().as_secs_f64();
            eprintln!(
                "perplexity: {per_chunk:.2} seconds per pass - ETA {:.2} minutes",
                per_chunk * n_chunk as f64 / 60.0
            );
        }
        for p in first..n_ctx - 1 {
            let row = &logits[p * n_vocab..(p + 1) * n_vocab];
            let next = tokens[start + p + 1] as usize;
            let v = if let Some(b) = base.as_mut() {
                b.reader
                    .read_exact(bytemuck_u16(&mut record))
                    .context("base logits file ends early")?;
                kld.add(row, &record, next);
                -log_prob(row, next)
            } else if let Some((w, _)) = writer.as_mut() {
                let v = compress(row, next, &mut record);
                w.write_all(bytemuck_u16(&mut record))?;
                v
            } else {
                -log_prob(row, next)
            };
            acc.nll += v;
            acc.nll2 += v * v;
            acc.count += 1;
        }
        write!(out, "[{}]{:.4},", i + 1, (acc.nll / acc.count as f64).exp())?;
        out.flush()?;
    }
    writeln!(out)?;
    let count = acc.count as f64;
    let nll = acc.nll / count;
    let ppl = nll.exp();
    let var = acc.nll2 / count - nll * nll;
    if var > 0.0 {
        writeln!(
            out,
            "Final estimate: PPL = {ppl:.4} +/- {:.5}",
            (var / (count - 1.0)).sqrt() * ppl
        )?;
    } else {
        bail!("unexpected negative variance of log(prob)");
    }
    if base.is_some() {
        kld.report();
    }
    if let Some((w, p)) = writer {
        let tmp = w.into_inner().map_err(|e| e.into_error())?;
        tmp.persist(&p)
            .with_context(|| format!("writing {}", p.display()))?;
        eprintln!("saved base log-probabilities to {}", p.display());
    }
    eprintln!(
        "perplexity: {:.2} s total ({:.1} tokens/s)",
        t0.elapsed().as_secs_f64(),
        (n_chunk * n_ctx) as f64 / t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The little-endian bytes of a u16 buffer (ferrite runs on little-endian targets only).
fn bytemuck_u16(v: &mut [u16]) -> &mut [u8] {
    // SAFETY: u16 has no invalid bit patterns and u8 has alignment 1.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, v.len() * 2) }
}
