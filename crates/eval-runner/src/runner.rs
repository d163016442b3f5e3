//! The run loop: build each prompt, generate, extract, score, record; never abort on one example.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tuneup_generate::ChatModel;

use crate::backend::{open_model, Backend, InProcess};
use crate::dataset::{load_examples, load_mapped, Example};
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::extract::{extract, extract_code, Answer};
use crate::fewshot::ShotPool;
use crate::prompt::PromptBuilder;
use crate::record::{ExampleRecord, Verdict};
use crate::schema::Schemas;
use crate::score::{code_field, Scorer};
use crate::summary::{summarize, Summary};
use crate::task::{OutputKind, Task};

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Write `examples.jsonl`, `summary.json`, `report.html` and `task.toml` here.
    pub out: Option<PathBuf>,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// One record per example, in data order.
    pub records: Vec<ExampleRecord>,
    /// The summary.
    pub summary: Summary,
}

/// Runs `task` end to end: loads data and model (or connects to the endpoint), evaluates, writes outputs.
pub fn run_task(task: &Task, opts: &RunOptions) -> Result<RunResult> {
    with_prepared(task, |examples, builder| {
        if let Some(url) = &task.model.endpoint {
            let name = task
                .model
                .model
                .clone()
                .or_else(|| task.model.name.clone())
                .unwrap_or_else(|| "default".into());
            let key = task
                .model
                .api_key_env
                .as_ref()
                .and_then(|v| std::env::var(v).ok());
            let mut backend =
                Endpoint::with_ca_cert(url, &name, key, task.model.ca_cert.as_deref())?;
            return run_examples(task, examples, builder, &mut backend, opts);
        }
        let name = task.model.name.clone().ok_or_else(|| Error::Task {
            path: PathBuf::from(&task.name),
            message: "no model: set `model.name`, `model.endpoint`, `--model` or `--endpoint`"
                .into(),
        })?;
        let model = open_model(&name, &task.model)?;
        let mut backend = InProcess::new(&name, &model);
        run_examples(task, examples, builder, &mut backend, opts)
    })
}

/// Runs `task` with an already loaded in-process model (adapters attached or not); same outputs as run_task.
/// The task's `[model]` section (name, endpoint, adapter, threads) is not used; `model_name` names the model in
/// the summary's backend.
pub fn run_task_on(
    task: &Task,
    model: &ChatModel,
    model_name: &str,
    opts: &RunOptions,
) -> Result<RunResult> {
    with_prepared(task, |examples, builder| {
        let mut backend = InProcess::new(model_name, model);
        run_examples(task, examples, builder, &mut backend, opts)
    })
}

/// Loads what every run of `task` needs before a model answers (examples, few-shot pool, retriever, schemas)
/// and calls `f` with the examples and the prompt builder.
pub(crate) fn with_prepared<T>(
    task: &Task,
    f: impl FnOnce(&[Example], &PromptBuilder<'_>) -> Result<T>,
) -> Result<T> {
    let examples = load_examples(&task.dataset)?;
    let pool = match &task.prompt.few_shot {
        Some(fs) if fs.k > 0 => {
            let pool = ShotPool::new(load_mapped(
                &crate::task::Dataset {
                    join: None,
                    ..task.dataset.clone()
                },
                &fs.path,
            )?);
            Some(if fs.select == crate::task::Selection::Embedding {
                let spec = fs.embedder.as_deref().unwrap_or(DEFAULT_EMBEDDER);
                pool.embed_with(load_embedder(spec)?)
                    .map_err(|e| retrieval_error(task, e))?
            } else {
                pool
            })
        }
        _ => None,
    };
    let retriever = task
        .prompt
        .retrieval
        .as_ref()
        .map(|spec| open_retriever(task, spec))
        .transpose()?;
    let schemas = Schemas::for_task(task)?;
    let mut builder = PromptBuilder::new(&task.prompt, schemas, pool.as_ref())?;
    if let Some(r) = &retriever {
        builder = builder.with_retriever(r);
    }
    f(&examples, &builder)
}

/// The embedder used when a task names none.
const DEFAULT_EMBEDDER: &str = "all-minilm-l6-v2";

fn load_embedder(spec: &str) -> Result<tuneup_retrieval::embed::Embedder> {
    tuneup_retrieval::embed::Embedder::from_spec(spec, &mut tuneup_hub::LogProgress).map_err(|e| {
        Error::Model {
            name: spec.to_owned(),
            message: e.to_string(),
        }
    })
}

fn retrieval_error(task: &Task, e: tuneup_retrieval::Error) -> Error {
    Error::Task {
        path: PathBuf::from(&task.name),
        message: format!("prompt.retrieval: {e}"),
    }
}

/// Opens the index of `[prompt.retrieval]` and checks it was built with the task's embedder.
fn open_retriever(
    task: &Task,
    spec: &crate::task::RetrievalSpec,
) -> Result<tuneup_retrieval::search::Retriever> {
    let store_root = match &spec.store {
        Some(s) => s.clone(),
        None => tuneup_hub::Cache::from_env()
            .map_err(|e| retrieval_error(task, tuneup_retrieval::Error::Invalid(e.to_string())))?
            .root()
            .join("rag"),
    };
    let store = tuneup_retrieval::store::open_index(&store_root, &spec.index)
        .map_err(|e| retrieval_error(task, e))?;
    let mode = spec.mode.parse().map_err(|e| retrieval_error(task, e))?;
    let embedder = load_embedder(spec.embedder.as_deref().unwrap_or(DEFAULT_EMBEDDER))?;
    tuneup_retrieval::search::Retriever::new(store, embedder, spec.k, mode)
        .map_err(|e| retrieval_error(task, e))
}

fn bar(n: usize, show: bool) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(
        Some(n as u64),
        if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {per_sec} ETA {eta} {msg}",
    ) {
        pb.set_style(style);
    }
    pb
}

