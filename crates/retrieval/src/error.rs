//! The crate's error type.

use std::path::PathBuf;

/// Result alias for retrieval operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, and where.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The embedding model folder is missing a file or has an unusable config.
    #[error("embedding model {path}: {message}")]
    Model {
        /// The model folder or file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Tokenizing or running the embedding model failed.
    #[error("embedding: {0}")]
    Embed(String),
    /// A document could not be turned into text (unsupported, binary, unreadable).
    #[error("{path}: {message}")]
    Read {
        /// The document.
        path: PathBuf,
        /// Why it was skipped.
        message: String,
    },
    /// The index database failed.
    #[error("index {location}: {message}")]
    Store {
        /// The index file or connection string (password removed).
        location: String,
        /// What failed.
        message: String,
    },
    /// The index was built with a different embedding model or dimension.
    #[error("index {location} was built with embedder {indexed} (dim {indexed_dim}); this run uses {current} (dim {current_dim}): re-ingest into a new index or pass the same --embedder")]
    EmbedderMismatch {
        /// The index.
        location: String,
        /// The embedder recorded in the index.
        indexed: String,
        /// Its dimension.
        indexed_dim: usize,
        /// The embedder of this run.
        current: String,
        /// Its dimension.
        current_dim: usize,
    },
    /// A benchmark or query input is malformed (names the file and line).
    #[error("{0}")]
    Invalid(String),
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Embed(e.to_string())
    }
}
