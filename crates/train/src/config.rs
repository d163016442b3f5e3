//! The training configuration (`tuneup train config.toml`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::examples::LossOn;
use crate::lora::LoraConfig;
use crate::optim::AdamWConfig;
use crate::schedule::Decay;

/// What is trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// LoRA on a dense base: a GGUF base is dequantized to f32 first.
    Lora,
    /// LoRA on the base as stored: GGUF weights stay in their quantized
    /// blocks and gradients flow through them.
    #[default]
    Qlora,
    /// Full fine-tuning: the base is loaded as dense f32 and every decoder
    /// weight (projections, biases, norm scales) is trained; the result is
    /// a whole model folder.
    Full,
}

/// Arithmetic of the products with the frozen base weights (LoRA and QLoRA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// bf16 where the CPU has AVX512-BF16, f32 elsewhere.
    #[default]
    Auto,
    /// bf16 inputs with f32 sums: the base is rounded to bfloat16 and packed
    /// once (2 bytes per base weight kept for the run), as PyTorch's
    /// `autocast(bfloat16)`; adapters, gradients and optimiser state stay
    /// f32. Falls back to f32 on CPUs without AVX512-BF16 and on GPUs.
    Bf16,
    /// f32 products; the base stays as stored and is expanded per product.
    F32,
}

impl Precision {
    /// Whether this setting packs the base to bf16 on this machine.
    pub fn uses_bf16(self) -> bool {
        self != Precision::F32 && tuneup_nn::bf16_gemm::available()
    }

    /// What this setting runs as on this machine: `"bf16"` or `"f32"`.
    pub fn effective(self) -> &'static str {
        if self.uses_bf16() {
            "bf16"
        } else {
            "f32"
        }
    }

    fn is_auto(&self) -> bool {
        *self == Precision::Auto
    }
}

/// Full fine-tuning refuses bases with more parameters than this unless
/// `force` is set: weights, gradients and two AdamW moments take 16 bytes
/// per parameter.
pub const FULL_PARAMETER_LIMIT: u64 = 1_500_000_000;

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Everything a run needs. Every field has a default except the model and
/// the training file; see `docs/training.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Model name or path (as `tuneup chat --model`).
    pub model: String,
    /// Training records (chat JSONL, as `tuneup data prepare` writes).
    pub train_file: PathBuf,
    /// Validation records; none means no validation loss.
    pub validation_file: Option<PathBuf>,
    /// Where the adapter, checkpoints and metrics go.
    pub output_dir: PathBuf,
    /// LoRA, QLoRA or full fine-tuning.
    pub method: Method,
    /// Full fine-tuning also trains the token embeddings and the output
    /// head (tied heads stay tied).
    #[serde(skip_serializing_if = "is_false")]
    pub train_embeddings: bool,
    /// Full fine-tuning of a base above [`FULL_PARAMETER_LIMIT`] parameters.
    #[serde(skip_serializing_if = "is_false")]
    pub force: bool,
    /// Arithmetic of the frozen base's products (LoRA and QLoRA).
    #[serde(skip_serializing_if = "Precision::is_auto")]
    pub precision: Precision,
    /// Adapter shape (LoRA and QLoRA).
    pub lora: LoraConfig,
    /// Optimiser.
    pub optimizer: AdamWConfig,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Warm-up steps (takes precedence over `warmup_ratio` when > 0).
    pub warmup_steps: u64,
    /// Warm-up as a fraction of all steps.
    pub warmup_ratio: f64,
    /// Decay after warm-up.
    pub lr_decay: Decay,
    /// Floor of the decay as a fraction of the peak.
    pub min_lr_ratio: f64,
    /// Passes over the training data (ignored when `max_steps` is set).
    pub epochs: f64,
    /// Stop after this many optimiser steps.
    pub max_steps: Option<u64>,
    /// Sequences per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimiser step.
    pub gradient_accumulation: usize,
    /// Longer sequences are cut to this many tokens.
    pub max_seq_len: usize,
    /// Global gradient-norm clip (0 = off).
    pub max_grad_norm: f64,
    /// Recompute activations in the backward pass (less memory, ~⅓ more compute).
    pub gradient_checkpointing: bool,
    /// With recomputation: the first N layers keep their activations
    /// instead (faster, more memory; the same gradients).
    #[serde(skip_serializing_if = "is_zero")]
    pub keep_layers: usize,
    /// Concatenate examples into full rows of `max_seq_len`.
    pub packing: bool,
    /// Loss on assistant tokens only, or on all tokens.
    pub loss_on: LossOn,
    /// Seed of initialisation, data order and dropout.
    pub seed: u64,
    /// Validation every N optimiser steps (0 = only at the end).
    pub eval_every: u64,
    /// Validation uses at most this many records (0 = all).
    pub eval_max_records: usize,
    /// Checkpoint every N optimiser steps (0 = only at the end / on Ctrl-C).
    pub save_every: u64,
    /// Checkpoints kept on disk.
    pub keep_checkpoints: usize,
    /// Stop when validation loss has not improved for this many evaluations.
    pub early_stopping_patience: Option<usize>,
    /// Worker threads (default: all cores).
    pub threads: Option<usize>,
    /// Train on the first CUDA GPU (a build with `--features cuda`).
    #[serde(skip_serializing_if = "is_false")]
    pub gpu: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            model: String::new(),
            train_file: PathBuf::new(),
            validation_file: None,
            output_dir: PathBuf::from("tuneup-train"),
            method: Method::default(),
            train_embeddings: false,
            force: false,
            precision: Precision::Auto,
            lora: LoraConfig::default(),
            optimizer: AdamWConfig::default(),
            learning_rate: 2e-4,
            warmup_steps: 0,
            warmup_ratio: 0.03,
            lr_decay: Decay::Cosine,
            min_lr_ratio: 0.0,
            epochs: 1.0,
            max_steps: None,
            batch_size: 4,
            gradient_accumulation: 1,
            max_seq_len: 1024,
            max_grad_norm: 1.0,
            gradient_checkpointing: true,
            keep_layers: 0,
            packing: false,
            loss_on: LossOn::Assistant,
            seed: 42,
            eval_every: 50,
            eval_max_records: 200,
            save_every: 50,
            keep_checkpoints: 2,
            early_stopping_patience: None,
            threads: None,
            gpu: false,
        }
    }
}

