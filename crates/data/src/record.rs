//! The prepared record: one OpenAI-style chat conversation, its checks, and the strict reader the trainer uses.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::{io, read_to_string, Error, Result};

/// One training conversation, serialised as a line of OpenAI chat JSONL: `{"messages":[…],"tools":[…]}`
/// (`tools` left out when there are none).
///
/// Messages are OpenAI-style objects: `role` is `system`, `user`, `assistant` or `tool`; `content` is a string
/// (or `null` on an assistant message that only calls tools); an assistant's `tool_calls` are
/// `[{"type":"function","function":{"name":…,"arguments":{…}}}]` with `arguments` a JSON object, not a string.
/// Tools are `{"type":"function","function":{"name":…,"description":…,"parameters":{…}}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRecord {
    /// The conversation, in order.
    pub messages: Vec<Value>,
    /// The functions offered to the model, when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Value>>,
}

/// Why a record is not kept; the `kind` of a [`crate::Rejected`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectKind {
    /// Not JSON, not an object, a required field missing or of the wrong type, an unknown role, a tool call that
    /// is not `{name, arguments}`, no assistant turn, or no schema for its database.
    Malformed,
    /// A message (or the whole record) has no text.
    Empty,
    /// More tokens than `max_tokens`.
    TooLong,
    /// The same conversation (ignoring case and white space) as an earlier record.
    ExactDuplicate,
    /// Nearly the same turns as an earlier record (MinHash Jaccard estimate at or above the threshold).
    NearDuplicate,
}

impl RejectKind {
    /// All kinds, in report order.
    pub const ALL: [RejectKind; 5] = [
        RejectKind::Malformed,
        RejectKind::Empty,
        RejectKind::TooLong,
        RejectKind::ExactDuplicate,
        RejectKind::NearDuplicate,
    ];

    /// The snake_case name used in `rejected.jsonl` and `stats.json`.
    pub fn name(self) -> &'static str {
        match self {
            RejectKind::Malformed => "malformed",
            RejectKind::Empty => "empty",
            RejectKind::TooLong => "too_long",
            RejectKind::ExactDuplicate => "exact_duplicate",
            RejectKind::NearDuplicate => "near_duplicate",
        }
    }
}

/// Why a JSON value is not a valid [`ChatRecord`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Malformed or empty.
    pub kind: RejectKind,
    /// What is wrong, naming the message (1-based) where there is one.
    pub reason: String,
}

impl Invalid {
    pub(crate) fn malformed(reason: impl Into<String>) -> Self {
        Self {
            kind: RejectKind::Malformed,
            reason: reason.into(),
        }
    }

