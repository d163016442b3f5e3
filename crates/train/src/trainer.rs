//! The training loop: micro-batches, gradient accumulation, clipping,
//! AdamW, the schedule, validation, early stopping, checkpoints and resume.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{Tensor, Var};
use serde_json::Value;
use tuneup_generate::ChatModel;
use tuneup_models::{LoadOptions, ModelFiles};

use crate::checkpoint::{self, TrainerState};
use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::examples::{epoch_order, pack, Batch, ChatEncoder, Example};
use crate::lora::{stable_hash, TrainSwitch};
use crate::metrics::{loss_chart, memory_mib, MetricsFile, StepMetrics};
use crate::optim::{clip_global_norm, AdamW};
use crate::peft::QkRowOrder;
use crate::schedule::Schedule;
use crate::scorer::{BestRecord, CheckpointScorer, BY_VALIDATION_LOSS};
use crate::step::{accumulate_gradients_keeping, eval_loss, kept_layers};
use crate::trainable::{self, Trainable};

/// One conversation to learn from: OpenAI-style messages and optional tools.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainRecord {
    /// The messages.
    pub messages: Vec<Value>,
    /// Tool definitions shown to the model.
    pub tools: Option<Vec<Value>>,
}

/// What the loop reports while it runs.
pub trait Observer {
    /// Called once before the first step.
    fn started(&mut self, _first_step: u64, _total_steps: u64) {}
    /// Called after every optimiser step.
    fn step(&mut self, _metrics: &StepMetrics, _total_steps: u64) {}
    /// A line for the user (validation results, checkpoints, warnings).
    fn message(&mut self, _text: &str) {}
}

/// An observer that reports nothing.
#[derive(Debug, Default)]
pub struct Silent;
impl Observer for Silent {}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Optimiser steps done (including those before a resume).
    pub steps: u64,
    /// Steps the run would take to the end.
    pub total_steps: u64,
    /// Training loss of the last step.
    pub last_loss: Option<f64>,
    /// Validation loss before the first step (when there is validation data).
    pub initial_val_loss: Option<f64>,
    /// Best validation loss.
    pub best_val_loss: Option<f64>,
    /// The scorer's metric before the first step (runs with a scorer that
    /// start at step 0 and score it without error).
    pub initial_metric: Option<f64>,
    /// Best value of the scorer's metric.
    pub best_metric: Option<f64>,
    /// Step of the result in `…-best` (0 = the model before training), by
    /// the scorer's metric or else by validation loss.
    pub best_step: Option<u64>,
    /// Evaluations where the scorer failed: `(step, message)`.
    pub metric_errors: Vec<(u64, String)>,
    /// The final adapter (PEFT format), or the final model folder (HF
    /// layout) for full fine-tuning.
    pub saved_dir: PathBuf,
    /// Stopped by the stop flag (Ctrl-C); a checkpoint was written.
    pub interrupted: bool,
    /// Stopped because validation stopped improving.
    pub early_stopped: bool,
}

/// The results of one evaluation.
struct Evaluation {
    val_loss: Option<f64>,
    metric: Option<f64>,
    metric_error: Option<String>,
}

/// A model with its trainable parameters (adapters or its own weights),
/// ready to train; `'s` is the lifetime of a [`CheckpointScorer`] set with
/// [`Session::set_scorer`].
pub struct Session<'s> {
    scorer: Option<Box<dyn CheckpointScorer + 's>>,
    config: TrainConfig,
    model: ChatModel,
    trainable: Trainable,
    switch: Arc<TrainSwitch>,
    order: QkRowOrder,
    train: Vec<Example>,
    validation: Vec<Example>,
    too_long: usize,
}

impl std::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("config", &self.config)
            .field("scorer", &self.scorer.as_ref().map(|s| s.metric_name()))
            .field("trained_tensors", &self.trainable.tensor_count())
            .field("train", &self.train.len())
            .field("validation", &self.validation.len())
            .finish()
    }
}

