//! Opening a model by name, in one place.
//!
//! A [`ModelRequest`] says what to open (an alias such as `smollm2-135m`, a local GGUF file or HF folder, or
//! `hf:ORG/NAME[:FILE]`), on which device, with how large a context and which PEFT adapters. [`open`] resolves
//! the spec to files ([`resolve_files`], pulling a known alias or an `hf:` model when it is not cached), loads
//! them on [`device`] with the context cap ([`load_options`]) and attaches the adapters ([`attach_adapters`]).
//! The CLI commands, `tuneup eval`'s in-process backend and training's model resolution all go through here.
//!
//! Every [`Error`] names the spec or the adapter folder it is about.

use std::path::{Path, PathBuf};

use candle_core::Device;
use tuneup_generate::ChatModel;
use tuneup_hub::{Cache, ModelLocation, ModelSpec, PullProgress};
use tuneup_models::{LoadOptions, ModelFiles};

pub use tuneup_hub::{LogProgress, NoProgress};

/// What to open: a model spec (alias, path, `hf:ORG/NAME[:FILE]`), where, how large a context, which adapters.
#[derive(Debug, Clone, Default)]
pub struct ModelRequest {
    /// An alias (`qwen2.5-coder-0.5b`, `smollm2-135m`), a local GGUF file or HF folder, or `hf:ORG/NAME[:FILE]`.
    pub spec: String,
    /// Run on the first CUDA GPU (needs a build with the `cuda` feature) instead of the CPU.
    pub gpu: bool,
    /// Cap on the context window (tokens) below the model's own.
    pub ctx_size: Option<usize>,
    /// PEFT adapter folders, attached in this order (their updates add up).
    pub adapters: Vec<PathBuf>,
    /// CPU threads for the kernels (default: all cores); set once per process, before any kernel runs.
    pub threads: Option<usize>,
}

impl ModelRequest {
    /// A request for `spec` on the CPU with the model's own context and no adapters.
    pub fn new(spec: impl Into<String>) -> Self {
        Self {
            spec: spec.into(),
            ..Self::default()
        }
    }
}

/// Why a model could not be opened; each names the spec or adapter folder concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec is not an alias, an existing local path or a valid `hf:` spec, or pulling it failed.
    #[error("model '{spec}': {cause}")]
    Resolve {
        /// The spec as given.
        spec: String,
        /// What the hub said.
        cause: Box<tuneup_hub::Error>,
    },
    /// The CUDA device could not be opened.
    #[error("opening CUDA device 0 (build with --features cuda): {0}")]
    Device(Box<candle_core::Error>),
    /// The resolved files could not be loaded as a model.
    #[error("loading model '{spec}' ({files}): {cause}")]
    Load {
        /// The spec as given.
        spec: String,
        /// The file or folder it resolved to.
        files: String,
        /// What failed.
        cause: Box<tuneup_generate::Error>,
    },
    /// An adapter folder does not exist.
    #[error("adapter {}: no such folder (expected a PEFT adapter folder with adapter_config.json)", path.display())]
    AdapterMissing {
        /// The folder as given.
        path: PathBuf,
    },
    /// An adapter could not be read or does not fit the model.
    #[error("adapter {} on model '{spec}': {cause}", path.display())]
    Adapter {
        /// The adapter folder.
        path: PathBuf,
        /// The model spec it was attached to.
        spec: String,
        /// What failed.
        cause: Box<tuneup_train::Error>,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Sets the CPU thread count before any kernel runs (`None` keeps the default: all cores). The global pool can
/// be built once per process; later calls only update `RAYON_NUM_THREADS`.
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

/// Finds the files of a model spec in the tuneup cache (`$TUNEUP_HOME`), pulling a known alias or an `hf:`
/// model when missing, with `progress` told about downloads.
pub fn resolve_files(spec: &str, progress: &mut dyn PullProgress) -> Result<ModelFiles> {
    let err = |cause| Error::Resolve {
        spec: spec.to_owned(),
        cause: Box::new(cause),
    };
    let parsed: ModelSpec = spec.parse().map_err(err)?;
    let cache = Cache::from_env().map_err(err)?;
    let location = tuneup_hub::resolve(&parsed, &cache, progress).map_err(err)?;
    Ok(match location {
        ModelLocation::GgufFile(p) => ModelFiles::Gguf(p),
        ModelLocation::HfFolder(p) => ModelFiles::HfFolder(p),
    })
}

/// The first CUDA GPU when `gpu`, else the CPU.
pub fn device(gpu: bool) -> Result<Device> {
    if gpu {
        Device::new_cuda(0).map_err(|e| Error::Device(Box::new(e)))
    } else {
        Ok(Device::Cpu)
    }
}

/// The load options of a request: its device and context cap (no adapter hook).
pub fn load_options(req: &ModelRequest) -> Result<LoadOptions> {
    Ok(LoadOptions {
        device: device(req.gpu)?,
        max_context: req.ctx_size,
        ..LoadOptions::default()
    })
}

/// Attaches PEFT adapter folders to `model` in order (their updates add up) and returns the number of
/// adapted modules of each. `spec` names the model in errors.
pub fn attach_adapters(
    model: &mut ChatModel,
    spec: &str,
    adapters: &[PathBuf],
) -> Result<Vec<usize>> {
    adapters
        .iter()
        .map(|dir| attach_adapter(model, spec, dir))
        .collect()
}

/// Attaches one PEFT adapter folder; the one place adapters are applied to an opened model.
fn attach_adapter(model: &mut ChatModel, spec: &str, dir: &Path) -> Result<usize> {
    check_adapter(dir)?;
    let n = tuneup_train::attach_adapter(&mut model.model.decoder, dir).map_err(|cause| {
        Error::Adapter {
            path: dir.to_owned(),
            spec: spec.to_owned(),
            cause: Box::new(cause),
        }
    })?;
    tracing::info!("adapter {}: {n} modules", dir.display());
    Ok(n)
}

/// Fails with [`Error::AdapterMissing`] when `dir` is not a folder.
fn check_adapter(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(Error::AdapterMissing {
            path: dir.to_owned(),
        })
    }
}

/// Loads already resolved `files` with `opts` (device, context cap, an adapter hook such as training's
/// dequantizing wrapper) and attaches `adapters`. `spec` names the model in errors.
pub fn load_files(
    spec: &str,
    files: &ModelFiles,
    opts: &LoadOptions,
    adapters: &[PathBuf],
) -> Result<ChatModel> {
    let mut model = ChatModel::load(files, opts).map_err(|cause| Error::Load {
        spec: spec.to_owned(),
        files: describe(files),
        cause: Box::new(cause),
    })?;
    attach_adapters(&mut model, spec, adapters)?;
    Ok(model)
}

/// Opens a model: sets the thread count, resolves the spec, loads it on the requested device with the context
/// cap and attaches the adapters. A missing adapter folder is reported before anything is pulled or loaded.
pub fn open(req: &ModelRequest, progress: &mut dyn PullProgress) -> Result<ChatModel> {
    req.adapters.iter().try_for_each(|dir| check_adapter(dir))?;
    init_threads(req.threads);
    let files = resolve_files(&req.spec, progress)?;
    load_files(&req.spec, &files, &load_options(req)?, &req.adapters)
}

/// The path a model resolved to, for messages.
fn describe(files: &ModelFiles) -> String {
    match files {
        ModelFiles::Gguf(p) | ModelFiles::HfFolder(p) => p.display().to_string(),
    }
}
