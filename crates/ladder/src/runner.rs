//! Climbing: each rung starts from the best configuration so far, chooses among its candidates on the validation
//! split, is measured on the test split, judged against the baseline and the previous best, and stored. Finished
//! rungs are reused; a failed rung is reported and the ladder goes on.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tuneup_data::split::Split;
use tuneup_eval_runner::compare::{load_run, Run};
use tuneup_eval_runner::task::{OutputKind, SchemaStyle, Selection, Task};

use crate::config::{LadderConfig, Preset};
use crate::error::{write_atomic, Error, Result};
use crate::measure::{disk_bytes, measure, Measured, Models};
use crate::report::ladder_report;
use crate::row::{Price, Row, Status};
use crate::rung::RungKind;
use crate::split::{make_splits, Splits};
use crate::store::{self, fingerprint, RungResult};
use crate::train_rung::{train_config, train_rung, Trained};
use crate::variant::{default_role, Variant};

/// How to run a ladder.
#[derive(Debug, Clone, Default)]
pub struct LadderOptions {
    /// The run folder (splits, each rung's evals and training, `ladder.json`, `report.html`, `winner/`).
    pub out: PathBuf,
    /// Re-run only these rungs (others are reused when stored, else skipped).
    pub only: Option<Vec<RungKind>>,
    /// Re-run this rung and every later one.
    pub from: Option<RungKind>,
    /// Progress bars and lines on stderr.
    pub progress: bool,
    /// Set by Ctrl-C: the rung in progress stops (training keeps a checkpoint) and the ladder returns.
    pub stop: Arc<AtomicBool>,
}

/// A finished ladder.
#[derive(Debug, Clone)]
pub struct LadderOutcome {
    /// One row per rung, in climbing order.
    pub rows: Vec<Row>,
    /// The recommended rung: the first that meets every target, else the best measured one.
    pub winner: Option<RungKind>,
    /// The recommendation in words.
    pub advice: String,
    /// The splits used.
    pub splits: Splits,
}

/// The best configuration so far, with its measurements.
struct Best {
    variant: Variant,
    validation: Option<f64>,
    test: Option<(Row, Run)>,
}

struct Ctx<'a> {
    cfg: &'a LadderConfig,
    task: Task,
    model: String,
    splits: Splits,
    out: PathBuf,
    progress: bool,
    stop: Arc<AtomicBool>,
    models: Models,
}