impl<'s> Session<'s> {
    /// Loads the model from `files` with fresh adapters (or, for full
    /// fine-tuning, with trainable weights) and tokenizes the records.
    pub fn prepare(
        config: TrainConfig,
        files: &ModelFiles,
        opts: &LoadOptions,
        train: &[TrainRecord],
        validation: &[TrainRecord],
    ) -> Result<Self> {
        config.validate()?;
        if train.is_empty() {
            return Err(Error::Config("the training file has no records".into()));
        }
        let (model, trainable, switch) = trainable::load(&config, files, opts)?;
        let order = QkRowOrder::of(&model.model.decoder);
        let encoder = ChatEncoder::new(&model.tokenizer, model.template.as_ref());
        let mut too_long = 0;
        // Validation records are never packed: their loss is each record's
        // own, comparable across runs with and without packing.
        let mut encode_all = |records: &[TrainRecord]| -> Result<Vec<Example>> {
            let mut out = Vec::with_capacity(records.len());
            for (i, r) in records.iter().enumerate() {
                let e = encoder
                    .encode(&r.messages, r.tools.as_deref(), config.loss_on)
                    .map_err(|e| Error::BadRecord {
                        index: i + 1,
                        message: e.to_string(),
                    })?;
                // Cutting a conversation would usually cut away the answer:
                // longer records are left out (and counted), packed or not.
                if e.ids.len() > config.max_seq_len {
                    too_long += 1;
                    continue;
                }
                out.push(e);
            }
            Ok(out)
        };
        let mut train_ex = encode_all(train)?;
        let mut val_ex = encode_all(validation)?;
        if config.eval_max_records > 0 {
            val_ex.truncate(config.eval_max_records);
        }
        if config.packing {
            train_ex = pack(&train_ex, config.max_seq_len);
        }
        train_ex.retain(|e| e.target_count() > 0);
        if train_ex.is_empty() {
            return Err(Error::Config(format!(
                "no training record fits in max_seq_len = {} tokens with a token to learn",
                config.max_seq_len
            )));
        }
        Ok(Self {
            scorer: None,
            config,
            model,
            trainable,
            switch,
            order,
            train: train_ex,
            validation: val_ex,
            too_long,
        })
    }

    /// Scores the model with `scorer` before the first step (unless
    /// resuming), at every evaluation and at the end: `…-best` and early
    /// stopping then follow its metric (higher is better; on a tie the
    /// earlier step) instead of the validation loss, which is still
    /// measured and logged.
    pub fn set_scorer(&mut self, scorer: Box<dyn CheckpointScorer + 's>) {
        self.scorer = Some(scorer);
    }

    /// The loaded model (with adapters attached, or with trainable weights).
    pub fn model(&self) -> &ChatModel {
        &self.model
    }

    /// What is trained: adapters or the model's weights.
    pub fn trainable(&self) -> &Trainable {
        &self.trainable
    }

    /// Training examples after tokenization (and packing).
    pub fn train_examples(&self) -> &[Example] {
        &self.train
    }

    /// Records left out because they are longer than `max_seq_len`.
    pub fn too_long(&self) -> usize {
        self.too_long
    }

    /// Micro-batches in one pass over the training examples.
    fn batches_per_epoch(&self) -> u64 {
        self.train.len().div_ceil(self.config.batch_size) as u64
    }

    /// Optimiser steps of the whole run.
    pub fn total_steps(&self) -> u64 {
        let per_epoch = self
            .batches_per_epoch()
            .div_ceil(self.config.gradient_accumulation as u64)
            .max(1);
        self.config
            .max_steps
            .unwrap_or_else(|| ((self.config.epochs * per_epoch as f64).ceil() as u64).max(1))
    }

    fn schedule(&self) -> Schedule {
        let total = self.total_steps();
        let warmup = if self.config.warmup_steps > 0 {
            self.config.warmup_steps
        } else {
            (self.config.warmup_ratio * total as f64).ceil() as u64
        };
        Schedule {
            lr: self.config.learning_rate,
            warmup_steps: warmup.min(total),
            total_steps: total,
            decay: self.config.lr_decay,
            min_lr_ratio: self.config.min_lr_ratio,
        }
    }

    fn pad_id(&self) -> u32 {
        self.model.tokenizer.eos_id().unwrap_or(0)
    }

    /// Mean validation loss per target token (`None` without validation data).
    pub fn validation_loss(&self) -> Result<Option<f64>> {
        if self.validation.is_empty() {
            return Ok(None);
        }
        self.switch.set(None);
        let device = self.model.model.decoder.device().clone();
        let (mut sum, mut count) = (0f64, 0usize);
        for chunk in self.validation.chunks(self.config.batch_size) {
            let refs: Vec<&Example> = chunk.iter().collect();
            let batch = Batch::new(&refs, self.pad_id(), &device)?;
            sum += eval_loss(&self.model.model.decoder, &batch)?;
            count += batch.target_count;
        }
        Ok((count > 0).then(|| sum / count as f64))
    }

