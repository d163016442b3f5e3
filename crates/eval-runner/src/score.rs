//! Per-example scoring with the metrics of `tuneup-eval`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use tuneup_eval::code::sandbox::{SandboxLimits, SandboxReport};
use tuneup_eval::code::{CodeChecker, CodeErrorType, CodeProblem, Language};
use tuneup_eval::function_call::{check_function_calls, Category};
use tuneup_eval::json_check::{check_output, SchemaChecker};
use tuneup_eval::sql::postgres::RolePolicy;
use tuneup_eval::sql::{Row, SqlEvalError, SqlLimits};
use tuneup_eval::{bleu, rouge, text};

use crate::dataset::{as_text, field, Example};
use crate::error::{Error, Result};
use crate::extract::Answer;
use crate::paths::expand_env;
use crate::sql_db::{DatabaseSource, Databases};
use crate::task::{CodeSpec, Metric, Task};

/// Scores of one example.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scored {
    /// Value per metric name.
    pub scores: BTreeMap<String, f64>,
    /// Primary metric: pass (`Some(true)`), fail (`Some(false)`), or a score (`None`).
    pub passed: Option<bool>,
    /// The primary metric's value.
    pub primary: f64,
    /// Failure type of the primary metric.
    pub error_type: Option<String>,
    /// Failure details.
    pub message: Option<String>,
    /// The example could not be judged (reference data broken).
    pub unjudgeable: bool,
}

/// Names an error-type enum by its serde name.
pub fn type_name<T: Serialize>(t: &T) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// Holds what scoring needs across examples (open databases or connections, the compiled schema).
pub struct Scorer {
    metrics: Vec<Metric>,
    primary: Option<Metric>,
    databases: Option<Databases>,
    schema: Option<SchemaChecker>,
    code: Option<(CodeChecker, CodeSpec)>,
    /// The weakest isolation model-written code ran at so far.
    sandbox: std::sync::Mutex<Option<SandboxReport>>,
}

/// A field of `e`'s record as program text: a string as is, a list of statements joined by newlines.
pub(crate) fn code_field(e: &Example, name: &str) -> Option<String> {
    // Top-level names (the usual case) without copying the record; paths walk a copy.
    let copy;
    let found = match e.record.get(name) {
        Some(v) => Some(v),
        None => {
            copy = serde_json::Value::Object(e.record.clone());
            field(&copy, name)
        }
    };
    found.and_then(|v| match v {
        serde_json::Value::Null => None,
        serde_json::Value::Array(items) => {
            Some(items.iter().map(as_text).collect::<Vec<_>>().join("\n"))
        }
        other => Some(as_text(other)),
    })
}

struct One {
    value: f64,
    passed: Option<bool>,
    error_type: Option<String>,
    message: Option<String>,
    unjudgeable: bool,
}

impl One {
    fn pass_fail(ok: bool, error_type: &str, message: Option<String>) -> Self {
        Self {
            value: if ok { 1.0 } else { 0.0 },
            passed: Some(ok),
            error_type: (!ok).then(|| error_type.to_owned()),
            message: if ok { None } else { message },
            unjudgeable: false,
        }
    }

    fn score(value: f64) -> Self {
        Self {
            value,
            passed: None,
            error_type: None,
            message: None,
            unjudgeable: false,
        }
    }

    fn broken(error_type: &str, message: String) -> Self {
        Self {
            value: 0.0,
            passed: Some(false),
            error_type: Some(error_type.to_owned()),
            message: Some(message),
            unjudgeable: true,
        }
    }
}