/// Climbs `cfg`'s ladder.
pub fn run_ladder(cfg: &LadderConfig, opts: &LadderOptions) -> Result<LadderOutcome> {
    let task = Task::load(&cfg.task).map_err(|source| Error::Eval {
        what: format!("task {}", cfg.task.display()),
        source,
    })?;
    let model = cfg
        .model
        .clone()
        .or_else(|| task.model.name.clone())
        .ok_or_else(|| Error::Config {
            path: cfg.task.clone(),
            message:
                "no model: set `model` in the ladder file, `model.name` in the task, or --model"
                    .into(),
        })?;
    fs_err::create_dir_all(&opts.out).map_err(crate::error::io("creating", &opts.out))?;
    let splits = make_splits(&cfg.data, &task, &opts.out.join("data"))?;
    let say = |s: String| {
        if opts.progress {
            eprintln!("{s}");
        }
    };
    say(format!(
        "ladder {}: {} on {} — train {} · validation {} · test {} examples ({:?} budget)",
        cfg.name,
        model,
        task.name,
        splits.counts[0],
        splits.counts[1],
        splits.counts[2],
        cfg.budget.preset
    ));
    let mut ctx = Ctx {
        cfg,
        task,
        model,
        splits,
        out: opts.out.clone(),
        progress: opts.progress,
        stop: opts.stop.clone(),
        models: Models::new(None),
    };
    let base_fp = base_fingerprint(&ctx)?;
    let wanted: Vec<RungKind> = cfg.rungs.clone().unwrap_or_else(|| RungKind::ALL.to_vec());
    let mut best = Best {
        variant: Variant::default(),
        validation: None,
        test: None,
    };
    let mut baseline: Option<(Row, Run)> = None;
    let mut rows: Vec<Row> = Vec::new();
    let order: Vec<RungKind> = RungKind::ALL
        .into_iter()
        .filter(|r| wanted.contains(r))
        .collect();
    for (i, &rung) in order.iter().enumerate() {
        if opts.stop.load(Ordering::SeqCst) {
            return Err(Error::Interrupted);
        }
        let next = order[i + 1..]
            .iter()
            .copied()
            .find(|r| *r != RungKind::Reference && skip_reason(&ctx, *r).is_none());
        let dir = ctx
            .out
            .join("rungs")
            .join(format!("{}-{}", i + 1, rung.name()));
        if let Some(why) = skip_reason(&ctx, rung) {
            say(format!(
                "[{}/{}] {rung}: skipped — {why}",
                i + 1,
                order.len()
            ));
            rows.push(Row::empty(rung, Status::Skipped, why));
            continue;
        }
        let fp = fingerprint(&[
            base_fp.as_bytes(),
            rung.name().as_bytes(),
            serde_json::to_string(&best.variant)
                .unwrap_or_default()
                .as_bytes(),
        ]);
        let forced = opts.only.as_ref().is_some_and(|o| o.contains(&rung))
            || opts.from.is_some_and(|f| rung >= f);
        let stored = if forced { None } else { store::load(&dir, &fp) };
        let skip_unlisted = opts.only.as_ref().is_some_and(|o| !o.contains(&rung));
        let result = match stored {
            Some(r) => {
                say(format!(
                    "[{}/{}] {rung}: finished earlier — {} ({})",
                    i + 1,
                    order.len(),
                    r.row.config,
                    fmt_metric(r.row.metric)
                ));
                Ok(r)
            }
            None if skip_unlisted => {
                rows.push(Row::empty(rung, Status::Skipped, "not in --only".into()));
                continue;
            }
            None => {
                say(format!(
                    "[{}/{}] {rung}: climbing from {}",
                    i + 1,
                    order.len(),
                    best.variant.describe()
                ));
                let started = Instant::now();
                climb(&mut ctx, rung, &best, &dir).map(|(mut row, variant, validation)| {
                    let hourly = if row.train_s.is_some() && cfg.train.gpu {
                        cfg.budget.usd_per_gpu_hour
                    } else {
                        cfg.budget.usd_per_cpu_hour
                    };
                    row.set_rung_time(started.elapsed().as_secs_f64(), hourly);
                    let improved = rung != RungKind::Reference
                        && (best.validation.is_none()
                            || validation
                                .is_some_and(|v| v > best.validation.unwrap_or(f64::MIN) + 1e-12));
                    let (best_after, best_validation, best_test_dir) = if improved {
                        (variant, validation, row.eval_dir.clone())
                    } else {
                        (
                            best.variant.clone(),
                            best.validation,
                            best.test.as_ref().and_then(|t| t.0.eval_dir.clone()),
                        )
                    };
                    RungResult {
                        fingerprint: fp.clone(),
                        row,
                        best_after,
                        best_validation,
                        best_test_dir,
                    }
                })
            }
        };
        let mut result = match result {
            Ok(r) => r,
            Err(Error::Interrupted) => return Err(Error::Interrupted),
            Err(e) => {
                say(format!(
                    "[{}/{}] {rung}: failed — {e}; going on",
                    i + 1,
                    order.len()
                ));
                let mut row = Row::empty(rung, Status::Failed, e.to_string());
                row.variant = best.variant.clone();
                row.recommendation = "failed: see the note; the ladder went on".into();
                rows.push(row);
                write_outputs(&ctx, &rows, None)?;
                continue;
            }
        };
        let own = result
            .row
            .eval_dir
            .as_ref()
            .and_then(|d| load_run(&ctx.out.join(d)).ok());
        if let Some(own) = &own {
            let prev = best.test.as_ref().map(|(r, run)| (r, run));
            let base = baseline.as_ref().map(|(r, run)| (r, run));
            let prev = if rung == RungKind::Baseline {
                None
            } else {
                prev
            };
            result.row.judge(own, base, prev, &cfg.target, next);
        }
        store::save(&dir, &result)?;
        say(format!(
            "[{}/{}] {rung}: {} — {} · {}",
            i + 1,
            order.len(),
            result.row.config,
            fmt_metric(result.row.metric),
            result.row.recommendation
        ));
        if rung == RungKind::Baseline {
            if let Some(own) = &own {
                baseline = Some((result.row.clone(), own.clone()));
            }
        }
        if rung != RungKind::Reference {
            let test = result
                .best_test_dir
                .as_ref()
                .and_then(|d| load_run(&ctx.out.join(d)).ok())
                .map(|run| {
                    let row = if result.best_after == result.row.variant {
                        result.row.clone()
                    } else {
                        best.test
                            .as_ref()
                            .map_or_else(|| result.row.clone(), |t| t.0.clone())
                    };
                    (row, run)
                });
            best = Best {
                variant: result.best_after.clone(),
                validation: result.best_validation,
                test: test.or(best.test),
            };
        }
        rows.push(result.row);
        write_outputs(&ctx, &rows, None)?;
    }
    let (winner, advice) = choose_winner(&rows, cfg);
    write_outputs(&ctx, &rows, winner)?;
    if let Some(w) = winner {
        if let Some(row) = rows.iter().find(|r| r.rung == w) {
            crate::winner::write_winner(&ctx.out, cfg, &ctx.model, row)?;
        }
    }
    Ok(LadderOutcome {
        rows,
        winner,
        advice,
        splits: ctx.splits.clone(),
    })
}

