//! `ferrite quantize IN.gguf OUT.gguf TYPE`: llama-quantize's presets and per-tensor mixtures.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use ferrite_gguf::GgmlType;
use ferrite_quantize::{Event, FileType, Imatrix, Params};
use indicatif::{ProgressBar, ProgressStyle};

use super::common::threads;

#[derive(clap::Args)]
pub struct Args {
    /// Input GGUF model.
    pub input: PathBuf,
    /// Output GGUF file (written to a temp file beside it, renamed on success).
    pub output: PathBuf,
    /// File type preset: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K_S/M/L, Q4_K_S/M, Q5_K_S/M,
    /// Q6_K, IQ4_NL, IQ4_XS, F16, BF16, F32.
    #[arg(value_name = "TYPE")]
    pub ftype: String,
    /// Threads (default: all cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Allow converting tensors that are already quantized (quality suffers).
    #[arg(long)]
    pub allow_requantize: bool,
    /// Importance matrix (llama.cpp GGUF imatrix format).
    #[arg(long)]
    pub imatrix: Option<PathBuf>,
    /// Type of output.weight (a ggml type name, e.g. q8_0).
    #[arg(long)]
    pub output_tensor_type: Option<String>,
    /// Type of token_embd.weight.
    #[arg(long)]
    pub token_embedding_type: Option<String>,
    /// Every quantizable tensor gets the preset's default type (no mixture).
    #[arg(long)]
    pub pure: bool,
    /// Print no per-tensor lines.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

fn ggml_type(s: &str) -> Result<GgmlType> {
    GgmlType::ALL
        .iter()
        .copied()
        .find(|t| t.traits().in_gguf && t.name().eq_ignore_ascii_case(s))
        .with_context(|| format!("unknown tensor type '{s}'"))
}

pub fn run(a: Args) -> Result<()> {
    let Some(ftype) = FileType::from_name(&a.ftype) else {
        bail!(
            "unknown quantization type '{}'; valid types: {}",
            a.ftype,
            FileType::valid_names()
        );
    };
    let mut p = Params::new(ftype);
    p.n_threads = threads(a.threads);
    p.allow_requantize = a.allow_requantize;
    p.pure = a.pure;
    p.output_tensor_type = a.output_tensor_type.as_deref().map(ggml_type).transpose()?;
    p.token_embedding_type = a
        .token_embedding_type
        .as_deref()
        .map(ggml_type)
        .transpose()?;
    if let Some(path) = &a.imatrix {
        let im =
            Imatrix::load(path).with_context(|| format!("reading imatrix {}", path.display()))?;
        eprintln!(
            "imatrix: {} entries from {} ({} chunks)",
            im.stats.len(),
            path.display(),
            im.chunk_count
        );
        p.imatrix = Some((path.display().to_string(), im));
    }
    let t0 = Instant::now();
    let bar = ProgressBar::hidden();
    let quiet = a.quiet;
    let report = ferrite_quantize::quantize_file(&a.input, &a.output, &p, |ev| match ev {
        Event::Start { plan, .. } => {
            let total: u64 = plan.iter().map(|t| t.in_bytes()).sum();
            bar.set_length(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}",
                )
                .expect("valid template"),
            );
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        Event::Tensor {
            index,
            plan: t,
            imatrix_used,
        } => {
            bar.inc(t.in_bytes());
            bar.set_message(t.name.clone());
            if !quiet {
                let shape = t
                    .dims
                    .iter()
                    .map(|d| format!("{d:5}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let line = if t.from == t.to {
                    format!("size = {:8.3} MiB", t.in_bytes() as f64 / 1048576.0)
                } else {
                    format!(
                        "converting to {}{} .. size = {:8.2} MiB -> {:8.2} MiB",
                        t.to.name(),
                        if imatrix_used { " (imatrix)" } else { "" },
                        t.in_bytes() as f64 / 1048576.0,
                        t.out_bytes() as f64 / 1048576.0
                    )
                };
                let line = format!(
                    "[{:4}] {:>36} - [{shape}], type = {:>6}, {line}",
                    index + 1,
                    t.name,
                    t.from.name()
                );
                // indicatif draws nothing when stderr is not a terminal
                if bar.is_hidden() {
                    eprintln!("{line}");
                } else {
                    bar.println(line);
                };
            }
        }
    });
    bar.finish_and_clear();
    let report = report
        .with_context(|| format!("quantizing {} to {}", a.input.display(), a.output.display()))?;
    let mib = |b: u64| b as f64 / 1048576.0;
    let bpw = |b: u64| b as f64 * 8.0 / report.n_elements.max(1) as f64;
    eprintln!(
        "model size  = {:8.2} MiB ({:.2} BPW)",
        mib(report.in_bytes),
        bpw(report.in_bytes)
    );
    eprintln!(
        "quant size  = {:8.2} MiB ({:.2} BPW)",
        mib(report.out_bytes),
        bpw(report.out_bytes)
    );
    if report.n_fallback > 0 {
        eprintln!(
            "{} of {} tensor(s) required fallback quantization",
            report.n_fallback, report.n_tensors
        );
    }
    let types = report
        .type_counts
        .iter()
        .map(|(t, n)| format!("{}: {n}", t.name()))
        .collect::<Vec<_>>()
        .join(", ");
    eprintln!("types: {types}");
    eprintln!(
        "wrote {} ({ftype}) in {:.2} s with {} threads",
        a.output.display(),
        t0.elapsed().as_secs_f64(),
        p.n_threads
    );
    Ok(())
}
