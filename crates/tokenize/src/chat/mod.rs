//! Chat templates rendered like Hugging Face `transformers`' `apply_chat_template`.
//!
//! Hugging Face renders templates with Jinja2 in an environment with `trim_blocks`,
//! `lstrip_blocks`, loop controls, its own `tojson` (Python's `json.dumps` with
//! `ensure_ascii=False`, no HTML escaping), `raise_exception` and `strftime_now`.
//! [`ChatTemplate`] sets up minijinja the same way, adds Python string/dict methods
//! (`.strip()`, `.split()`, `.items()`, ...) and prints values as Python does
//! (`True`, `None`, `['a', 'b']`).

mod limits;
mod pyfmt;
mod pyobj;
mod strftime;

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::value::{Rest, Value, ValueKind};
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde_json::{Map, Value as Json};

use crate::error::{Error, Result};
use pyfmt::JsonOptions;

const TEMPLATE_NAME: &str = "chat_template";

/// Marks an error raised by the template's `raise_exception(...)`.
#[derive(Debug)]
struct RaisedException(String);

impl std::fmt::Display for RaisedException {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RaisedException {}

/// A compiled chat template plus the variables Hugging Face passes to it.
#[derive(Clone)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
    vars: Map<String, Json>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .field("vars", &self.vars)
            .finish_non_exhaustive()
    }
}

/// Rewrites HF's `{% generation %}...{% endgeneration %}` (used to mark assistant text
/// for training masks) into an always-true `if` block with the same whitespace control.
fn strip_generation_tags(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(pos) = rest.find("{%") {
        out.push_str(&rest[..pos]);
        let tag = &rest[pos..];
        // The closing `%}` comes after the opening `{%` (in `{%}` the two overlap).
        let Some(end) = tag[2..].find("%}").map(|e| e + 2) else {
            out.push_str(tag);
            return out;
        };
        let inner = &tag[2..end];
        let (lead, body) = match inner.chars().next() {
            Some(c @ ('-' | '+')) => (c.to_string(), &inner[1..]),
            _ => (String::new(), inner),
        };
        let (body, trail) = match body.chars().last() {
            Some(c @ ('-' | '+')) => (&body[..body.len() - 1], c.to_string()),
            _ => (body, String::new()),
        };
        match body.trim() {
            "generation" => out.push_str(&format!("{{%{lead} if true {trail}%}}")),
            "endgeneration" => out.push_str(&format!("{{%{lead} endif {trail}%}}")),
            _ => out.push_str(&tag[..end + 2]),
        }
        rest = &tag[end + 2..];
    }
    out.push_str(rest);
    out
}

