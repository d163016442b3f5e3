//! Answer extraction from raw model output.
//!
//! * SQL: the body of a ```sql fence (the last one with chain of thought, else the first); else of any fence
//!   that starts with SELECT/WITH; else the text from the first `SELECT`/`WITH` keyword to the first `;` or
//!   blank line.
//! * Tool calls: Qwen2.5/Hermes `<tool_call>{"name", "arguments"}</tool_call>` blocks (an unclosed last block
//!   counts); else a bare JSON call object, a JSON array of calls, or `{"tool_calls": [...]}` found by
//!   `tuneup_eval::json_check::extract_json`. `arguments` may be an object or a JSON string (OpenAI style);
//!   `{"function": {...}}` wrappers are unwrapped.
//! * Text: the whole output trimmed, or with chain of thought the text after the last `Answer:` marker.
//! * JSON: `tuneup_eval::json_check::extract_json` (fenced block first).
//! * Code: the first code fence (unlabelled or labelled with the language) that defines the entry point, else
//!   the first such fence, else the whole output with trailing whitespace removed.

use serde_json::{Map, Value};
use tuneup_eval::code::Language;
use tuneup_eval::function_call::FunctionCall;
use tuneup_eval::json_check::extract_json;

use crate::task::OutputKind;

/// Fenced code blocks as (label, body), in order; an unclosed last fence runs to the end.
pub fn fences(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("```") {
        let after = &rest[start + 3..];
        let (label, body_start) = match after.find('\n') {
            Some(nl) => (after[..nl].trim().to_lowercase(), nl + 1),
            None => (String::new(), after.len()),
        };
        let body = &after[body_start..];
        match body.find("```") {
            Some(end) => {
                out.push((label, body[..end].to_owned()));
                rest = &body[end + 3..];
            }
            None => {
                out.push((label, body.to_owned()));
                break;
            }
        }
    }
    out
}

fn starts_query(text: &str) -> bool {
    let t = text.trim_start().to_ascii_uppercase();
    t.starts_with("SELECT") || t.starts_with("WITH")
}

fn clean_sql(sql: &str) -> String {
    let s = sql.trim();
    let s = s.split(';').next().unwrap_or(s);
    s.trim().to_owned()
}

/// The first `SELECT`/`WITH` keyword (as a whole word) in `text`.
fn first_query_start(text: &str) -> Option<usize> {
    let upper = text.to_ascii_uppercase();
    let bytes = upper.as_bytes();
    ["SELECT", "WITH"]
        .iter()
        .filter_map(|kw| {
            upper.match_indices(kw).map(|(i, _)| i).find(|&i| {
                let before_ok =
                    i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
                let j = i + kw.len();
                let after_ok =
                    j >= bytes.len() || !(bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_');
                before_ok && after_ok
            })
        })
        .min()
}

/// The SQL query in `output`, if any.
pub fn extract_sql(output: &str, chain_of_thought: bool) -> Option<String> {
    let blocks = fences(output);
    let sql_blocks: Vec<&String> = blocks
        .iter()
        .filter(|(l, _)| l == "sql" || l == "sqlite")
        .map(|(_, b)| b)
        .collect();
    let picked = if chain_of_thought {
        sql_blocks.last()
    } else {
        sql_blocks.first()
    };
    if let Some(b) = picked {
        return Some(clean_sql(b)).filter(|s| !s.is_empty());
    }
    if let Some((_, b)) = blocks.iter().find(|(_, b)| starts_query(b)) {
        return Some(clean_sql(b));
    }
    let start = first_query_start(output)?;
    let rest = &output[start..];
    let end = [rest.find(';'), rest.find("\n\n"), rest.find("```")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(rest.len());
    Some(clean_sql(&rest[..end])).filter(|s| !s.is_empty())
}

/// The final answer of a text output.
pub fn extract_text(output: &str, chain_of_thought: bool) -> String {
    if chain_of_thought {
        if let Some(i) = output.rfind("Answer:") {
            return output[i + "Answer:".len()..].trim().to_owned();
        }
    }
    output.trim().to_owned()
}

fn call_from_value(v: &Value) -> Option<FunctionCall> {
    let obj = v.as_object()?;
    let obj = match obj.get("function").and_then(Value::as_object) {
        Some(inner) if inner.contains_key("name") => inner,
        _ => obj,
    };
    let name = obj.get("name")?.as_str()?.to_owned();
    let args = obj
        .get("arguments")
        .or_else(|| obj.get("parameters"))
        .cloned()
        .unwrap_or(Value::Object(Map::new()));
    let arguments = match args {
        Value::Object(m) => m,
        Value::String(s) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Object(m)) => m,
            _ => return None,
        },
        Value::Null => Map::new(),
        _ => return None,
    };
    Some(FunctionCall { name, arguments })
}

