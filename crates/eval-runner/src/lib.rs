//! `tuneup eval`: run an evaluation task described in TOML and report on it.
//!
//! A [`Task`] names a data set (JSONL + field mapping), a prompt strategy (system prompt, minijinja template,
//! few-shot selection, chain of thought, output kind), a model (in-process or an OpenAI-compatible endpoint),
//! generation parameters and metrics from `tuneup-eval`. [`run_task`] (or [`run_task_on`], with a model already
//! loaded) loads the data, builds each prompt
//! ([`PromptBuilder`]), generates ([`Backend`]), extracts the answer ([`extract()`]), scores it ([`Scorer`]) and
//! records one [`ExampleRecord`] per example — a failing example is recorded, never fatal. With an output folder
//! it writes `examples.jsonl`, `summary.json` ([`Summary`]), `report.html` ([`run_report`]) and `task.toml`.
//! [`compare()`] puts finished runs side by side with McNemar and paired-bootstrap tests.
//!
//! [`with_answerer`] answers single inputs exactly as the task's evaluation would (what `tuneup serve --ladder`
//! serves).
//!
//! Optional per task: grammar-constrained JSON replies ([`constrain`], `generation.constrained`), schema
//! renderings with sample rows or values ([`Schemas`], `prompt.schema_style`), verification at inference time
//! ([`verify`], `[verify]`: candidates with a vote, SQL repair), and the `truncated` error type for wrong answers
//! cut off by the token limit ([`truncation`]).

pub mod answer;
pub mod backend;
pub mod compare;
pub mod constrain;
pub mod data;
pub mod dataset;
pub mod endpoint;
pub mod error;
pub mod extract;
pub mod fewshot;
pub mod overrides;
pub mod paths;
pub mod pg_load;
pub mod prompt;
pub mod record;
pub mod render;
pub mod report;
pub mod runner;
pub mod schema;
pub mod schema_sample;
pub mod score;
pub mod sql_db;
pub mod summary;
pub mod task;
pub mod truncation;
pub mod verify;

/// The charts live in `tuneup-report`, shared with `tuneup train` and `tuneup ladder`.
pub use tuneup_report as svg;

pub use answer::{with_answerer, Answered, Answerer, Question};
pub use backend::{completion_of, generate_params, render_prompt, Backend, Completion, InProcess};
pub use compare::{compare, compare_report, compare_table, load_run, Comparison, Run};
pub use constrain::{response_format, JsonConstraints};
pub use dataset::{load_examples, Example};
pub use endpoint::Endpoint;
pub use error::{Error, Result};
pub use extract::{extract, Answer};
pub use prompt::{Prompt, PromptBuilder};
pub use record::{ExampleRecord, Verdict};
pub use report::{run_report, terminal_table};
pub use runner::{answer_of, run_examples, run_task, run_task_on, RunOptions, RunResult};
pub use schema::Schemas;
pub use score::Scorer;
pub use summary::Summary;
pub use task::{Metric, OutputKind, Overrides, SchemaStyle, Selection, Task, Verify};
pub use truncation::TRUNCATED;
pub use verify::{generate as generate_verified, Usage, Verified};
