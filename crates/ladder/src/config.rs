//! The ladder file (`tuneup ladder ladder.toml`): which task, which model, which data, the success targets, the
//! budget and price table, and which rungs to try. Paths are relative to the ladder file's folder (or absolute)
//! and may use `${VAR}` / `${VAR:-default}`, as task files do.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tuneup_eval_runner::task::{expand_env, resolve_path, RetrievalSpec};

use crate::error::{Error, Result};
use crate::rung::RungKind;

/// A whole ladder file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LadderConfig {
    /// Name (default: the file stem).
    #[serde(default)]
    pub name: String,
    /// The task, in `tuneup eval`'s task format (data mapping, metrics, database/tools/code settings, prompt).
    pub task: PathBuf,
    /// The model to tune (default: the task's `model.name`).
    #[serde(default)]
    pub model: Option<String>,
    /// Where the examples come from and how they are split.
    #[serde(default)]
    pub data: DataSpec,
    /// A bar to compare against: a larger local model or an OpenAI-compatible endpoint.
    #[serde(default)]
    pub reference: Option<ReferenceSpec>,
    /// Success targets.
    #[serde(default)]
    pub target: Target,
    /// Time and price budget.
    #[serde(default)]
    pub budget: Budget,
    /// Rungs to try, in order (default: every rung that applies to the task).
    #[serde(default)]
    pub rungs: Option<Vec<RungKind>>,
    /// Settings of the trained rungs.
    #[serde(default)]
    pub train: TrainSpec,
    /// A `tuneup rag` index the retrieval rung adds as `{{ context }}` (the task's corpus).
    #[serde(default)]
    pub retrieval: Option<RetrievalSpec>,
    /// A general held-out task measured before and after each trained rung (forgetting check).
    #[serde(default)]
    pub forgetting: Option<ForgettingSpec>,
    /// CPU threads (default: all cores).
    #[serde(default)]
    pub threads: Option<usize>,
}

/// The forgetting check of trained rungs: a general task (e.g. a slice of instruction data or MBPP), measured on
/// the base model and on the trained one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ForgettingSpec {
    /// An eval task file (`tuneup eval`'s format) with its own data.
    pub task: PathBuf,
    /// At most this many of its examples (default 50).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// The data: one file the ladder splits, or explicit splits.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// One file of examples (the task's field mapping), split with `split` and `seed` (default: the task's
    /// `dataset.path`).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Explicit training split (with `test`, and `validation` or a `validation_fraction` carved out of it).
    #[serde(default)]
    pub train: Option<PathBuf>,
    /// Explicit validation split: chooses prompts, checkpoints and settings.
    #[serde(default)]
    pub validation: Option<PathBuf>,
    /// Explicit test split: only reports.
    #[serde(default)]
    pub test: Option<PathBuf>,
    /// Train, validation and test fractions for `file` (default 0.6, 0.15, 0.25).
    #[serde(default)]
    pub split: Option<[f64; 3]>,
    /// Share of an explicit `train` file held out for validation when no `validation` file is named
    /// (default 0.05).
    #[serde(default)]
    pub validation_fraction: Option<f64>,
    /// Keep every Nth example of the test split (a fixed stride of a large test set, e.g. 3 for 345 of Spider
    /// dev's 1,034).
    #[serde(default)]
    pub test_every: Option<usize>,
    /// Split seed (default 0).
    #[serde(default)]
    pub seed: u64,
}

/// The bar to compare against, measured on the same test split.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceSpec {
    /// A local model (alias, path, `hf:`), run in-process.
    #[serde(default)]
    pub model: Option<String>,
    /// An OpenAI-compatible endpoint (`https://…/v1` base URL) instead.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The model name sent to the endpoint.
    #[serde(default)]
    pub api_model: Option<String>,
    /// Environment variable holding the endpoint's API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
}

/// What "good enough" means; a rung that meets every target set is where to stop.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The primary metric (as the task reports it, e.g. execution accuracy 0..1) at least this.
    #[serde(default)]
    pub metric: Option<f64>,
    /// 95th-percentile request latency at most this many seconds.
    #[serde(default)]
    pub p95_latency_s: Option<f64>,
    /// Peak resident memory while answering at most this many GB.
    #[serde(default)]
    pub peak_ram_gb: Option<f64>,
    /// Serving cost per 1,000 requests at most this many USD.
    #[serde(default)]
    pub usd_per_1k_requests: Option<f64>,
}

