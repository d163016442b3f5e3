//! The value checks of BFCL's `ast_checker.py`: `string_checker`, `list_checker`, `dict_checker` and
//! `list_dict_checker`.

use serde_json::{Map, Value};

use super::checker::{as_list, bad, fail, is_optional, Outcome};
use super::pyvalue::{py_in, standardize_string, standardize_value};
use super::{CallErrorType, FunctionCallError};

pub(crate) fn string_checker(param: &str, value: &str, possible: &[Value]) -> Outcome {
    let standardized = standardize_string(value);
    if possible
        .iter()
        .filter_map(Value::as_str)
        .any(|p| standardize_string(p) == standardized)
    {
        return None;
    }
    fail(
        "value_error:string",
        CallErrorType::WrongValue,
        format!(
            "invalid value for parameter {param:?}: {value:?}; expected one of {}",
            Value::from(possible.to_vec())
        ),
    )
}

/// What Python's `[standardize(x[j]) for j in range(len(x))]` gives for one allowed value `x`.
fn standardized_items(allowed: &Value) -> Result<Value, FunctionCallError> {
    Ok(Value::Array(match allowed {
        Value::Array(items) => items.iter().map(standardize_value).collect(),
        // A string is indexed character by character (so the marker "" becomes an empty list).
        Value::String(s) => s
            .chars()
            .map(|c| Value::String(standardize_string(&c.to_string())))
            .collect(),
        other => {
            return Err(bad(format!(
                "allowed value {other} for a list parameter is not a list"
            )))
        }
    }))
}

pub(crate) fn list_checker(
    param: &str,
    value: &[Value],
    possible: &[Value],
) -> Result<Outcome, FunctionCallError> {
    let standardized = Value::Array(value.iter().map(standardize_value).collect());
    let allowed = possible
        .iter()
        .map(standardized_items)
        .collect::<Result<Vec<_>, _>>()?;
    if py_in(&standardized, &allowed) {
        return Ok(None);
    }
    Ok(fail(
        "value_error:list/tuple",
        CallErrorType::WrongValue,
        format!(
            "invalid value for parameter {param:?}: {}; expected one of {}",
            Value::from(value.to_vec()),
            Value::from(possible.to_vec())
        ),
    ))
}

pub(crate) fn dict_checker(
    param: &str,
    value: &Map<String, Value>,
    possible: &[Value],
) -> Result<Outcome, FunctionCallError> {
    let mut result = fail(
        "dict_checker:unclear",
        CallErrorType::WrongValue,
        format!("no allowed value for {param:?}"),
    );
    for candidate in possible {
        if candidate.as_str() == Some("") {
            continue;
        }
        let allowed = candidate.as_object().ok_or_else(|| {
            bad(format!(
                "allowed value {candidate} for dict {param:?} is not a dict"
            ))
        })?;
        result = fail(
            "dict_checker:unclear",
            CallErrorType::WrongValue,
            String::new(),
        );
        let mut ok = true;
        for (key, item) in value {
            let Some(allowed_items) = allowed.get(key) else {
                result = fail(
                    "value_error:dict_key",
                    CallErrorType::WrongValue,
                    format!("unexpected dict key {key:?} in {param:?}"),
                );
                ok = false;
                break;
            };
            let allowed_items = as_list(allowed_items, || {
                format!("allowed values of key {key:?} in {param:?}")
            })?;
            let standardized: Vec<Value> = allowed_items.iter().map(standardize_value).collect();
            if !py_in(&standardize_value(item), &standardized) {
                result = fail(
                    "value_error:dict_value",
                    CallErrorType::WrongValue,
                    format!("invalid value {item} for key {key:?} in {param:?}"),
                );
                ok = false;
                break;
            }
        }
        for (key, allowed_items) in allowed {
            let optional = is_optional(allowed_items);
            if !value.contains_key(key) && !optional {
                result = fail(
                    "value_error:dict_key",
                    CallErrorType::WrongValue,
                    format!("missing dict key {key:?} in {param:?}"),
                );
                ok = false;
                break;
            }
        }
        if ok {
            return Ok(None);
        }
    }
    Ok(result)
}

pub(crate) fn list_dict_checker(
    param: &str,
    value: &[Value],
    possible: &[Value],
) -> Result<Outcome, FunctionCallError> {
    let mut result = fail(
        "list_dict_checker:unclear",
        CallErrorType::WrongValue,
        format!("no allowed value for {param:?}"),
    );
    for candidate in possible {
        let allowed: Vec<Value> = match candidate {
            Value::Array(items) => items.clone(),
            Value::String(s) if s.is_empty() => Vec::new(),
            other => {
                return Err(bad(format!(
                    "allowed value {other} for list of dicts {param:?} is not a list"
                )))
            }
        };
        if allowed.len() != value.len() {
            result = fail(
                "value_error:list_dict_count",
                CallErrorType::WrongValue,
                format!("wrong number of dicts in {param:?}"),
            );
            continue;
        }
        let mut ok = true;
        for (item, allowed_item) in value.iter().zip(&allowed) {
            let Some(item) = item.as_object() else {
                // Python would raise here (`str.items()`); we report a type error instead.
                return Ok(fail(
                    "type_error:nested",
                    CallErrorType::WrongType,
                    format!("item {item} of {param:?} is not a dict"),
                ));
            };
            result = dict_checker(param, item, std::slice::from_ref(allowed_item))?;
            if result.is_some() {
                ok = false;
                break;
            }
        }
        if ok {
            return Ok(None);
        }
    }
    Ok(result)
}
