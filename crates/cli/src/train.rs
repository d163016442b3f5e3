//! `tuneup train`: LoRA / QLoRA / full fine-tuning from a TOML file and flags.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tuneup_models::LoadOptions;
use tuneup_train::{
    Decay, LossOn, Method, Observer, Precision, Session, StepMetrics, TrainConfig, TrainRecord,
    Trainable,
};

use crate::model::{device, init_threads, resolve_files};

/// Arguments of `tuneup train`. Flags override the TOML file.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training configuration (TOML; see docs/training.md). Optional when
    /// the flags say enough.
    pub config: Option<PathBuf>,
    /// Base model (alias, GGUF file, HF folder).
    #[arg(short = 'm', long)]
    pub model: Option<String>,
    /// Training records: chat JSONL (`tuneup data prepare` writes it).
    #[arg(long = "train")]
    pub train_file: Option<PathBuf>,
    /// Validation records (chat JSONL).
    #[arg(long = "validation")]
    pub validation_file: Option<PathBuf>,
    /// Output folder: adapter (or model), checkpoints, metrics.jsonl, loss.svg.
    #[arg(short = 'o', long = "output")]
    pub output_dir: Option<PathBuf>,
    /// `qlora` (base stays quantized), `lora` (base dequantized to f32) or
    /// `full` (every decoder weight trained; writes an HF model folder).
    #[arg(long, value_parser = ["lora", "qlora", "full"])]
    pub method: Option<String>,
    /// Products with the frozen base (LoRA, QLoRA): `auto` (bf16 where the
    /// CPU has AVX512-BF16), `bf16` or `f32`.
    #[arg(long, value_parser = ["auto", "bf16", "f32"])]
    pub precision: Option<String>,
    /// Full fine-tuning: also train the token embeddings and output head.
    #[arg(long)]
    pub train_embeddings: bool,
    /// Full fine-tuning of a model above the size limit (1.5B parameters).
    #[arg(long)]
    pub force: bool,
    /// LoRA rank.
    #[arg(long)]
    pub rank: Option<usize>,
    /// LoRA alpha.
    #[arg(long)]
    pub alpha: Option<f64>,
    /// LoRA dropout.
    #[arg(long)]
    pub dropout: Option<f32>,
    /// Target modules, comma-separated (`q_proj,v_proj`, `all-linear`, globs).
    #[arg(long, value_delimiter = ',')]
    pub target_modules: Option<Vec<String>>,
    /// rsLoRA scaling (alpha / √r).
    #[arg(long)]
    pub rslora: bool,
    /// Peak learning rate.
    #[arg(long = "lr")]
    pub learning_rate: Option<f64>,
    /// Passes over the data.
    #[arg(long)]
    pub epochs: Option<f64>,
    /// Stop after this many optimiser steps.
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Sequences per micro-batch.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Micro-batches per optimiser step.
    #[arg(long = "grad-accum")]
    pub gradient_accumulation: Option<usize>,
    /// Longest sequence in tokens.
    #[arg(long)]
    pub max_seq_len: Option<usize>,
    /// Warm-up steps.
    #[arg(long)]
    pub warmup_steps: Option<u64>,
    /// `cosine`, `linear` or `constant`.
    #[arg(long, value_parser = ["cosine", "linear", "constant"])]
    pub lr_decay: Option<String>,
    /// AdamW weight decay.
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Gradient-norm clip (0 = off).
    #[arg(long)]
    pub max_grad_norm: Option<f64>,
    /// Keep every activation instead of recomputing (faster, more memory).
    #[arg(long)]
    pub no_gradient_checkpointing: bool,
    /// With recomputation: the first N layers keep their activations
    /// (faster, more memory).
    #[arg(long)]
    pub keep_layers: Option<usize>,
    /// Pack examples into full rows of max-seq-len.
    #[arg(long)]
    pub packing: bool,
    /// `assistant` (default) or `all`.
    #[arg(long, value_parser = ["assistant", "all"])]
    pub loss_on: Option<String>,
    /// Seed of initialisation, data order and dropout.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Validate every N steps.
    #[arg(long)]
    pub eval_every: Option<u64>,
    /// Checkpoint every N steps.
    #[arg(long)]
    pub save_every: Option<u64>,
    /// Stop after N evaluations without improvement.
    #[arg(long)]
    pub early_stopping: Option<usize>,
    /// Continue from the newest checkpoint in the output folder.
    #[arg(long)]
    pub resume: bool,
    /// CPU threads (default: all cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Train on the first CUDA GPU (needs a build with `--features cuda`).
    #[arg(long)]
    pub gpu: bool,
    /// Print the final summary as JSON.
    #[arg(long)]
    pub json: bool,
}

