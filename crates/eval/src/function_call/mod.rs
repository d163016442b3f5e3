//! Function-call accuracy with the semantics of the Berkeley Function Calling Leaderboard (BFCL) AST checker
//! (`bfcl_eval/eval_checker/ast_eval/ast_checker.py`, Python categories).
//!
//! Inputs are BFCL's own shapes: the function docs (`{"name", "parameters": {"type": "dict", "properties",
//! "required"}}`), the model's calls (`{name, arguments}`), and the possible-answer entry (a list of
//! `{function_name: {param: [allowed values]}}`, where `""` among the allowed values marks an optional parameter).
//!
//! What is checked, as the official checker does:
//! * the function name (exact; no per-model `_`/`.` renaming);
//! * every required parameter present, no parameter outside the doc or the possible answer, and every
//!   parameter of the possible answer present unless `""` is allowed;
//! * types (`string`/`any`, `integer`, `float` (an int is accepted), `boolean`, `array`/`tuple` with their item
//!   type one level deep, `dict`); a value of the allowed values' type passes as a "variable";
//! * values: strings after `standardize_string` (drop ` ,./-_*^`, lowercase, `'` → `"`), lists element-wise after
//!   the same standardization, dicts key by key, everything else by Python equality (`1 == 1.0`).
//!
//! Categories: `simple` (exactly one call), `multiple` (one call chosen among several docs), `parallel` and
//! `parallel_multiple` (the calls in any order), `irrelevance` (correct iff there is no call, the eval runner's rule).

mod checker;
mod pyvalue;
mod value_checks;

use serde_json::{Map, Value};

use checker::{check_call, Failure};

/// A call produced by the model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FunctionCall {
    /// Function name.
    pub name: String,
    /// Arguments by name.
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

/// BFCL test category (Python).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// One function, one call.
    Simple,
    /// Several functions, one call.
    Multiple,
    /// One function, several calls in any order.
    Parallel,
    /// Several functions, several calls in any order.
    ParallelMultiple,
    /// No function fits: the right answer is no call.
    Irrelevance,
}

impl Category {
    /// Maps a BFCL category name the way the checker dispatches: names containing `irrelevance`, then
    /// `parallel`, then `multiple`; anything else is simple (`simple_python`, `live_simple`, ...).
    pub fn from_bfcl_name(name: &str) -> Self {
        if name.contains("irrelevance") {
            Self::Irrelevance
        } else if name.contains("parallel") {
            if name.contains("multiple") {
                Self::ParallelMultiple
            } else {
                Self::Parallel
            }
        } else if name.contains("multiple") {
            Self::Multiple
        } else {
            Self::Simple
        }
    }
}

/// Why a set of calls was judged wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallErrorType {
    /// A call names the wrong function.
    WrongFunction,
    /// A required (or non-optional) argument is missing.
    MissingArgument,
    /// An argument the function or the answer does not have.
    ExtraArgument,
    /// An argument with a value outside the allowed ones.
    WrongValue,
    /// An argument of the wrong type.
    WrongType,
    /// The number of calls differs from the expected number (and is not zero).
    WrongCount,
    /// A call where none was wanted (irrelevance).
    CallWhenNoneWanted,
    /// No call where one was wanted.
    NoCallWhenOneWanted,
}

/// The verdict on one example.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CallVerdict {
    /// `true` when the official checker would accept the calls.
    pub correct: bool,
    /// Our error category, when not correct.
    pub error_type: Option<CallErrorType>,
    /// The official checker's `error_type` string (e.g. `value_error:string`), when not correct.
    pub bfcl_error_type: Option<String>,
    /// What went wrong.
    pub message: Option<String>,
}

impl CallVerdict {
    fn valid() -> Self {
        Self {
            correct: true,
            error_type: None,
            bfcl_error_type: None,
            message: None,
        }
    }

    fn from_failure(failure: Failure) -> Self {
        Self {
            correct: false,
            error_type: Some(failure.kind),
            bfcl_error_type: Some(failure.bfcl_error_type.to_owned()),
            message: Some(failure.message),
        }
    }
}

/// Errors in the reference data (docs or possible answers), never in the model's calls.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum FunctionCallError {
    /// A function doc or possible answer is malformed.
    #[error("malformed BFCL reference data: {0}")]
    BadReference(String),
}

fn find_doc<'a>(functions: &'a [Value], name: &str) -> Result<&'a Value, FunctionCallError> {
    functions
        .iter()
        .find(|f| f["name"].as_str() == Some(name))
        .ok_or_else(|| FunctionCallError::BadReference(format!("no function doc named {name:?}")))
}

