//! Reading source files in any supported format into [`ChatRecord`]s, keeping every malformed record as a
//! [`Rejected`] that names its file and line.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::{read_to_string, Error, Result};
use crate::record::{array_field, normalize_call, tools_field, ChatRecord, Invalid, RejectKind};
use crate::text2sql::{self, Schemas};

/// The layout of a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Told from the keys of the file's first record (see [`Format::detect`]).
    #[default]
    Auto,
    /// OpenAI chat: `{"messages":[…], "tools":[…]}`.
    Chat,
    /// Alpaca: `{"instruction", "input", "output"}`, optional `system` and `history` (`[[user, assistant], …]`).
    Alpaca,
    /// ShareGPT: `{"conversations":[{"from","value"}…]}`, optional `system` and `tools` (array or JSON string);
    /// `from` is `human`/`user`, `gpt`/`assistant`, `system`, `function_call` or `observation`/`tool`.
    #[serde(rename = "sharegpt")]
    ShareGpt,
    /// Text-to-SQL: `{"db_id", "question", "query"}`, turned into chat with the database schema (Spider).
    #[serde(rename = "text2sql")]
    Text2Sql,
}

impl Format {
    /// The format of a record from its keys: `messages` → chat, `conversations` → ShareGPT, `instruction` →
    /// alpaca, `question` + `query` → text-to-SQL.
    pub fn detect(record: &Value) -> Option<Format> {
        let has = |k: &str| record.get(k).is_some();
        if has("messages") {
            Some(Format::Chat)
        } else if has("conversations") {
            Some(Format::ShareGpt)
        } else if has("instruction") {
            Some(Format::Alpaca)
        } else if has("question") && has("query") {
            Some(Format::Text2Sql)
        } else {
            None
        }
    }

    /// The name used on the command line and in `stats.json`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Chat => "chat",
            Format::Alpaca => "alpaca",
            Format::ShareGpt => "sharegpt",
            Format::Text2Sql => "text2sql",
        }
    }
}

impl FromStr for Format {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "auto" => Format::Auto,
            "chat" | "openai" => Format::Chat,
            "alpaca" => Format::Alpaca,
            "sharegpt" => Format::ShareGpt,
            "text2sql" | "spider" => Format::Text2Sql,
            other => {
                return Err(Error::Invalid(format!(
                    "unknown format {other:?}: expected auto, chat, alpaca, sharegpt or text2sql"
                )))
            }
        })
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether a [`Source`]'s number counts lines of a JSONL file or elements of a JSON array file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// 1-based line of a JSONL file.
    Line,
    /// 1-based element of a JSON array file.
    Record,
}

/// Where a record came from. Displays as `file:LINE` (JSONL) or `file: record N` (JSON array).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The input file.
    #[serde(rename = "file")]
    pub path: PathBuf,
    /// 1-based line (JSONL) or element (JSON array).
    pub line: usize,
    /// Which of the two `line` counts.
    pub unit: Unit,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.unit {
            Unit::Line => write!(f, "{}:{}", self.path.display(), self.line),
            Unit::Record => write!(f, "{}: record {}", self.path.display(), self.line),
        }
    }
}

/// A record that is not kept, with where it came from and why. One line of `rejected.jsonl`:
/// `{"file":…,"line":…,"unit":"line"|"record","kind":…,"reason":…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// Its file and line.
    #[serde(flatten)]
    pub source: Source,
    /// The class of problem.
    pub kind: RejectKind,
    /// What exactly is wrong.
    pub reason: String,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.source, self.reason)
    }
}

/// A valid record and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct SourcedRecord {
    /// Its file and line.
    pub source: Source,
    /// The conversation.
    pub record: ChatRecord,
    /// The database of a text-to-SQL record (for keeping a database in one split).
    pub db_id: Option<String>,
}

