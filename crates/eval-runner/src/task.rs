//! The task file (TOML): dataset and field mapping, prompt strategy, model, generation parameters, metrics
//! and prices. Paths are relative to the task file's folder (or absolute) and may use `${VAR}` /
//! `${VAR:-default}` environment expansion, e.g. `${TUNEUP_DATA:-../shared/data}`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{read_to_string, Error, Result};
pub use crate::overrides::Overrides;
pub use crate::paths::{expand_env, resolve_path};

/// A whole task file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// Task name (default: the file stem).
    #[serde(default)]
    pub name: String,
    /// One-line description.
    #[serde(default)]
    pub description: String,
    /// Metrics, the first non-`latency` one being the primary (per-example verdict).
    pub metrics: Vec<Metric>,
    /// Where the examples come from.
    pub dataset: Dataset,
    /// How prompts are built.
    #[serde(default)]
    pub prompt: PromptSpec,
    /// Which model answers.
    #[serde(default)]
    pub model: ModelSpec,
    /// Generation parameters.
    #[serde(default)]
    pub generation: Generation,
    /// Price table for the cost estimate.
    #[serde(default)]
    pub cost: Cost,
    /// Seconds a model-written SQL statement may run.
    #[serde(default = "default_sql_timeout")]
    pub sql_timeout_s: f64,
    /// How generated programs are tested (`code_execution`).
    #[serde(default)]
    pub code: Option<CodeSpec>,
    /// Verification at inference time: several candidates and a vote, SQL repair rounds.
    #[serde(default)]
    pub verify: Option<Verify>,
}

/// `[verify]`: checks the model's own answers at inference time, using only its outputs and the database (never
/// the gold answer or the scoring tests).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    /// Answers generated per example; with 2 or more, candidate 0 is greedy and the others are sampled at
    /// `temperature` with seeds `seed + i`, and a vote picks one (see [`crate::verify`]).
    #[serde(default = "default_candidates")]
    pub candidates: usize,
    /// Sampling temperature of candidates 1.. .
    #[serde(default = "default_verify_temperature")]
    pub temperature: f32,
    /// SQL only: a query the database rejects is handed back with the error, up to this many times.
    #[serde(default)]
    pub repair_rounds: usize,
}

fn default_candidates() -> usize {
    1
}

fn default_verify_temperature() -> f32 {
    0.7
}

impl Default for Verify {
    fn default() -> Self {
        Self {
            candidates: default_candidates(),
            temperature: default_verify_temperature(),
            repair_rounds: 0,
        }
    }
}

/// How `{{ schema }}` renders a SQL database (`prompt.schema_style`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaStyle {
    /// CREATE TABLE statements only.
    #[default]
    Ddl,
    /// The DDL plus the first 3 rows of each table as `-- ` comment lines.
    DdlRows,
    /// The DDL plus up to 8 distinct values of each TEXT column as `-- ` comment lines.
    DdlValues,
}

fn default_sql_timeout() -> f64 {
    5.0
}

/// A metric name as written in the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Answer equals the target exactly (after trimming whitespace).
    ExactMatch,
    /// Equal after lowercasing, collapsing whitespace and dropping trailing punctuation.
    NormalizedMatch,
    /// Corpus BLEU (sacreBLEU); per-example sentence BLEU.
    Bleu,
    /// ROUGE-1/2/L F1 (rouge-score), mean over examples.
    Rouge,
    /// The answer holds a JSON value.
    JsonValid,
    /// The JSON value conforms to `prompt.json_schema`.
    JsonSchema,
    /// SQL execution accuracy on the example's SQLite database or PostgreSQL schema.
    SqlExecution,
    /// BFCL AST function-call accuracy.
    FunctionCall,
    /// The generated program passes its tests (pass@1; pass@k with `generation.samples`).
    CodeExecution,
    /// Time to first token, per-token latency, throughput (always measured; listing it only shows it first).
    Latency,
}

impl Metric {
    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::ExactMatch => "exact_match",
            Self::NormalizedMatch => "normalized_match",
            Self::Bleu => "bleu",
            Self::Rouge => "rouge",
            Self::JsonValid => "json_valid",
            Self::JsonSchema => "json_schema",
            Self::SqlExecution => "sql_execution",
            Self::FunctionCall => "function_call",
            Self::CodeExecution => "code_execution",
            Self::Latency => "latency",
        }
    }
}

