//! The training configuration (`tuneup train config.toml`).

use std::path::{Path, PathBuf};

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
    /// An eval task (TOML, as `tuneup eval` reads) scored at every
    /// evaluation; the best checkpoint and early stopping then follow its
    /// primary metric instead of the validation loss. Relative to the
    /// configuration file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_task: Option<PathBuf>,
    /// Score at most this many examples of `eval_task`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_limit: Option<usize>,
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
            eval_task: None,
            eval_limit: None,
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
        if self.eval_limit == Some(0) {
            return bad("eval_limit must be at least 1");
        }
        if self.eval_limit.is_some() && self.eval_task.is_none() {
            return bad("eval_limit needs eval_task");
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
        // How checkpoints are judged does not change what is trained.
        c.eval_task = None;
        c.eval_limit = None;
        serde_json::to_string(&c).expect("config serialises")
    }

    /// Reads a configuration file; relative paths in it (`train_file`,
    /// `validation_file`, `output_dir`, `eval_task`) are relative to the
    /// file's folder.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = fs_err::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut c: TrainConfig =
            toml::from_str(&text).map_err(|e| Error::bad_file(path, e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let rel = |p: &mut PathBuf| {
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        };
        rel(&mut c.train_file);
        rel(&mut c.output_dir);
        for p in [&mut c.validation_file, &mut c.eval_task]
            .into_iter()
            .flatten()
        {
            rel(p);
        }
        Ok(c)
    }

    /// Sets every value `o` gives (command-line flags over the file).
    pub fn apply(&mut self, o: &TrainOverrides) {
        fn set<T: Clone>(field: &mut T, value: &Option<T>) {
            if let Some(v) = value {
                *field = v.clone();
            }
        }
        fn set_some<T: Clone>(field: &mut Option<T>, value: &Option<T>) {
            if value.is_some() {
                field.clone_from(value);
            }
        }
        set(&mut self.model, &o.model);
        set(&mut self.train_file, &o.train_file);
        set_some(&mut self.validation_file, &o.validation_file);
        set(&mut self.output_dir, &o.output_dir);
        set(&mut self.method, &o.method);
        set(&mut self.precision, &o.precision);
        set(&mut self.train_embeddings, &o.train_embeddings);
        set(&mut self.force, &o.force);
        set(&mut self.lora.rank, &o.rank);
        set(&mut self.lora.alpha, &o.alpha);
        set(&mut self.lora.dropout, &o.dropout);
        set(&mut self.lora.target_modules, &o.target_modules);
        set(&mut self.lora.use_rslora, &o.use_rslora);
        set(&mut self.learning_rate, &o.learning_rate);
        set(&mut self.epochs, &o.epochs);
        set_some(&mut self.max_steps, &o.max_steps);
        set(&mut self.batch_size, &o.batch_size);
        set(&mut self.gradient_accumulation, &o.gradient_accumulation);
        set(&mut self.max_seq_len, &o.max_seq_len);
        set(&mut self.warmup_steps, &o.warmup_steps);
        set(&mut self.lr_decay, &o.lr_decay);
        set(&mut self.optimizer.weight_decay, &o.weight_decay);
        set(&mut self.max_grad_norm, &o.max_grad_norm);
        set(&mut self.gradient_checkpointing, &o.gradient_checkpointing);
        set(&mut self.keep_layers, &o.keep_layers);
        set(&mut self.packing, &o.packing);
        set(&mut self.loss_on, &o.loss_on);
        set(&mut self.seed, &o.seed);
        set(&mut self.eval_every, &o.eval_every);
        set(&mut self.save_every, &o.save_every);
        set_some(
            &mut self.early_stopping_patience,
            &o.early_stopping_patience,
        );
        set_some(&mut self.threads, &o.threads);
        set(&mut self.gpu, &o.gpu);
        set_some(&mut self.eval_task, &o.eval_task);
        set_some(&mut self.eval_limit, &o.eval_limit);
    }
}