    pub(crate) fn empty(reason: impl Into<String>) -> Self {
        Self {
            kind: RejectKind::Empty,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

const ROLES: [&str; 4] = ["system", "user", "assistant", "tool"];

impl ChatRecord {
    /// Checks an OpenAI chat record (`{"messages":[…],"tools":[…]}`) and normalises it: text-part arrays become
    /// one string, tool-call `arguments` given as a JSON string become an object, and tools given as bare
    /// `{name, description, parameters}` are wrapped as `{"type":"function","function":{…}}`.
    pub fn from_json(value: &Value) -> std::result::Result<Self, Invalid> {
        let Value::Object(obj) = value else {
            return Err(Invalid::malformed("a record must be a JSON object"));
        };
        let messages = array_field(obj, "messages")?;
        Self::new(messages.clone(), tools_field(obj)?)
    }

    /// Checks and normalises `messages` (see [`ChatRecord::from_json`]); `tools` must already be normalised.
    pub fn new(
        messages: Vec<Value>,
        tools: Option<Vec<Value>>,
    ) -> std::result::Result<Self, Invalid> {
        if messages.is_empty() {
            return Err(Invalid::empty("no messages"));
        }
        let messages = messages
            .iter()
            .enumerate()
            .map(|(i, m)| normalize_message(i + 1, m))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        if !messages.iter().any(|m| m["role"] == "assistant") {
            return Err(Invalid::malformed("no assistant turn"));
        }
        Ok(Self { messages, tools })
    }

    /// The role of message `i`.
    pub fn role(&self, i: usize) -> &str {
        self.messages
            .get(i)
            .and_then(|m| m.get("role"))
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// The text of every message (content, then each tool call as `name arguments-JSON`), with their roles, and
    /// the tools: what exact deduplication compares and the whitespace token estimate counts.
    pub fn full_text(&self) -> String {
        let mut out = String::new();
        for m in &self.messages {
            out.push_str(m["role"].as_str().unwrap_or(""));
            out.push_str(":\n");
            push_turn_text(&mut out, m);
        }
        if let Some(tools) = &self.tools {
            out.push_str("tools:\n");
            out.push_str(&Value::Array(tools.clone()).to_string());
        }
        out
    }

    /// The text of the non-system turns only (system prompts and tool lists are often one template shared by
    /// every record): what near-duplicate detection compares.
    pub fn turns_text(&self) -> String {
        let mut out = String::new();
        for m in self.messages.iter().filter(|m| m["role"] != "system") {
            push_turn_text(&mut out, m);
        }
        out
    }
}

fn push_turn_text(out: &mut String, m: &Value) {
    if let Some(c) = m.get("content").and_then(Value::as_str) {
        out.push_str(c);
        out.push('\n');
    }
    for call in m
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let f = &call["function"];
        out.push_str(f["name"].as_str().unwrap_or(""));
        out.push(' ');
        out.push_str(&f["arguments"].to_string());
        out.push('\n');
    }
}

/// The array under `key`.
pub(crate) fn array_field<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
) -> std::result::Result<&'a Vec<Value>, Invalid> {
    match obj.get(key) {
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(Invalid::malformed(format!("`{key}` is not an array"))),
        None => Err(Invalid::malformed(format!("missing field `{key}`"))),
    }
}

/// The record's `tools` (absent or null: none), normalised.
pub(crate) fn tools_field(
    obj: &Map<String, Value>,
) -> std::result::Result<Option<Vec<Value>>, Invalid> {
    match obj.get("tools") {
        None | Some(Value::Null) => Ok(None),
        Some(t) => normalize_tools(t),
    }
}

/// Tools as a JSON array, or a string holding one (ShareGPT); an empty string or array is no tools.
fn normalize_tools(v: &Value) -> std::result::Result<Option<Vec<Value>>, Invalid> {
    let parsed;
    let list = match v {
        Value::Array(a) => a,
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => {
            parsed = serde_json::from_str::<Value>(s)
                .map_err(|e| Invalid::malformed(format!("`tools` is not JSON: {e}")))?;
            match &parsed {
                Value::Array(a) => a,
                _ => return Err(Invalid::malformed("`tools` is not a JSON array")),
            }
        }
        _ => return Err(Invalid::malformed("`tools` is not an array")),
    };
    if list.is_empty() {
        return Ok(None);
    }
    list.iter()
        .enumerate()
        .map(|(i, t)| normalize_tool(i + 1, t))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map(Some)
}

fn normalize_tool(n: usize, t: &Value) -> std::result::Result<Value, Invalid> {
    let Value::Object(obj) = t else {
        return Err(Invalid::malformed(format!("tool {n} is not an object")));
    };
    let function = match obj.get("function") {
        Some(f) => f,
        None => t,
    };
    if function
        .get("name")
        .and_then(Value::as_str)
        .is_none_or(|s| s.trim().is_empty())
    {
        return Err(Invalid::malformed(format!("tool {n} has no function name")));
    }
    Ok(if obj.contains_key("function") {
        t.clone()
    } else {
        json!({"type": "function", "function": t})
    })
}

/// A tool call `{name, arguments}` (or OpenAI's `{type, function: {name, arguments}}`), `arguments` an object
/// or a string holding one, as `{"type":"function","function":{"name":…,"arguments":{…}}}`.
pub(crate) fn normalize_call(call: &Value) -> std::result::Result<Value, String> {
    let Value::Object(obj) = call else {
        return Err("a tool call is not an object".into());
    };
    let function = obj.get("function").unwrap_or(call);
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or("a tool call has no function name")?;
    let arguments = match function.get("arguments") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::String(s)) if s.trim().is_empty() => Value::Object(Map::new()),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s)
            .map_err(|e| format!("the arguments of `{name}` are not JSON: {e}"))?,
        Some(v) => v.clone(),
    };
    if !arguments.is_object() {
        return Err(format!("the arguments of `{name}` are not a JSON object"));
    }
    let mut out = Map::new();
    if let Some(id) = obj.get("id") {
        out.insert("id".into(), id.clone());
    }
    out.insert("type".into(), json!("function"));
    out.insert(
        "function".into(),
        json!({"name": name, "arguments": arguments}),
    );
    Ok(Value::Object(out))
}