/// The data set and its field mapping.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    /// JSONL file (one object a line) or a JSON array file.
    pub path: PathBuf,
    /// Field holding the model input; a path like `question.0.0.content` reaches into nested values.
    pub input: String,
    /// Field holding the reference answer.
    #[serde(default)]
    pub target: Option<String>,
    /// Field holding a stable example id (default: `line-N`).
    #[serde(default)]
    pub id: Option<String>,
    /// Field used to group accuracy in reports (e.g. `db_id`).
    #[serde(default)]
    pub category: Option<String>,
    /// Field naming the example's database (Spider's `db_id`).
    #[serde(default)]
    pub db_id: Option<String>,
    /// Folder of SQLite databases: `{db_dir}/{db_id}/{db_id}.sqlite` (or `{db_dir}/{db_id}.sqlite`).
    #[serde(default)]
    pub db_dir: Option<PathBuf>,
    /// PostgreSQL server instead of `db_dir`: `postgres://user[:password]@host[:port]/dbname`, with `${VAR}`
    /// expansion (done when scoring, so a password from the environment never lands in the run's `task.toml`).
    /// With a `{db_id}` placeholder it names one database per example database; without, each example's
    /// queries run in the schema named by its `db_id` (`search_path`), as `tuneup eval load-postgres` loads them.
    #[serde(default)]
    pub db_url: Option<String>,
    /// Run the model's SQL on `db_url` even when its role is a superuser or a member of `pg_read_server_files`,
    /// `pg_write_server_files` or `pg_execute_server_program` (refused by default: such a role lets a query
    /// read the server's files). Better: a read-only role (`tuneup eval load-postgres --reader-role`).
    #[serde(default)]
    pub allow_privileged_role: bool,
    /// Spider-style `tables.json`: each example's schema is rendered as CREATE TABLE DDL into `{{ schema }}`.
    #[serde(default)]
    pub tables: Option<PathBuf>,
    /// Field holding the function docs offered to the model (BFCL `function`).
    #[serde(default)]
    pub tools: Option<String>,
    /// A second file whose records are merged into the examples by a shared key (BFCL possible answers).
    #[serde(default)]
    pub join: Option<Join>,
    /// Evaluate only the first `limit` examples (after shuffling when `seed` is set).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Shuffle the examples with this seed before applying `limit`.
    #[serde(default)]
    pub seed: Option<u64>,
}

/// Merge records of another file by key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Join {
    /// The other JSONL file.
    pub path: PathBuf,
    /// Key field present in both files.
    pub key: String,
}

/// What the answer is expected to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// Free text (the whole output, or the text after `Answer:` with chain of thought).
    #[default]
    Text,
    /// One SQL query (from a ```sql fence or the first SELECT/WITH statement).
    Sql,
    /// A JSON value.
    Json,
    /// Function calls (`<tool_call>` blocks, or a bare JSON call object/array).
    ToolCalls,
    /// A program (the fenced block defining the entry point, else the first code fence, else the whole output).
    Code,
}

/// How generated programs are assembled and run (`code_execution`); field names refer to the data set's records
/// (defaults fit HumanEval and the MBXP releases of MBPP).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeSpec {
    /// `python` or `kotlin` (needs `kotlinc` and `java`).
    #[serde(default)]
    pub language: tuneup_eval::code::Language,
    /// Field with the function header the model completes (HumanEval `prompt`).
    #[serde(default = "default_code_prompt")]
    pub prompt_field: String,
    /// Field with the test program (a string, or a list of statements joined by newlines).
    #[serde(default = "default_code_test")]
    pub test_field: String,
    /// Field naming the function under test; Python tests defining `check` get `check(<entry point>)` appended.
    #[serde(default = "default_code_entry_point")]
    pub entry_point_field: String,
    /// Seconds each program may run.
    #[serde(default = "default_code_timeout")]
    pub timeout_s: f64,
    /// Address-space limit per Python program, MiB (the JVM is limited by `-Xmx512m` instead).
    #[serde(default = "default_code_memory")]
    pub memory_mb: u64,
    /// Python interpreter (default `python3` on `PATH`).
    #[serde(default)]
    pub python: Option<PathBuf>,
    /// k values reported as `pass@k` (each at most `generation.samples`).
    #[serde(default = "default_pass_at")]
    pub pass_at: Vec<usize>,
}

