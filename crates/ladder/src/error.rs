//! Errors of the ladder, each naming what failed and where.

use std::path::PathBuf;

/// A ladder error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ladder file is wrong.
    #[error("{}: {message}", path.display())]
    Config {
        /// The ladder file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The data could not be split.
    #[error("data {}: {message}", path.display())]
    Data {
        /// The data file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Evaluation failed as a whole (one example failing is recorded, not an error).
    #[error("evaluating {what}: {source}")]
    Eval {
        /// Which configuration.
        what: String,
        /// The cause.
        source: tuneup_eval_runner::Error,
    },
    /// A model could not be opened (the message names it).
    #[error("{0}")]
    Model(String),
    /// Training failed.
    #[error("training ({what}): {source}")]
    Train {
        /// Which rung.
        what: String,
        /// The cause.
        source: tuneup_train::Error,
    },
    /// The user stopped the ladder (Ctrl-C); finished rungs are kept.
    #[error("interrupted: finished rungs are kept; run the same command again to resume")]
    Interrupted,
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Wraps an I/O error with what was being done and where.
pub(crate) fn io<'a>(
    what: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` atomically (a temporary file in the same folder, then a rename).
pub(crate) fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs_err::create_dir_all(dir).map_err(|e| io("creating", dir)(e))?;
    }
    let tmp = path.with_extension("tmp");
    fs_err::write(&tmp, bytes).map_err(|e| io("writing", &tmp)(e))?;
    fs_err::rename(&tmp, path).map_err(|e| io("renaming into", path)(e))
}
