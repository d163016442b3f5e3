//! `tuneup generate`: raw completion, no chat template, for scripts.

use std::io::Write;
use std::ops::ControlFlow;

use anyhow::{bail, Result};
use clap::Args;
use tuneup_generate::Generator;

use crate::args::{ModelArgs, SamplingArgs};
use crate::chat::stats_line;
use crate::model::{attach_draft, load};

/// Arguments of `tuneup generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// The text to continue (`-` reads stdin).
    #[arg(short = 'p', long)]
    prompt: String,
    /// Do not add the BOS token even if the model asks for one.
    #[arg(long)]
    no_bos: bool,
    /// Print the prompt before the completion.
    #[arg(long)]
    echo: bool,
    /// Print speed figures to stderr.
    #[arg(long)]
    stats: bool,
}

/// Runs the completion, streaming to stdout.
pub fn run(args: GenerateArgs) -> Result<()> {
    let model = load(&args.model)?;
    let prompt = if args.prompt == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        args.prompt.clone()
    };
    let ids = model.tokenizer.encode(&prompt, !args.no_bos)?;
    if ids.is_empty() {
        bail!("the prompt is empty");
    }
    let mut params = args.sampling.params();
    attach_draft(&args.sampling, &model, &args.model, &mut params)?;
    let stdout = std::io::stdout();
    if args.echo {
        print!("{prompt}");
    }
    let mut sink = |_id: u32, piece: &str| {
        let mut out = stdout.lock();
        let _ = out.write_all(piece.as_bytes());
        let _ = out.flush();
        ControlFlow::Continue(())
    };
    let mut generator = Generator::new(&model.model.decoder, &model.tokenizer);
    let out = generator.generate(&ids, &mut params, &mut sink)?;
    println!();
    if args.stats {
        eprintln!("{}", stats_line(&out.stats));
    }
    Ok(())
}