impl TrainArgs {
    /// Worker threads: the flag, else the file's `threads` (read before the
    /// thread pool is built), else all cores.
    pub fn threads(&self) -> Option<usize> {
        self.threads.or_else(|| {
            let text = std::fs::read_to_string(self.config.as_ref()?).ok()?;
            toml::from_str::<TrainConfig>(&text).ok()?.threads
        })
    }

    /// The configuration: the file's values with the flags on top.
    fn config(&self) -> Result<TrainConfig> {
        let mut c = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let mut c: TrainConfig =
                    toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
                let base = path.parent().unwrap_or(Path::new("."));
                // Paths in the file are relative to the file.
                let rel = |p: &mut PathBuf| {
                    if p.is_relative() && !p.as_os_str().is_empty() {
                        *p = base.join(&*p);
                    }
                };
                rel(&mut c.train_file);
                rel(&mut c.output_dir);
                if let Some(v) = c.validation_file.as_mut() {
                    rel(v);
                }
                c
            }
            None => TrainConfig::default(),
        };
        macro_rules! set {
            ($field:ident) => {
                if let Some(v) = &self.$field {
                    c.$field = v.clone();
                }
            };
        }
        set!(model);
        set!(train_file);
        set!(output_dir);
        set!(learning_rate);
        set!(epochs);
        set!(batch_size);
        set!(gradient_accumulation);
        set!(max_seq_len);
        set!(warmup_steps);
        set!(max_grad_norm);
        set!(seed);
        set!(eval_every);
        set!(save_every);
        if self.validation_file.is_some() {
            c.validation_file = self.validation_file.clone();
        }
        if self.max_steps.is_some() {
            c.max_steps = self.max_steps;
        }
        if self.threads.is_some() {
            c.threads = self.threads;
        }
        c.gpu |= self.gpu;
        if self.early_stopping.is_some() {
            c.early_stopping_patience = self.early_stopping;
        }
        if let Some(m) = &self.method {
            c.method = match m.as_str() {
                "lora" => Method::Lora,
                "full" => Method::Full,
                _ => Method::Qlora,
            };
        }
        if let Some(p) = &self.precision {
            c.precision = parse_precision(p);
        }
        if self.train_embeddings {
            c.train_embeddings = true;
        }
        if self.force {
            c.force = true;
        }
        if let Some(v) = self.rank {
            c.lora.rank = v;
        }
        if let Some(v) = self.alpha {
            c.lora.alpha = v;
        }
        if let Some(v) = self.dropout {
            c.lora.dropout = v;
        }
        if let Some(v) = &self.target_modules {
            c.lora.target_modules = v.clone();
        }
        if self.rslora {
            c.lora.use_rslora = true;
        }
        if let Some(v) = self.weight_decay {
            c.optimizer.weight_decay = v;
        }
        if let Some(d) = &self.lr_decay {
            c.lr_decay = match d.as_str() {
                "linear" => Decay::Linear,
                "constant" => Decay::Constant,
                _ => Decay::Cosine,
            };
        }
        if self.no_gradient_checkpointing {
            c.gradient_checkpointing = false;
        }
        if let Some(n) = self.keep_layers {
            c.keep_layers = n;
        }
        if self.packing {
            c.packing = true;
        }
        if let Some(l) = &self.loss_on {
            c.loss_on = if l == "all" {
                LossOn::All
            } else {
                LossOn::Assistant
            };
        }
        if c.model.is_empty() {
            bail!("no model: give --model or `model = \"…\"` in the configuration");
        }
        if c.train_file.as_os_str().is_empty() {
            bail!(
                "no training data: give --train FILE or `train_file = \"…\"` in the configuration"
            );
        }
        Ok(c)
    }
}

/// Reads chat JSONL records; a bad line is an error naming the file and line.
fn read_records(path: &Path) -> Result<Vec<TrainRecord>> {
    let records = tuneup_data::read_chat_jsonl(path)?;
    Ok(records
        .into_iter()
        .map(|r| TrainRecord {
            messages: r.messages,
            tools: r.tools,
        })
        .collect())
}

/// Progress bar with loss, learning rate, tokens/s and ETA.
struct BarObserver {
    bar: ProgressBar,
}