impl TrainConfig {
    /// Checks values that would otherwise fail late.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(m.to_string()));
        if self.model.is_empty() {
            return bad("model is not set");
        }
        if self.train_file.as_os_str().is_empty() {
            return bad("train_file is not set");
        }
        if self.batch_size == 0 || self.gradient_accumulation == 0 {
            return bad("batch_size and gradient_accumulation must be at least 1");
        }
        if self.max_seq_len < 2 {
            return bad("max_seq_len must be at least 2");
        }
        if self.learning_rate.is_nan() || self.learning_rate <= 0.0 {
            return bad("learning_rate must be positive");
        }
        if self.max_steps.is_none() && (self.epochs.is_nan() || self.epochs <= 0.0) {
            return bad("epochs must be positive (or set max_steps)");
        }
        if self.keep_checkpoints == 0 {
            return bad("keep_checkpoints must be at least 1");
        }
        if self.train_embeddings && self.method != Method::Full {
            return bad("train_embeddings needs method = \"full\"");
        }
        self.lora.validate()
    }

    /// The settings that must not change across `--resume` (the curve
    /// would not be the same run), as a canonical string.
    pub fn fingerprint(&self) -> String {
        let mut c = self.clone();
        // Where it runs and how often it reports may change on resume.
        c.output_dir = PathBuf::new();
        c.threads = None;
        c.gpu = false;
        c.keep_layers = 0;
        c.force = false;
        c.eval_every = 0;
        c.save_every = 0;
        c.keep_checkpoints = 1;
        c.early_stopping_patience = None;
        c.max_steps = None;
        serde_json::to_string(&c).expect("config serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_may_set_only_some_keys() {
        let c: TrainConfig = toml::from_str(
            "model = \"m\"\ntrain_file = \"t.jsonl\"\nprecision = \"f32\"\n[lora]\nrank = 8\n[optimizer]\nweight_decay = 0.1\n",
        )
        .expect("parses");
        assert_eq!(c.precision, Precision::F32);
        assert_eq!(c.lora.rank, 8);
        assert_eq!(c.lora.alpha, LoraConfig::default().alpha);
        assert_eq!(c.lora.target_modules, LoraConfig::default().target_modules);
        assert_eq!(c.optimizer.weight_decay, 0.1);
        assert!(toml::from_str::<TrainConfig>("[lora]\nrnak = 8\n").is_err());
        assert!(toml::from_str::<TrainConfig>("precision = \"f16\"\n").is_err());
    }

    #[test]
    fn precision_auto_keeps_old_fingerprints() {
        let c = TrainConfig::default();
        assert!(!c.fingerprint().contains("precision"));
        let bf16 = TrainConfig {
            precision: Precision::Bf16,
            ..TrainConfig::default()
        };
        assert_ne!(c.fingerprint(), bf16.fingerprint());
    }

    #[test]
    fn the_device_and_the_kept_layers_are_not_part_of_the_run() {
        let gpu: TrainConfig =
            toml::from_str("model = \"m\"\ngpu = true\nkeep_layers = 12\n").expect("parses");
        assert!(gpu.gpu);
        assert_eq!(gpu.keep_layers, 12);
        let cpu = TrainConfig {
            model: "m".into(),
            ..TrainConfig::default()
        };
        // A run checkpointed on one device (or keeping other layers' activations) resumes on the other.
        assert_eq!(gpu.fingerprint(), cpu.fingerprint());
        assert!(!cpu.fingerprint().contains("gpu"));
    }
}