    fn micro_batch(&self, index: u64, orders: &mut HashMap<u64, Vec<usize>>) -> Result<Batch> {
        let per_epoch = self.batches_per_epoch();
        let (epoch, within) = (index / per_epoch, (index % per_epoch) as usize);
        let order = orders
            .entry(epoch)
            .or_insert_with(|| epoch_order(self.train.len(), self.config.seed, epoch));
        let bs = self.config.batch_size;
        let picked: Vec<&Example> = order[within * bs..((within + 1) * bs).min(order.len())]
            .iter()
            .map(|&i| &self.train[i])
            .collect();
        Batch::new(&picked, self.pad_id(), self.model.model.decoder.device())
    }

    fn params(&self) -> Vec<(String, Var)> {
        self.trainable.named_vars()
    }

    /// Writes the result (adapter or model folder) to `dir`.
    pub fn save_result(&self, dir: &Path) -> Result<()> {
        self.trainable
            .save_result(dir, &self.model, &self.config.model)
    }

    /// Whether an evaluation has anything to measure.
    fn evaluates(&self) -> bool {
        !self.validation.is_empty() || self.scorer.is_some()
    }

    /// What `…-best` is chosen by: the scorer's metric name, or
    /// `validation_loss`.
    fn selected_by(&self) -> String {
        self.scorer
            .as_ref()
            .map_or_else(|| BY_VALIDATION_LOSS.to_string(), |s| s.metric_name())
    }

    /// Measures the validation loss and the scorer's metric at
    /// `state.step`, updates the best result (writing `…-best` and
    /// `best.json` when it improves) and the evaluations without
    /// improvement, and reports one line.
    fn evaluate(
        &mut self,
        state: &mut TrainerState,
        out: &Path,
        obs: &mut dyn Observer,
    ) -> Result<Evaluation> {
        let step = state.step;
        let val_loss = if self.validation.is_empty() {
            None
        } else {
            Some(self.validation_loss()?.unwrap_or(f64::NAN))
        };
        let loss_improved = val_loss.is_some_and(|v| state.best_val_loss.is_none_or(|b| v < b));
        if loss_improved {
            state.best_val_loss = val_loss;
        }
        let (metric, metric_error) = match self.scorer.as_mut() {
            None => (None, None),
            Some(scorer) => {
                // Inference mode: no dropout while the scorer generates.
                self.switch.set(None);
                match scorer.score(&self.model, step) {
                    Ok(v) if v.is_finite() => (Some(v), None),
                    Ok(v) => (None, Some(format!("the scorer returned {v}"))),
                    Err(e) => (None, Some(e)),
                }
            }
        };
        let name = self.selected_by();
        // By the metric when there is a scorer (an evaluation where it failed
        // does not count), else by the validation loss.
        let (improved, counted, value) = if self.scorer.is_some() {
            let improved = metric.is_some_and(|m| state.best_metric.is_none_or(|b| m > b));
            if improved {
                state.best_metric = metric;
            }
            (improved, metric.is_some(), metric)
        } else {
            (loss_improved, val_loss.is_some(), val_loss)
        };
        if improved {
            state.best_step = Some(step);
            state.evals_without_improvement = 0;
            let result_name = self.trainable.output_name();
            self.save_result(&out.join(format!("{result_name}-best")))?;
            BestRecord {
                step,
                selected_by: name.clone(),
                value: value.unwrap_or(f64::NAN),
                val_loss,
            }
            .write(out)?;
        } else if counted {
            state.evals_without_improvement += 1;
        }
        let best = if improved { " (best)" } else { "" };
        let line = match (&self.scorer, metric, &metric_error, val_loss) {
            (None, _, _, Some(v)) if step == 0 => {
                format!("validation loss before training: {v:.4}")
            }
            (None, _, _, v) => format!(
                "step {step}: validation loss {:.4}{best}",
                v.unwrap_or(f64::NAN)
            ),
            (Some(_), m, err, v) => {
                let mut line = match (m, err) {
                    (Some(m), _) => format!("step {step}: {name} {m:.4}{best}"),
                    (None, e) => format!(
                        "step {step}: {name} failed: {}",
                        e.as_deref().unwrap_or("no value")
                    ),
                };
                if let Some(v) = v {
                    line.push_str(&format!(" · validation loss {v:.4}"));
                }
                line
            }
        };
        obs.message(&line);
        Ok(Evaluation {
            val_loss,
            metric,
            metric_error,
        })
    }

