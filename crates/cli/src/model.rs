//! The CLI side of opening a model (through `tuneup-runtime`, with a progress bar for pulls) and
//! `tuneup info`.

use anyhow::Result;
use candle_core::Device;
use clap::Args;
use tuneup_generate::{ChatModel, DraftModel, Speculation};
use tuneup_models::ModelFiles;
use tuneup_runtime::ModelRequest;

use crate::args::{ModelArgs, SamplingArgs};
use crate::progress::BarProgress;

pub use tuneup_runtime::init_threads;

/// Finds (pulling if needed, with a progress bar) the files of a model name.
pub fn resolve_files(name: &str) -> Result<ModelFiles> {
    Ok(tuneup_runtime::resolve_files(
        name,
        &mut BarProgress::new(false),
    )?)
}

/// The first CUDA GPU when `gpu`, else the CPU.
pub fn device(gpu: bool) -> Result<Device> {
    Ok(tuneup_runtime::device(gpu)?)
}

/// What `args` asks to open.
pub fn request(args: &ModelArgs) -> ModelRequest {
    ModelRequest {
        spec: args.model.clone(),
        gpu: args.gpu,
        ctx_size: args.ctx_size,
        adapters: args.adapter.iter().cloned().collect(),
        threads: args.threads,
    }
}

/// Loads the model named in `args`.
pub fn load(args: &ModelArgs) -> Result<ChatModel> {
    Ok(tuneup_runtime::open(
        &request(args),
        &mut BarProgress::new(false),
    )?)
}

/// Attaches a draft model when `--draft-model` was given (same device and context cap as the target).
pub fn attach_draft(
    sampling: &SamplingArgs,
    target: &ChatModel,
    model_args: &ModelArgs,
    params: &mut tuneup_generate::GenerateParams,
) -> Result<()> {
    if let Some(name) = &sampling.draft_model {
        let draft = tuneup_runtime::load_files(
            name,
            &resolve_files(name)?,
            &tuneup_runtime::load_options(&request(model_args))?,
            &[],
        )?;
        let vocab = target.model.decoder.embedding().rows();
        params.speculation = Speculation::DraftModel(Box::new(DraftModel::new(
            draft.model.decoder,
            vocab,
            sampling.draft_max,
        )?));
    }
    Ok(())
}

/// Arguments of `tuneup info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Prints the architecture, sizes and storage types of a model.
pub fn info(args: InfoArgs) -> Result<()> {
    let m = load(&args.model)?;
    let cfg = m.model.decoder.config();
    println!("files:          {:?}", m.model.files);
    println!("architecture:   {:?}", cfg.architecture);
    println!("layers:         {}", cfg.num_layers);
    println!("hidden size:    {}", cfg.hidden_size);
    println!("ffn size:       {}", cfg.intermediate_size);
    println!("heads (kv):     {} ({})", cfg.num_heads, cfg.num_kv_heads);
    println!("head dim:       {}", cfg.head_dim);
    println!("vocabulary:     {}", cfg.vocab_size);
    println!("context:        {}", cfg.max_position_embeddings);
    println!("rope theta:     {}", cfg.rope_theta);
    println!("tied embedding: {}", cfg.tie_word_embeddings);
    let l0 = &m.model.decoder.layers()[0];
    println!("layer-0 o_proj: {}", l0.o.storage_kind());
    println!(
        "lm head:        {}",
        m.model.decoder.lm_head().storage_kind()
    );
    println!(
        "chat template:  {}",
        if m.template.is_some() { "yes" } else { "no" }
    );
    println!(
        "end tokens:     {:?}",
        m.tokenizer
            .eog_ids()
            .iter()
            .map(|&id| m.tokenizer.id_to_piece(id).unwrap_or_default())
            .collect::<Vec<_>>()
    );
    Ok(())
}
