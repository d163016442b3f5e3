//! A port of `simple_function_checker` and its helpers from BFCL's `ast_checker.py` (Python language only).

use serde_json::Value;

use super::pyvalue::{has_empty_marker, py_in, PyType};
use super::value_checks::{dict_checker, list_checker, list_dict_checker, string_checker};
use super::{CallErrorType, FunctionCall, FunctionCallError};

/// Why a call was rejected: the checker's own `error_type` string, our category and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub bfcl_error_type: &'static str,
    pub kind: CallErrorType,
    pub message: String,
}

pub(crate) fn fail(
    bfcl_error_type: &'static str,
    kind: CallErrorType,
    message: String,
) -> Option<Failure> {
    Some(Failure {
        bfcl_error_type,
        kind,
        message,
    })
}

/// `None` when valid.
pub(crate) type Outcome = Option<Failure>;

pub(crate) fn bad(what: String) -> FunctionCallError {
    FunctionCallError::BadReference(what)
}

pub(crate) fn as_list(
    value: &Value,
    what: impl FnOnce() -> String,
) -> Result<&[Value], FunctionCallError> {
    value
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| bad(format!("{} must be a list of allowed values", what())))
}

/// Python's `"" in allowed`: true for a list holding `""`, and for any string (every string contains `""`).
pub(crate) fn is_optional(allowed: &Value) -> bool {
    match allowed {
        Value::Array(items) => has_empty_marker(items),
        Value::String(_) => true,
        _ => false,
    }
}

/// `get_possible_answer_type`: the type of the first allowed value that is not the optional marker `""`.
fn possible_answer_type(values: &[Value]) -> Option<PyType> {
    values
        .iter()
        .find(|v| v.as_str() != Some(""))
        .map(PyType::of)
}

struct TypeCheck {
    is_variable: bool,
    failure: Outcome,
}

/// `type_checker`, including its quirks: a value of the allowed values' type is accepted as a "variable", and
/// the nested check of list items passes as soon as one allowed value is not a list (e.g. the marker `""`).
fn type_checker(
    param: &str,
    value: &Value,
    possible: &[Value],
    expected: PyType,
    nested: Option<PyType>,
) -> TypeCheck {
    let answer_type = possible_answer_type(possible);
    let is_variable = answer_type.is_some_and(|t| t != expected);
    let actual = PyType::of(value);
    let mut nested_failed = false;
    if actual == expected {
        let Some(inner) = nested else {
            return TypeCheck {
                is_variable,
                failure: None,
            };
        };
        let items = value.as_array().map(Vec::as_slice).unwrap_or_default();
        for candidate in possible {
            let fits = match candidate.as_array() {
                Some(allowed) => items.iter().all(|item| {
                    type_checker(param, item, allowed, inner, None)
                        .failure
                        .is_none()
                }),
                None => true,
            };
            if fits {
                return TypeCheck {
                    is_variable,
                    failure: None,
                };
            }
        }
        nested_failed = true;
    }
    if answer_type.is_some_and(|t| t == actual) {
        let failure = nested_failed.then(|| Failure {
            bfcl_error_type: "type_error:nested",
            kind: CallErrorType::WrongType,
            message: format!("nested type check failed for parameter {param:?}: value {value}"),
        });
        return TypeCheck {
            is_variable: true,
            failure,
        };
    }
    let failure = fail(
        "type_error:simple",
        CallErrorType::WrongType,
        format!(
            "incorrect type for parameter {param:?}: expected {}, got {}: {value}",
            expected.name(),
            actual.name()
        ),
    );
    TypeCheck {
        is_variable,
        failure,
    }
}

