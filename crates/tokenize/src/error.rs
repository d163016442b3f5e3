//! The crate-wide error type.

use std::path::PathBuf;

/// Everything that can go wrong while loading a tokenizer, encoding or decoding text,
/// or rendering a chat template.
///
/// Every message names what failed and where (the metadata key, file, token id or
/// template), so that it can be shown to a user as-is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A required GGUF metadata key is absent.
    #[error("GGUF metadata has no `{key}` key: {what}")]
    MissingKey {
        /// The metadata key, e.g. `tokenizer.ggml.tokens`.
        key: String,
        /// What the key is needed for.
        what: &'static str,
    },

    /// A GGUF metadata key holds a value of the wrong type.
    #[error("GGUF metadata key `{key}` should be {expected}, but it is {found}")]
    WrongType {
        /// The metadata key.
        key: String,
        /// The expected type, in words.
        expected: &'static str,
        /// The type that was found, in words.
        found: String,
    },

    /// `tokenizer.ggml.model` names a tokenizer model this crate does not implement.
    #[error(
        "unsupported tokenizer model `{model}` in GGUF key `tokenizer.ggml.model` \
         (supported: \"gpt2\" byte-level BPE, \"llama\" SentencePiece)"
    )]
    UnsupportedModel {
        /// The value of `tokenizer.ggml.model`.
        model: String,
    },

    /// `tokenizer.ggml.pre` names a pre-tokenizer this crate does not know.
    #[error(
        "unknown pre-tokenizer `{pre}` in GGUF key `tokenizer.ggml.pre`; \
         known: {known}"
    )]
    UnknownPreTokenizer {
        /// The value of `tokenizer.ggml.pre`.
        pre: String,
        /// The known names, comma separated.
        known: String,
    },

    /// The GGUF tokenizer metadata is inconsistent (bad lengths, duplicate tokens, ...).
    #[error("invalid GGUF tokenizer metadata in `{key}`: {reason}")]
    InvalidMetadata {
        /// The metadata key at fault.
        key: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A token id is not part of the vocabulary.
    #[error("token id {id} is out of range for a vocabulary of {vocab_size} tokens")]
    TokenOutOfRange {
        /// The offending id.
        id: u32,
        /// The vocabulary size.
        vocab_size: usize,
    },

    /// Reading a file failed (the message includes the path).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),

    /// A JSON file could not be parsed or has an unexpected shape.
    #[error("invalid JSON in {path}: {reason}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The `tokenizers` library reported an error.
    #[error("tokenizers error while {context}: {message}")]
    Tokenizers {
        /// What was being done, e.g. "building the BPE model from GGUF metadata".
        context: String,
        /// The library's message.
        message: String,
    },

    /// The chat template failed to compile or render.
    #[error("chat template error: {0}")]
    Template(String),

    /// The chat template called `raise_exception(message)`.
    #[error("chat template raised an exception: {0}")]
    TemplateException(String),

    /// A chat message passed to [`crate::ChatTemplate::render`] is not usable.
    #[error("invalid chat message at index {index}: {reason}")]
    InvalidMessage {
        /// Index in the messages slice.
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Shorthand for `std::result::Result<T, tuneup_tokenize::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn tokenizers(context: impl Into<String>, err: impl std::fmt::Display) -> Self {
        Error::Tokenizers {
            context: context.into(),
            message: err.to_string(),
        }
    }
}