fn normalize_message(n: usize, m: &Value) -> std::result::Result<Value, Invalid> {
    let Value::Object(obj) = m else {
        return Err(Invalid::malformed(format!("message {n} is not an object")));
    };
    let role = match obj.get("role") {
        Some(Value::String(r)) => r.as_str(),
        Some(_) => {
            return Err(Invalid::malformed(format!(
                "message {n}: `role` is not a string"
            )))
        }
        None => return Err(Invalid::malformed(format!("message {n} has no `role`"))),
    };
    if !ROLES.contains(&role) {
        return Err(Invalid::malformed(format!(
            "message {n}: unknown role `{role}` (expected system, user, assistant or tool)"
        )));
    }
    let mut out = obj.clone();
    let content = match obj.get("content") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(parts)) => Some(text_parts(n, parts)?),
        Some(_) => {
            return Err(Invalid::malformed(format!(
                "message {n}: `content` is not a string"
            )))
        }
    };
    let calls = match obj.get("tool_calls") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(calls)) if role == "assistant" => calls
            .iter()
            .map(normalize_call)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Invalid::malformed(format!("message {n}: {e}")))?,
        Some(Value::Array(_)) => {
            return Err(Invalid::malformed(format!(
                "message {n}: only assistant messages have `tool_calls`"
            )))
        }
        Some(_) => {
            return Err(Invalid::malformed(format!(
                "message {n}: `tool_calls` is not an array"
            )))
        }
    };
    if calls.is_empty() {
        out.remove("tool_calls");
        if content.as_deref().is_none_or(|c| c.trim().is_empty()) {
            return Err(Invalid::empty(format!(
                "message {n} ({role}) has empty content"
            )));
        }
    } else {
        out.insert("tool_calls".into(), Value::Array(calls));
    }
    out.insert("content".into(), content.map_or(Value::Null, Value::String));
    Ok(Value::Object(out))
}

/// OpenAI content parts: only `{"type":"text","text":…}` parts, joined.
fn text_parts(n: usize, parts: &[Value]) -> std::result::Result<String, Invalid> {
    parts
        .iter()
        .map(
            |p| match (p.get("type").and_then(Value::as_str), p.get("text")) {
                (Some("text") | None, Some(Value::String(t))) => Ok(t.as_str()),
                _ => Err(Invalid::malformed(format!(
                    "message {n}: only text content parts are supported"
                ))),
            },
        )
        .collect::<std::result::Result<Vec<_>, _>>()
        .map(|t| t.concat())
}

/// Reads a prepared chat JSONL file strictly: every non-blank line must be a valid [`ChatRecord`]; the first
/// that is not is an error naming the file and line. This is the reader for `train.jsonl` and friends.
pub fn read_chat_jsonl(path: &Path) -> Result<Vec<ChatRecord>> {
    let text = read_to_string(path)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |message: String| Error::Data {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        let v: Value = serde_json::from_str(line).map_err(|e| err(format!("invalid JSON: {e}")))?;
        out.push(ChatRecord::from_json(&v).map_err(|e| err(e.reason))?);
    }
    Ok(out)
}