impl Scorer {
    /// A scorer for `task`.
    pub fn new(task: &Task) -> Result<Self> {
        let schema = match &task.prompt.json_schema {
            Some(s) => Some(SchemaChecker::new(s).map_err(|e| Error::Task {
                path: PathBuf::from(&task.name),
                message: format!("prompt.json_schema: {e}"),
            })?),
            None => None,
        };
        let source = match (&task.dataset.db_url, &task.dataset.db_dir) {
            (Some(url), _) => Some(DatabaseSource::Postgres(expand_env(url).map_err(|e| {
                Error::Task {
                    path: PathBuf::from(&task.name),
                    message: format!("dataset.db_url: {e}"),
                }
            })?)),
            (None, Some(dir)) => Some(DatabaseSource::SqliteDir(dir.clone())),
            (None, None) => None,
        };
        let limits =
            SqlLimits::with_timeout(Duration::from_secs_f64(task.sql_timeout_s.max(0.001)));
        let roles = RolePolicy::allowing(task.dataset.allow_privileged_role);
        Ok(Self {
            metrics: task.metrics.clone(),
            primary: task.primary_metric(),
            databases: source.map(|s| Databases::new(s, limits, roles)),
            schema,
            code: task
                .code
                .as_ref()
                .map(|spec| (code_checker(spec), spec.clone())),
            sandbox: std::sync::Mutex::new(None),
        })
    }

    /// The weakest isolation model-written code ran at in this evaluation (`None`: no code ran).
    pub fn sandbox_report(&self) -> Option<SandboxReport> {
        *self.sandbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn note_sandbox(&self, report: SandboxReport) {
        let mut seen = self.sandbox.lock().unwrap_or_else(|e| e.into_inner());
        *seen = Some(seen.map_or(report, |s| s.weakest(report)));
    }

    /// Scores `answer` (extracted from `raw`) for `e`.
    pub fn score(&mut self, e: &Example, raw: &str, answer: &Answer) -> Scored {
        let mut out = Scored::default();
        let target = e.target.as_ref().map(as_text).unwrap_or_default();
        for m in self.metrics.clone() {
            let r = match m {
                Metric::Latency => continue,
                Metric::ExactMatch => {
                    One::pass_fail(text::exact_match(&answer.text(), &target), "mismatch", None)
                }
                Metric::NormalizedMatch => One::pass_fail(
                    text::normalized_match(&answer.text(), &target),
                    "mismatch",
                    None,
                ),
                Metric::Bleu => One::score(
                    bleu::sentence_bleu(&answer.text(), &[target.as_str()])
                        .map_or(0.0, |b| b.score),
                ),
                Metric::Rouge => {
                    let r = rouge::score(&target, &answer.text());
                    out.scores.insert("rouge1".into(), r.rouge1.fmeasure);
                    out.scores.insert("rouge2".into(), r.rouge2.fmeasure);
                    One::score(r.rouge_l.fmeasure)
                }
                Metric::JsonValid => {
                    let v = check_output(raw, None);
                    One::pass_fail(v.correct, "not_json", v.message)
                }
                Metric::JsonSchema => {
                    let v = check_output(raw, self.schema.as_ref());
                    let message = v.message.clone().or_else(|| {
                        (!v.violations.is_empty()).then(|| format!("{:?}", v.violations))
                    });
                    One::pass_fail(
                        v.correct,
                        &v.error_type
                            .map_or("schema_violation".into(), |t| type_name(&t)),
                        message,
                    )
                }
                Metric::SqlExecution => self.sql(e, answer, &target),
                Metric::FunctionCall => function_call(e, answer),
                Metric::CodeExecution => self.code(e, answer),
            };
            let name = if m == Metric::Rouge {
                "rougeL"
            } else {
                m.name()
            };
            out.scores.insert(name.into(), r.value);
            if Some(m) == self.primary {
                out.passed = r.passed;
                out.primary = r.value;
                out.error_type = r.error_type;
                out.message = r.message;
                out.unjudgeable = r.unjudgeable;
            }
        }
        out
    }

    fn sql(&mut self, e: &Example, answer: &Answer, gold: &str) -> One {
        let (Some(databases), Some(db)) = (&mut self.databases, &e.db_id) else {
            return One::broken("no_database", "the example names no database".into());
        };
        if let Err(err) = databases.open(db) {
            return One::broken("database_error", err.to_string());
        }
        let predicted = match answer {
            Answer::Text(t) if !t.trim().is_empty() => t.as_str(),
            _ => return One::pass_fail(false, "no_sql", Some("no SQL query in the output".into())),
        };
        match databases.evaluate(db, predicted, gold) {
            Ok(v) => One::pass_fail(
                v.correct,
                &v.error_type
                    .map_or("wrong_result".into(), |t| type_name(&t)),
                v.message,
            ),
            Err(err @ SqlEvalError::GoldFailed { .. }) => {
                One::broken("gold_failed", err.to_string())
            }
            Err(err) => One::broken("database_error", err.to_string()),
        }
    }
}

impl Scorer {
    /// Runs the model's `sql` on the database of `e` (the one `sql_execution` judges on, same guard and
    /// limits): `None` when the task has no database or it cannot be opened, else the rows or the database's
    /// error message.
    pub fn run_sql(&mut self, e: &Example, sql: &str) -> Option<Result<Vec<Row>, String>> {
        let (Some(databases), Some(db)) = (&mut self.databases, &e.db_id) else {
            return None;
        };
        match databases.run(db, sql) {
            Ok(Ok(rows)) => Some(Ok(rows)),
            Ok(Err(failure)) => Some(Err(failure.message)),
            Err(_) => None,
        }
    }