fn default_code_prompt() -> String {
    "prompt".into()
}
fn default_code_test() -> String {
    "test".into()
}
fn default_code_entry_point() -> String {
    "entry_point".into()
}
fn default_code_timeout() -> f64 {
    10.0
}
fn default_code_memory() -> u64 {
    2048
}
fn default_pass_at() -> Vec<usize> {
    vec![1]
}

/// How few-shot examples are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// The first `k` examples of the file.
    #[default]
    Fixed,
    /// `k` examples drawn with `seed` (per test example: seed + example index).
    Random,
    /// The `k` most similar inputs by BM25 (k1 = 1.2, b = 0.75) over lowercase word tokens.
    Similar,
    /// The `k` nearest inputs by sentence-embedding cosine (`few_shot.embedder`, default all-MiniLM-L6-v2).
    Embedding,
}

/// Few-shot configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FewShot {
    /// Number of examples.
    pub k: usize,
    /// How they are chosen.
    #[serde(default)]
    pub select: Selection,
    /// JSONL file of examples (same field mapping as the data set); must not be the test file.
    pub path: PathBuf,
    /// Seed for `random`.
    #[serde(default)]
    pub seed: u64,
    /// Template for the examples' user turns (default: the main template).
    #[serde(default)]
    pub template: Option<String>,
    /// Sentence-embedding model for `select = "embedding"` (default `all-minilm-l6-v2`).
    #[serde(default)]
    pub embedder: Option<String>,
}

/// Retrieved context from a `tuneup rag` index, available to templates as `{{ context }}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrievalSpec {
    /// Index name (as in `tuneup rag ingest --index`).
    pub index: String,
    /// Where the index lives: folder, `.db` file or `postgres://` URL (default `$TUNEUP_HOME/rag/`).
    #[serde(default)]
    pub store: Option<PathBuf>,
    /// Chunks per example.
    #[serde(default = "default_retrieval_k")]
    pub k: usize,
    /// `dense`, `bm25` or `hybrid`.
    #[serde(default = "default_retrieval_mode")]
    pub mode: String,
    /// The embedder the index was built with (default `all-minilm-l6-v2`).
    #[serde(default)]
    pub embedder: Option<String>,
}

fn default_retrieval_k() -> usize {
    3
}

fn default_retrieval_mode() -> String {
    "hybrid".into()
}

/// Prompt strategy.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptSpec {
    /// System (role) prompt; a minijinja template like `template`.
    #[serde(default)]
    pub system: Option<String>,
    /// User-turn template (minijinja): `{{ input }}`, `{{ schema }}`, and every field of the record.
    /// Default: `{{ input }}`.
    #[serde(default)]
    pub template: Option<String>,
    /// Add a step-by-step instruction; the answer is taken from the final marker or code fence.
    #[serde(default)]
    pub chain_of_thought: bool,
    /// Expected answer format.
    #[serde(default)]
    pub output: OutputKind,
    /// JSON-template answers: the reply is a JSON object and the answer (SQL, text, code) is this field of it,
    /// e.g. `"sql"` for `{"sql": "SELECT ..."}`. A reply without that field has no answer.
    #[serde(default)]
    pub answer_field: Option<String>,
    /// JSON schema for `output = "json"` (inline table); with `generation.constrained` the reply is decoded
    /// under it.
    #[serde(default)]
    pub json_schema: Option<Value>,
    /// How `{{ schema }}` renders the example's database: `ddl`, `ddl_rows` or `ddl_values` (the last two read
    /// the SQLite file under `dataset.db_dir`).
    #[serde(default)]
    pub schema_style: SchemaStyle,
    /// Few-shot examples.
    #[serde(default)]
    pub few_shot: Option<FewShot>,
    /// Retrieved context (`{{ context }}`; prepended to the user turn when the template does not use it).
    #[serde(default)]
    pub retrieval: Option<RetrievalSpec>,
}