/// Values that replace those of a [`TrainConfig`] (`tuneup train`'s flags);
/// `None` keeps the configuration's value. See [`TrainConfig::apply`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainOverrides {
    /// `model`.
    pub model: Option<String>,
    /// `train_file`.
    pub train_file: Option<PathBuf>,
    /// `validation_file`.
    pub validation_file: Option<PathBuf>,
    /// `output_dir`.
    pub output_dir: Option<PathBuf>,
    /// `method`.
    pub method: Option<Method>,
    /// `precision`.
    pub precision: Option<Precision>,
    /// `train_embeddings`.
    pub train_embeddings: Option<bool>,
    /// `force`.
    pub force: Option<bool>,
    /// `lora.rank`.
    pub rank: Option<usize>,
    /// `lora.alpha`.
    pub alpha: Option<f64>,
    /// `lora.dropout`.
    pub dropout: Option<f32>,
    /// `lora.target_modules`.
    pub target_modules: Option<Vec<String>>,
    /// `lora.use_rslora`.
    pub use_rslora: Option<bool>,
    /// `learning_rate`.
    pub learning_rate: Option<f64>,
    /// `epochs`.
    pub epochs: Option<f64>,
    /// `max_steps`.
    pub max_steps: Option<u64>,
    /// `batch_size`.
    pub batch_size: Option<usize>,
    /// `gradient_accumulation`.
    pub gradient_accumulation: Option<usize>,
    /// `max_seq_len`.
    pub max_seq_len: Option<usize>,
    /// `warmup_steps`.
    pub warmup_steps: Option<u64>,
    /// `lr_decay`.
    pub lr_decay: Option<Decay>,
    /// `optimizer.weight_decay`.
    pub weight_decay: Option<f64>,
    /// `max_grad_norm`.
    pub max_grad_norm: Option<f64>,
    /// `gradient_checkpointing`.
    pub gradient_checkpointing: Option<bool>,
    /// `keep_layers`.
    pub keep_layers: Option<usize>,
    /// `packing`.
    pub packing: Option<bool>,
    /// `loss_on`.
    pub loss_on: Option<LossOn>,
    /// `seed`.
    pub seed: Option<u64>,
    /// `eval_every`.
    pub eval_every: Option<u64>,
    /// `save_every`.
    pub save_every: Option<u64>,
    /// `early_stopping_patience`.
    pub early_stopping_patience: Option<usize>,
    /// `threads`.
    pub threads: Option<usize>,
    /// `gpu`.
    pub gpu: Option<bool>,
    /// `eval_task`.
    pub eval_task: Option<PathBuf>,
    /// `eval_limit`.
    pub eval_limit: Option<usize>,
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

    #[test]
    fn from_file_resolves_paths_against_the_file() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tmp", e))?;
        let sub = dir.path().join("configs");
        fs_err::create_dir_all(&sub).map_err(|e| Error::io(&sub, e))?;
        let path = sub.join("run.toml");
        let text = "model = \"smollm2-135m\"\ntrain_file = \"../data/train.jsonl\"\n\
                    validation_file = \"val.jsonl\"\noutput_dir = \"/abs/out\"\n\
                    eval_task = \"../eval/spider.toml\"\neval_limit = 50\n";
        fs_err::write(&path, text).map_err(|e| Error::io(&path, e))?;
        let c = TrainConfig::from_file(&path)?;
        assert_eq!(c.model, "smollm2-135m");
        assert_eq!(c.train_file, sub.join("../data/train.jsonl"));
        assert_eq!(c.validation_file, Some(sub.join("val.jsonl")));
        assert_eq!(c.output_dir, PathBuf::from("/abs/out"));
        assert_eq!(c.eval_task, Some(sub.join("../eval/spider.toml")));
        assert_eq!(c.eval_limit, Some(50));
        // A bad key names the file and the key; a missing file names the file.
        fs_err::write(&path, "learnin_rate = 1e-4\n").map_err(|e| Error::io(&path, e))?;
        let err = TrainConfig::from_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("run.toml") && err.contains("learnin_rate"),
            "{err}"
        );
        let err = TrainConfig::from_file(&sub.join("none.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("none.toml"), "{err}");
        Ok(())
    }

    #[test]
    fn overrides_replace_only_what_they_set() {
        let mut c: TrainConfig = toml::from_str(
            "model = \"m\"\ntrain_file = \"t.jsonl\"\nmax_steps = 10\npacking = true\n[lora]\nrank = 8\n",
        )
        .expect("parses");
        let before = c.clone();
        c.apply(&TrainOverrides::default());
        assert_eq!(c, before, "no override changes nothing");
        c.apply(&TrainOverrides {
            model: Some("other".into()),
            method: Some(Method::Full),
            rank: Some(32),
            use_rslora: Some(true),
            weight_decay: Some(0.1),
            gradient_checkpointing: Some(false),
            lr_decay: Some(Decay::Linear),
            early_stopping_patience: Some(3),
            eval_task: Some("task.toml".into()),
            eval_limit: Some(20),
            ..TrainOverrides::default()
        });
        assert_eq!(c.model, "other");
        assert_eq!(c.method, Method::Full);
        assert_eq!((c.lora.rank, c.lora.use_rslora), (32, true));
        assert_eq!(c.lora.alpha, before.lora.alpha);
        assert_eq!(c.optimizer.weight_decay, 0.1);
        assert!(!c.gradient_checkpointing);
        assert_eq!(c.lr_decay, Decay::Linear);
        assert_eq!(c.early_stopping_patience, Some(3));
        assert_eq!(c.eval_task, Some(PathBuf::from("task.toml")));
        assert_eq!(c.eval_limit, Some(20));
        assert_eq!(
            (c.max_steps, c.packing),
            (Some(10), true),
            "kept from the file"
        );
    }

    #[test]
    fn the_eval_task_is_not_part_of_the_run() {
        let plain = TrainConfig {
            model: "m".into(),
            ..TrainConfig::default()
        };
        let scored = TrainConfig {
            eval_task: Some("eval/spider.toml".into()),
            eval_limit: Some(100),
            ..plain.clone()
        };
        // Old checkpoints (written before these keys existed) still resume.
        assert_eq!(plain.fingerprint(), scored.fingerprint());
        assert!(!plain.fingerprint().contains("eval_task"));
        assert!(!plain.fingerprint().contains("eval_limit"));
        let runnable = TrainConfig {
            train_file: "t.jsonl".into(),
            ..scored.clone()
        };
        assert!(runnable.validate().is_ok());
        let limit_only = TrainConfig {
            train_file: "t.jsonl".into(),
            eval_limit: Some(5),
            ..plain.clone()
        };
        assert!(limit_only
            .validate()
            .unwrap_err()
            .to_string()
            .contains("eval_limit needs eval_task"));
    }
}
