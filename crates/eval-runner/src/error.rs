//! Errors of the eval runner: each says what failed and where (file, line, field).

use std::path::PathBuf;

/// Errors that stop a run before it starts or while writing its outputs. A failing example (generation error,
/// SQL timeout) is never one of these: it is recorded in the example's row.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{what} {path}")]
    Io {
        /// What was being done (`reading task file`, ...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The task TOML is malformed.
    #[error("task file {path}: {message}")]
    Task {
        /// The task file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A line of a JSONL data file is not valid JSON or lacks a mapped field.
    #[error("{path}:{line}: {message}")]
    Data {
        /// The data file.
        path: PathBuf,
        /// 1-based line number (0 for whole-file problems).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A prompt template failed to compile or render.
    #[error("prompt template ({which}): {message}")]
    Template {
        /// `template`, `system` or `few_shot.template`.
        which: &'static str,
        /// minijinja's message.
        message: String,
    },
    /// The model could not be resolved or loaded.
    #[error("model {name}: {message}")]
    Model {
        /// The model name from the task.
        name: String,
        /// What failed.
        message: String,
    },
    /// A run directory is not a finished run.
    #[error("run directory {path}: {message}")]
    Run {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Loading or reaching an evaluation database failed (`tuneup eval load-postgres`).
    #[error("{what}: {message}")]
    Database {
        /// What was being done, naming the database (URLs with the password redacted).
        what: String,
        /// Why it failed.
        message: String,
    },
    /// Fetching benchmark data failed.
    #[error("fetching {what}: {message}")]
    Fetch {
        /// What was fetched.
        what: String,
        /// Why it failed.
        message: String,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Reads a file to a string, naming it on failure.
pub(crate) fn read_to_string(path: &std::path::Path, what: &'static str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a file, naming it on failure.
pub(crate) fn write(
    path: &std::path::Path,
    what: &'static str,
    data: impl AsRef<[u8]>,
) -> Result<()> {
    std::fs::write(path, data).map_err(|source| Error::Io {
        what,
        path: path.to_path_buf(),
        source,
    })
}
