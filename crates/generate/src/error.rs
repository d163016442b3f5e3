//! Errors of generation.

/// What can go wrong while generating.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The prompt had no tokens.
    #[error("the prompt is empty")]
    EmptyPrompt,
    /// The prompt does not fit the context window.
    #[error("the prompt has {prompt} tokens but the context window holds {context}; shorten it or use a model with a longer context")]
    PromptTooLong {
        /// Prompt tokens.
        prompt: usize,
        /// Context window.
        context: usize,
    },
    /// The draft model cannot serve the target.
    #[error("the draft model's vocabulary ({draft_vocab} tokens) does not match the target's ({target_vocab}); a draft model must share the tokenizer")]
    DraftMismatch {
        /// Draft vocabulary size.
        draft_vocab: usize,
        /// Target vocabulary size.
        target_vocab: usize,
    },
    /// A grammar for constrained decoding could not be compiled (bad JSON schema or Lark text).
    #[error("invalid grammar: {0}")]
    Grammar(String),
    /// Constrained decoding reached a state the grammar cannot continue from.
    #[error("constrained decoding failed: {0}")]
    Constraint(String),
    /// The model failed.
    #[error(transparent)]
    Model(#[from] tuneup_models::Error),
    /// The tokenizer failed.
    #[error(transparent)]
    Tokenizer(#[from] tuneup_tokenize::Error),
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Self::Model(tuneup_models::Error::Tensor(e))
    }
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
