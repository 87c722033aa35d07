//! `ferrite convert HF_DIR [-o OUT.gguf] [--outtype f32|f16|bf16|q8_0|auto]`

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use ferrite_convert::{convert, ConvertOptions, OutType};

#[derive(clap::Args)]
pub struct Args {
    /// A transformers checkpoint folder (config.json, *.safetensors, tokenizer files).
    pub input_dir: PathBuf,
    /// Output file (default: <input_dir>/<name>-<outtype>.gguf).
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// f32, f16, bf16, q8_0 or auto (bf16 when the checkpoint is bf16, else f16).
    #[arg(long, default_value = "auto")]
    pub outtype: OutType,
    /// Threads (default: all cores).
    #[arg(short = 't', long, default_value_t = 0)]
    pub threads: usize,
}

pub fn run(a: Args) -> Result<()> {
    let opts = ConvertOptions {
        input_dir: a.input_dir.clone(),
        output: a.output,
        outtype: a.outtype,
        threads: a.threads,
        progress: true,
    };
    let r = convert(&opts).with_context(|| format!("converting {}", a.input_dir.display()))?;
    for n in &r.notes {
        eprintln!("note: {n}");
    }
    eprintln!(
        "wrote {} ({}, {}, {} tensors, {:.1}M params, {} tokens, tokenizer {}{}) in {:.1} s",
        r.output.display(),
        r.gguf_architecture,
        r.outtype,
        r.n_tensors,
        r.n_params as f64 / 1e6,
        r.n_vocab,
        r.tokenizer_model,
        r.tokenizer_pre
            .as_deref()
            .map(|p| format!("/{p}"))
            .unwrap_or_default(),
        r.seconds
    );
    Ok(())
}
