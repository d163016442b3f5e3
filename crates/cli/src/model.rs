//! Resolving a model name to files, loading it, and `tuneup info`.

use anyhow::{Context, Result};
use candle_core::Device;
use clap::Args;
use tuneup_generate::{ChatModel, DraftModel, Speculation};
use tuneup_hub::{Cache, ModelLocation, ModelSpec};
use tuneup_models::{LoadOptions, ModelFiles};

use crate::args::{ModelArgs, SamplingArgs};
use crate::progress::BarProgress;

/// Sets the CPU thread count before any kernel runs.
pub fn init_threads(threads: Option<usize>) {
    if let Some(n) = threads {
        let n = n.max(1);
        // candle reads RAYON_NUM_THREADS for its own pool; set both.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
}

/// Finds (pulling if needed) the files of a model name.
pub fn resolve_files(name: &str) -> Result<ModelFiles> {
    let spec: ModelSpec = name.parse().with_context(|| format!("model '{name}'"))?;
    let cache = Cache::from_env()?;
    let mut progress = BarProgress::new(false);
    let loc = tuneup_hub::resolve(&spec, &cache, &mut progress)
        .with_context(|| format!("resolving model '{name}'"))?;
    Ok(match loc {
        ModelLocation::GgufFile(p) => ModelFiles::Gguf(p),
        ModelLocation::HfFolder(p) => ModelFiles::HfFolder(p),
    })
}

/// The first CUDA GPU when `gpu`, else the CPU.
pub fn device(gpu: bool) -> Result<Device> {
    if gpu {
        Device::new_cuda(0).context("opening CUDA device 0 (build with --features cuda)")
    } else {
        Ok(Device::Cpu)
    }
}

/// Loads the model named in `args`.
pub fn load(args: &ModelArgs) -> Result<ChatModel> {
    init_threads(args.threads);
    let files = resolve_files(&args.model)?;
    let opts = LoadOptions {
        device: device(args.gpu)?,
        max_context: args.ctx_size,
        ..LoadOptions::default()
    };
    let mut m = ChatModel::load(&files, &opts)
        .with_context(|| format!("loading model '{}'", args.model))?;
    if let Some(dir) = &args.adapter {
        let n = tuneup_train::attach_adapter(&mut m.model.decoder, dir)
            .with_context(|| format!("applying adapter {}", dir.display()))?;
        tracing::info!("adapter {}: {n} modules", dir.display());
    }
    Ok(m)
}

/// Attaches a draft model when `--draft-model` was given.
pub fn attach_draft(
    sampling: &SamplingArgs,
    target: &ChatModel,
    model_args: &ModelArgs,
    params: &mut tuneup_generate::GenerateParams,
) -> Result<()> {
    if let Some(name) = &sampling.draft_model {
        let files = resolve_files(name)?;
        let opts = LoadOptions {
            device: device(model_args.gpu)?,
            max_context: model_args.ctx_size,
            ..LoadOptions::default()
        };
        let draft = tuneup_models::load(&files, &opts)
            .with_context(|| format!("loading draft model '{name}'"))?;
        let vocab = target.model.decoder.embedding().rows();
        params.speculation = Speculation::DraftModel(Box::new(DraftModel::new(
            draft.decoder,
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