/// `simple_function_checker` for one call against one possible-answer item `{name: {param: [allowed]}}`.
pub(crate) fn check_call(
    doc: &Value,
    call: &FunctionCall,
    answer: &Value,
) -> Result<Outcome, FunctionCallError> {
    let possible = answer
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(Value::as_object)
        .ok_or_else(|| {
            bad(format!(
                "possible answer {answer} is not {{name: {{param: [values]}}}}"
            ))
        })?;
    let name = doc["name"]
        .as_str()
        .ok_or_else(|| bad(format!("function doc without a name: {doc}")))?;
    let properties = doc["parameters"]["properties"]
        .as_object()
        .ok_or_else(|| bad(format!("function {name:?} has no parameters.properties")))?;
    let required = doc["parameters"]["required"]
        .as_array()
        .ok_or_else(|| bad(format!("function {name:?} has no parameters.required")))?;
    if call.name != name {
        return Ok(fail(
            "simple_function_checker:wrong_func_name",
            CallErrorType::WrongFunction,
            format!(
                "function {name:?} not found in model output (got {:?})",
                call.name
            ),
        ));
    }
    for param in required.iter().filter_map(Value::as_str) {
        if !call.arguments.contains_key(param) {
            return Ok(fail(
                "simple_function_checker:missing_required",
                CallErrorType::MissingArgument,
                format!("missing required parameter {param:?}"),
            ));
        }
    }
    for (param, value) in &call.arguments {
        let (Some(details), Some(allowed)) = (properties.get(param), possible.get(param)) else {
            return Ok(fail(
                "simple_function_checker:unexpected_param",
                CallErrorType::ExtraArgument,
                format!("unexpected parameter {param:?}"),
            ));
        };
        let allowed = as_list(allowed, || format!("possible answer for {name}.{param}"))?;
        let type_name = details["type"]
            .as_str()
            .ok_or_else(|| bad(format!("{name}.{param} has no type")))?;
        let expected = PyType::from_bfcl(type_name)
            .ok_or_else(|| bad(format!("{name}.{param} has unsupported type {type_name:?}")))?;
        let nested = if matches!(type_name, "array" | "tuple") {
            let item_type = details["items"]["type"]
                .as_str()
                .ok_or_else(|| bad(format!("{name}.{param} is a list without items.type")))?;
            Some(PyType::from_bfcl(item_type).ok_or_else(|| {
                bad(format!(
                    "{name}.{param} has unsupported item type {item_type:?}"
                ))
            })?)
        } else {
            None
        };
        // Python converts an int to float for float parameters before checking.
        let value = match (type_name, value) {
            ("float", Value::Number(n)) if !n.is_f64() => {
                n.as_f64().map_or(value.clone(), Value::from)
            }
            _ => value.clone(),
        };
        let type_check = type_checker(param, &value, allowed, expected, nested);
        if type_check.failure.is_some() {
            return Ok(type_check.failure);
        }
        if !type_check.is_variable {
            let special = match (&value, expected, nested) {
                (Value::Object(map), PyType::Dict, _) => Some(dict_checker(param, map, allowed)?),
                (Value::Array(items), PyType::List, Some(PyType::Dict)) => {
                    Some(list_dict_checker(param, items, allowed)?)
                }
                (Value::String(s), PyType::Str, _) => Some(string_checker(param, s, allowed)),
                (Value::Array(items), PyType::List, _) => {
                    Some(list_checker(param, items, allowed)?)
                }
                _ => None,
            };
            if let Some(outcome) = special {
                if outcome.is_some() {
                    return Ok(outcome);
                }
                continue;
            }
        }
        if !py_in(&value, allowed) {
            return Ok(fail(
                "value_error:others",
                CallErrorType::WrongValue,
                format!(
                    "invalid value for parameter {param:?}: {value}; expected one of {}",
                    Value::from(allowed.to_vec())
                ),
            ));
        }
    }
    for (param, allowed) in possible {
        let optional = is_optional(allowed);
        if !call.arguments.contains_key(param) && !optional {
            return Ok(fail(
                "simple_function_checker:missing_optional",
                CallErrorType::MissingArgument,
                format!("parameter {param:?} not provided and not optional"),
            ));
        }
    }
    Ok(None)
}
