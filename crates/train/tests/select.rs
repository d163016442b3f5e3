//! Choosing `…-best` on a tiny random model: by a task metric (a scripted
//! [`CheckpointScorer`]) with ties to the earlier step, patience counted in
//! evaluations without improvement, the best kept across `--resume`, the
//! untrained state kept when the base scores best, scorer failures recorded
//! without ending the run; by validation loss without a scorer.

mod common;
use common::{records, Log};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use candle_core::{Device, Tensor};
use tuneup_generate::ChatModel;
use tuneup_models::{LoadOptions, ModelFiles};
use tuneup_test_utils::{max_abs_diff, write_tiny_gguf, TinySpec};
use tuneup_train::{
    BestRecord, CheckpointScorer, Method, Outcome, Precision, Session, StepMetrics, TrainConfig,
};

/// Returns the scripted values in turn and notes the steps it was asked at.
struct Scripted<'a> {
    values: Vec<Result<f64, String>>,
    calls: &'a RefCell<Vec<u64>>,
}

impl CheckpointScorer for Scripted<'_> {
    fn metric_name(&self) -> String {
        "scripted".into()
    }
    fn score(&mut self, model: &ChatModel, step: u64) -> Result<f64, String> {
        // The model it is given is the live one (with its tokenizer).
        assert!(model.tokenizer.eos_id().is_some());
        let mut calls = self.calls.borrow_mut();
        calls.push(step);
        self.values
            .get(calls.len() - 1)
            .cloned()
            .unwrap_or_else(|| Err(format!("no scripted value for call {}", calls.len())))
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    files: ModelFiles,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        let mut spec = TinySpec::llama();
        spec.hidden = 64;
        spec.intermediate = 128;
        write_tiny_gguf(&path, &spec).unwrap();
        Self {
            files: ModelFiles::Gguf(path),
            dir,
        }
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config(&self, out: &str, method: Method, max_steps: u64) -> TrainConfig {
        TrainConfig {
            model: "tiny".into(),
            train_file: "train.jsonl".into(),
            output_dir: self.out(out),
            method,
            precision: Precision::F32,
            learning_rate: if method == Method::Full { 1e-3 } else { 1e-2 },
            warmup_steps: 1,
            max_steps: Some(max_steps),
            batch_size: 2,
            max_seq_len: 64,
            eval_every: 2,
            save_every: 1,
            keep_checkpoints: 50,
            ..TrainConfig::default()
        }
    }

    fn session<'s>(&self, config: TrainConfig) -> Session<'s> {
        Session::prepare(
            config,
            &self.files,
            &LoadOptions::default(),
            &records(6, 0),
            &records(2, 100),
        )
        .unwrap()
    }

    /// Trains with a scripted scorer; returns the outcome, the steps scored and the messages.
    fn run(
        &self,
        config: TrainConfig,
        values: Vec<Result<f64, String>>,
        resume: bool,
    ) -> (Outcome, Vec<u64>, Vec<String>) {
        let calls = RefCell::new(Vec::new());
        let mut log = Log::default();
        let outcome = {
            let mut session = self.session(config);
            session.set_scorer(Box::new(Scripted {
                values,
                calls: &calls,
            }));
            session
                .run(resume, &AtomicBool::new(false), &mut log)
                .unwrap()
        };
        (outcome, calls.into_inner(), log.0)
    }
}

