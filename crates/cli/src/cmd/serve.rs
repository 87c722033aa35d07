//! `ferrite serve [MODEL]`: an OpenAI-compatible HTTP server with continuous batching and a
//! web chat UI at `/` (see the `ferrite-server` and `ferrite-engine` crates).

use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};

use super::common::{resolve_model, threads};

#[derive(clap::Args)]
pub struct Args {
    /// GGUF model file (default: SmolLM2-135M-Instruct from the model cache).
    pub model: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port; the chosen one is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Slots: requests decoded together in one batch.
    #[arg(long, short = 'n', default_value_t = 4)]
    pub parallel: usize,
    /// Context size of all slots together (default: the model's, at most 4096); each slot
    /// gets ctx-size / parallel tokens.
    #[arg(short = 'c', long = "ctx-size")]
    pub ctx_size: Option<usize>,
    /// Threads (default: all cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Most tokens decoded per step (generation tokens plus prompt chunks).
    #[arg(short = 'b', long = "batch-size", default_value_t = 256)]
    pub batch_size: usize,
    /// Requests that may wait for a slot; more get 503 with Retry-After.
    #[arg(long, default_value_t = 128)]
    pub queue_size: usize,
    /// Require this API key (`Authorization: Bearer KEY`).
    #[arg(long, conflicts_with = "api_key_file")]
    pub api_key: Option<String>,
    /// Read the API key from a file (first line).
    #[arg(long)]
    pub api_key_file: Option<PathBuf>,
    /// Model name reported to and accepted from clients (default: the file name).
    #[arg(long)]
    pub alias: Option<String>,
    /// Chat template: a built-in name (chatml, llama3, gemma, ...) or a file, for models
    /// without one or to override theirs.
    #[arg(long)]
    pub chat_template: Option<String>,
    /// KV cache type: f16 (llama.cpp's default) or f32 (twice the memory; results then do not
    /// depend on how the cache cells of concurrent requests interleave).
    #[arg(long, default_value = "f16", value_parser = ["f16", "f32"])]
    pub kv_type: String,
}

pub fn run(a: Args) -> Result<()> {
    let model_path = resolve_model(&a.model)?;
    let api_key = match (&a.api_key, &a.api_key_file) {
        (Some(k), _) => Some(k.clone()),
        (None, Some(f)) => {
            let s =
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            let k = s.lines().next().unwrap_or("").trim().to_owned();
            if k.is_empty() {
                bail!("{} holds no API key", f.display());
            }
            Some(k)
        }
        (None, None) => None,
    };
    ferrite_server::run(ferrite_server::ServeConfig {
        model_path,
        host: a.host,
        port: a.port,
        n_parallel: a.parallel.max(1),
        n_ctx: a.ctx_size,
        n_threads: threads(a.threads),
        n_batch: a.batch_size.max(1),
        max_queue: a.queue_size,
        api_key,
        alias: a.alias,
        chat_template: a.chat_template,
        kv_type: if a.kv_type == "f32" {
            ferrite_gguf::GgmlType::F32
        } else {
            ferrite_gguf::GgmlType::F16
        },
    })?;
    Ok(())
}