    fn load_checkpoint(&self, dir: &Path, opt: &mut AdamW) -> Result<TrainerState> {
        let state = checkpoint::read_state(dir)?;
        if state.config_fingerprint != self.config.fingerprint() {
            return Err(Error::Config(format!(
                "{} was written with different training settings; resume needs the same \
                 model, data, method, adapter, optimiser, batch and seed",
                dir.display()
            )));
        }
        self.trainable.load_checkpoint(dir, self.order)?;
        opt.load(&dir.join(checkpoint::OPTIMIZER_FILE))?;
        Ok(state)
    }

    /// Loads the newest checkpoint that can be read, newest first: one whose files are damaged is
    /// reported and skipped for the one before it. A checkpoint of other training settings is an error
    /// (older ones share them). `None` when there is no checkpoint at all.
    fn resume_from_newest_readable(
        &self,
        out: &Path,
        opt: &mut AdamW,
        obs: &mut dyn Observer,
    ) -> Result<Option<(PathBuf, TrainerState)>> {
        let found = checkpoint::list(out)?;
        if found.is_empty() {
            return Ok(None);
        }
        let mut unreadable = Vec::new();
        for (_, dir) in found.iter().rev() {
            match self.load_checkpoint(dir, opt) {
                Ok(state) => return Ok(Some((dir.clone(), state))),
                Err(e @ Error::Config(_)) => return Err(e),
                Err(e) => {
                    obs.message(&format!(
                        "checkpoint {} cannot be read ({e}); falling back to the previous one",
                        dir.display()
                    ));
                    unreadable.push(dir.display().to_string());
                }
            }
        }
        Err(Error::Config(format!(
            "no checkpoint in {} can be read ({}); start again without --resume in a new output folder",
            checkpoint::checkpoints_dir(out).display(),
            unreadable.join(", ")
        )))
    }

