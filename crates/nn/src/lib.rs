//! Neural-network building blocks shared by inference and training.
//!
//! The central seam is [`Linear`]: every projection of a model is an
//! `Arc<dyn Linear>`, so a dense layer, a GGUF-quantized layer and (in the
//! training crates) a LoRA wrapper around either are interchangeable without a
//! second copy of any model. The rest are the small pieces a decoder needs:
//! [`RmsNorm`], [`RotaryEmbedding`], [`KvCache`] and grouped-query
//! [`attention`](attention::grouped_query_attention).

pub mod attention;
mod attention_op;
pub mod bf16_gemm;
pub mod bf16_linear;
mod cpu;
#[cfg(feature = "cuda")]
mod cuda_dropout;
pub mod frozen;
pub mod frozen_lora;
pub mod kernels;
pub mod kv_cache;
pub mod linear;
pub mod loss;
pub mod norm;
pub mod rope;
pub mod segments;
pub mod sgemm;
pub mod swiglu;
pub mod swiglu_lora;
pub mod trained_matmul;
pub mod vmath;

pub use kv_cache::KvCache;
pub use linear::{DenseLinear, Linear, LinearRef, QuantLinear};
pub use norm::RmsNorm;
pub use rope::{RopeLayout, RotaryEmbedding};
pub use segments::Segments;

/// Results of this crate use candle's error type: every failure here is a
/// tensor-level failure (shape, dtype, device).
pub type Result<T> = candle_core::Result<T>;
