//! `ferrite tokenize FILE.gguf -p TEXT`: the token ids as a JSON array. Reads only the
//! tokenizer metadata, so vocab-only GGUFs (no tensors) work too.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use ferrite_tokenizer::Tokenizer;

#[derive(clap::Args)]
pub struct Args {
    /// GGUF file (a model or a vocab-only file).
    pub model: PathBuf,
    /// Text to tokenize.
    #[arg(short = 'p', long, conflicts_with = "file")]
    pub prompt: Option<String>,
    /// Read the text from a file instead.
    #[arg(short = 'f', long)]
    pub file: Option<PathBuf>,
    /// Do not add BOS/EOS even where the model's metadata asks for them.
    #[arg(long)]
    pub no_bos: bool,
    /// Treat special-token text like `<|im_start|>` as plain text.
    #[arg(long)]
    pub no_special: bool,
    /// Print one `id -> 'piece'` line per token instead of the JSON array.
    #[arg(long)]
    pub pieces: bool,
}

pub fn run(a: Args) -> Result<()> {
    let text = match (&a.prompt, &a.file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        (None, None) => bail!("give the text with -p TEXT or -f FILE"),
    };
    let tok =
        Tokenizer::open(&a.model).with_context(|| format!("tokenizer of {}", a.model.display()))?;
    let ids = tok.tokenize(&text, !a.no_bos, !a.no_special);
    let mut out = std::io::stdout().lock();
    if a.pieces {
        for &id in &ids {
            let piece = tok.token_to_piece(id, true);
            writeln!(out, "{id:>6} -> '{}'", String::from_utf8_lossy(&piece))?;
        }
    } else {
        writeln!(out, "{}", serde_json::to_string(&ids)?)?;
    }
    Ok(())
}
