//! `tuneup train`: LoRA / QLoRA / full fine-tuning from a TOML file and flags.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tuneup_eval_runner::{run_task_on, Overrides, RunOptions, Task};
use tuneup_generate::ChatModel;
use tuneup_models::LoadOptions;
use tuneup_train::{
    CheckpointScorer, Decay, LossOn, Method, Observer, Precision, Session, StepMetrics,
    TrainConfig, TrainOverrides, TrainRecord, Trainable,
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
    /// Eval task (TOML, as `tuneup eval` reads) scored at every evaluation:
    /// the best checkpoint and early stopping follow its primary metric.
    #[arg(long)]
    pub eval_task: Option<PathBuf>,
    /// Score at most N examples of the eval task.
    #[arg(long)]
    pub eval_limit: Option<usize>,
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
        self.threads
            .or_else(|| TrainConfig::from_file(self.config.as_ref()?).ok()?.threads)
    }

    /// The flags as overrides of the configuration (`None`: not given).
    fn overrides(&self) -> TrainOverrides {
        TrainOverrides {
            model: self.model.clone(),
            train_file: self.train_file.clone(),
            validation_file: self.validation_file.clone(),
            output_dir: self.output_dir.clone(),
            method: self.method.as_deref().map(|m| match m {
                "lora" => Method::Lora,
                "full" => Method::Full,
                _ => Method::Qlora,
            }),
            precision: self.precision.as_deref().map(parse_precision),
            train_embeddings: self.train_embeddings.then_some(true),
            force: self.force.then_some(true),
            rank: self.rank,
            alpha: self.alpha,
            dropout: self.dropout,
            target_modules: self.target_modules.clone(),
            use_rslora: self.rslora.then_some(true),
            learning_rate: self.learning_rate,
            epochs: self.epochs,
            max_steps: self.max_steps,
            batch_size: self.batch_size,
            gradient_accumulation: self.gradient_accumulation,
            max_seq_len: self.max_seq_len,
            warmup_steps: self.warmup_steps,
            lr_decay: self.lr_decay.as_deref().map(|d| match d {
                "linear" => Decay::Linear,
                "constant" => Decay::Constant,
                _ => Decay::Cosine,
            }),
            weight_decay: self.weight_decay,
            max_grad_norm: self.max_grad_norm,
            gradient_checkpointing: self.no_gradient_checkpointing.then_some(false),
            keep_layers: self.keep_layers,
            packing: self.packing.then_some(true),
            loss_on: self.loss_on.as_deref().map(|l| {
                if l == "all" {
                    LossOn::All
                } else {
                    LossOn::Assistant
                }
            }),
            seed: self.seed,
            eval_every: self.eval_every,
            save_every: self.save_every,
            early_stopping_patience: self.early_stopping,
            threads: self.threads,
            gpu: self.gpu.then_some(true),
            eval_task: self.eval_task.clone(),
            eval_limit: self.eval_limit,
        }
    }

    /// The configuration: the file's values with the flags on top.
    fn config(&self) -> Result<TrainConfig> {
        let mut c = match &self.config {
            Some(path) => TrainConfig::from_file(path)?,
            None => TrainConfig::default(),
        };
        c.apply(&self.overrides());
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

/// Scores checkpoints with an eval task (`--eval-task`): its primary metric
/// as `tuneup eval` reports it (pass/fail metrics as the fraction of
/// examples, 0–1); each evaluation's outputs go to `OUTPUT/evals/step-N/`.
struct TaskScorer {
    task: Task,
    model_name: String,
    metric: String,
    evals_dir: PathBuf,
}

impl TaskScorer {
    /// Loads the task file, keeps its first `limit` examples and checks that
    /// it has a metric to select by.
    fn new(path: &Path, limit: Option<usize>, model_name: &str, output_dir: &Path) -> Result<Self> {
        let mut task =
            Task::load(path).with_context(|| format!("loading eval task {}", path.display()))?;
        task.apply(&Overrides {
            limit,
            ..Overrides::default()
        });
        task.check(path)?;
        let Some(metric) = task.primary_metric() else {
            bail!(
                "{}: the eval task has no metric to select checkpoints by (only latency)",
                path.display()
            );
        };
        Ok(Self {
            metric: metric.name().to_string(),
            task,
            model_name: model_name.to_string(),
            evals_dir: output_dir.join("evals"),
        })
    }
}

impl CheckpointScorer for TaskScorer {
    fn metric_name(&self) -> String {
        self.metric.clone()
    }

    fn score(&mut self, model: &ChatModel, step: u64) -> std::result::Result<f64, String> {
        let opts = RunOptions {
            out: Some(self.evals_dir.join(format!("step-{step}"))),
            progress: false,
        };
        let result = run_task_on(&self.task, model, &self.model_name, &opts)
            .map_err(|e| format!("evaluating {}: {e}", self.task.name))?;
        let s = &result.summary;
        s.metrics.get(&s.primary_metric).copied().ok_or_else(|| {
            format!(
                "the summary of {} has no value for {}",
                self.task.name, s.primary_metric
            )
        })
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
    // Loaded before the model so that a bad task file fails at once.
    let scorer = match &config.eval_task {
        Some(path) => {
            let scorer =
                TaskScorer::new(path, config.eval_limit, &config.model, &config.output_dir)?;
            eprintln!(
                "checkpoints are selected by {} on {} ({})",
                scorer.metric,
                path.display(),
                config.eval_limit.map_or_else(
                    || "all examples".to_string(),
                    |n| format!("first {n} examples")
                )
            );
            Some(scorer)
        }
        None => None,
    };
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
    let metric = scorer.as_ref().map(|s| s.metric.clone());
    if let Some(scorer) = scorer {
        session.set_scorer(Box::new(scorer));
    }
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
            "selected_by": metric.as_deref().unwrap_or("validation_loss"),
            "initial_metric": outcome.initial_metric,
            "best_metric": outcome.best_metric,
            "best_step": outcome.best_step,
            "metric_errors": outcome.metric_errors.len(),
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
        if let (Some(name), Some(b)) = (&metric, outcome.best_metric) {
            let from = outcome
                .initial_metric
                .map_or_else(String::new, |a| format!("{a:.4} → "));
            println!(
                "{:<17} {from}{b:.4} (best, step {})",
                format!("{name}:"),
                outcome.best_step.unwrap_or(0)
            );
        }
        if !outcome.metric_errors.is_empty() {
            println!(
                "failed evaluations: {} (see metrics.jsonl)",
                outcome.metric_errors.len()
            );
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
        if out.join("best.json").is_file() {
            println!("best result:      {}", out.join("best.json").display());
        }
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