/// What [`read_records`] needs besides the file.
#[derive(Debug, Default)]
pub struct ReadOptions {
    /// A system prompt for records that have none. For text-to-SQL records it replaces the default
    /// ([`text2sql::DEFAULT_SYSTEM`]); `{schema}` in it is replaced by the database's DDL, which is otherwise
    /// appended after a blank line.
    pub system: Option<String>,
    /// Schemas of text-to-SQL databases (required for text-to-SQL files).
    pub schemas: Option<Schemas>,
}

/// The records of one file.
#[derive(Debug)]
pub struct ReadOutcome {
    /// The format used (the detected one under [`Format::Auto`]).
    pub format: Format,
    /// The valid records, in file order.
    pub records: Vec<SourcedRecord>,
    /// The malformed and empty ones, in file order.
    pub rejected: Vec<Rejected>,
}

/// Reads `path`: JSONL (one record a line; blank lines skipped) or, when the file starts with `[`, a JSON array
/// of records. Each record is converted to a [`ChatRecord`] by `format` ([`Format::Auto`]: detected from the
/// first record that is a JSON object). A record that cannot be converted is returned in
/// [`ReadOutcome::rejected`]; errors are for unreadable files, a JSON array that does not parse, a format that
/// cannot be detected, and text-to-SQL without [`ReadOptions::schemas`].
pub fn read_records(path: &Path, format: Format, opts: &ReadOptions) -> Result<ReadOutcome> {
    let text = read_to_string(path)?;
    let (unit, values): (Unit, Vec<Numbered>) = if text.trim_start().starts_with('[') {
        let all: Vec<Value> = serde_json::from_str(&text).map_err(|e| Error::Data {
            path: path.to_path_buf(),
            line: e.line(),
            message: format!("not a JSON array of records: {e}"),
        })?;
        (
            Unit::Record,
            all.into_iter()
                .enumerate()
                .map(|(i, v)| (i + 1, Ok(v)))
                .collect(),
        )
    } else {
        let lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                (
                    i + 1,
                    serde_json::from_str(l).map_err(|e| format!("invalid JSON: {e}")),
                )
            })
            .collect();
        (Unit::Line, lines)
    };
    let format = match format {
        Format::Auto => {
            let first = values
                .iter()
                .find_map(|(line, v)| v.as_ref().ok().filter(|v| v.is_object()).map(|v| (line, v)));
            match first {
                Some((line, v)) => Format::detect(v).ok_or_else(|| Error::Data {
                    path: path.to_path_buf(),
                    line: *line,
                    message: format!(
                        "cannot tell the format from the keys of the first record ({}): pass --format",
                        v.as_object()
                            .map(|o| o.keys().map(String::as_str).collect::<Vec<_>>().join(", "))
                            .unwrap_or_default()
                    ),
                })?,
                None => Format::Chat,
            }
        }
        f => f,
    };
    if format == Format::Text2Sql && opts.schemas.is_none() {
        return Err(Error::File {
            path: path.to_path_buf(),
            message: "text-to-SQL records need a schema: pass --tables tables.json or --db-dir DIR"
                .into(),
        });
    }
    let mut out = ReadOutcome {
        format,
        records: Vec::new(),
        rejected: Vec::new(),
    };
    for (line, value) in values {
        let source = Source {
            path: path.to_path_buf(),
            line,
            unit,
        };
        let converted = value
            .map_err(Invalid::malformed)
            .and_then(|v| convert(&v, format, opts));
        match converted {
            Ok((record, db_id)) => out.records.push(SourcedRecord {
                source,
                record,
                db_id,
            }),
            Err(e) => out.rejected.push(Rejected {
                source,
                kind: e.kind,
                reason: e.reason,
            }),
        }
    }
    Ok(out)
}

/// A record's 1-based number and its JSON (or why it is not JSON).
type Numbered = (usize, std::result::Result<Value, String>);

type Converted = std::result::Result<(ChatRecord, Option<String>), Invalid>;

