//! Tool calls in the model's own output, as OpenAI `tool_calls` (used by the agent loop and the server).
//!
//! Recognised forms, in this order:
//! 1. Qwen2.5 / Hermes tags: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, one or several
//!    (an unclosed last tag is accepted when its JSON is complete);
//! 2. fenced blocks (```` ```json ````, or unlabelled) holding one call object or a list of them — the form
//!    Qwen2.5-Coder-0.5B usually writes;
//! 3. the whole answer being one call object or a list of them (bare JSON).
//!
//! A call object has `name` and `arguments` (or `parameters`, as Llama 3.x writes), or the OpenAI shape
//! `{"function": {"name", "arguments"}}`. Only calls of declared tools are taken; anything else stays text.

use std::collections::HashSet;

use rand::Rng;
use serde_json::Value;

/// One recognised call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCall {
    /// Function name.
    pub name: String,
    /// Arguments as a JSON string (OpenAI's `function.arguments`).
    pub arguments: String,
}

/// The model's answer split into text and calls.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedOutput {
    /// Text outside the calls, trimmed; `None` when empty.
    pub content: Option<String>,
    /// The calls, in order.
    pub calls: Vec<ParsedCall>,
}

const OPEN: &str = "<tool_call>";
const CLOSE: &str = "</tool_call>";

/// Splits `text` into content and calls of the tools named in `declared`.
pub fn parse_tool_calls(text: &str, declared: &HashSet<String>) -> ParsedOutput {
    parse_tool_calls_where(text, &|name| declared.contains(name))
}

/// Splits `text` into content and calls whose name `accept` takes (e.g. any name, to answer calls of unknown
/// tools with an error instead of taking them for text).
pub fn parse_tool_calls_where(text: &str, accept: &dyn Fn(&str) -> bool) -> ParsedOutput {
    if text.contains(OPEN) {
        let out = parse_tags(text, accept);
        if !out.calls.is_empty() {
            return out;
        }
    }
    if text.contains("```") {
        let out = parse_fences(text, accept);
        if !out.calls.is_empty() {
            return out;
        }
    }
    if let Some(calls) = calls_in(text.trim(), accept) {
        return ParsedOutput {
            content: None,
            calls,
        };
    }
    ParsedOutput {
        content: non_empty(text),
        calls: Vec::new(),
    }
}

fn non_empty(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

fn parse_tags(text: &str, declared: &dyn Fn(&str) -> bool) -> ParsedOutput {
    let mut content = String::new();
    let mut calls = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        content.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let (inner, next) = match after.find(CLOSE) {
            Some(end) => (&after[..end], &after[end + CLOSE.len()..]),
            None => (after, ""),
        };
        let body = strip_fence(inner.trim());
        match calls_in(body, declared) {
            Some(found) => calls.extend(found),
            None => {
                content.push_str(&rest[start..rest.len() - next.len()]);
            }
        }
        rest = next;
    }
    content.push_str(rest);
    ParsedOutput {
        content: non_empty(&content),
        calls,
    }
}

/// The body of a fence if `s` is exactly one fenced block.
fn strip_fence(s: &str) -> &str {
    if let Some(body) = s.strip_prefix("```") {
        let body = body.trim_end();
        if let Some(body) = body.strip_suffix("```") {
            let body = body.strip_prefix("json").unwrap_or(body);
            return body.trim();
        }
    }
    s
}

fn parse_fences(text: &str, declared: &dyn Fn(&str) -> bool) -> ParsedOutput {
    let mut content = String::new();
    let mut calls = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("```") {
        let after = &rest[start + 3..];
        let Some(end) = after.find("```") else {
            break;
        };
        let block = &after[..end];
        // The info string ends at the first newline (```json\n...).
        let (label, body) = match block.find('\n') {
            Some(nl) => (block[..nl].trim(), &block[nl + 1..]),
            None => ("", block),
        };
        let label_ok = label.is_empty() || label.eq_ignore_ascii_case("json");
        let found = if label_ok {
            calls_in(body.trim(), declared)
        } else {
            None
        };
        let next = &after[end + 3..];
        match found {
            Some(found) => {
                content.push_str(&rest[..start]);
                calls.extend(found);
            }
            None => content.push_str(&rest[..rest.len() - next.len()]),
        }
        rest = next;
    }
    content.push_str(rest);
    ParsedOutput {
        content: non_empty(&content),
        calls,
    }
}

/// The calls in `s` if it is exactly one call object or a non-empty list of
/// them, all of declared tools.
fn calls_in(s: &str, declared: &dyn Fn(&str) -> bool) -> Option<Vec<ParsedCall>> {
    if !(s.starts_with('{') || s.starts_with('[')) {
        return None;
    }
    let value: Value = serde_json::from_str(s).ok()?;
    let items = match value {
        Value::Array(items) if !items.is_empty() => items,
        Value::Object(_) => vec![value],
        _ => return None,
    };
    items.iter().map(|v| call_of(v, declared)).collect()
}