/// The model.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Alias (`qwen2.5-coder-0.5b`), local GGUF/HF path, or `hf:ORG/NAME`.
    #[serde(default)]
    pub name: Option<String>,
    /// OpenAI-compatible server base URL (`http://host:port` or `https://…`); the runner POSTs
    /// `{endpoint}/v1/chat/completions`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Model name sent to the endpoint (default: `name`).
    #[serde(default)]
    pub model: Option<String>,
    /// Environment variable holding a bearer token for the endpoint.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// CPU threads for the in-process runtime.
    #[serde(default)]
    pub threads: Option<usize>,
    /// Cap on the context window.
    #[serde(default)]
    pub ctx_size: Option<usize>,
    /// LoRA adapter folder (PEFT format) applied to the in-process model.
    #[serde(default)]
    pub adapter: Option<std::path::PathBuf>,
    /// Run the in-process model on the first CUDA GPU (needs a build with `--features cuda`).
    #[serde(default)]
    pub gpu: bool,
    /// PEM file of CA certificates trusted for an `https://` endpoint besides the public roots (a private CA).
    #[serde(default)]
    pub ca_cert: Option<std::path::PathBuf>,
}

/// Generation parameters (greedy by default).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generation {
    /// Most tokens to generate.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    /// Temperature; 0 = greedy.
    #[serde(default)]
    pub temperature: f32,
    /// Sampling seed.
    #[serde(default)]
    pub seed: u64,
    /// Stop strings.
    #[serde(default)]
    pub stop: Vec<String>,
    /// Completions per example (sample `s` uses seed `seed + s`); more than 1 gives `pass@k` for pass/fail
    /// metrics and needs `temperature > 0` to differ.
    #[serde(default = "default_samples")]
    pub samples: usize,
    /// Decode under `prompt.json_schema` (grammar-constrained in process; `response_format` `json_schema` with
    /// `strict` for endpoints), so every reply is JSON that conforms to it.
    #[serde(default)]
    pub constrained: bool,
}

fn default_samples() -> usize {
    1
}

fn default_max_tokens() -> usize {
    256
}

impl Default for Generation {
    fn default() -> Self {
        Self {
            max_tokens: default_max_tokens(),
            temperature: 0.0,
            seed: 0,
            stop: Vec::new(),
            samples: default_samples(),
            constrained: false,
        }
    }
}

/// Price table; any combination may be given and each gives its own estimate.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cost {
    /// Price of the machine per hour (applied to the run's wall-clock time).
    #[serde(default)]
    pub usd_per_gpu_hour: Option<f64>,
    /// Price per million prompt tokens.
    #[serde(default)]
    pub usd_per_million_input_tokens: Option<f64>,
    /// Price per million completion tokens.
    #[serde(default)]
    pub usd_per_million_output_tokens: Option<f64>,
}

impl Task {
    /// Parses a task from TOML text; relative paths resolve against `base_dir`.
    pub fn from_toml(text: &str, base_dir: &Path, source: &Path) -> Result<Self> {
        let bad = |message: String| Error::Task {
            path: source.to_path_buf(),
            message,
        };
        let mut task: Task = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        if task.name.is_empty() {
            task.name = source
                .file_stem()
                .map_or_else(|| "task".into(), |s| s.to_string_lossy().into_owned());
        }
        if task.metrics.is_empty() {
            return Err(bad("`metrics` is empty".into()));
        }
        // Programs are what `code_execution` judges; free text would run the model's prose.
        if task.metrics.contains(&Metric::CodeExecution) && task.prompt.output == OutputKind::Text {
            task.prompt.output = OutputKind::Code;
        }
        let fix = |p: &mut PathBuf| -> Result<()> {
            *p = resolve_path(p, base_dir).map_err(&bad)?;
            Ok(())
        };
        fix(&mut task.dataset.path)?;
        for p in [
            &mut task.dataset.db_dir,
            &mut task.dataset.tables,
            &mut task.model.adapter,
            &mut task.model.ca_cert,
        ]
        .into_iter()
        .flatten()
        {
            fix(p)?;
        }
        // A bare interpreter name (`python3`) is looked up on PATH; a path is relative to the task file.
        if let Some(python) = task.code.as_mut().and_then(|c| c.python.as_mut()) {
            if python.components().count() > 1 {
                fix(python)?;
            }
        }
        if let Some(j) = &mut task.dataset.join {
            fix(&mut j.path)?;
        }
        if let Some(fs) = &mut task.prompt.few_shot {
            fix(&mut fs.path)?;
        }
        task.validate().map_err(bad)?;
        Ok(task)
    }