fn convert(v: &Value, format: Format, opts: &ReadOptions) -> Converted {
    let Value::Object(obj) = v else {
        return Err(Invalid::malformed("a record must be a JSON object"));
    };
    let system = opts.system.as_deref();
    match format {
        Format::Auto | Format::Chat => {
            let mut r = ChatRecord::from_json(v)?;
            if let Some(s) = system {
                if r.role(0) != "system" {
                    r.messages
                        .insert(0, json!({"role": "system", "content": s}));
                }
            }
            Ok((r, None))
        }
        Format::Alpaca => from_alpaca(obj, system).map(|r| (r, None)),
        Format::ShareGpt => from_sharegpt(obj, system).map(|r| (r, None)),
        Format::Text2Sql => {
            let schemas = opts
                .schemas
                .as_ref()
                .ok_or_else(|| Invalid::malformed("no schemas"))?;
            let db_id = string_field(obj, "db_id")?;
            let question = string_field(obj, "question")?;
            let query = string_field(obj, "query")?;
            let ddl = schemas
                .ddl(db_id)
                .map_err(|e| Invalid::malformed(format!("schema of `{db_id}`: {e}")))?
                .ok_or_else(|| Invalid::malformed(format!("no schema for db_id `{db_id}`")))?;
            let r = text2sql::to_chat(question, query, &ddl, system)?;
            Ok((r, Some(db_id.to_owned())))
        }
    }
}

fn string_field<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
) -> std::result::Result<&'a str, Invalid> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Invalid::malformed(format!("`{key}` is not a string"))),
        None => Err(Invalid::malformed(format!("missing field `{key}`"))),
    }
}

fn optional_string<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
) -> std::result::Result<Option<&'a str>, Invalid> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => string_field(obj, key).map(Some),
    }
}

fn message(role: &str, content: &str) -> Value {
    json!({"role": role, "content": content})
}

/// The record's own system prompt, else `default`, as a first message.
fn system_message(
    obj: &Map<String, Value>,
    default: Option<&str>,
) -> std::result::Result<Vec<Value>, Invalid> {
    let own = optional_string(obj, "system")?.filter(|s| !s.trim().is_empty());
    Ok(own
        .or(default)
        .map(|s| message("system", s))
        .into_iter()
        .collect())
}

fn from_alpaca(
    obj: &Map<String, Value>,
    system: Option<&str>,
) -> std::result::Result<ChatRecord, Invalid> {
    let instruction = string_field(obj, "instruction")?;
    let input = optional_string(obj, "input")?.unwrap_or("");
    let output = string_field(obj, "output")?;
    let mut messages = system_message(obj, system)?;
    match obj.get("history") {
        None | Some(Value::Null) => {}
        Some(Value::Array(turns)) => {
            for (i, t) in turns.iter().enumerate() {
                match t.as_array().map(Vec::as_slice) {
                    Some([Value::String(q), Value::String(a)]) => {
                        messages.push(message("user", q));
                        messages.push(message("assistant", a));
                    }
                    _ => {
                        return Err(Invalid::malformed(format!(
                            "history entry {} is not [user, assistant]",
                            i + 1
                        )))
                    }
                }
            }
        }
        Some(_) => return Err(Invalid::malformed("`history` is not an array")),
    }
    let user = if input.trim().is_empty() {
        instruction.to_owned()
    } else {
        format!("{instruction}\n\n{input}")
    };
    messages.push(message("user", &user));
    messages.push(message("assistant", output));
    ChatRecord::new(messages, None)
}