/// Evaluates `examples` with `backend` (the part of [`run_task`] after loading).
pub fn run_examples(
    task: &Task,
    examples: &[Example],
    builder: &PromptBuilder<'_>,
    backend: &mut dyn Backend,
    opts: &RunOptions,
) -> Result<RunResult> {
    if let Some(dir) = &opts.out {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            what: "creating output folder",
            path: dir.clone(),
            source,
        })?;
    }
    let mut scorer = Scorer::new(task)?;
    let started_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let samples = task.generation.samples.max(1);
    let pb = bar(examples.len() * samples, opts.progress);
    let start = Instant::now();
    let mut records = Vec::with_capacity(examples.len() * samples);
    let (mut passed, mut judged) = (0usize, 0usize);
    for e in examples {
        for sample in 0..samples {
            let r = run_one(task, e, sample, builder, backend, &mut scorer);
            if r.verdict != Verdict::Scored {
                judged += 1;
                passed += usize::from(r.is_correct());
            }
            records.push(r);
            pb.set_message(format!("acc {:.3}", passed as f64 / judged.max(1) as f64));
            pb.inc(1);
        }
    }
    pb.finish_and_clear();
    let wall_s = start.elapsed().as_secs_f64();
    let mut summary = summarize(task, &backend.describe(), started_at, wall_s, &records);
    summary.code_sandbox = scorer.sandbox_report();
    summary
        .warnings
        .extend(summary.code_sandbox.and_then(|s| s.warning()));
    let result = RunResult { records, summary };
    if let Some(dir) = &opts.out {
        write_outputs(dir, task, &result)?;
    }
    Ok(result)
}

