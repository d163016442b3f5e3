//! Typed access to GGUF metadata with errors that name the key.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;

use crate::error::{Error, Result};

/// Typed, error-reporting access to GGUF metadata.
pub(crate) struct Meta<'a>(pub(crate) &'a HashMap<String, Value>);

fn describe(v: &Value) -> String {
    match v {
        Value::U8(_) => "a u8".into(),
        Value::I8(_) => "an i8".into(),
        Value::U16(_) => "a u16".into(),
        Value::I16(_) => "an i16".into(),
        Value::U32(_) => "a u32".into(),
        Value::I32(_) => "an i32".into(),
        Value::U64(_) => "a u64".into(),
        Value::I64(_) => "an i64".into(),
        Value::F32(_) => "an f32".into(),
        Value::F64(_) => "an f64".into(),
        Value::Bool(_) => "a bool".into(),
        Value::String(_) => "a string".into(),
        Value::Array(a) => match a.first() {
            Some(first) => format!("an array of {}", describe(first)),
            None => "an empty array".into(),
        },
    }
}

fn as_int(v: &Value) -> Option<i64> {
    Some(match *v {
        Value::U8(x) => x.into(),
        Value::I8(x) => x.into(),
        Value::U16(x) => x.into(),
        Value::I16(x) => x.into(),
        Value::U32(x) => x.into(),
        Value::I32(x) => x.into(),
        Value::U64(x) => i64::try_from(x).ok()?,
        Value::I64(x) => x,
        _ => return None,
    })
}

impl<'a> Meta<'a> {
    pub(crate) fn wrong(&self, key: &str, expected: &'static str, v: &Value) -> Error {
        Error::WrongType {
            key: key.to_string(),
            expected,
            found: describe(v),
        }
    }

    pub(crate) fn str(&self, key: &str) -> Result<Option<&'a str>> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(v) => Err(self.wrong(key, "a string", v)),
        }
    }

    pub(crate) fn uint(&self, key: &str) -> Result<Option<u64>> {
        match self.0.get(key) {
            None => Ok(None),
            Some(v) => match as_int(v) {
                Some(x) if x >= 0 => Ok(Some(x as u64)),
                _ => Err(self.wrong(key, "a non-negative integer", v)),
            },
        }
    }

    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong(key, "a bool", v)),
        }
    }

    pub(crate) fn array(&self, key: &str, expected: &'static str) -> Result<Option<&'a [Value]>> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a.as_slice())),
            Some(v) => Err(self.wrong(key, expected, v)),
        }
    }

    pub(crate) fn str_array(&self, key: &str) -> Result<Option<Vec<&'a str>>> {
        const EXPECTED: &str = "an array of strings";
        let Some(a) = self.array(key, EXPECTED)? else {
            return Ok(None);
        };
        a.iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.as_str()),
                other => Err(self.wrong(key, EXPECTED, other)),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    pub(crate) fn f32_array(&self, key: &str) -> Result<Option<Vec<f32>>> {
        const EXPECTED: &str = "an array of f32 or i32";
        let Some(a) = self.array(key, EXPECTED)? else {
            return Ok(None);
        };
        a.iter()
            .map(|v| match *v {
                Value::F32(x) => Ok(x),
                Value::F64(x) => Ok(x as f32),
                _ => as_int(v)
                    .map(|x| x as f32)
                    .ok_or_else(|| self.wrong(key, EXPECTED, v)),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    pub(crate) fn int_array(&self, key: &str) -> Result<Option<Vec<i64>>> {
        const EXPECTED: &str = "an array of i32";
        let Some(a) = self.array(key, EXPECTED)? else {
            return Ok(None);
        };
        a.iter()
            .map(|v| as_int(v).ok_or_else(|| self.wrong(key, EXPECTED, v)))
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }
}