fn tensors(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

/// Whether two safetensors files hold the same tensors exactly.
fn same_tensors(a: &Path, b: &Path) -> bool {
    let (a, b) = (tensors(a), tensors(b));
    assert_eq!(
        a.keys().collect::<std::collections::BTreeSet<_>>(),
        b.keys().collect(),
        "tensor names differ"
    );
    a.iter().all(|(k, t)| max_abs_diff(t, &b[k]) == 0.0)
}

fn checkpoint_adapter(out: &Path, step: u64) -> PathBuf {
    out.join(format!(
        "checkpoints/step-{step:08}/adapter_model.safetensors"
    ))
}

fn metrics(out: &Path) -> Vec<StepMetrics> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ok(v: f64) -> Result<f64, String> {
    Ok(v)
}

#[test]
fn the_best_scored_step_is_kept_and_patience_stops_the_run() {
    let f = Fixture::new();
    let mut config = f.config("run", Method::Lora, 12);
    config.early_stopping_patience = Some(2);
    // Step 6 ties step 2: the earlier one stays best, and it counts against patience.
    let (outcome, calls, log) = f.run(
        config,
        vec![ok(0.1), ok(0.5), ok(0.3), ok(0.5), ok(0.9)],
        false,
    );
    assert_eq!(
        calls,
        vec![0, 2, 4, 6],
        "scored before training and every 2 steps"
    );
    assert!(outcome.early_stopped, "{log:?}");
    assert_eq!(outcome.steps, 6);
    assert_eq!(outcome.initial_metric, Some(0.1));
    assert_eq!(outcome.best_metric, Some(0.5));
    assert_eq!(outcome.best_step, Some(2));
    assert!(outcome.metric_errors.is_empty());
    assert!(outcome.initial_val_loss.is_some() && outcome.best_val_loss.is_some());

    let out = f.out("run");
    let best = BestRecord::read(&out).unwrap();
    assert_eq!(best.step, 2);
    assert_eq!(best.selected_by, "scripted");
    assert_eq!(best.value, 0.5);
    let lines = metrics(&out);
    let at2 = lines.iter().find(|m| m.step == 2).unwrap();
    assert_eq!(at2.val_metric, Some(0.5));
    assert_eq!(
        best.val_loss, at2.val_loss,
        "best.json has the loss of its step"
    );
    assert!(lines
        .iter()
        .find(|m| m.step == 3)
        .unwrap()
        .val_metric
        .is_none());

    let best_file = out.join("adapter-best/adapter_model.safetensors");
    assert!(same_tensors(&best_file, &checkpoint_adapter(&out, 2)));
    assert!(!same_tensors(&best_file, &checkpoint_adapter(&out, 6)));
    assert!(
        log.iter()
            .any(|l| l.starts_with("step 2: scripted 0.5000 (best) · validation loss ")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("step 4: scripted 0.3000 · validation loss ")),
        "no (best) without improvement: {log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("early stopping: scripted has not improved for 2")),
        "{log:?}"
    );
    assert!(std::fs::read_to_string(out.join("loss.svg"))
        .unwrap()
        .contains("scripted at 2: 0.5000"));
}

#[test]
fn resume_keeps_the_best_so_far() {
    let f = Fixture::new();
    let (first, calls, _) = f.run(
        f.config("run", Method::Lora, 4),
        vec![ok(0.1), ok(0.5), ok(0.3)],
        false,
    );
    assert_eq!(calls, vec![0, 2, 4]);
    assert_eq!(first.best_step, Some(2));
    // Continue the same run to step 8: later scores are lower, the best stays step 2.
    let (resumed, calls, log) = f.run(
        f.config("run", Method::Lora, 8),
        vec![ok(0.4), ok(0.45)],
        true,
    );
    assert_eq!(
        calls,
        vec![6, 8],
        "a resumed run does not score the base: {log:?}"
    );
    assert_eq!(resumed.steps, 8);
    assert_eq!(resumed.initial_metric, None);
    assert_eq!(resumed.best_metric, Some(0.5));
    assert_eq!(resumed.best_step, Some(2));
    let out = f.out("run");
    assert_eq!(BestRecord::read(&out).unwrap().step, 2);
    assert!(same_tensors(
        &out.join("adapter-best/adapter_model.safetensors"),
        &checkpoint_adapter(&out, 2)
    ));
    // A better score after the resume replaces it.
    let (again, _, _) = f.run(f.config("run", Method::Lora, 10), vec![ok(0.7)], true);
    assert_eq!((again.best_step, again.best_metric), (Some(10), Some(0.7)));
    assert_eq!(BestRecord::read(&out).unwrap().step, 10);
}

#[test]
fn when_the_base_scores_best_the_best_result_is_the_untrained_state() {
    let f = Fixture::new();
    for (method, result, file) in [
        (Method::Lora, "adapter", "adapter_model.safetensors"),
        (Method::Full, "model", "model.safetensors"),
    ] {
        let name = format!("{method:?}");
        let (outcome, _, log) = f.run(
            f.config(&name, method, 4),
            vec![ok(0.9), ok(0.1), ok(0.2)],
            false,
        );
        assert_eq!(outcome.best_step, Some(0), "{log:?}");
        assert_eq!(outcome.best_metric, Some(0.9));
        let out = f.out(&name);
        let best = BestRecord::read(&out).unwrap();
        assert_eq!((best.step, best.value), (0, 0.9));
        // What a fresh session of the same configuration saves before any step.
        let untrained = f.out(&format!("{name}-untrained"));
        f.session(f.config(&name, method, 4))
            .save_result(&untrained)
            .unwrap();
        assert!(
            same_tensors(
                &out.join(format!("{result}-best")).join(file),
                &untrained.join(file)
            ),
            "{method:?}: -best is not the untrained state"
        );
        assert!(!same_tensors(
            &out.join(result).join(file),
            &untrained.join(file)
        ));
    }
    // LoRA's untrained state: every B factor is zero.
    let adapter = tensors(&f.out("Lora/adapter-best/adapter_model.safetensors"));
    let b: Vec<&Tensor> = adapter
        .iter()
        .filter(|(k, _)| k.contains("lora_B"))
        .map(|(_, t)| t)
        .collect();
    assert!(!b.is_empty());
    for t in b {
        assert_eq!(max_abs_diff(t, &t.zeros_like().unwrap()), 0.0);
    }
}

#[test]
fn a_failing_scorer_is_recorded_and_the_run_finishes() {
    let f = Fixture::new();
    let mut config = f.config("run", Method::Lora, 6);
    config.early_stopping_patience = Some(1);
    let (outcome, calls, log) = f.run(
        config,
        vec![
            ok(0.2),
            Err("database is locked".into()),
            ok(f64::NAN),
            ok(0.3),
        ],
        false,
    );
    assert_eq!(calls, vec![0, 2, 4, 6]);
    // Failed evaluations neither count against patience nor replace the best.
    assert_eq!(outcome.steps, 6);
    assert!(!outcome.early_stopped);
    assert_eq!(
        outcome.metric_errors,
        vec![
            (2, "database is locked".to_string()),
            (4, "the scorer returned NaN".to_string())
        ]
    );
    assert_eq!(
        (outcome.best_step, outcome.best_metric),
        (Some(6), Some(0.3))
    );
    let lines = metrics(&f.out("run"));
    let at2 = lines.iter().find(|m| m.step == 2).unwrap();
    assert_eq!(at2.val_metric, None);
    assert_eq!(at2.val_metric_error.as_deref(), Some("database is locked"));
    assert!(
        at2.val_loss.is_some(),
        "the validation loss is still measured"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("step 2: scripted failed: database is locked · validation loss")),
        "{log:?}"
    );
}

#[test]
fn without_a_scorer_the_best_is_chosen_by_validation_loss() {
    let f = Fixture::new();
    let mut session = f.session(f.config("run", Method::Lora, 4));
    let outcome = session
        .run(false, &AtomicBool::new(false), &mut Log::default())
        .unwrap();
    let best = BestRecord::read(&f.out("run")).unwrap();
    assert_eq!(best.selected_by, "validation_loss");
    assert_eq!(Some(best.step), outcome.best_step);
    // JSON numbers come back within a rounding of what was written.
    let close = |a: f64, b: Option<f64>| (a - b.unwrap()).abs() < 1e-12;
    assert!(close(best.value, outcome.best_val_loss));
    assert!(close(best.val_loss.unwrap(), outcome.best_val_loss));
    assert_eq!((outcome.initial_metric, outcome.best_metric), (None, None));
    let lines = metrics(&f.out("run"));
    assert!(lines.iter().all(|m| m.val_metric.is_none()));
    if best.step > 0 {
        assert!(same_tensors(
            &f.out("run/adapter-best/adapter_model.safetensors"),
            &checkpoint_adapter(&f.out("run"), best.step)
        ));
    }
}
