//! Errors of the trainer.

use std::path::PathBuf;

/// Everything that can go wrong while preparing, running or saving training.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
    /// Loading or running the model failed.
    #[error(transparent)]
    Model(#[from] tuneup_models::Error),
    /// Tokenizing or templating failed.
    #[error(transparent)]
    Tokenize(#[from] tuneup_tokenize::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file had the wrong content.
    #[error("{path}: {message}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The configuration cannot work.
    #[error("invalid training configuration: {0}")]
    Config(String),
    /// A training record cannot be used.
    #[error("record {index}: {message}")]
    BadRecord {
        /// 1-based record number in its file.
        index: usize,
        /// What is wrong.
        message: String,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A content error on `path`.
    pub fn bad_file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::BadFile {
            path: path.into(),
            message: message.into(),
        }
    }
}
