//! `ferrite`: local LLM inference — one binary, one subcommand per tool.

use anyhow::Result;
use clap::{Parser, Subcommand};

mod cmd;

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
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect(a) => cmd::inspect::run(a),
    }
}