fn call_of(v: &Value, declared: &dyn Fn(&str) -> bool) -> Option<ParsedCall> {
    let obj = v.as_object()?;
    let obj = match obj.get("function").and_then(Value::as_object) {
        Some(f) if f.contains_key("name") => f,
        _ => obj,
    };
    let name = obj.get("name")?.as_str()?.trim();
    if !declared(name) {
        return None;
    }
    let args = obj.get("arguments").or_else(|| obj.get("parameters"));
    let arguments = match args {
        None | Some(Value::Null) => "{}".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    Some(ParsedCall {
        name: name.to_string(),
        arguments,
    })
}

/// Hermes-style tool instructions, for templates that ignore `tools` (e.g. SmolLM2's).
pub fn hermes_tool_prompt(tools: &[Value]) -> String {
    let mut s = String::from("You may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>");
    for t in tools {
        s.push('\n');
        s.push_str(&t.to_string());
    }
    s.push_str("\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>");
    s
}

/// A fresh OpenAI-style call id (`call_` and 24 alphanumerics).
pub fn new_call_id() -> String {
    format!("call_{}", random_alnum(24))
}

/// `n` random ASCII letters and digits.
pub fn random_alnum(n: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools(names: &[&str]) -> HashSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn qwen_hermes_tags() {
        // Qwen2.5-Instruct's real output for a weather question.
        let out = "<tool_call>\n{\"name\": \"get_current_weather\", \"arguments\": {\"location\": \"Seoul\", \"unit\": \"celsius\"}}\n</tool_call>";
        let p = parse_tool_calls(out, &tools(&["get_current_weather"]));
        assert_eq!(p.content, None);
        assert_eq!(p.calls.len(), 1);
        assert_eq!(p.calls[0].name, "get_current_weather");
        let args: Value = serde_json::from_str(&p.calls[0].arguments).unwrap();
        assert_eq!(args["location"], "Seoul");
    }

    #[test]
    fn several_tags_with_text_around() {
        let out = "Let me check both.\n<tool_call>\n{\"name\": \"weather\", \"arguments\": {\"city\": \"Seoul\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"weather\", \"arguments\": {\"city\": \"Busan\"}}\n</tool_call>";
        let p = parse_tool_calls(out, &tools(&["weather"]));
        assert_eq!(p.content.as_deref(), Some("Let me check both."));
        assert_eq!(p.calls.len(), 2);
        assert_eq!(p.calls[1].arguments, r#"{"city":"Busan"}"#);
    }

    #[test]
    fn unclosed_last_tag() {
        let out = "<tool_call>\n{\"name\": \"weather\", \"arguments\": {}}\n";
        let p = parse_tool_calls(out, &tools(&["weather"]));
        assert_eq!(p.calls.len(), 1);
        assert_eq!(p.calls[0].arguments, "{}");
    }

    #[test]
    fn qwen_coder_json_fence() {
        // What Qwen2.5-Coder-0.5B writes for BFCL "simple" questions.
        let out = "```json\n{\n  \"name\": \"calculate_triangle_area\",\n  \"arguments\": {\n    \"base\": 10,\n    \"height\": 5\n  }\n}\n```";
        let p = parse_tool_calls(out, &tools(&["calculate_triangle_area"]));
        assert_eq!(p.content, None);
        assert_eq!(p.calls[0].name, "calculate_triangle_area");
        assert_eq!(p.calls[0].arguments, r#"{"base":10,"height":5}"#);
    }

    #[test]
    fn fence_with_list_and_prose() {
        let out = "Here are the calls:\n```\n[{\"name\": \"a\", \"arguments\": {\"x\": 1}}, {\"name\": \"b\", \"parameters\": {\"y\": 2}}]\n```\nDone.";
        let p = parse_tool_calls(out, &tools(&["a", "b"]));
        assert_eq!(p.calls.len(), 2);
        assert_eq!(p.calls[1].arguments, r#"{"y":2}"#);
        assert_eq!(p.content.as_deref(), Some("Here are the calls:\n\nDone."));
    }

    #[test]
    fn bare_json_object_and_openai_shape() {
        let p = parse_tool_calls(
            " {\"name\": \"weather\", \"arguments\": \"{\\\"city\\\": \\\"Seoul\\\"}\"} ",
            &tools(&["weather"]),
        );
        assert_eq!(p.calls[0].arguments, r#"{"city": "Seoul"}"#);
        let p = parse_tool_calls(
            r#"{"type": "function", "function": {"name": "weather", "arguments": {"city": "Paris"}}}"#,
            &tools(&["weather"]),
        );
        assert_eq!(p.calls[0].name, "weather");
    }

    #[test]
    fn undeclared_names_and_plain_json_stay_text() {
        let out = "```json\n{\"name\": \"rm_rf\", \"arguments\": {}}\n```";
        let p = parse_tool_calls(out, &tools(&["weather"]));
        assert!(p.calls.is_empty());
        assert_eq!(p.content.as_deref(), Some(out));
        let p = parse_tool_calls(r#"{"city": "Seoul", "temp": 3}"#, &tools(&["weather"]));
        assert!(p.calls.is_empty());
        let p = parse_tool_calls("```python\nprint(1)\n```", &tools(&["weather"]));
        assert!(p.calls.is_empty());
        let p = parse_tool_calls("<tool_call>\nnot json\n</tool_call>", &tools(&["weather"]));
        assert!(p.calls.is_empty());
        assert!(p.content.unwrap().contains("not json"));
    }

    #[test]
    fn korean_plain_answer() {
        let p = parse_tool_calls("점심으로 비빔밥 어떠세요?", &tools(&["get_weather"]));
        assert_eq!(p.content.as_deref(), Some("점심으로 비빔밥 어떠세요?"));
        assert!(p.calls.is_empty());
    }

    #[test]
    fn ids_look_like_openai() {
        let id = new_call_id();
        assert!(id.starts_with("call_") && id.len() == 29);
    }
}
