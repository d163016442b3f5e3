//! Fine-tuning on the shared model runtime.
//!
//! LoRA adapters wrap the decoder's pluggable linear layers at load time
//! ([`LoraWrapper`]); over a GGUF base that stays quantized this is QLoRA.
//! [`Session`] tokenizes chat records (loss on assistant tokens), runs
//! micro-batches with optional activation recomputation, accumulates and
//! clips gradients, steps [`AdamW`] on a warm-up + cosine [`Schedule`],
//! validates, stops early, and writes atomic checkpoints that `--resume`
//! continues exactly. The best result (`…-best`, described by `best.json`)
//! is chosen by validation loss, or by a task metric when a
//! [`CheckpointScorer`] is set. Adapters are saved and loaded in Hugging Face PEFT's
//! format ([`peft`]). Full fine-tuning ([`full`]) trains the base weights
//! themselves through the same loop and saves an HF model folder
//! ([`hf_model`]).

pub mod attach;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod durable;
pub mod error;
pub mod examples;
pub mod full;
pub mod hf_model;
pub mod lora;
pub mod merge;
pub mod metrics;
pub mod optim;
pub mod peft;
pub mod schedule;
pub mod scorer;
pub mod step;
pub mod trainable;
pub mod trainer;

pub use attach::attach_adapter;
pub use bench::{bench_training, BenchConfig, BenchReport};
pub use config::{Method, Precision, TrainConfig, TrainOverrides, FULL_PARAMETER_LIMIT};
pub use error::{Error, Result};
pub use examples::{ChatEncoder, Example, LossOn};
pub use full::{FullParams, FullWrapper};
pub use hf_model::write_model_folder;
pub use lora::{AdapterSet, LoraConfig, LoraInit, LoraLinear, LoraWrapper, TrainSwitch};
pub use merge::{merge_gguf, MergeReport};
pub use metrics::StepMetrics;
pub use optim::{AdamW, AdamWConfig};
pub use peft::{LoadedAdapter, QkRowOrder};
pub use schedule::{Decay, Schedule};
pub use scorer::{BestRecord, CheckpointScorer};
pub use trainable::DequantizeBase;
pub use trainable::Trainable;
pub use trainer::{Observer, Outcome, Session, Silent, TrainRecord};