/// Why `rung` is not climbed here (does not apply to the task, or not in this budget).
fn skip_reason(ctx: &Ctx<'_>, rung: RungKind) -> Option<String> {
    let cfg = ctx.cfg;
    rung.not_applicable(
        ctx.task.prompt.output,
        cfg.retrieval.is_some(),
        cfg.reference.is_some(),
    )
    .or_else(|| {
        (rung == RungKind::Full && ctx.quick())
            .then(|| "left out of the quick budget (--full tries it)".to_owned())
    })
}

fn fmt_metric(m: Option<f64>) -> String {
    m.map_or_else(|| "—".into(), |v| format!("{:.1} %", 100.0 * v))
}

/// Everything every rung depends on: the ladder file, the task, the model and the split files' bytes.
fn base_fingerprint(ctx: &Ctx<'_>) -> Result<String> {
    let mut cfg = ctx.cfg.clone();
    // Prices, targets and the time budget change the judgement, not the measurements.
    cfg.target = Default::default();
    cfg.budget.usd_per_cpu_hour = 0.0;
    cfg.budget.usd_per_gpu_hour = 0.0;
    cfg.budget.rung_minutes = None;
    cfg.rungs = None;
    cfg.threads = None;
    // The slice sizes the preset stands for are part of what was measured.
    cfg.budget.validation_limit = ctx.cfg.budget.validation_limit();
    cfg.budget.test_limit = ctx.cfg.budget.test_limit();
    let cfg_json = serde_json::to_string(&cfg).unwrap_or_default();
    let task_json = serde_json::to_string(&ctx.task).unwrap_or_default();
    let mut parts: Vec<Vec<u8>> = vec![
        cfg_json.into_bytes(),
        task_json.into_bytes(),
        ctx.model.clone().into_bytes(),
    ];
    for split in Split::ALL {
        let p = ctx.splits.path(split);
        parts.push(std::fs::read(p).map_err(crate::error::io("reading", p))?);
    }
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    Ok(fingerprint(&refs))
}

/// A climbed rung: its row, the configuration it chose and that configuration's validation metric.
type Climbed = (Row, Variant, Option<f64>);

