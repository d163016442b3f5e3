//! `tuneup merge`: fold a LoRA adapter into its base model (GGUF
//! F16/Q8_0/F32, or an HF safetensors folder) and check that the merged
//! model computes what base + adapter computes.

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
    /// Base model (GGUF file, HF folder or alias; `--format gguf` needs GGUF).
    #[arg(short = 'm', long)]
    pub model: String,
    /// Adapter folder (PEFT format).
    #[arg(long)]
    pub adapter: PathBuf,
    /// Output: a GGUF file, or a folder with `--format safetensors`.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// `gguf` (one file) or `safetensors` (an HF model folder, f32).
    #[arg(long, default_value = "gguf", value_parser = ["gguf", "safetensors"])]
    pub format: String,
    /// GGUF storage of the merged matrices: `f16`, `q8_0` or `f32`.
    #[arg(long = "type", default_value = "f16", value_parser = ["f16", "q8_0", "f32"])]
    pub dtype: String,
    /// Text whose next-token predictions are compared after merging.
    #[arg(
        long,
        default_value = "List the names of singers older than 30. SELECT name FROM singer WHERE age > 30 ORDER BY name"
    )]
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
    let safetensors = args.format == "safetensors";
    if safetensors && args.output.is_file() {
        bail!(
            "--format safetensors writes a folder, but {} is a file",
            args.output.display()
        );
    }
    // Base + adapter in exact f32: the quantized kernels also quantize the
    // activations, which would blur the comparison below.
    let reference = LoadOptions {
        wrapper: Some(std::sync::Arc::new(tuneup_train::DequantizeBase)),
        ..LoadOptions::default()
    };
    let mut adapted = tuneup_runtime::load_files(&args.model, &files, &reference, &[])?;
    let modules = tuneup_runtime::attach_adapters(
        &mut adapted,
        &args.model,
        std::slice::from_ref(&args.adapter),
    )?[0];
    let merged_files = if safetensors {
        tuneup_train::write_model_folder(&args.output, &adapted)
            .with_context(|| format!("writing {}", args.output.display()))?;
        println!(
            "wrote {} (HF folder, f32 safetensors; {modules} modules merged with the adapter)",
            args.output.display()
        );
        ModelFiles::HfFolder(args.output.clone())
    } else {
        let ModelFiles::Gguf(base) = &files else {
            bail!(
                "--format gguf needs a GGUF base model; '{}' is an HF folder (use --format safetensors)",
                args.model
            );
        };
        let dtype = match args.dtype.as_str() {
            "q8_0" => GgmlDType::Q8_0,
            "f32" => GgmlDType::F32,
            _ => GgmlDType::F16,
        };
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
        ModelFiles::Gguf(args.output.clone())
    };
    // Check: the merged model predicts what base + adapter predicts.
    let merged = ChatModel::load(&merged_files, &LoadOptions::default())
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
    // Q8_0 matrices run in the quantized kernels, which also quantize the
    // activations: near-ties may flip there, so it gets a looser bar.
    let needed = if !safetensors && args.dtype == "q8_0" {
        0.75
    } else {
        0.9
    };
    if (agree as f64) < needed * ids.len() as f64 {
        bail!(
            "the merged model disagrees with base + adapter on {} of {} positions",
            ids.len() - agree,
            ids.len()
        );
    }
    Ok(())
}
