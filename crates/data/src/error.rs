//! Errors of the data crate: each names the file, and the line where there is one.

use std::path::{Path, PathBuf};

/// A failure that stops reading or writing (a malformed *record* is not one: it is a [`crate::Rejected`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line (or record of a JSON array) is malformed where that is fatal: the strict reader
    /// [`crate::read_chat_jsonl`], a JSON array that does not parse, a `tables.json` that is not one.
    #[error("{}:{line}: {message}", path.display())]
    Data {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A whole file is unusable (its format cannot be told, it needs a schema that was not given).
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A SQLite database could not be opened or its schema read.
    #[error("{}: {source}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// An option is out of range or does not parse.
    #[error("{0}")]
    Invalid(String),
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Reads a whole file as UTF-8 text (a leading byte-order mark is dropped).
pub(crate) fn read_to_string(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_owned(),
        None => text,
    })
}

/// Wraps an I/O error with its path.
pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}