fn error_record(
    e: &Example,
    sample: usize,
    prompt: String,
    shots: Vec<String>,
    kind: &str,
    message: String,
) -> ExampleRecord {
    ExampleRecord {
        id: e.id.clone(),
        index: e.index,
        sample,
        category: e.category.clone(),
        input: e.input.clone(),
        target: e.target.clone(),
        prompt,
        shots,
        raw_output: None,
        answer: serde_json::Value::Null,
        verdict: Verdict::Error,
        primary_score: 0.0,
        error_type: Some(kind.into()),
        error_message: Some(message),
        scores: Default::default(),
        ttft_ms: None,
        per_token_ms: None,
        total_ms: None,
        prompt_tokens: 0,
        completion_tokens: 0,
        finish_reason: None,
        candidates: 0,
        repairs: 0,
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs completion number `sample` of one example (seed `generation.seed + sample`); every failure becomes
/// a record.
pub fn run_one(
    task: &Task,
    e: &Example,
    sample: usize,
    builder: &PromptBuilder<'_>,
    backend: &mut dyn Backend,
    scorer: &mut Scorer,
) -> ExampleRecord {
    let prompt = match builder.build(e) {
        Ok(p) => p,
        Err(err) => {
            return error_record(
                e,
                sample,
                String::new(),
                Vec::new(),
                "prompt_error",
                err.to_string(),
            )
        }
    };
    let generation = crate::task::Generation {
        seed: task.generation.seed.wrapping_add(sample as u64),
        ..task.generation.clone()
    };
    let answer_of = |text: &str| answer_of(task, e, text);
    let v =
        match crate::verify::generate(task, e, &prompt, &generation, backend, scorer, &answer_of) {
            Ok(v) => v,
            Err(msg) => {
                let text = serde_json::to_string(&prompt.messages).unwrap_or_default();
                return error_record(e, sample, text, prompt.shot_ids, "generation_error", msg);
            }
        };
    let (c, answer) = (&v.completion, &v.answer);
    let s = scorer.score(e, &c.text, answer);
    let verdict = match (s.unjudgeable, s.passed) {
        (true, _) => Verdict::Error,
        (false, Some(true)) => Verdict::Correct,
        (false, Some(false)) => Verdict::Wrong,
        (false, None) => Verdict::Scored,
    };
    let mut record = ExampleRecord {
        id: e.id.clone(),
        index: e.index,
        sample,
        category: e.category.clone(),
        input: e.input.clone(),
        target: e.target.clone(),
        prompt: c.prompt_text.clone(),
        shots: prompt.shot_ids,
        raw_output: Some(c.text.clone()),
        answer: if *answer == Answer::None {
            serde_json::Value::Null
        } else {
            answer.to_json()
        },
        verdict,
        primary_score: s.primary,
        error_type: s.error_type,
        error_message: s.message,
        scores: s.scores,
        ttft_ms: v.usage.ttft.map(ms),
        per_token_ms: v.usage.per_token().map(ms),
        total_ms: Some(ms(v.usage.total)),
        prompt_tokens: v.usage.prompt_tokens,
        completion_tokens: v.usage.completion_tokens,
        finish_reason: Some(c.finish_reason.clone()),
        candidates: v.candidates,
        repairs: v.repairs,
    };
    crate::truncation::mark(&mut record);
    record
}

/// The answer in one reply of `e`: the `prompt.answer_field` of a JSON reply when set, then extracted for the
/// task's output kind (programs assembled with the record's entry point).
pub fn answer_of(task: &Task, e: &Example, reply: &str) -> Answer {
    let reply = match &task.prompt.answer_field {
        Some(f) => json_answer_field(reply, f),
        None => Some(reply.to_owned()),
    };
    match (reply, &task.code, task.prompt.output) {
        (None, ..) => Answer::None,
        (Some(text), Some(spec), OutputKind::Code) => {
            let entry = code_field(e, &spec.entry_point_field);
            Answer::Text(extract_code(&text, spec.language, entry.as_deref()))
        }
        (Some(text), ..) => extract(&text, task.prompt.output, task.prompt.chain_of_thought),
    }
}

/// The string (or JSON text) of `field` in the JSON object of `reply` (`prompt.answer_field`).
fn json_answer_field(reply: &str, field: &str) -> Option<String> {
    let found = tuneup_eval::json_check::extract_json(reply).ok()?;
    crate::dataset::field(&found.value, field).map(crate::dataset::as_text)
}

/// Writes `examples.jsonl`, `summary.json`, `report.html` and the effective `task.toml` into `dir`.
pub fn write_outputs(dir: &Path, task: &Task, result: &RunResult) -> Result<()> {
    let mut lines = String::new();
    for r in &result.records {
        lines.push_str(&serde_json::to_string(r).unwrap_or_default());
        lines.push('\n');
    }
    crate::error::write(&dir.join("examples.jsonl"), "writing", lines)?;
    let summary = serde_json::to_string_pretty(&result.summary).unwrap_or_default();
    crate::error::write(&dir.join("summary.json"), "writing", summary + "\n")?;
    let html = crate::report::run_report(&result.summary, &result.records);
    crate::error::write(&dir.join("report.html"), "writing", html)?;
    if let Ok(t) = toml::to_string(task) {
        crate::error::write(&dir.join("task.toml"), "writing", t)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::json_answer_field;

    #[test]
    fn json_template_answers_are_read_from_their_field() {
        let reply = "```json\n{\"sql\": \"SELECT count(*) FROM singer\"}\n```";
        assert_eq!(
            json_answer_field(reply, "sql").as_deref(),
            Some("SELECT count(*) FROM singer")
        );
        assert_eq!(json_answer_field("{\"query\": \"SELECT 1\"}", "sql"), None);
        assert_eq!(json_answer_field("SELECT 1", "sql"), None);
    }
}