/// Writes `items` as JSONL to `path` atomically (see [`write_atomic`]).
pub fn write_jsonl<T: Serialize>(path: &Path, items: impl IntoIterator<Item = T>) -> Result<()> {
    let mut bytes = Vec::new();
    for item in items {
        serde_json::to_writer(&mut bytes, &item).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        bytes.push(b'\n');
    }
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` atomically: into `path.tmp` first (flushed to disk), then renamed over `path`, so a
/// reader never sees a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp_name);
    let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(v: Value) -> std::result::Result<ChatRecord, Invalid> {
        ChatRecord::from_json(&v)
    }

    #[test]
    fn accepts_and_normalises_openai_records() {
        let r = check(json!({
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Weather in "}, {"type": "text", "text": "Seoul?"}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Seoul\"}"}}
                ]},
                {"role": "tool", "content": "{\"temp\": 21}"},
                {"role": "assistant", "content": "21 °C."}
            ],
            "tools": [{"name": "weather", "description": "Current weather", "parameters": {"type": "object"}}]
        }))
        .unwrap();
        assert_eq!(r.messages[1]["content"], "Weather in Seoul?");
        assert_eq!(
            r.messages[2]["tool_calls"][0],
            json!({"id": "c1", "type": "function", "function": {"name": "weather", "arguments": {"city": "Seoul"}}})
        );
        assert_eq!(r.tools.as_ref().unwrap()[0]["type"], "function");
        assert_eq!(r.tools.as_ref().unwrap()[0]["function"]["name"], "weather");
        // Serialises back as OpenAI chat JSONL; `tools` omitted when absent.
        let line = serde_json::to_string(&ChatRecord {
            tools: None,
            ..r.clone()
        })
        .unwrap();
        assert!(
            line.starts_with("{\"messages\":[") && !line.contains("\"tools\""),
            "{line}"
        );
        assert_eq!(check(serde_json::to_value(&r).unwrap()).unwrap(), r);
    }

    #[test]
    fn rejects_with_reasons() {
        let cases = [
            (
                json!([1]),
                RejectKind::Malformed,
                "a record must be a JSON object",
            ),
            (json!({}), RejectKind::Malformed, "missing field `messages`"),
            (json!({"messages": []}), RejectKind::Empty, "no messages"),
            (
                json!({"messages": [{"role": "bot", "content": "x"}]}),
                RejectKind::Malformed,
                "message 1: unknown role `bot`",
            ),
            (
                json!({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}]}),
                RejectKind::Empty,
                "message 2 (assistant) has empty content",
            ),
            (
                json!({"messages": [{"role": "user", "content": "hi"}]}),
                RejectKind::Malformed,
                "no assistant turn",
            ),
            (
                json!({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]}]}),
                RejectKind::Malformed,
                "message 2: the arguments of `f` are not JSON",
            ),
            (
                json!({"messages": [{"role": "user", "content": 3}]}),
                RejectKind::Malformed,
                "message 1: `content` is not a string",
            ),
            (
                json!({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "tools": "[{\"description\": \"x\"}]"}),
                RejectKind::Malformed,
                "tool 1 has no function name",
            ),
        ];
        for (v, kind, reason) in cases {
            let e = check(v.clone()).unwrap_err();
            assert_eq!(e.kind, kind, "{v}: {e}");
            assert!(e.reason.starts_with(reason), "{v}: {e}");
        }
    }

    #[test]
    fn texts_for_dedup() {
        let r = check(json!({"messages": [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "Q"},
            {"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]},
            {"role": "tool", "content": "T"},
            {"role": "assistant", "content": "A"}
        ]}))
        .unwrap();
        assert_eq!(r.turns_text(), "Q\nf {\"a\":1}\nT\nA\n");
        assert!(r.full_text().starts_with("system:\nS\nuser:\nQ\n"));
        assert_eq!(r.role(4), "assistant");
    }

    #[test]
    fn strict_reader_names_file_and_line_and_writes_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let good = ChatRecord {
            messages: vec![
                json!({"role": "user", "content": "hi"}),
                json!({"role": "assistant", "content": "hello"}),
            ],
            tools: None,
        };
        let path = dir.path().join("train.jsonl");
        write_jsonl(&path, [&good, &good]).unwrap();
        assert!(!dir.path().join("train.jsonl.tmp").exists());
        assert_eq!(read_chat_jsonl(&path).unwrap(), vec![good.clone(), good]);

        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            format!("{text}\n{{\"messages\": [{{\"role\": \"user\", \"content\": \"x\"}}]}}\n"),
        )
        .unwrap();
        let e = read_chat_jsonl(&path).unwrap_err().to_string();
        assert!(e.ends_with("train.jsonl:4: no assistant turn"), "{e}");
    }
}