impl Ctx<'_> {
    fn limit(&self, split: Split) -> Option<usize> {
        match split {
            Split::Validation => self.cfg.budget.validation_limit(),
            Split::Test => self.cfg.budget.test_limit(),
            Split::Train => None,
        }
    }

    fn quick(&self) -> bool {
        self.cfg.budget.preset == Preset::Quick
    }

    fn measure(&mut self, v: &Variant, split: Split, dir: &Path) -> Result<Measured> {
        if self.stop.load(Ordering::SeqCst) {
            return Err(Error::Interrupted);
        }
        let task = v.task(
            &self.task,
            self.cfg,
            &self.splits,
            self.splits.path(split),
            self.limit(split),
        );
        let spec = v.model_spec(&self.model);
        measure(
            &mut self.models,
            &spec,
            v.adapter.as_deref(),
            &task,
            dir,
            self.progress,
        )
    }

    fn size_of(&self, v: &Variant) -> u64 {
        let model = match &v.model {
            Some(p) => disk_bytes(p),
            None => tuneup_eval_runner::backend::resolve_model(&self.model)
                .map(|f| match f {
                    tuneup_models::ModelFiles::Gguf(p) | tuneup_models::ModelFiles::HfFolder(p) => {
                        disk_bytes(&p)
                    }
                })
                .unwrap_or(0),
        };
        model + v.adapter.as_deref().map_or(0, disk_bytes)
    }

    fn rel(&self, p: &Path) -> PathBuf {
        p.strip_prefix(&self.out)
            .map_or_else(|_| p.to_path_buf(), Path::to_path_buf)
    }

    fn row(
        &self,
        rung: RungKind,
        v: &Variant,
        test: &Measured,
        validation: Option<f64>,
        trained: Option<&Trained>,
    ) -> Row {
        Row::measured(
            rung,
            v,
            test,
            validation,
            self.size_of(v),
            trained,
            &self.cfg.budget,
            Price::Machine,
            self.rel(&test.dir),
        )
    }

    fn rung_budget(&self) -> Option<Duration> {
        self.cfg
            .budget
            .rung_minutes
            .map(|m| Duration::from_secs_f64((m * 60.0).max(1.0)))
    }
}

/// Runs one rung: returns its row, the configuration it chose, that configuration's validation metric and its
/// test measurement.
fn climb(ctx: &mut Ctx<'_>, rung: RungKind, best: &Best, dir: &Path) -> Result<Climbed> {
    match rung {
        RungKind::Reference => reference(ctx, dir),
        RungKind::Baseline => {
            let v = Variant::default();
            let val = ctx.measure(&v, Split::Validation, &dir.join("validation"))?;
            let test = ctx.measure(&v, Split::Test, &dir.join("test"))?;
            let row = ctx.row(rung, &v, &test, Some(val.metric()), None);
            Ok((row, v, Some(val.metric())))
        }
        RungKind::Prompting | RungKind::Retrieval | RungKind::Verification => {
            let candidates = candidates(ctx, rung, &best.variant);
            search(ctx, rung, best, candidates, dir)
        }
        RungKind::Lora | RungKind::Full => trained(ctx, rung, best, dir),
    }
}

/// The changes a rung tries, each on top of the configuration the previous changes left.
fn candidates(ctx: &Ctx<'_>, rung: RungKind, from: &Variant) -> Vec<Variant> {
    let output = ctx.task.prompt.output;
    let quick = ctx.quick();
    let mut out = Vec::new();
    let with = |f: &dyn Fn(&mut Variant)| {
        let mut v = from.clone();
        f(&mut v);
        v
    };
    match rung {
        RungKind::Prompting => {
            if ctx.task.prompt.system.is_none() {
                out.push(with(&|v| v.system = Some(default_role(output).into())));
            }
            if !quick {
                out.push(with(&|v| {
                    v.shots = 3;
                    v.select = Some(Selection::Fixed)
                }));
            }
            if !quick || output != OutputKind::Sql {
                out.push(with(&|v| {
                    v.shots = 3;
                    v.select = Some(Selection::Similar)
                }));
            }
            if output == OutputKind::Sql {
                // Question → SQL pairs: the schema is in the prompt once, not once per shot — a third of the
                // prompt, and the quick budget's only few-shot candidate.
                out.push(with(&|v| {
                    v.shots = 3;
                    v.select = Some(Selection::Similar);
                    v.compact_shots = true
                }));
                // Sample rows and column values lengthen every prompt (and every shot) several times over:
                // left to the full budget.
                if !quick {
                    out.push(with(&|v| v.schema_style = Some(SchemaStyle::DdlRows)));
                    out.push(with(&|v| v.schema_style = Some(SchemaStyle::DdlValues)));
                }
                out.push(with(&|v| v.constrained_json = true));
            }
            if !quick || output != OutputKind::Sql {
                out.push(with(&|v| v.chain_of_thought = true));
            }
        }
        RungKind::Retrieval => out.push(with(&|v| v.retrieval = true)),
        RungKind::Verification => {
            if output == OutputKind::Sql {
                out.push(with(&|v| v.repair_rounds = 2));
            }
            // A vote multiplies every answer's cost: SQL's quick budget repairs only.
            if !quick || output != OutputKind::Sql {
                let n = if quick { 3 } else { 5 };
                out.push(with(&|v| v.candidates = n));
            }
        }
        _ => {}
    }
    out
}

