//! `tuneup merge`: fold a LoRA adapter into its base model (GGUF F16/Q8_0)
//! and check that the merged model computes what base + adapter computes.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::quantized::GgmlDType;
use clap::Args;
use tuneup_generate::ChatModel;
use tuneup_models::{LoadOptions, LogitsFor, ModelFiles};

use crate::model::{init_threads, resolve_files};

/// Arguments of `tuneup merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Base model (GGUF file or alias).
    #[arg(short = 'm', long)]
    pub model: String,
    /// Adapter folder (PEFT format).
    #[arg(long)]
    pub adapter: PathBuf,
    /// Output GGUF file.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// Storage of the merged matrices: `f16`, `q8_0` or `f32`.
    #[arg(long = "type", default_value = "f16", value_parser = ["f16", "q8_0", "f32"])]
    pub dtype: String,
    /// Text whose next-token predictions are compared after merging.
    #[arg(long, default_value = "SELECT name FROM users WHERE")]
    pub probe: String,
    /// CPU threads.
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
}

fn logits(m: &ChatModel, ids: &[u32]) -> Result<candle_core::Tensor> {
    let mut st = m.model.decoder.new_state();
    Ok(m.model.decoder.forward(ids, &mut st, LogitsFor::All)?)
}

/// Runs `tuneup merge`.
pub fn run(args: MergeArgs) -> Result<()> {
    init_threads(args.threads);
    let files = resolve_files(&args.model)?;
    let ModelFiles::Gguf(base) = &files else {
        bail!(
            "merge writes GGUF and needs a GGUF base model; '{}' is an HF folder",
            args.model
        );
    };
    let dtype = match args.dtype.as_str() {
        "q8_0" => GgmlDType::Q8_0,
        "f32" => GgmlDType::F32,
        _ => GgmlDType::F16,
    };
    let mut adapted = ChatModel::load(&files, &LoadOptions::default())?;
    tuneup_train::attach_adapter(&mut adapted.model.decoder, &args.adapter)
        .with_context(|| format!("applying adapter {}", args.adapter.display()))?;
    let order = tuneup_train::QkRowOrder::of(&adapted.model.decoder);
    let report = tuneup_train::merge_gguf(base, &args.adapter, order, &args.output, dtype)
        .with_context(|| format!("writing {}", args.output.display()))?;
    println!(
        "wrote {} ({} tensors, {} merged with the adapter, matrices {:?})",
        args.output.display(),
        report.tensors,
        report.merged,
        report.dtype
    );
    // Check: the merged file predicts what base + adapter predicts.
    let merged = ChatModel::load(
        &ModelFiles::Gguf(args.output.clone()),
        &LoadOptions::default(),
    )
    .with_context(|| format!("loading the merged model {}", args.output.display()))?;
    let ids = adapted.tokenizer.encode(&args.probe, true)?;
    let a = logits(&adapted, &ids)?;
    let b = logits(&merged, &ids)?;
    let diff = (&a - &b)?.abs()?.max_all()?.to_scalar::<f32>()?;
    let top_a = a.argmax(candle_core::D::Minus1)?.to_vec1::<u32>()?;
    let top_b = b.argmax(candle_core::D::Minus1)?.to_vec1::<u32>()?;
    let agree = top_a.iter().zip(&top_b).filter(|(x, y)| x == y).count();
    println!(
        "check on {} probe tokens: next-token agreement {agree}/{}, max |logit difference| {diff:.4}",
        ids.len(),
        ids.len()
    );
    if agree * 10 < ids.len() * 9 {
        bail!(
            "the merged model disagrees with base + adapter on {} of {} positions",
            ids.len() - agree,
            ids.len()
        );
    }
    Ok(())
}