impl Observer for BarObserver {
    fn started(&mut self, first_step: u64, total_steps: u64) {
        self.bar.set_length(total_steps);
        self.bar.set_position(first_step);
        self.bar.reset_eta();
    }
    fn step(&mut self, m: &StepMetrics, _total: u64) {
        self.bar.set_position(m.step);
        self.bar.set_message(format!(
            "loss {:.4}  lr {:.2e}  {:.0} tok/s  {:.0} MiB",
            m.loss, m.lr, m.tokens_per_s, m.rss_mib
        ));
        if self.bar.is_hidden() {
            // Not a terminal (logs, CI): one line per step instead.
            eprintln!(
                "step {}/{}  loss {:.4}  lr {:.2e}  grad-norm {:.3}  {:.0} tok/s",
                m.step,
                self.bar.length().unwrap_or(0),
                m.loss,
                m.lr,
                m.grad_norm,
                m.tokens_per_s
            );
        }
    }
    fn message(&mut self, text: &str) {
        self.bar.suspend(|| eprintln!("{text}"));
    }
}

/// Runs `tuneup train`.
pub fn run(args: TrainArgs) -> Result<()> {
    crate::alloc::keep_freed_memory();
    let config = args.config()?;
    init_threads(config.threads);
    let train = read_records(&config.train_file)?;
    let validation = match &config.validation_file {
        Some(p) => read_records(p)?,
        None => Vec::new(),
    };
    let files = resolve_files(&config.model)?;
    match config.method {
        Method::Full => eprintln!(
            "loading {} for full fine-tuning (dense f32) …",
            config.model
        ),
        m => eprintln!(
            "loading {} with {} adapters (rank {}, base products in {}) …",
            config.model,
            if m == Method::Lora { "LoRA" } else { "QLoRA" },
            config.lora.rank,
            config.precision.effective()
        ),
    }
    let mut session = Session::prepare(
        config.clone(),
        &files,
        &LoadOptions {
            device: device(config.gpu)?,
            ..LoadOptions::default()
        },
        &train,
        &validation,
    )
    .context("preparing training")?;
    let trained = session.trainable();
    eprintln!(
        "{} {}, {} trainable parameters; {} training examples, {} validation records; {} steps",
        trained.tensor_count(),
        match trained {
            Trainable::Adapters { .. } => "adapted modules",
            Trainable::Full(_) => "trained tensors",
        },
        trained.parameter_count(),
        session.train_examples().len(),
        validation.len(),
        session.total_steps()
    );
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // A second Ctrl-C exits at once.
        ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!(
                "\nstopping after this step and writing a checkpoint (Ctrl-C again to quit now)"
            );
        })
        .context("installing the Ctrl-C handler")?;
    }
    let bar = ProgressBar::new(session.total_steps());
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut obs = BarObserver { bar };
    let outcome = session.run(args.resume, &stop, &mut obs)?;
    obs.bar.finish_and_clear();
    let out = &config.output_dir;
    if args.json {
        let mut summary = serde_json::json!({
            "steps": outcome.steps,
            "total_steps": outcome.total_steps,
            "last_loss": outcome.last_loss,
            "initial_val_loss": outcome.initial_val_loss,
            "best_val_loss": outcome.best_val_loss,
            "interrupted": outcome.interrupted,
            "early_stopped": outcome.early_stopped,
        });
        // "adapter" (LoRA, QLoRA) or "model" (full fine-tuning).
        summary[session.trainable().output_name()] = serde_json::json!(outcome.saved_dir);
        println!("{summary}");
    } else {
        println!(
            "steps:            {}/{}",
            outcome.steps, outcome.total_steps
        );
        if let Some(l) = outcome.last_loss {
            println!("last train loss:  {l:.4}");
        }
        if let (Some(a), Some(b)) = (outcome.initial_val_loss, outcome.best_val_loss) {
            println!("validation loss:  {a:.4} → {b:.4} (best)");
        }
        match session.trainable() {
            Trainable::Adapters { .. } => {
                println!("adapter (PEFT):   {}", outcome.saved_dir.display())
            }
            Trainable::Full(_) => println!(
                "model (HF):       {}  (tuneup chat -m {})",
                outcome.saved_dir.display(),
                outcome.saved_dir.display()
            ),
        }
        println!("metrics:          {}", out.join("metrics.jsonl").display());
        println!("loss chart:       {}", out.join("loss.svg").display());
        if outcome.interrupted {
            println!("interrupted: run again with --resume to continue");
        }
    }
    Ok(())
}

/// `auto`, `bf16` or `f32` (clap has checked the value).
pub(crate) fn parse_precision(p: &str) -> Precision {
    match p {
        "bf16" => Precision::Bf16,
        "f32" => Precision::F32,
        _ => Precision::Auto,
    }
}