/// Greedy search on the validation split: each candidate is kept when it beats the current choice.
fn search(
    ctx: &mut Ctx<'_>,
    rung: RungKind,
    best: &Best,
    candidates: Vec<Variant>,
    dir: &Path,
) -> Result<Climbed> {
    let started = Instant::now();
    let mut current = best.variant.clone();
    let mut current_val = best.validation;
    // The rung's best candidate on validation, whether or not it beat the configuration it started from.
    let mut runner_up: Option<(Variant, f64)> = None;
    let mut tried = Vec::new();
    for (i, cand) in candidates.into_iter().enumerate() {
        // Each candidate is one change on top of what the earlier ones chose.
        let cand = merge_change(&current, &best.variant, &cand);
        if cand == current || tried.contains(&cand) {
            continue;
        }
        if ctx.rung_budget().is_some_and(|b| started.elapsed() > b) {
            break;
        }
        if ctx.progress {
            eprintln!("  candidate {}: {}", i + 1, cand.describe());
        }
        let m = ctx.measure(
            &cand,
            Split::Validation,
            &dir.join("validation").join(format!("candidate-{}", i + 1)),
        )?;
        let score = m.metric();
        if ctx.progress {
            eprintln!(
                "  candidate {}: validation {:.1} % (current {:.1} %)",
                i + 1,
                100.0 * score,
                100.0 * current_val.unwrap_or(0.0)
            );
        }
        if current_val.is_none_or(|c| score > c + 1e-12) {
            current = cand.clone();
            current_val = Some(score);
        }
        if runner_up.as_ref().is_none_or(|(_, s)| score > *s + 1e-12) {
            runner_up = Some((cand.clone(), score));
        }
        tried.push(cand);
    }
    match runner_up {
        // None beat the starting configuration: the rung's own best candidate is measured on test so the row
        // shows what this rung's technique gives; its validation metric (not above the current one) keeps the
        // ladder where it was, and the row is marked as not adopted.
        Some((cand, score)) if current == best.variant => {
            let test = ctx.measure(&cand, Split::Test, &dir.join("test"))?;
            let mut row = ctx.row(rung, &cand, &test, Some(score), None);
            row.adopted = false;
            row.note = format!(
                "{} candidates tried on validation; none beat {} ({}), so the ladder keeps it; the best \
                 candidate is shown on test",
                tried.len(),
                best.variant.describe(),
                fmt_metric(best.validation)
            );
            Ok((row, cand, Some(score)))
        }
        _ => {
            let test = ctx.measure(&current, Split::Test, &dir.join("test"))?;
            let mut row = ctx.row(rung, &current, &test, current_val, None);
            row.note = if current == best.variant {
                "no candidate applies".to_owned()
            } else {
                format!(
                    "{} candidates tried on validation; chose {}",
                    tried.len(),
                    current.describe()
                )
            };
            Ok((row, current, current_val))
        }
    }
}

/// Applies the change `cand` made to `base` on top of `current`.
fn merge_change(current: &Variant, base: &Variant, cand: &Variant) -> Variant {
    let mut v = current.clone();
    macro_rules! take_changed {
        ($($field:ident),*) => {$(
            if cand.$field != base.$field {
                v.$field = cand.$field.clone();
            }
        )*};
    }
    take_changed!(
        system,
        shots,
        select,
        compact_shots,
        chain_of_thought,
        schema_style,
        constrained_json,
        retrieval,
        candidates,
        repair_rounds
    );
    v
}

