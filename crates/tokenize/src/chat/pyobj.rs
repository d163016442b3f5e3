//! JSON values as template values that behave like Python's `list` and `dict`.
//!
//! minijinja prints sequences and maps JSON-style (`["a"]`) wherever a value is turned
//! into a string implicitly (`~`, `| trim`, `| string`, ...). Chat templates written for
//! Jinja2 get Python's `repr` there (`['a']`), so message data is wrapped in these
//! objects, whose string form is Python's.

use std::fmt;
use std::sync::Arc;

use minijinja::value::{Enumerator, Object, ObjectRepr, Value};
use serde_json::Value as Json;

use super::pyfmt;

/// A Python `list`.
#[derive(Debug)]
pub(crate) struct PyList(Vec<Value>);

/// A Python `dict` with string keys, in insertion order.
#[derive(Debug)]
pub(crate) struct PyDict(Vec<(Value, Value)>);

impl Object for PyList {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.0.get(key.as_usize()?).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.0.len())
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&pyfmt::py_repr(&Value::from_dyn_object(self.clone())))
    }
}

impl Object for PyDict {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        self.0
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v.clone())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.0.iter().map(|(k, _)| k.clone()).collect())
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&pyfmt::py_repr(&Value::from_dyn_object(self.clone())))
    }
}

/// Converts JSON to template values: arrays and objects become [`PyList`]/[`PyDict`].
pub(crate) fn to_value(json: &Json) -> Value {
    match json {
        Json::Null => Value::from(()),
        Json::Bool(b) => Value::from(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(items) => Value::from_object(PyList(items.iter().map(to_value).collect())),
        Json::Object(map) => Value::from_object(PyDict(
            map.iter()
                .map(|(k, v)| (Value::from(k.as_str()), to_value(v)))
                .collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_python() {
        let v = to_value(&serde_json::json!({"a": ["x", 1, 2.5, null, true], "b": {}}));
        assert_eq!(v.to_string(), "{'a': ['x', 1, 2.5, None, True], 'b': {}}");
        assert_eq!(v.get_item(&Value::from("a")).unwrap().len(), Some(5));
        let list = v.get_item(&Value::from("a")).unwrap();
        assert_eq!(list.get_item(&Value::from(-1)).unwrap(), Value::from(true));
        assert!(!to_value(&serde_json::json!([])).is_true());
    }
}
