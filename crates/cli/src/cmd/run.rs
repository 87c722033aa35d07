//! `ferrite run [MODEL] -p PROMPT`: stream a continuation to stdout, timings to stderr.

use std::io::Write as _;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use ferrite_models::Model;
use ferrite_sampling::Sampler;
use ferrite_tokenizer::Tokenizer;

use super::common::{ctx_size, resolve_model, threads, ModelArgs, SamplingArgs};
use crate::session::Session;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The prompt (special tokens like <|im_start|> are parsed).
    #[arg(short = 'p', long)]
    pub prompt: String,
    /// Tokens to generate.
    #[arg(short = 'n', long = "n-predict", default_value_t = 128)]
    pub n_predict: usize,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

pub fn run(a: Args) -> Result<()> {
    let path = resolve_model(&a.model.model)?;
    let model = Model::open(&path).with_context(|| format!("loading {}", path.display()))?;
    let tok = Tokenizer::from_gguf(model.gguf().meta())
        .with_context(|| format!("tokenizer of {}", path.display()))?;
    let n_ctx = ctx_size(a.model.ctx_size, model.hp.n_ctx_train);
    let mut session = Session::new(&model, &tok, n_ctx, threads(a.model.threads))?;
    let prompt = tok.tokenize(&a.prompt, true, true);
    let mut sampler = Sampler::new(a.sampling.params());
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // First Ctrl-C stops generation and prints timings; a second one exits at once.
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    let mut out = std::io::stdout().lock();
    out.write_all(a.prompt.as_bytes())?;
    out.flush()?;
    let (_, t) = session.generate(&prompt, &mut sampler, a.n_predict, &stop, |s| {
        out.write_all(s.as_bytes())?;
        out.flush()?;
        Ok(())
    })?;
    writeln!(out)?;
    eprintln!("{}", t.report());
    Ok(())
}
