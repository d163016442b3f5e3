//! Python semantics the BFCL checker relies on: `type(x)`, `==` across numbers, `in` on lists, and
//! `standardize_string`.

use serde_json::Value;

/// Python's `type(x)` for a value decoded from JSON (`json.loads`): integers without a fraction or exponent are
/// `int`, other numbers `float`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PyType {
    NoneType,
    Bool,
    Int,
    Float,
    Str,
    List,
    Dict,
}

impl PyType {
    pub(crate) fn of(value: &Value) -> Self {
        match value {
            Value::Null => Self::NoneType,
            Value::Bool(_) => Self::Bool,
            Value::Number(n) if n.is_f64() => Self::Float,
            Value::Number(_) => Self::Int,
            Value::String(_) => Self::Str,
            Value::Array(_) => Self::List,
            Value::Object(_) => Self::Dict,
        }
    }

    /// The checker's `PYTHON_TYPE_MAPPING` (`any` is `str`; `tuple` is `list`).
    pub(crate) fn from_bfcl(name: &str) -> Option<Self> {
        Some(match name {
            "string" | "any" => Self::Str,
            "integer" => Self::Int,
            "float" => Self::Float,
            "boolean" => Self::Bool,
            "array" | "tuple" => Self::List,
            "dict" => Self::Dict,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::NoneType => "NoneType",
            Self::Bool => "bool",
            Self::Int => "int",
            Self::Float => "float",
            Self::Str => "str",
            Self::List => "list",
            Self::Dict => "dict",
        }
    }
}

/// A number as Python sees it: bools are the integers 0 and 1.
enum PyNumber {
    Int(i128),
    Float(f64),
}

fn as_number(value: &Value) -> Option<PyNumber> {
    match value {
        Value::Bool(b) => Some(PyNumber::Int(i128::from(*b))),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(PyNumber::Int(i128::from(i)))
            } else if let Some(u) = n.as_u64() {
                Some(PyNumber::Int(i128::from(u)))
            } else {
                n.as_f64().map(PyNumber::Float)
            }
        }
        _ => None,
    }
}

/// Python's exact `int == float`.
fn int_equals_float(i: i128, f: f64) -> bool {
    f.fract() == 0.0 && f.abs() < 1.7e38 && f as i128 == i
}

/// Python's `a == b` for JSON-decoded values (`1 == 1.0 == True`, lists and dicts compared element-wise).
pub(crate) fn py_eq(a: &Value, b: &Value) -> bool {
    if let (Some(x), Some(y)) = (as_number(a), as_number(b)) {
        return match (x, y) {
            (PyNumber::Int(x), PyNumber::Int(y)) => x == y,
            (PyNumber::Float(x), PyNumber::Float(y)) => x == y,
            (PyNumber::Int(i), PyNumber::Float(f)) | (PyNumber::Float(f), PyNumber::Int(i)) => {
                int_equals_float(i, f)
            }
        };
    }
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| py_eq(v, w)))
        }
        _ => false,
    }
}

/// Python's `value in values`.
pub(crate) fn py_in(value: &Value, values: &[Value]) -> bool {
    values.iter().any(|v| py_eq(value, v))
}

/// `"" in values`: the checker's marker for an optional parameter.
pub(crate) fn has_empty_marker(values: &[Value]) -> bool {
    values.iter().any(|v| v.as_str() == Some(""))
}

/// The checker's `standardize_string`: drop ` ,./-_*^`, lowercase, and turn `'` into `"`.
pub(crate) fn standardize_string(text: &str) -> String {
    let kept: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | ',' | '.' | '/' | '-' | '_' | '*' | '^'))
        .collect();
    kept.to_lowercase().replace('\'', "\"")
}

/// `standardize_string` applied to strings, other values unchanged (as the checker does element-wise).
pub(crate) fn standardize_value(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(standardize_string(s)),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equality_follows_python() {
        assert!(py_eq(&json!(1), &json!(1.0)));
        assert!(py_eq(&json!(true), &json!(1)));
        assert!(!py_eq(&json!("1"), &json!(1)));
        assert!(py_eq(&json!([1, {"a": 2.0}]), &json!([1.0, {"a": 2}])));
        assert!(!py_eq(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!py_eq(
            &json!(9007199254740993_i64),
            &json!(9007199254740992.0)
        ));
        assert_eq!(PyType::of(&json!(1.0)), PyType::Float);
        assert_eq!(PyType::of(&json!(1)), PyType::Int);
    }

    #[test]
    fn standardization_matches_the_checker() {
        assert_eq!(standardize_string("New York, NY"), "newyorkny");
        assert_eq!(standardize_string("It's 2*3^2_a-b/c."), "it\"s232abc");
    }
}
