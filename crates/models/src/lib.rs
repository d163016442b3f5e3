//! The model runtime: one config-driven decoder for the Llama family
//! (Llama 2/3.x, SmolLM2, Mistral, Qwen2/2.5, Phi-3, Gemma), loaded from GGUF
//! (memory-mapped, quantized blocks kept as they are) or from HF safetensors.
//!
//! Every projection is an `Arc<dyn tuneup_nn::Linear>`; a [`LinearWrapper`]
//! passed at load time can wrap any of them by HF module path (LoRA/QLoRA),
//! so inference and training share this one implementation.
//!
//! ```no_run
//! use tuneup_models::{load, LoadOptions, LogitsFor, ModelFiles};
//! let model = load(&ModelFiles::Gguf("model.gguf".into()), &LoadOptions::default())?;
//! let mut state = model.decoder.new_state();
//! let logits = model.decoder.forward(&[1, 2, 3], &mut state, LogitsFor::Last)?;
//! # Ok::<(), tuneup_models::Error>(())
//! ```

pub mod config;
pub mod decoder;
pub mod error;
pub mod gguf_check;
pub mod loader;
pub mod names;
pub mod weights;

pub use config::{Activation, Architecture, DecoderConfig};
pub use decoder::{
    Decoder, DecoderLayer, DecoderState, GateUpProjection, LogitsFor, QkvProjection,
};
pub use error::{Error, Result};
pub use loader::{load, LinearWrapper, LoadOptions, LoadedModel, ModelFiles};
pub use names::{LayerWeight, WeightName};
pub use tuneup_nn::attention::AttentionPrecision;
pub use weights::{EmbeddingTable, GgufWeights, SafetensorsWeights, WeightSource};
