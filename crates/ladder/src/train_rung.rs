//! The trained rungs: the train split rendered with the best prompt so far, LoRA (QLoRA on a quantized base) or
//! full fine-tuning through `tuneup train`'s `Session`, checkpoints scored on the validation split by the task's
//! own metric, the best one kept. A rung over its time budget stops and keeps its best checkpoint; a killed run
//! resumes from its last checkpoint.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;
use tuneup_eval_runner::render::{gold_reply, prompts};
use tuneup_eval_runner::{run_task_on, RunOptions, Task};
use tuneup_generate::ChatModel;
use tuneup_models::LoadOptions;
use tuneup_train::{
    CheckpointScorer, Method, Observer, Session, StepMetrics, TrainConfig, TrainRecord,
};

use crate::config::{LadderConfig, Preset};
use crate::error::{Error, Result};
use crate::measure::primary_value;
use crate::rung::RungKind;

/// One point of a training curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Optimiser step.
    pub step: u64,
    /// Training loss.
    pub loss: f64,
    /// Validation loss, where measured.
    pub val_loss: Option<f64>,
    /// Validation task metric, where measured.
    pub val_metric: Option<f64>,
}

/// What a trained rung produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trained {
    /// The chosen adapter (PEFT folder) or model folder.
    pub result: PathBuf,
    /// Optimiser steps run.
    pub steps: u64,
    /// The step whose checkpoint was chosen.
    pub best_step: Option<u64>,
    /// Its validation metric.
    pub best_metric: Option<f64>,
    /// Tokens seen.
    pub tokens: u64,
    /// Training wall-clock seconds (this run; a resumed run adds to the earlier part).
    pub wall_s: f64,
    /// Stopped by the time budget.
    pub budget_stopped: bool,
    /// Loss and metric by step.
    pub curve: Vec<CurvePoint>,
}

/// Renders the examples of `task` (zero-shot prompt) with the gold answer as the assistant turn.
pub fn training_records(task: &Task) -> Result<Vec<TrainRecord>> {
    let rendered = prompts(task).map_err(|source| Error::Eval {
        what: format!(
            "rendering training prompts from {}",
            task.dataset.path.display()
        ),
        source,
    })?;
    Ok(rendered
        .into_iter()
        .filter_map(|(e, p)| {
            let target = e.target.as_ref()?;
            let mut messages = p.messages;
            messages.push(json!({"role": "assistant", "content": gold_reply(task, target)}));
            Some(TrainRecord {
                messages,
                tools: p.tools,
            })
        })
        .collect())
}

/// Scores checkpoints with the eval task on the validation split.
struct TaskScorer<'a> {
    task: &'a Task,
    name: String,
    out: PathBuf,
    progress: bool,
}

impl CheckpointScorer for TaskScorer<'_> {
    fn metric_name(&self) -> String {
        self.task
            .primary_metric()
            .map_or_else(|| "metric".into(), |m| m.name().to_owned())
    }

    fn score(&mut self, model: &ChatModel, step: u64) -> std::result::Result<f64, String> {
        let opts = RunOptions {
            out: Some(self.out.join(format!("step-{step}"))),
            progress: self.progress,
        };
        run_task_on(self.task, model, &self.name, &opts)
            .map(|r| primary_value(&r.summary))
            .map_err(|e| e.to_string())
    }
}

/// Prints training progress (rate, ETA) on stderr.
struct Progress {
    quiet: bool,
    started: Instant,
    first: u64,
}

impl Observer for Progress {
    fn started(&mut self, first_step: u64, total: u64) {
        self.first = first_step;
        self.started = Instant::now();
        if !self.quiet {
            eprintln!("    training: step {first_step} of {total}");
        }
    }

    fn step(&mut self, m: &StepMetrics, total: u64) {
        if self.quiet {
            return;
        }
        let done = (m.step - self.first).max(1) as f64;
        let per = self.started.elapsed().as_secs_f64() / done;
        let eta = per * total.saturating_sub(m.step) as f64;
        eprintln!(
            "    step {}/{total} loss {:.4} · {:.0} tokens/s · ETA {:.0} s",
            m.step, m.loss, m.tokens_per_s, eta
        );
    }

    fn message(&mut self, text: &str) {
        if !self.quiet {
            eprintln!("    {text}");
        }
    }
}

/// Optimiser steps of a trained rung in the quick budget (batch 4).
pub const QUICK_STEPS: u64 = 20;