fn template_error(err: minijinja::Error) -> Error {
    if let Some(message) = limits::out_of_fuel_message(&err) {
        return Error::Template(message);
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = source {
        if let Some(raised) = e.downcast_ref::<RaisedException>() {
            return Error::TemplateException(raised.0.clone());
        }
        source = e.source();
    }
    let mut msg = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(e) = source {
        msg.push_str(": ");
        msg.push_str(&e.to_string());
        source = e.source();
    }
    Error::Template(msg)
}

fn invalid(msg: impl Into<String>) -> minijinja::Error {
    minijinja::Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// HF's `tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`.
fn tojson(value: Value, args: Rest<Value>) -> std::result::Result<Value, minijinja::Error> {
    const NAMES: [&str; 4] = ["ensure_ascii", "indent", "separators", "sort_keys"];
    let mut slots: [Option<Value>; 4] = Default::default();
    let mut positional = 0;
    for arg in args.0 {
        if arg.is_kwargs() {
            for key in arg.try_iter()? {
                let name = key.as_str().unwrap_or_default();
                let idx = NAMES.iter().position(|n| *n == name).ok_or_else(|| {
                    invalid(format!(
                        "tojson() got an unexpected keyword argument '{name}'"
                    ))
                })?;
                slots[idx] = Some(arg.get_item(&key)?);
            }
        } else {
            let slot = slots
                .get_mut(positional)
                .ok_or_else(|| invalid("tojson() takes at most 4 arguments after the value"))?;
            *slot = Some(arg);
            positional += 1;
        }
    }
    let present = |v: &Option<Value>| {
        v.as_ref()
            .filter(|v| !v.is_none() && !v.is_undefined())
            .cloned()
    };
    let mut opts = JsonOptions {
        ensure_ascii: present(&slots[0]).is_some_and(|v| v.is_true()),
        sort_keys: present(&slots[3]).is_some_and(|v| v.is_true()),
        ..Default::default()
    };
    if let Some(indent) = present(&slots[1]) {
        opts.indent = Some(match indent.kind() {
            ValueKind::String => indent.as_str().unwrap_or_default().to_string(),
            ValueKind::Number => {
                let n = i64::try_from(indent.clone())
                    .map_err(|_| invalid("tojson(): indent must be an integer or a string"))?;
                if n > limits::MAX_INDENT as i64 {
                    return Err(invalid(format!("tojson(): indent {n} is too large")));
                }
                " ".repeat(n.max(0) as usize)
            }
            _ => return Err(invalid("tojson(): indent must be an integer or a string")),
        });
        opts.item_sep = ",".into();
    }
    if let Some(seps) = present(&slots[2]) {
        let parts: Vec<Value> = seps.try_iter()?.collect();
        match parts.as_slice() {
            [a, b] if a.as_str().is_some() && b.as_str().is_some() => {
                opts.item_sep = a.as_str().unwrap_or_default().to_string();
                opts.key_sep = b.as_str().unwrap_or_default().to_string();
            }
            _ => return Err(invalid("tojson(): separators must be a pair of strings")),
        }
    }
    Ok(Value::from(pyfmt::to_json(&value, &opts)))
}

/// Jinja2's `length`: `len(value)`, with `0` for undefined values.
fn length(v: Value) -> std::result::Result<usize, minijinja::Error> {
    if v.is_undefined() {
        return Ok(0);
    }
    v.len()
        .ok_or_else(|| invalid(format!("object of type '{}' has no len()", v.kind())))
}

/// Python's `str.isspace()` for one character.
pub(crate) fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Jinja2's `trim(value, chars=None)`: `str(value).strip(chars)`.
fn trim(v: Value, chars: Option<String>) -> String {
    let s = pyfmt::py_str(&v);
    match chars {
        Some(chars) => s.trim_matches(|c| chars.contains(c)).to_string(),
        None => s.trim_matches(py_isspace).to_string(),
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl ChatTemplate {
    /// Compiles `template`; `bos_token` and `eos_token` are exposed to it as variables.
    pub fn new(template: &str, bos_token: &str, eos_token: &str) -> Result<Self> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(false);
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_formatter(|out, state, value| match value.kind() {
            ValueKind::Undefined
            | ValueKind::None
            | ValueKind::Bool
            | ValueKind::Number
            | ValueKind::String
            | ValueKind::Seq
            | ValueKind::Map => out
                .write_str(&pyfmt::py_str(value))
                .map_err(|_| minijinja::Error::from(ErrorKind::WriteFailure)),
            _ => minijinja::escape_formatter(out, state, value),
        });
        limits::install(&mut env);
        env.add_filter("tojson", tojson);
        env.add_filter("length", length);
        env.add_filter("count", length);
        env.add_filter("string", |v: Value| pyfmt::py_str(&v));
        env.add_filter("trim", trim);
        env.add_test("iterable", |v: Value| {
            matches!(
                v.kind(),
                ValueKind::Undefined
                    | ValueKind::String
                    | ValueKind::Bytes
                    | ValueKind::Seq
                    | ValueKind::Map
                    | ValueKind::Iterable
            )
        });
        env.add_function(
            "raise_exception",
            |message: Value| -> std::result::Result<Value, minijinja::Error> {
                let message = pyfmt::py_str(&message);
                Err(invalid(message.clone()).with_source(RaisedException(message)))
            },
        );
        let mut this = ChatTemplate {
            env,
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
            vars: Map::new(),
        };
        this.set_clock(Arc::new(now_unix));
        this.env
            .add_template_owned(TEMPLATE_NAME, strip_generation_tags(template))
            .map_err(template_error)?;
        Ok(this)
    }

    /// The template shipped with `tokenizer` (GGUF `tokenizer.chat_template` or the
    /// Hugging Face config), with its BOS/EOS texts; `Ok(None)` when it has none.
    pub fn from_tokenizer(tokenizer: &crate::Tokenizer) -> Result<Option<Self>> {
        let Some(template) = tokenizer.chat_template() else {
            return Ok(None);
        };
        ChatTemplate::new(
            template,
            tokenizer.bos_token().unwrap_or_default(),
            tokenizer.eos_token().unwrap_or_default(),
        )
        .map(Some)
    }

    fn set_clock(&mut self, clock: Arc<dyn Fn() -> i64 + Send + Sync>) {
        self.env
            .add_function("strftime_now", move |format: String| {
                let t = strftime::from_unix(clock());
                strftime::strftime(&t, &format)
            });
    }

    /// Makes `strftime_now()` use a fixed time (seconds since the Unix epoch, UTC)
    /// instead of the current UTC time, for reproducible prompts and tests.
    pub fn with_fixed_time(mut self, unix_seconds: i64) -> Self {
        self.set_clock(Arc::new(move || unix_seconds));
        self
    }

    /// Adds (or replaces) a template variable, like extra keyword arguments to
    /// `apply_chat_template` (e.g. `enable_thinking`, `date_string`).
    pub fn with_var(mut self, name: &str, value: Json) -> Self {
        self.vars.insert(name.to_string(), value);
        self
    }

    /// Renders as Hugging Face `apply_chat_template(messages, tools=tools,
    /// add_generation_prompt=..., tokenize=False)` does.
    ///
    /// Messages are OpenAI-style JSON objects (`role`, `content`, `tool_calls`, `name`,
    /// `tool_call_id`, ...). As in `transformers`, keys whose value is `null` are
    /// dropped, and a `reasoning_content`/`thinking`/`reasoning` field is also exposed
    /// under the other names templates read.
    pub fn render(
        &self,
        messages: &[Json],
        tools: Option<&[Json]>,
        add_generation_prompt: bool,
    ) -> Result<String> {
        let messages = messages
            .iter()
            .enumerate()
            .map(|(index, m)| normalize_message(index, m))
            .collect::<Result<Vec<_>>>()?;
        let mut ctx: BTreeMap<String, Value> = BTreeMap::new();
        ctx.insert("bos_token".into(), Value::from(self.bos_token.as_str()));
        ctx.insert("eos_token".into(), Value::from(self.eos_token.as_str()));
        for (k, v) in &self.vars {
            ctx.insert(k.clone(), pyobj::to_value(v));
        }
        ctx.insert("messages".into(), pyobj::to_value(&Json::Array(messages)));
        ctx.insert(
            "tools".into(),
            tools.map_or(Value::from(()), |t| {
                pyobj::to_value(&Json::Array(t.to_vec()))
            }),
        );
        ctx.insert("documents".into(), Value::from(()));
        ctx.insert(
            "add_generation_prompt".into(),
            Value::from(add_generation_prompt),
        );
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(template_error)?;
        template.render(Value::from(ctx)).map_err(template_error)
    }
}

const REASONING_FIELDS: [&str; 3] = ["reasoning_content", "thinking", "reasoning"];

/// `transformers`' message clean-up: drop `null` values, alias reasoning fields.
fn normalize_message(index: usize, message: &Json) -> Result<Json> {
    let Json::Object(obj) = message else {
        return Err(Error::InvalidMessage {
            index,
            reason: format!("expected a JSON object, got {message}"),
        });
    };
    let obj: Map<String, Json> = obj
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let reasoning = REASONING_FIELDS.iter().find_map(|k| obj.get(*k)).cloned();
    let Some(reasoning) = reasoning else {
        return Ok(Json::Object(obj));
    };
    let mut aliased = Map::new();
    aliased.insert("thinking".into(), reasoning.clone());
    for (k, v) in obj {
        aliased.insert(k, v);
    }
    aliased.insert("reasoning_content".into(), reasoning);
    Ok(Json::Object(aliased))
}

#[cfg(test)]
mod tests;