fn answer_name(answer: &Value) -> Result<&str, FunctionCallError> {
    answer
        .as_object()
        .and_then(|o| o.keys().next())
        .map(String::as_str)
        .ok_or_else(|| {
            FunctionCallError::BadReference(format!(
                "possible answer item {answer} is not {{name: ...}}"
            ))
        })
}

fn wrong_count(checker: &'static str, calls: usize, expected: usize) -> Failure {
    let kind = if calls == 0 {
        CallErrorType::NoCallWhenOneWanted
    } else {
        CallErrorType::WrongCount
    };
    Failure {
        bfcl_error_type: checker,
        kind,
        message: format!("wrong number of functions: {calls} calls, expected {expected}"),
    }
}

/// `parallel_function_checker_no_order`: each expected call, in order, takes the first unmatched model call
/// that passes the simple check.
fn check_parallel(
    functions: &[Value],
    calls: &[FunctionCall],
    answers: &[Value],
) -> Result<Option<Failure>, FunctionCallError> {
    if calls.len() != answers.len() {
        return Ok(Some(wrong_count(
            "parallel_function_checker_no_order:wrong_count",
            calls.len(),
            answers.len(),
        )));
    }
    let mut matched = vec![false; calls.len()];
    for (i, answer) in answers.iter().enumerate() {
        let doc = find_doc(functions, answer_name(answer)?)?;
        let mut failures = Vec::new();
        let mut found = false;
        for (index, call) in calls
            .iter()
            .enumerate()
            .filter(|(index, _)| !matched[*index])
        {
            match check_call(doc, call, answer)? {
                None => {
                    matched[index] = true;
                    found = true;
                    break;
                }
                Some(failure) => failures.push(failure),
            }
        }
        if !found {
            // Report the most specific sub-error: one about arguments of the right function, if any.
            let closest = failures
                .iter()
                .find(|f| f.kind != CallErrorType::WrongFunction)
                .or(failures.first());
            let (kind, detail) = closest
                .map_or((CallErrorType::WrongFunction, String::new()), |f| {
                    (f.kind, f.message.clone())
                });
            return Ok(Some(Failure {
                bfcl_error_type: "parallel_function_checker_no_order:cannot_find_match",
                kind,
                message: format!("no model call matches expected call {i}: {detail}"),
            }));
        }
    }
    Ok(None)
}

/// Judges the model's `calls` for one BFCL example.
///
/// `functions` are the example's function docs, `possible_answer` its ground-truth list (ignored, and may be
/// `Value::Null`, for [`Category::Irrelevance`]). Errors only on malformed reference data.
pub fn check_function_calls(
    category: Category,
    functions: &[Value],
    calls: &[FunctionCall],
    possible_answer: &Value,
) -> Result<CallVerdict, FunctionCallError> {
    if category == Category::Irrelevance {
        return Ok(if calls.is_empty() {
            CallVerdict::valid()
        } else {
            CallVerdict::from_failure(Failure {
                bfcl_error_type: "irrelevance_error:decoder_success",
                kind: CallErrorType::CallWhenNoneWanted,
                message: format!("{} call(s) where none was wanted", calls.len()),
            })
        });
    }
    let answers = possible_answer.as_array().ok_or_else(|| {
        FunctionCallError::BadReference(format!("possible answer {possible_answer} is not a list"))
    })?;
    let failure = match category {
        Category::Parallel | Category::ParallelMultiple => {
            check_parallel(functions, calls, answers)?
        }
        Category::Multiple => {
            if calls.len() != answers.len() {
                Some(wrong_count(
                    "multiple_function_checker:wrong_count",
                    calls.len(),
                    answers.len(),
                ))
            } else {
                let answer = answers.first().ok_or_else(|| {
                    FunctionCallError::BadReference("empty possible answer".into())
                })?;
                check_call(
                    find_doc(functions, answer_name(answer)?)?,
                    &calls[0],
                    answer,
                )?
            }
        }
        Category::Simple => {
            if calls.len() != 1 {
                Some(wrong_count(
                    "simple_function_checker:wrong_count",
                    calls.len(),
                    1,
                ))
            } else {
                let doc = functions
                    .first()
                    .ok_or_else(|| FunctionCallError::BadReference("no function docs".into()))?;
                let answer = answers.first().ok_or_else(|| {
                    FunctionCallError::BadReference("empty possible answer".into())
                })?;
                check_call(doc, &calls[0], answer)?
            }
        }
        Category::Irrelevance => None,
    };
    Ok(failure.map_or_else(CallVerdict::valid, CallVerdict::from_failure))
}
