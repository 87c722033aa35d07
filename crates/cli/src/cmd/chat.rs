//! `ferrite chat [MODEL]`: interactive multi-turn chat with the model's template. The KV cache
//! is kept across turns: each turn decodes only what the template added since the last one.

use std::io::{BufRead as _, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use ferrite_chat::{ChatTemplate, Message, RenderOptions};
use ferrite_models::Model;
use ferrite_sampling::Sampler;
use ferrite_tokenizer::Tokenizer;

use super::common::{ctx_size, resolve_model, threads, ModelArgs, SamplingArgs};
use crate::session::{Finish, Session};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// System prompt.
    #[arg(short = 's', long)]
    pub system: Option<String>,
    /// Chat template: a built-in name (chatml, llama3, gemma, ...) or a file, for models
    /// without one or to override theirs.
    #[arg(long)]
    pub chat_template: Option<String>,
    /// Most tokens per answer.
    #[arg(short = 'n', long = "n-predict", default_value_t = 1024)]
    pub n_predict: usize,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

pub fn run(a: Args) -> Result<()> {
    let path = resolve_model(&a.model.model)?;
    let model = Model::open(&path).with_context(|| format!("loading {}", path.display()))?;
    let gguf = model.gguf().meta();
    let tok =
        Tokenizer::from_gguf(gguf).with_context(|| format!("tokenizer of {}", path.display()))?;
    let template = ChatTemplate::for_model(gguf, a.chat_template.as_deref())?;
    let n_ctx = ctx_size(a.model.ctx_size, model.hp.n_ctx_train);
    let mut session = Session::new(&model, &tok, n_ctx, threads(a.model.threads))?;
    let mut sampler = Sampler::new(a.sampling.params());

    let stop = Arc::new(AtomicBool::new(false));
    let generating = Arc::new(AtomicBool::new(false));
    {
        let (stop, generating) = (stop.clone(), generating.clone());
        // Ctrl-C while answering stops the answer; at the prompt it exits.
        ctrlc::set_handler(move || {
            if generating.load(Ordering::SeqCst) {
                stop.store(true, Ordering::SeqCst);
            } else {
                std::process::exit(0);
            }
        })
        .context("installing the Ctrl-C handler")?;
    }

    let mut messages: Vec<Message> = Vec::new();
    if let Some(s) = &a.system {
        messages.push(Message::system(s.as_str()));
    }
    eprintln!(
        "ferrite chat: {} ({} tokens of context). Ctrl-C stops an answer; Ctrl-D or /exit quits.",
        path.display(),
        n_ctx
    );
    let stdin = std::io::stdin();
    let mut line = String::new();
    loop {
        eprint!("> ");
        std::io::stderr().flush()?;
        line.clear();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let user = line.trim_end_matches(['\n', '\r']);
        if user == "/exit" {
            break;
        }
        if user.is_empty() {
            continue;
        }
        messages.push(Message::user(user));
        let text = template.render(
            &messages,
            &RenderOptions {
                add_generation_prompt: true,
                ..Default::default()
            },
        )?;
        let prompt = tok.tokenize(&text, tok.add_bos(), true);
        let mut answer = String::new();
        stop.store(false, Ordering::SeqCst);
        generating.store(true, Ordering::SeqCst);
        let mut out = std::io::stdout().lock();
        let result = session.generate(&prompt, &mut sampler, a.n_predict, &stop, |s| {
            answer.push_str(s);
            out.write_all(s.as_bytes())?;
            out.flush()?;
            Ok(())
        });
        generating.store(false, Ordering::SeqCst);
        match result {
            Ok((finish, t)) => {
                writeln!(out)?;
                if finish == Finish::Interrupted {
                    eprintln!("[stopped]");
                }
                if finish == Finish::Context {
                    eprintln!("[context full: start a new chat or raise -c]");
                }
                eprintln!("[{}]", t.report());
                messages.push(Message::assistant(answer.as_str()));
            }
            Err(e) => {
                // The conversation stays usable: drop the turn that failed.
                eprintln!("error: {e:#}");
                messages.pop();
            }
        }
    }
    Ok(())
}
