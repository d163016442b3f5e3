//! `tuneup pull`.

use anyhow::{Context, Result};
use clap::Args;
use tuneup_hub::{Cache, ModelLocation, ModelSpec, PullOptions};

use crate::progress::BarProgress;

/// Arguments of `tuneup pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// `qwen2.5-coder-0.5b`, `smollm2-135m`, `all-minilm-l6-v2`, or `hf:ORG/NAME[:FILE]`.
    pub model: String,
    /// Re-hash the cached file even if it was verified before.
    #[arg(long)]
    pub verify: bool,
    /// Print only the path.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Fetches the model and prints its local path.
pub fn run(args: PullArgs) -> Result<()> {
    let spec: ModelSpec = args
        .model
        .parse()
        .with_context(|| format!("model '{}'", args.model))?;
    let cache = Cache::from_env()?;
    let opts = PullOptions {
        verify: args.verify,
        ..PullOptions::default()
    };
    let mut progress = BarProgress::new(args.quiet);
    let loc = tuneup_hub::pull(&spec, &cache, &opts, &mut progress)
        .with_context(|| format!("pulling '{}'", args.model))?;
    let path = match loc {
        ModelLocation::GgufFile(p) | ModelLocation::HfFolder(p) => p,
    };
    println!("{}", path.display());
    Ok(())
}