    /// Reads and parses a task file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = read_to_string(path, "reading task file")?;
        // Absolute, so the `task.toml` written next to a run still points at the same files.
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_toml(&text, base, &path)
    }

    /// Checks the task again (after command-line overrides); errors name `source`.
    pub fn check(&self, source: &Path) -> Result<()> {
        self.validate().map_err(|message| Error::Task {
            path: source.to_path_buf(),
            message,
        })
    }

    /// The metric that gives each example its verdict: the first one that is not `latency`.
    pub fn primary_metric(&self) -> Option<Metric> {
        self.metrics.iter().copied().find(|m| *m != Metric::Latency)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let needs_target = self.metrics.iter().any(|m| {
            !matches!(
                m,
                Metric::Latency
                        | Metric::JsonValid
                        | Metric::JsonSchema
                        | Metric::CodeExecution
                        // BFCL irrelevance has no answer: any call is wrong.
                        | Metric::FunctionCall
            )
        });
        if needs_target && self.dataset.target.is_none() && self.dataset.join.is_none() {
            return Err("the metrics need `dataset.target`".into());
        }
        if self.metrics.contains(&Metric::SqlExecution) {
            let d = &self.dataset;
            if d.db_id.is_none() || (d.db_dir.is_none() && d.db_url.is_none()) {
                return Err(
                    "`sql_execution` needs `dataset.db_id` and `dataset.db_dir` (SQLite) or `dataset.db_url` (PostgreSQL)"
                        .into(),
                );
            }
            if d.db_dir.is_some() && d.db_url.is_some() {
                return Err(
                    "set `dataset.db_dir` (SQLite) or `dataset.db_url` (PostgreSQL), not both"
                        .into(),
                );
            }
        }
        if let Some(url) = &self.dataset.db_url {
            expand_env(url).map_err(|e| format!("dataset.db_url: {e}"))?;
        }
        if self.metrics.contains(&Metric::CodeExecution) && self.code.is_none() {
            return Err(
                "`code_execution` needs a `[code]` section (language, field names, limits)".into(),
            );
        }
        if self.generation.samples == 0 {
            return Err("`generation.samples` must be at least 1".into());
        }
        if let Some(code) = &self.code {
            if let Some(k) = code
                .pass_at
                .iter()
                .find(|&&k| k == 0 || k > self.generation.samples)
            {
                return Err(format!(
                    "`code.pass_at` has k = {k}, outside 1..={} (`generation.samples`)",
                    self.generation.samples
                ));
            }
        }
        if self.metrics.contains(&Metric::JsonSchema) && self.prompt.json_schema.is_none() {
            return Err("`json_schema` needs `prompt.json_schema`".into());
        }
        self.validate_verify()?;
        if let Some(fs) = &self.prompt.few_shot {
            if same_file(&fs.path, &self.dataset.path) {
                return Err(format!(
                    "few-shot examples {} are the test file itself",
                    fs.path.display()
                ));
            }
        }
        Ok(())
    }
}

impl Task {
    /// Checks `generation.constrained`, `prompt.schema_style` and `[verify]` against the rest of the task.
    fn validate_verify(&self) -> std::result::Result<(), String> {
        if self.generation.constrained && self.prompt.json_schema.is_none() {
            return Err("`generation.constrained` needs `prompt.json_schema`".into());
        }
        if self.prompt.schema_style != SchemaStyle::Ddl && self.dataset.db_dir.is_none() {
            return Err(
                "`prompt.schema_style` `ddl_rows` / `ddl_values` read the SQLite files: set `dataset.db_dir`"
                    .into(),
            );
        }
        let Some(v) = &self.verify else {
            return Ok(());
        };
        if v.candidates == 0 {
            return Err("`verify.candidates` must be at least 1".into());
        }
        if !(v.temperature.is_finite() && v.temperature >= 0.0) {
            return Err(format!(
                "`verify.temperature` must be 0 or more, not {}",
                v.temperature
            ));
        }
        let sql = self.prompt.output == OutputKind::Sql;
        if v.repair_rounds > 0 && !sql {
            return Err("`verify.repair_rounds` needs `prompt.output = \"sql\"`".into());
        }
        let d = &self.dataset;
        if sql && (d.db_id.is_none() || (d.db_dir.is_none() && d.db_url.is_none())) {
            return Err(
                "`[verify]` on SQL runs the queries: set `dataset.db_id` and `dataset.db_dir` or `dataset.db_url`"
                    .into(),
            );
        }
        Ok(())
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}