    /// Trains to the end (or until `stop` is set, or early stopping), with
    /// `resume` continuing from the newest checkpoint in the output folder.
    pub fn run(
        &mut self,
        resume: bool,
        stop: &AtomicBool,
        obs: &mut dyn Observer,
    ) -> Result<Outcome> {
        let out = self.config.output_dir.clone();
        fs_err::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
        let params = self.params();
        let no_decay = self.trainable.no_decay();
        let mut opt = AdamW::new(params.clone(), self.config.optimizer)?
            .without_decay(|name| no_decay.contains(name));
        let result_name = self.trainable.output_name();
        let mut state = TrainerState {
            step: 0,
            tokens_seen: 0,
            best_val_loss: None,
            evals_without_improvement: 0,
            best_metric: None,
            best_step: None,
            config_fingerprint: self.config.fingerprint(),
        };
        if resume {
            match self.resume_from_newest_readable(&out, &mut opt, obs)? {
                Some((dir, resumed)) => {
                    state = resumed;
                    obs.message(&format!(
                        "resumed from {} (step {})",
                        dir.display(),
                        state.step
                    ));
                }
                None => obs.message("no checkpoint to resume from; starting at step 0"),
            }
        } else if !checkpoint::list(&out)?.is_empty() {
            return Err(Error::Config(format!(
                "{} already holds checkpoints of a run: pass --resume to continue it, or \
                 choose another output folder",
                out.display()
            )));
        }
        if self.too_long > 0 {
            obs.message(&format!(
                "{} records are longer than max_seq_len = {} tokens and were left out \
                 (raise max_seq_len, or drop them with `tuneup data prepare --max-tokens`)",
                self.too_long, self.config.max_seq_len
            ));
        }
        let metrics = MetricsFile::open(&out, state.step)?;
        let schedule = self.schedule();
        let total = schedule.total_steps;
        let mut metric_errors = Vec::new();
        let (initial_val, initial_metric) = if state.step == 0 && self.evaluates() {
            let e = self.evaluate(&mut state, &out, obs)?;
            if let Some(m) = &e.metric_error {
                metric_errors.push((0, m.clone()));
            }
            (e.val_loss, e.metric)
        } else {
            (None, None)
        };
        obs.started(state.step, total);
        let started = Instant::now();
        let accum = self.config.gradient_accumulation as u64;
        let mut orders = HashMap::new();
        let (mut interrupted, mut early_stopped, mut last_loss) = (false, false, None);
        while state.step < total {
            let step_started = Instant::now();
            let batches = (0..accum)
                .map(|j| self.micro_batch(state.step * accum + j, &mut orders))
                .collect::<Result<Vec<_>>>()?;
            let targets: usize = batches.iter().map(|b| b.target_count).sum();
            let tokens: usize = batches.iter().map(|b| b.token_count).sum();
            let mut grads: HashMap<String, Tensor> = HashMap::new();
            let mut loss_sum = 0f64;
            for (j, batch) in batches.iter().enumerate() {
                let key = self.config.seed ^ stable_hash(&format!("{}:{j}", state.step));
                loss_sum += self.switch.training(key, || {
                    accumulate_gradients_keeping(
                        &self.model.model.decoder,
                        batch,
                        &params,
                        1.0 / targets.max(1) as f64,
                        kept_layers(self.config.gradient_checkpointing, self.config.keep_layers),
                        &mut grads,
                    )
                })?;
            }
            let grad_norm = clip_global_norm(&mut grads, self.config.max_grad_norm)?;
            let lr = schedule.lr_at(state.step);
            opt.step(&grads, lr)?;
            state.step += 1;
            state.tokens_seen += tokens as u64;
            let loss = loss_sum / targets.max(1) as f64;
            if !loss.is_finite() {
                return Err(Error::Config(format!(
                    "the loss became {loss} at step {}; lower the learning rate",
                    state.step
                )));
            }
            last_loss = Some(loss);
            let mut m = StepMetrics {
                step: state.step,
                loss,
                val_loss: None,
                val_metric: None,
                val_metric_error: None,
                lr,
                grad_norm,
                tokens_per_s: tokens as f64 / step_started.elapsed().as_secs_f64().max(1e-9),
                tokens_seen: state.tokens_seen,
                rss_mib: memory_mib().0,
                elapsed_s: started.elapsed().as_secs_f64(),
            };
            let eval_due =
                self.config.eval_every > 0 && state.step.is_multiple_of(self.config.eval_every);
            if (eval_due || state.step == total) && self.evaluates() {
                let e = self.evaluate(&mut state, &out, obs)?;
                if let Some(msg) = &e.metric_error {
                    metric_errors.push((state.step, msg.clone()));
                }
                m.val_loss = e.val_loss;
                m.val_metric = e.metric;
                m.val_metric_error = e.metric_error;
                if let Some(p) = self.config.early_stopping_patience {
                    if state.evals_without_improvement >= p {
                        early_stopped = true;
                    }
                }
            }
            metrics.append(&m)?;
            obs.step(&m, total);
            let save_due =
                self.config.save_every > 0 && state.step.is_multiple_of(self.config.save_every);
            interrupted = stop.load(Ordering::SeqCst);
            if save_due || interrupted || early_stopped || state.step == total {
                let dir = checkpoint::save(&out, &state, self.config.keep_checkpoints, |d| {
                    self.trainable
                        .save_checkpoint(d, &self.model, &self.config.model)?;
                    opt.save(&d.join(checkpoint::OPTIMIZER_FILE))
                })?;
                if interrupted {
                    obs.message(&format!(
                        "interrupted: checkpoint {} written; continue with --resume",
                        dir.display()
                    ));
                }
            }
            if interrupted {
                break;
            }
            if early_stopped {
                obs.message(&format!(
                    "early stopping: {} has not improved for {} evaluations",
                    self.selected_by().replace('_', " "),
                    state.evals_without_improvement
                ));
                break;
            }
        }
        if self.scorer.is_some() && state.best_metric.is_none() {
            obs.message(&format!(
                "no evaluation of {} succeeded: {result_name}-best was not written",
                self.selected_by()
            ));
        }
        let saved_dir = out.join(result_name);
        self.save_result(&saved_dir)?;
        let chart = loss_chart(
            &metrics.read_all()?,
            "tuneup train: loss by step",
            self.scorer.as_ref().map(|s| s.metric_name()).as_deref(),
        );
        let chart_path = out.join("loss.svg");
        fs_err::write(&chart_path, chart).map_err(|e| Error::io(&chart_path, e))?;
        Ok(Outcome {
            steps: state.step,
            total_steps: total,
            last_loss,
            initial_val_loss: initial_val,
            best_val_loss: state.best_val_loss,
            initial_metric,
            best_metric: state.best_metric,
            best_step: state.best_step,
            metric_errors,
            saved_dir,
            interrupted,
            early_stopped,
        })
    }
}