fn calls_from_value(v: &Value) -> Vec<FunctionCall> {
    match v {
        Value::Array(a) => a.iter().filter_map(call_from_value).collect(),
        Value::Object(m) => match m.get("tool_calls") {
            Some(inner) => calls_from_value(inner),
            None => call_from_value(v).into_iter().collect(),
        },
        _ => Vec::new(),
    }
}

/// The function calls in `output` (empty when there are none).
pub fn extract_tool_calls(output: &str) -> Vec<FunctionCall> {
    const OPEN: &str = "<tool_call>";
    const CLOSE: &str = "</tool_call>";
    if output.contains(OPEN) {
        let mut calls = Vec::new();
        for piece in output.split(OPEN).skip(1) {
            let body = piece.split(CLOSE).next().unwrap_or(piece);
            if let Ok(found) = extract_json(body) {
                calls.extend(calls_from_value(&found.value));
            }
        }
        return calls;
    }
    extract_json(output)
        .map(|found| calls_from_value(&found.value))
        .unwrap_or_default()
}

/// The extracted answer of one output.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Text (also SQL, and the JSON text for JSON outputs).
    Text(String),
    /// Function calls.
    Calls(Vec<FunctionCall>),
    /// Nothing extractable (e.g. no SQL).
    None,
}

impl Answer {
    /// The answer as JSON for `examples.jsonl`.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Text(t) => Value::String(t.clone()),
            Self::Calls(c) => serde_json::to_value(c).unwrap_or(Value::Null),
            Self::None => Value::Null,
        }
    }

    /// The answer as text (empty for none; JSON for calls).
    pub fn text(&self) -> String {
        match self {
            Self::Text(t) => t.clone(),
            Self::Calls(_) => self.to_json().to_string(),
            Self::None => String::new(),
        }
    }
}

/// The program in `output`: see the module documentation.
pub fn extract_code(output: &str, language: Language, entry_point: Option<&str>) -> String {
    let labels: &[&str] = match language {
        Language::Python => &["", "python", "py", "python3"],
        Language::Kotlin => &["", "kotlin", "kt"],
    };
    let blocks: Vec<String> = fences(output)
        .into_iter()
        .filter(|(label, _)| labels.contains(&label.as_str()))
        .map(|(_, body)| body)
        .collect();
    let defining = entry_point.and_then(|entry| {
        blocks
            .iter()
            .find(|b| tuneup_eval::code::defines_entry_point(language, b, entry))
    });
    match defining.or(blocks.first()) {
        Some(block) => block.clone(),
        None => output.trim_end().to_owned(),
    }
}

/// Extracts the answer of `output` for an expected `kind`.
pub fn extract(output: &str, kind: OutputKind, chain_of_thought: bool) -> Answer {
    match kind {
        OutputKind::Sql => extract_sql(output, chain_of_thought).map_or(Answer::None, Answer::Text),
        OutputKind::Text => Answer::Text(extract_text(output, chain_of_thought)),
        OutputKind::Json => match extract_json(output) {
            Ok(found) => Answer::Text(output[found.span].to_owned()),
            Err(_) => Answer::None,
        },
        OutputKind::ToolCalls => Answer::Calls(extract_tool_calls(output)),
        OutputKind::Code => Answer::Text(extract_code(output, Language::Python, None)),
    }
}