/// How much to spend: the preset sets sizes, the rest prices.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Budget {
    /// `quick` (small validation/test slices, fewer candidates, short training) or `full`.
    pub preset: Preset,
    /// Validation examples per candidate (default: quick 20, full all).
    pub validation_limit: Option<usize>,
    /// Test examples per rung (default: quick 40, full all).
    pub test_limit: Option<usize>,
    /// Wall-clock minutes per rung: training stops (keeping its best checkpoint) and no further candidates are
    /// tried once a rung has used this much.
    pub rung_minutes: Option<f64>,
    /// Price of one hour of the machine the ladder runs on (CPU), USD.
    pub usd_per_cpu_hour: f64,
    /// Price of one GPU hour, USD (used when training runs on a GPU).
    pub usd_per_gpu_hour: f64,
    /// The reference endpoint's price per million input tokens, USD.
    pub reference_usd_per_million_input: Option<f64>,
    /// The reference endpoint's price per million output tokens, USD.
    pub reference_usd_per_million_output: Option<f64>,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            preset: Preset::Full,
            validation_limit: None,
            test_limit: None,
            rung_minutes: None,
            usd_per_cpu_hour: 0.10,
            usd_per_gpu_hour: 2.50,
            reference_usd_per_million_input: None,
            reference_usd_per_million_output: None,
        }
    }
}

impl Budget {
    /// Validation examples per candidate.
    pub fn validation_limit(&self) -> Option<usize> {
        self.validation_limit.or(match self.preset {
            Preset::Quick => Some(20),
            Preset::Full => None,
        })
    }

    /// Test examples per rung.
    pub fn test_limit(&self) -> Option<usize> {
        self.test_limit.or(match self.preset {
            Preset::Quick => Some(40),
            Preset::Full => None,
        })
    }
}

/// Budget presets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// Minutes: small slices, the most promising candidates, short training.
    Quick,
    /// Everything: whole splits, every candidate, longer training.
    #[default]
    Full,
}

/// Settings of the LoRA / full fine-tuning rungs (unset: chosen by the preset).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    /// Optimiser steps (default: quick 20, full 3 epochs' worth).
    #[serde(default)]
    pub max_steps: Option<u64>,
    /// Peak learning rate (default 2e-4 for LoRA, 2e-5 for full fine-tuning).
    #[serde(default)]
    pub learning_rate: Option<f64>,
    /// LoRA rank (default 16).
    #[serde(default)]
    pub rank: Option<usize>,
    /// Sequences per step (default 4).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Score a checkpoint on the validation split every N steps (default: 4 times per run).
    #[serde(default)]
    pub eval_every: Option<u64>,
    /// Longest training sequence in tokens (default 1024).
    #[serde(default)]
    pub max_seq_len: Option<usize>,
    /// Train on the first CUDA GPU (a build with `--features cuda`).
    #[serde(default)]
    pub gpu: bool,
}

/// Flag overrides of a ladder file (`tuneup ladder FILE --model … --quick`).
#[derive(Debug, Clone, Default)]
pub struct LadderOverrides {
    /// `--model`.
    pub model: Option<String>,
    /// `--quick` / `--full`.
    pub preset: Option<Preset>,
    /// `--validation-limit`.
    pub validation_limit: Option<usize>,
    /// `--test-limit`.
    pub test_limit: Option<usize>,
    /// `--rungs a,b,c`.
    pub rungs: Option<Vec<RungKind>>,
    /// `--target-metric`.
    pub target_metric: Option<f64>,
    /// `--rung-minutes`.
    pub rung_minutes: Option<f64>,
    /// `--train-steps`.
    pub train_steps: Option<u64>,
    /// `--threads`.
    pub threads: Option<usize>,
    /// Keep every Nth test example (`[data] test_every`).
    pub test_every: Option<usize>,
}