/// LoRA or full fine-tuning on the train split, rendered with the best prompt so far.
fn trained(ctx: &mut Ctx<'_>, rung: RungKind, best: &Best, dir: &Path) -> Result<Climbed> {
    let prompt = best.variant.training_prompt();
    let train_task = prompt.task(&ctx.task, ctx.cfg, &ctx.splits, &ctx.splits.train, None);
    let val_task = prompt.task(
        &ctx.task,
        ctx.cfg,
        &ctx.splits,
        &ctx.splits.validation,
        ctx.limit(Split::Validation),
    );
    let before = forgetting(ctx, &Variant::default(), &dir.join("forgetting/before"))?;
    let records = ctx.splits.counts[0];
    let config = train_config(
        ctx.cfg,
        rung,
        &ctx.model,
        &ctx.splits.train,
        &dir.join("train"),
        records,
    );
    ctx.models.release();
    let t = train_rung(
        config,
        &train_task,
        &val_task,
        ctx.rung_budget(),
        &ctx.stop,
        !ctx.progress,
    )?;
    let mut v = Variant {
        candidates: best.variant.candidates,
        repair_rounds: best.variant.repair_rounds,
        ..prompt
    };
    if rung == RungKind::Full {
        v.model = Some(t.result.clone());
    } else {
        v.adapter = Some(t.result.clone());
    }
    let validation = if v.candidates <= 1 && v.repair_rounds == 0 && t.best_metric.is_some() {
        t.best_metric
    } else {
        Some(
            ctx.measure(&v, Split::Validation, &dir.join("validation"))?
                .metric(),
        )
    };
    let test = ctx.measure(&v, Split::Test, &dir.join("test"))?;
    let after = forgetting(ctx, &v, &dir.join("forgetting/after"))?;
    let mut row = ctx.row(rung, &v, &test, validation, Some(&t));
    row.forgetting = match (before, after) {
        (Some((task, metric_name, before)), Some((_, _, after))) => Some(crate::row::Forgetting {
            task,
            metric_name,
            before,
            after,
        }),
        _ => None,
    };
    row.note = format!(
        "{} steps{}; checkpoint of step {} chosen by validation {}",
        t.steps,
        if t.budget_stopped {
            " (stopped by the rung's time budget)"
        } else {
            ""
        },
        t.best_step.map_or_else(|| "?".into(), |s| s.to_string()),
        row.metric_name
    );
    ctx.models.release();
    Ok((row, v, validation))
}

/// The ladder's general task (`[forgetting]`) with the model or adapter of `v`: (task, metric name, value).
fn forgetting(ctx: &mut Ctx<'_>, v: &Variant, dir: &Path) -> Result<Option<(String, String, f64)>> {
    let Some(spec) = ctx.cfg.forgetting.clone() else {
        return Ok(None);
    };
    let mut task = Task::load(&spec.task).map_err(|source| Error::Eval {
        what: format!("forgetting task {}", spec.task.display()),
        source,
    })?;
    task.dataset.limit = Some(spec.limit.unwrap_or(50));
    let m = measure(
        &mut ctx.models,
        &v.model_spec(&ctx.model),
        v.adapter.as_deref(),
        &task,
        dir,
        ctx.progress,
    )?;
    Ok(Some((
        task.name.clone(),
        m.summary.primary_metric.clone(),
        m.metric(),
    )))
}