    /// Whether the model's program `code` for `e` at least runs (compiles, imports, defines) without its tests:
    /// the header of the record's prompt field plus the code, in the task's sandbox. `None` without `[code]`.
    pub fn program_runs(&self, e: &Example, code: &str) -> Option<bool> {
        let (checker, spec) = self.code.as_ref()?;
        let prompt = code_field(e, &spec.prompt_field).unwrap_or_default();
        let entry_point = code_field(e, &spec.entry_point_field);
        let problem = CodeProblem {
            language: spec.language,
            prompt: &prompt,
            test: "",
            entry_point: entry_point.as_deref(),
        };
        let v = checker.check(&problem, code).ok()?;
        self.note_sandbox(v.sandbox);
        // A Kotlin file has no `main` to run without its tests: compiling is what counts there.
        Some(match spec.language {
            Language::Kotlin => v.error_type != Some(CodeErrorType::CompileError),
            _ => v.passed,
        })
    }
}

fn code_checker(spec: &CodeSpec) -> CodeChecker {
    let checker = CodeChecker::new(SandboxLimits {
        timeout: Duration::from_secs_f64(spec.timeout_s.max(0.01)),
        memory_bytes: Some(spec.memory_mb.max(16) << 20),
        ..SandboxLimits::default()
    });
    match &spec.python {
        Some(p) => checker.with_python(p),
        None => checker,
    }
}

impl Scorer {
    fn code(&self, e: &Example, answer: &Answer) -> One {
        let Some((checker, spec)) = &self.code else {
            return One::broken(
                "no_code_spec",
                "`code_execution` needs a `[code]` section".into(),
            );
        };
        let Some(test) = code_field(e, &spec.test_field) else {
            let message = format!("the example has no test field `{}`", spec.test_field);
            return One::broken("bad_reference", message);
        };
        let code = match answer {
            Answer::Text(t) if !t.trim().is_empty() => t,
            _ => return One::pass_fail(false, "no_code", Some("no code in the output".into())),
        };
        let prompt = code_field(e, &spec.prompt_field).unwrap_or_default();
        let entry_point = code_field(e, &spec.entry_point_field);
        let problem = CodeProblem {
            language: spec.language,
            prompt: &prompt,
            test: &test,
            entry_point: entry_point.as_deref(),
        };
        match checker.check(&problem, code) {
            Ok(v) => {
                self.note_sandbox(v.sandbox);
                One::pass_fail(
                    v.passed,
                    &v.error_type.map_or("test_failed".into(), |t| type_name(&t)),
                    v.message,
                )
            }
            Err(err) => One::broken("sandbox_error", err.to_string()),
        }
    }
}

fn function_call(e: &Example, answer: &Answer) -> One {
    let calls = match answer {
        Answer::Calls(c) => c.clone(),
        _ => Vec::new(),
    };
    let name = e.category.clone().unwrap_or_else(|| e.id.clone());
    let category = Category::from_bfcl_name(&name);
    let functions = e.tools.clone().unwrap_or_default();
    let possible = e.target.clone().unwrap_or(serde_json::Value::Null);
    match check_function_calls(category, &functions, &calls, &possible) {
        Ok(v) => One::pass_fail(
            v.correct,
            &v.error_type.map_or("wrong_call".into(), |t| type_name(&t)),
            v.message,
        ),
        Err(err) => One::broken("bad_reference", err.to_string()),
    }
}