fn from_sharegpt(
    obj: &Map<String, Value>,
    system: Option<&str>,
) -> std::result::Result<ChatRecord, Invalid> {
    let turns = array_field(obj, "conversations")?;
    let tools = tools_field(obj)?;
    let mut messages = system_message(obj, system)?;
    let own_system = messages.len();
    for (i, turn) in turns.iter().enumerate() {
        let n = i + 1;
        let from = turn.get("from").and_then(Value::as_str).ok_or_else(|| {
            Invalid::malformed(format!(
                "message {n} has no `from` (expected {{from, value}})"
            ))
        })?;
        let value = turn
            .get("value")
            .ok_or_else(|| Invalid::malformed(format!("message {n} has no `value`")))?;
        let text = || {
            value
                .as_str()
                .ok_or_else(|| Invalid::malformed(format!("message {n}: `value` is not a string")))
        };
        let m = match from {
            "human" | "user" => message("user", text()?),
            "gpt" | "assistant" => message("assistant", text()?),
            "observation" | "tool" | "function_response" => message("tool", text()?),
            "system" => {
                // A system turn replaces the --system default (it is the record's own).
                if own_system == 1 && messages.len() == 1 && obj.get("system").is_none() {
                    messages.clear();
                }
                message("system", text()?)
            }
            "function_call" => {
                let bad = |e: String| Invalid::malformed(format!("message {n} (function_call): {e}"));
                let parsed = match value {
                    Value::String(s) => serde_json::from_str::<Value>(s)
                        .map_err(|e| bad(format!("not JSON {{name, arguments}}: {e}")))?,
                    v => v.clone(),
                };
                let calls = match parsed {
                    Value::Array(calls) => calls,
                    one => vec![one],
                };
                let calls = calls
                    .iter()
                    .map(normalize_call)
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(bad)?;
                json!({"role": "assistant", "content": null, "tool_calls": calls})
            }
            other => {
                return Err(Invalid::malformed(format!(
                    "message {n}: unknown role `{other}` (expected human, gpt, system, function_call or observation)"
                )))
            }
        };
        messages.push(m);
    }
    ChatRecord::new(messages, tools)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn reasons(o: &ReadOutcome) -> Vec<String> {
        o.rejected
            .iter()
            .map(|r| format!("{}:{}", r.source.line, r.reason))
            .collect()
    }

    #[test]
    fn alpaca_jsonl_with_rejections() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "a.jsonl",
            concat!(
                r#"{"instruction": "Add", "input": "2 and 3", "output": "5"}"#,
                "\n",
                "\n",
                r#"{"instruction": "Say hi", "output": ""}"#,
                "\n",
                r#"{"instruction": "Say hi"}"#,
                "\n",
                "{not json\n",
                r#"{"instruction": "Hi", "input": "", "output": "Hello", "system": "Be warm.", "history": [["a", "b"]]}"#,
                "\n",
            ),
        );
        let o = read_records(&p, Format::Auto, &ReadOptions::default()).unwrap();
        assert_eq!(o.format, Format::Alpaca);
        assert_eq!(o.records.len(), 2);
        assert_eq!(o.records[0].source.line, 1);
        assert_eq!(o.records[0].record.messages[0]["content"], "Add\n\n2 and 3");
        assert_eq!(o.records[0].record.messages[1]["content"], "5");
        let r = &o.records[1].record;
        assert_eq!(
            o.records[1].source.to_string(),
            format!("{}:6", p.display())
        );
        assert_eq!(
            r.messages
                .iter()
                .map(|m| m["role"].as_str().unwrap())
                .collect::<Vec<_>>(),
            ["system", "user", "assistant", "user", "assistant"]
        );
        let got = reasons(&o);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0], "3:message 2 (assistant) has empty content");
        assert_eq!(o.rejected[0].kind, RejectKind::Empty);
        assert_eq!(got[1], "4:missing field `output`");
        assert!(got[2].starts_with("5:invalid JSON"), "{got:?}");
    }

    #[test]
    fn sharegpt_array_with_tool_calls() {
        let dir = tempfile::tempdir().unwrap();
        let records = json!([
            {
                "conversations": [
                    {"from": "human", "value": "Weather in Seoul?"},
                    {"from": "function_call", "value": "{\"name\": \"weather\", \"arguments\": {\"city\": \"Seoul\"}}"},
                    {"from": "observation", "value": "{\"temp\": 21}"},
                    {"from": "gpt", "value": "It is 21 °C."}
                ],
                "tools": "[{\"name\": \"weather\", \"description\": \"Weather\", \"parameters\": {\"type\": \"object\"}}]"
            },
            {"conversations": [{"from": "human", "value": "x"}, {"from": "robot", "value": "y"}]},
            {"conversations": [{"from": "human", "value": "x"}, {"from": "function_call", "value": "weather(city)"}]},
            {"conversations": [{"from": "human", "value": "x"}, {"from": "gpt", "value": "y"}], "tools": "not json"},
            {"conversations": [{"from": "human", "value": "only a question"}]},
            {"conversations": [{"from": "system", "value": "Own."}, {"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}
        ]);
        let p = write(
            dir.path(),
            "g.json",
            &serde_json::to_string_pretty(&records).unwrap(),
        );
        let opts = ReadOptions {
            system: Some("Default.".into()),
            ..ReadOptions::default()
        };
        let o = read_records(&p, Format::Auto, &opts).unwrap();
        assert_eq!(o.format, Format::ShareGpt);
        assert_eq!(o.records.len(), 2);
        let r = &o.records[0].record;
        assert_eq!(
            r.messages[0],
            json!({"role": "system", "content": "Default."})
        );
        assert_eq!(
            r.messages[2],
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"type": "function", "function": {"name": "weather", "arguments": {"city": "Seoul"}}}
            ]})
        );
        assert_eq!(
            r.messages[3],
            json!({"role": "tool", "content": "{\"temp\": 21}"})
        );
        assert_eq!(r.tools.as_ref().unwrap()[0]["function"]["name"], "weather");
        // The record's own system turn wins over --system.
        let own = &o.records[1].record;
        assert_eq!(own.messages[0]["content"], "Own.");
        assert_eq!(own.messages.len(), 3);
        assert_eq!(
            o.records[1].source.to_string(),
            format!("{}: record 6", p.display())
        );
        let got = reasons(&o);
        assert!(
            got[0].starts_with("2:message 2: unknown role `robot`"),
            "{got:?}"
        );
        assert!(
            got[1].starts_with("3:message 2 (function_call): not JSON"),
            "{got:?}"
        );
        assert!(got[2].starts_with("4:`tools` is not JSON"), "{got:?}");
        assert_eq!(got[3], "5:no assistant turn");
    }

    #[test]
    fn chat_format_and_detection_errors() {
        let dir = tempfile::tempdir().unwrap();
        let error = |name: &str, text: &str| {
            let p = write(dir.path(), name, text);
            read_records(&p, Format::Auto, &ReadOptions::default())
                .unwrap_err()
                .to_string()
        };
        let e = error("c.jsonl", "[1,\n");
        assert!(e.contains("c.jsonl:2: not a JSON array"), "{e}");
        let e = error("u.jsonl", "{\"prompt\": \"x\", \"completion\": \"y\"}\n");
        assert!(e.contains("u.jsonl:1: cannot tell the format"), "{e}");
        assert!(e.contains("prompt, completion"), "{e}");
        let e = error(
            "s.jsonl",
            "{\"db_id\": \"x\", \"question\": \"q\", \"query\": \"SELECT 1\"}\n",
        );
        assert!(e.contains("need a schema"), "{e}");

        let p = write(
            dir.path(),
            "chat.jsonl",
            "{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", \"content\": \"a\"}]}\n\"just a string\"\n",
        );
        let opts = ReadOptions {
            system: Some("S".into()),
            ..ReadOptions::default()
        };
        let o = read_records(&p, Format::Chat, &opts).unwrap();
        assert_eq!(o.records[0].record.messages[0]["content"], "S");
        assert_eq!(reasons(&o), ["2:a record must be a JSON object"]);
    }

    #[test]
    fn format_names_round_trip() {
        for f in [
            Format::Auto,
            Format::Chat,
            Format::Alpaca,
            Format::ShareGpt,
            Format::Text2Sql,
        ] {
            assert_eq!(f.name().parse::<Format>().unwrap(), f);
            assert_eq!(serde_json::to_value(f).unwrap(), f.name());
        }
        assert!("csv".parse::<Format>().is_err());
    }
}