/// The reference model or endpoint on the test split, with the task's own prompt.
fn reference(ctx: &mut Ctx<'_>, dir: &Path) -> Result<Climbed> {
    let r = ctx.cfg.reference.clone().unwrap_or_default();
    let v = Variant::default();
    let mut task = v.task(
        &ctx.task,
        ctx.cfg,
        &ctx.splits,
        &ctx.splits.test,
        ctx.limit(Split::Test),
    );
    let (spec, price) = if let Some(url) = &r.endpoint {
        task.model.endpoint = Some(url.clone());
        task.model.model = r.api_model.clone();
        task.model.api_key_env = r.api_key_env.clone();
        let b = &ctx.cfg.budget;
        let price = match (
            b.reference_usd_per_million_input,
            b.reference_usd_per_million_output,
        ) {
            (None, None) => Price::Machine,
            (i, o) => Price::Tokens {
                input: i.unwrap_or(0.0),
                output: o.unwrap_or(0.0),
            },
        };
        (url.clone(), price)
    } else {
        (r.model.clone().unwrap_or_default(), Price::Machine)
    };
    let test = measure(
        &mut ctx.models,
        &spec,
        None,
        &task,
        &dir.join("test"),
        ctx.progress,
    )?;
    ctx.models.release();
    let size = if r.endpoint.is_some() {
        0
    } else {
        ctx.size_of(&Variant {
            model: Some(PathBuf::from(&spec)),
            ..v.clone()
        })
    };
    let mut row = Row::measured(
        RungKind::Reference,
        &v,
        &test,
        None,
        size,
        None,
        &ctx.cfg.budget,
        price,
        ctx.rel(&test.dir),
    );
    row.config = format!("{spec} (the task's own prompt)");
    Ok((row, v, None))
}

/// The first rung in climbing order that meets every target, else the best measured one.
pub fn choose_winner(rows: &[Row], cfg: &LadderConfig) -> (Option<RungKind>, String) {
    // Only configurations the validation split adopted compete: the test split reports, it does not choose.
    let climbed = rows
        .iter()
        .filter(|r| r.rung != RungKind::Reference && r.status == Status::Done && r.adopted);
    if let Some(r) = rows
        .iter()
        .filter(|r| r.rung != RungKind::Reference && r.adopted)
        .find(|r| r.meets(&cfg.target))
    {
        return (
            Some(r.rung),
            format!(
                "recommendation: {} ({}) — the cheapest rung that meets every target: {}",
                r.rung,
                r.config,
                fmt_metric(r.metric)
            ),
        );
    }
    let best = climbed.fold(None::<&Row>, |b, r| match b {
        Some(b) if b.metric.unwrap_or(-1.0) >= r.metric.unwrap_or(-1.0) => Some(b),
        _ => Some(r),
    });
    match best {
        Some(r) => (
            Some(r.rung),
            format!(
                "recommendation: {} ({}) — the best measured, {}{}",
                r.rung,
                r.config,
                fmt_metric(r.metric),
                cfg.target.metric.map_or_else(String::new, |t| format!(
                    "; the target {} is not met",
                    fmt_metric(Some(t))
                ))
            ),
        ),
        None => (None, "no rung finished".into()),
    }
}

fn write_outputs(ctx: &Ctx<'_>, rows: &[Row], winner: Option<RungKind>) -> Result<()> {
    let doc = serde_json::json!({
        "name": ctx.cfg.name,
        "task": ctx.task.name,
        "model": ctx.model,
        "budget": ctx.cfg.budget,
        "target": ctx.cfg.target,
        "splits": ctx.splits,
        "winner": winner,
        "rows": rows,
    });
    write_atomic(
        &ctx.out.join("ladder.json"),
        serde_json::to_string_pretty(&doc)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    let html = ladder_report(
        &ctx.cfg.name,
        &ctx.model,
        &ctx.task.name,
        &ctx.cfg.target,
        &ctx.splits,
        rows,
        winner,
    );
    write_atomic(&ctx.out.join("report.html"), html.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_candidate_change_lands_on_top_of_what_was_chosen_before() {
        let base = Variant::default();
        let chosen = Variant {
            shots: 3,
            select: Some(Selection::Similar),
            ..Variant::default()
        };
        let cand = Variant {
            schema_style: Some(SchemaStyle::DdlValues),
            ..Variant::default()
        };
        let merged = merge_change(&chosen, &base, &cand);
        assert_eq!(merged.shots, 3);
        assert_eq!(merged.select, Some(Selection::Similar));
        assert_eq!(merged.schema_style, Some(SchemaStyle::DdlValues));
        // A candidate equal to the base changes nothing.
        assert_eq!(merge_change(&chosen, &base, &base), chosen);
    }
}
