//! `ferrite embed MODEL.gguf TEXT [TEXT ...] [-t N]`: the texts' embeddings (the model's
//! pooling, L2-normalised) as one JSON array of arrays on stdout. Encoder models (bert) only.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use ferrite_models::{EmbedParams, Embedder, Model};
use ferrite_tokenizer::Tokenizer;

#[derive(clap::Args)]
pub struct Args {
    /// GGUF file of an embedding model (architecture bert).
    pub model: PathBuf,
    /// Texts to embed, one vector each.
    #[arg(required = true, num_args = 1..)]
    pub texts: Vec<String>,
    /// Threads (default: all cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
}

pub fn run(a: Args) -> Result<()> {
    let file = a.model.display();
    let model = Model::open(&a.model).with_context(|| format!("{file}"))?;
    let tok = Tokenizer::from_gguf(model.gguf().meta())
        .with_context(|| format!("tokenizer of {file}"))?;
    let mut params = EmbedParams::default();
    if let Some(t) = a.threads {
        params.n_threads = t.max(1);
    }
    let mut emb = Embedder::new(&model, params).with_context(|| format!("{file}"))?;
    let ids: Vec<Vec<u32>> = a
        .texts
        .iter()
        .map(|t| tok.tokenize(t, true, true))
        .collect();
    let seqs: Vec<&[u32]> = ids.iter().map(|v| v.as_slice()).collect();
    let out = emb
        .embed(&seqs)
        .with_context(|| format!("embedding with {file}"))?;
    let mut w = std::io::stdout().lock();
    writeln!(w, "{}", serde_json::to_string(&out)?)?;
    Ok(())
}
