//! Errors of model loading and running.

use std::path::PathBuf;

/// Everything that can go wrong while loading or running a model. Messages
/// name the file, tensor or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The GGUF header or a tensor could not be parsed.
    #[error("{path} is not a valid GGUF file (truncated or corrupt?): {message}")]
    BadGguf {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A safetensors file could not be parsed.
    #[error("{path} is not a valid safetensors file (truncated or corrupt?): {message}")]
    BadSafetensors {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The model's architecture is not implemented.
    #[error("unsupported model architecture '{name}' (supported: {supported})")]
    UnknownArchitecture {
        /// The architecture the file declares.
        name: String,
        /// The architectures that are supported.
        supported: String,
    },
    /// A tensor uses a GGUF block type that is not implemented.
    #[error("tensor '{tensor}' uses quantization type {type_name}, which tuneup does not support (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)")]
    UnsupportedQuantization {
        /// Tensor name, or `?` when the header is rejected before names are known.
        tensor: String,
        /// ggml's name of the type (e.g. `IQ2_XXS`).
        type_name: String,
    },
    /// A required tensor is absent.
    #[error("tensor '{name}' is missing from {source_desc}")]
    MissingTensor {
        /// The tensor.
        name: String,
        /// The model file or folder.
        source_desc: String,
    },
    /// A tensor has an unexpected shape.
    #[error("tensor '{name}' has shape {actual:?}, expected {expected:?}")]
    BadShape {
        /// The tensor.
        name: String,
        /// What the config implies.
        expected: Vec<usize>,
        /// What the file holds.
        actual: Vec<usize>,
    },
    /// A configuration value is missing or invalid.
    #[error("invalid model configuration in {source_desc}: {message}")]
    Config {
        /// The file the configuration came from.
        source_desc: String,
        /// What is wrong.
        message: String,
    },
    /// The input does not fit the context window.
    #[error("the input needs {needed} positions but the context window holds {limit} (shorten the prompt or lower max tokens)")]
    ContextOverflow {
        /// Positions required.
        needed: usize,
        /// The model's (or the configured) context length.
        limit: usize,
    },
    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab} tokens")]
    BadToken {
        /// The id.
        id: u32,
        /// Vocabulary size.
        vocab: usize,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// ggml's name for a type id (`ggml_type` in ggml.h), for error messages.
pub fn ggml_type_name(id: u32) -> String {
    let name = match id {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        6 => "Q5_0",
        7 => "Q5_1",
        8 => "Q8_0",
        9 => "Q8_1",
        10 => "Q2_K",
        11 => "Q3_K",
        12 => "Q4_K",
        13 => "Q5_K",
        14 => "Q6_K",
        15 => "Q8_K",
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        30 => "BF16",
        34 => "TQ1_0",
        35 => "TQ2_0",
        39 => "MXFP4",
        _ => return format!("unknown ggml type {id}"),
    };
    name.to_string()
}