/// The training settings of a rung, from the ladder's `[train]` and the preset.
pub fn train_config(
    ladder: &LadderConfig,
    kind: RungKind,
    model: &str,
    train_file: &Path,
    out: &Path,
    records: usize,
) -> TrainConfig {
    let t = &ladder.train;
    let quick = ladder.budget.preset == Preset::Quick;
    let batch = t.batch_size.unwrap_or(4);
    let epochs_steps = (3 * records).div_ceil(batch) as u64;
    let steps = t.max_steps.unwrap_or(if quick {
        QUICK_STEPS.min(epochs_steps.max(1))
    } else {
        epochs_steps.max(1)
    });
    // Each checkpoint is scored on the validation slice: twice in the quick budget, four times in the full one.
    let evals = if quick { 2 } else { 4 };
    let mut c = TrainConfig {
        model: model.to_owned(),
        train_file: train_file.to_path_buf(),
        output_dir: out.to_path_buf(),
        method: if kind == RungKind::Full {
            Method::Full
        } else {
            Method::Qlora
        },
        learning_rate: t
            .learning_rate
            .unwrap_or(if kind == RungKind::Full { 2e-5 } else { 2e-4 }),
        max_steps: Some(steps),
        batch_size: batch,
        max_seq_len: t.max_seq_len.unwrap_or(1024),
        eval_every: t.eval_every.unwrap_or((steps / evals).max(1)),
        save_every: t.eval_every.unwrap_or((steps / evals).max(1)),
        eval_max_records: 64,
        threads: ladder.threads,
        gpu: t.gpu,
        ..TrainConfig::default()
    };
    if let Some(r) = t.rank {
        c.lora.rank = r;
        c.lora.alpha = 2.0 * r as f64;
    }
    c
}

/// Trains one rung: `train_task` / `validation_task` are the eval tasks (zero-shot prompt of the best
/// configuration) on the train and validation splits; `stop` is the user's Ctrl-C; the rung stops by itself after
/// `budget`.
pub fn train_rung(
    config: TrainConfig,
    train_task: &Task,
    validation_task: &Task,
    budget: Option<Duration>,
    stop: &AtomicBool,
    quiet: bool,
) -> Result<Trained> {
    let what = match config.method {
        Method::Lora => "lora",
        Method::Qlora => "qlora",
        Method::Full => "full fine-tuning",
    }
    .to_owned();
    let train = training_records(train_task)?;
    let validation = training_records(validation_task)?;
    let files = tuneup_eval_runner::backend::resolve_model(&config.model).map_err(|source| {
        Error::Eval {
            what: format!("resolving {}", config.model),
            source,
        }
    })?;
    let out = config.output_dir.clone();
    let resume = tuneup_train::checkpoint::list(&out)
        .map(|l| !l.is_empty())
        .unwrap_or(false);
    let terr = |source| Error::Train {
        what: what.clone(),
        source,
    };
    let mut session = Session::prepare(
        config.clone(),
        &files,
        &LoadOptions::default(),
        &train,
        &validation,
    )
    .map_err(terr)?;
    session.set_scorer(Box::new(TaskScorer {
        task: validation_task,
        name: config.model.clone(),
        out: out.join("evals"),
        progress: !quiet,
    }));
    // The run stops on Ctrl-C or when the rung's time is up, keeping its best checkpoint either way.
    let local = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let timed_out = Arc::new(AtomicBool::new(false));
    let result = std::thread::scope(|scope| {
        let (local2, timed_out2) = (local.clone(), timed_out.clone());
        let done = Arc::new(AtomicBool::new(false));
        let done2 = done.clone();
        scope.spawn(move || {
            while !done2.load(Ordering::Relaxed) {
                if stop.load(Ordering::Relaxed) {
                    local2.store(true, Ordering::SeqCst);
                }
                if budget.is_some_and(|b| started.elapsed() > b) {
                    timed_out2.store(true, Ordering::SeqCst);
                    local2.store(true, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let mut progress = Progress {
            quiet,
            started: Instant::now(),
            first: 0,
        };
        let r = session.run(resume, &local, &mut progress);
        done.store(true, Ordering::Relaxed);
        r
    });
    let outcome = result.map_err(terr)?;
    if stop.load(Ordering::SeqCst) {
        return Err(Error::Interrupted);
    }
    let best = out.join(format!(
        "{}-best",
        outcome
            .saved_dir
            .file_name()
            .map_or_else(|| "adapter".into(), |n| n.to_string_lossy().into_owned())
    ));
    let metrics = tuneup_train::metrics::MetricsFile::open(&out, u64::MAX)
        .and_then(|f| f.read_all())
        .unwrap_or_default();
    Ok(Trained {
        result: if best.is_dir() {
            best
        } else {
            outcome.saved_dir.clone()
        },
        steps: outcome.steps,
        best_step: outcome.best_step,
        best_metric: outcome.best_metric,
        tokens: metrics.last().map_or(0, |m| m.tokens_seen),
        wall_s: started.elapsed().as_secs_f64(),
        budget_stopped: timed_out.load(Ordering::SeqCst),
        curve: metrics
            .iter()
            .map(|m| CurvePoint {
                step: m.step,
                loss: m.loss,
                val_loss: m.val_loss,
                val_metric: m.val_metric,
            })
            .collect(),
    })
}