impl LadderConfig {
    /// Reads a ladder file; relative paths are resolved against its folder.
    pub fn load(path: &Path) -> Result<Self> {
        let text = fs_err::read_to_string(path)
            .map_err(|e| crate::error::io("reading the ladder file", path)(e))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut c: LadderConfig = toml::from_str(&text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if c.name.is_empty() {
            c.name = path
                .file_stem()
                .map_or_else(|| "ladder".into(), |s| s.to_string_lossy().into_owned());
        }
        let fix = |p: &mut PathBuf| -> Result<()> {
            *p = resolve_path(p, base).map_err(|message| Error::Config {
                path: path.to_path_buf(),
                message,
            })?;
            Ok(())
        };
        fix(&mut c.task)?;
        if let Some(f) = &mut c.forgetting {
            fix(&mut f.task)?;
        }
        // A model named by a path relative to the ladder file (an alias or hf: spec stays as written).
        let local = |m: &mut String| {
            let p = base.join(&*m);
            if !Path::new(m.as_str()).is_absolute() && p.exists() {
                *m = p.display().to_string();
            }
        };
        if let Some(m) = &mut c.model {
            local(m);
        }
        if let Some(m) = c.reference.as_mut().and_then(|r| r.model.as_mut()) {
            local(m);
        }
        for p in [
            &mut c.data.file,
            &mut c.data.train,
            &mut c.data.validation,
            &mut c.data.test,
        ]
        .into_iter()
        .flatten()
        {
            fix(p)?;
        }
        if let Some(r) = &mut c.retrieval {
            if let Some(s) = &mut r.store {
                if !s.to_string_lossy().starts_with("postgres") {
                    fix(s)?;
                }
            }
        }
        if let Some(r) = &mut c.reference {
            if let Some(e) = &mut r.endpoint {
                *e = expand_env(e).map_err(|message| Error::Config {
                    path: path.to_path_buf(),
                    message,
                })?;
            }
        }
        c.check(path)?;
        Ok(c)
    }

    /// Applies flag overrides.
    pub fn apply(&mut self, o: &LadderOverrides) {
        if let Some(m) = &o.model {
            self.model = Some(m.clone());
        }
        if o.test_every.is_some() {
            self.data.test_every = o.test_every;
        }
        if let Some(p) = o.preset {
            self.budget.preset = p;
        }
        if o.validation_limit.is_some() {
            self.budget.validation_limit = o.validation_limit;
        }
        if o.test_limit.is_some() {
            self.budget.test_limit = o.test_limit;
        }
        if let Some(r) = &o.rungs {
            self.rungs = Some(r.clone());
        }
        if o.target_metric.is_some() {
            self.target.metric = o.target_metric;
        }
        if o.rung_minutes.is_some() {
            self.budget.rung_minutes = o.rung_minutes;
        }
        if o.train_steps.is_some() {
            self.train.max_steps = o.train_steps;
        }
        if o.threads.is_some() {
            self.threads = o.threads;
        }
    }

    /// Checks settings that would otherwise fail late.
    pub fn check(&self, path: &Path) -> Result<()> {
        let bad = |m: String| {
            Err(Error::Config {
                path: path.to_path_buf(),
                message: m,
            })
        };
        let d = &self.data;
        let explicit = [&d.train, &d.validation, &d.test]
            .iter()
            .filter(|p| p.is_some())
            .count();
        if explicit != 0 && explicit != 3 {
            return bad(
                "[data] needs all of train, validation and test, or none (then `file` is split)"
                    .into(),
            );
        }
        if explicit == 3 && d.file.is_some() {
            return bad("[data] has both `file` and explicit splits: keep one".into());
        }
        if let Some(s) = d.split {
            if s.iter().any(|f| !f.is_finite() || *f < 0.0) || s[1] <= 0.0 || s[2] <= 0.0 {
                return bad(format!(
                    "[data] split = {s:?}: fractions must be non-negative, validation and test above 0"
                ));
            }
        }
        if let Some(r) = &self.reference {
            if r.model.is_some() == r.endpoint.is_some() {
                return bad("[reference] needs exactly one of `model` or `endpoint`".into());
            }
        }
        if let Some(t) = self.target.metric {
            if !t.is_finite() {
                return bad("[target] metric must be a number".into());
            }
        }
        Ok(())
    }
}
