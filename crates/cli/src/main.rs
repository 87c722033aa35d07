//! `ferrite`: local LLM inference — one binary, one subcommand per tool.

use anyhow::Result;
use clap::{Parser, Subcommand};

mod cmd;
mod session;

#[derive(Parser)]
#[command(
    name = "ferrite",
    version,
    about = "Local LLM inference: GGUF models on your CPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a GGUF file's header, metadata and tensor table (never reads tensor data).
    Inspect(cmd::inspect::Args),
    /// Generate a continuation of a prompt, streamed to stdout.
    Run(cmd::run::Args),
    /// Interactive multi-turn chat using the model's chat template.
    Chat(cmd::chat::Args),
    /// Convert a Hugging Face transformers checkpoint folder to GGUF.
    Convert(cmd::convert::Args),
    /// Quantize a GGUF model with llama.cpp's presets (Q4_K_M, Q8_0, ...).
    Quantize(cmd::quantize::Args),
    /// Perplexity of a text file, as llama.cpp's llama-perplexity computes it.
    Perplexity(cmd::perplexity::Args),
    /// Importance matrix of a model on a text file, as llama.cpp's llama-imatrix computes it.
    Imatrix(cmd::imatrix::Args),
    /// Prompt-processing and generation speed, as llama-bench measures it.
    Bench(cmd::bench::Args),
    /// Fetch a known model (default SmolLM2-135M-Instruct) into the model cache.
    Pull(cmd::pull::Args),
    /// Token ids of a text as a JSON array (works on vocab-only GGUFs).
    Tokenize(cmd::tokenize::Args),
    /// OpenAI-compatible HTTP server with continuous batching and a web chat UI.
    Serve(cmd::serve::Args),
    /// Embeddings of texts as one JSON array (encoder models such as BERT).
    Embed(cmd::embed::Args),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Run(a) => cmd::run::run(a),
        Command::Chat(a) => cmd::chat::run(a),
        Command::Convert(a) => cmd::convert::run(a),
        Command::Quantize(a) => cmd::quantize::run(a),
        Command::Perplexity(a) => cmd::perplexity::run(a),
        Command::Imatrix(a) => cmd::imatrix::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Pull(a) => cmd::pull::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Embed(a) => cmd::embed::run(a),
        Command::Tokenize(a) => cmd::tokenize::run(a),
    }
}
