//! From an OpenAI request to what the model runs: template messages (with
//! tool and format instructions), sampling parameters and limits.

use std::collections::HashSet;

use serde_json::{json, Value};
use tuneup_generate::{GenerateParams, SamplingParams};

use crate::error::ApiError;
use crate::types::{
    ChatCompletionRequest, ChatMessage, Content, ResponseFormat, Stop, Tool, ToolChoice,
};

/// Sampling fields shared by chat and text completions.
#[derive(Debug, Default, Clone, Copy)]
pub struct SamplingFields {
    /// `temperature`.
    pub temperature: Option<f32>,
    /// `top_p`.
    pub top_p: Option<f32>,
    /// `seed`.
    pub seed: Option<i64>,
    /// `presence_penalty`.
    pub presence_penalty: Option<f32>,
    /// `frequency_penalty`.
    pub frequency_penalty: Option<f32>,
    /// `top_k` (extension).
    pub top_k: Option<u32>,
    /// `min_p` (extension).
    pub min_p: Option<f32>,
    /// `repetition_penalty` (extension).
    pub repetition_penalty: Option<f32>,
}

/// Checks the sampling fields and builds the generator's parameters.
pub fn sampling(f: SamplingFields) -> Result<SamplingParams, ApiError> {
    let mut s = SamplingParams::default();
    if let Some(t) = f.temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(ApiError::invalid_param(
                "temperature",
                format!("temperature must be between 0 and 2, got {t}"),
            ));
        }
        s.temperature = t;
    }
    if let Some(p) = f.top_p {
        if !(p > 0.0 && p <= 1.0) {
            return Err(ApiError::invalid_param(
                "top_p",
                format!("top_p must be in (0, 1], got {p}"),
            ));
        }
        s.top_p = p;
    }
    for (name, v) in [
        ("presence_penalty", f.presence_penalty),
        ("frequency_penalty", f.frequency_penalty),
    ] {
        if let Some(v) = v {
            if !(-2.0..=2.0).contains(&v) {
                return Err(ApiError::invalid_param(
                    name,
                    format!("{name} must be between -2 and 2, got {v}"),
                ));
            }
        }
    }
    s.presence_penalty = f.presence_penalty.unwrap_or(0.0);
    s.frequency_penalty = f.frequency_penalty.unwrap_or(0.0);
    if let Some(k) = f.top_k {
        s.top_k = k as usize;
    }
    if let Some(m) = f.min_p {
        if !(0.0..=1.0).contains(&m) {
            return Err(ApiError::invalid_param(
                "min_p",
                format!("min_p must be in [0, 1], got {m}"),
            ));
        }
        s.min_p = m;
    }
    if let Some(r) = f.repetition_penalty {
        if !(r > 0.0 && r.is_finite()) {
            return Err(ApiError::invalid_param(
                "repetition_penalty",
                "repetition_penalty must be positive",
            ));
        }
        s.repeat_penalty = r;
    }
    if let Some(seed) = f.seed {
        s.seed = seed as u64;
    }
    Ok(s)
}

/// The generation budget: `requested` (at least 1) clamped to the room the
/// context leaves after the prompt and to the server's `cap`; the smaller of
/// the two when not given.
pub fn max_tokens(
    requested: Option<u64>,
    param: &str,
    prompt: usize,
    context: usize,
    cap: usize,
) -> Result<usize, ApiError> {
    if prompt >= context {
        return Err(ApiError::invalid(format!(
            "This model's maximum context length is {context} tokens, but the prompt has {prompt} tokens; shorten the messages."
        ))
        .with_param("messages")
        .with_code("context_length_exceeded"));
    }
    let limit = (context - prompt).min(cap.max(1));
    match requested {
        Some(0) => Err(ApiError::invalid_param(
            param,
            format!("{param} must be at least 1"),
        )),
        Some(n) => Ok((n.min(limit as u64)) as usize),
        None => Ok(limit),
    }
}

/// Most stop strings in one request (OpenAI's limit).
pub const MAX_STOP_STRINGS: usize = 4;
/// Longest stop string, in bytes.
pub const MAX_STOP_BYTES: usize = 256;

/// Checks `stop`: at most [`MAX_STOP_STRINGS`] strings of at most [`MAX_STOP_BYTES`] bytes
/// each (empty ones are dropped).
pub fn stop_strings(stop: Option<Stop>) -> Result<Vec<String>, ApiError> {
    let stops = stop.map(Stop::into_vec).unwrap_or_default();
    if stops.len() > MAX_STOP_STRINGS {
        return Err(ApiError::invalid_param(
            "stop",
            format!(
                "{} stop strings given; at most {MAX_STOP_STRINGS} are allowed",
                stops.len()
            ),
        ));
    }
    if let Some((i, s)) = stops
        .iter()
        .enumerate()
        .find(|(_, s)| s.len() > MAX_STOP_BYTES)
    {
        return Err(ApiError::invalid_param(
            "stop",
            format!(
                "stop string {i} is {} bytes long; each may be at most {MAX_STOP_BYTES} bytes",
                s.len()
            ),
        ));
    }
    Ok(stops)
}

/// Builds the generator's parameters.
pub fn params(sampling: SamplingParams, max_tokens: usize, stop: Vec<String>) -> GenerateParams {
    GenerateParams {
        max_tokens,
        sampling,
        stop,
        ..GenerateParams::default()
    }
}

/// The tool-related decisions for a chat request.
#[derive(Debug, Clone, Default)]
pub struct ToolPlan {
    /// Tools to show the template (none when `tool_choice` is `none`).
    pub tools: Vec<Value>,
    /// Names of declared tools whose calls are recognised in the output.
    pub names: HashSet<String>,
    /// An instruction added to the system message (`required` / named choice).
    pub instruction: Option<String>,
    /// Whether the output is forced (by grammar) to be tool calls.
    pub force: ToolForce,
}

/// What `tool_choice` forces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ToolForce {
    /// Nothing (`auto` or `none`): the model may answer in prose.
    #[default]
    No,
    /// Calls of any declared tools (`required`).
    Any,
    /// One call of this function (a named choice).
    Named(String),
}

impl ToolPlan {
    /// Whether the output is parsed for tool calls.
    pub fn active(&self) -> bool {
        !self.names.is_empty()
    }
}

/// Checks `tools` and `tool_choice`.
pub fn tool_plan(
    tools: Option<&[Tool]>,
    choice: Option<&ToolChoice>,
) -> Result<ToolPlan, ApiError> {
    let tools = tools.unwrap_or_default();
    for (i, t) in tools.iter().enumerate() {
        if t.kind != "function" {
            return Err(ApiError::invalid_param(
                &format!("tools[{i}].type"),
                format!("unsupported tool type '{}'; only 'function'", t.kind),
            ));
        }
        if t.function.name.trim().is_empty() {
            return Err(ApiError::invalid_param(
                &format!("tools[{i}].function.name"),
                "tool names must not be empty",
            ));
        }
    }
    let names: HashSet<String> = tools.iter().map(|t| t.function.name.clone()).collect();
    let mode = match choice {
        None => "auto".to_string(),
        Some(ToolChoice::Mode(m)) => m.clone(),
        Some(ToolChoice::Named { function }) => {
            if !names.contains(&function.name) {
                return Err(ApiError::invalid_param(
                    "tool_choice",
                    format!(
                        "tool_choice names '{}', which is not among the declared tools",
                        function.name
                    ),
                ));
            }
            return Ok(ToolPlan {
                tools: tools.iter().map(tool_json).collect(),
                instruction: Some(format!("You must answer by calling the function '{}' with a tool call; do not answer in prose.", function.name)),
                names,
                force: ToolForce::Named(function.name.clone()),
            });
        }
    };
    match mode.as_str() {
        "none" => Ok(ToolPlan::default()),
        "auto" => Ok(ToolPlan {
            tools: tools.iter().map(tool_json).collect(),
            names,
            instruction: None,
            force: ToolForce::No,
        }),
        "required" => {
            if tools.is_empty() {
                return Err(ApiError::invalid_param(
                    "tool_choice",
                    "tool_choice 'required' needs at least one tool",
                ));
            }
            Ok(ToolPlan {
                tools: tools.iter().map(tool_json).collect(),
                names,
                instruction: Some("You must answer by calling one or more of the available functions with tool calls; do not answer in prose.".into()),
                force: ToolForce::Any,
            })
        }
        other => Err(ApiError::invalid_param(
            "tool_choice",
            format!("unknown tool_choice '{other}'; use none, auto, required or a named function"),
        )),
    }
}

fn tool_json(t: &Tool) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

/// The system instruction that asks for the response format (the grammar then
/// enforces it; the instruction keeps the model's own content sensible).
pub fn format_instruction(format: Option<&ResponseFormat>) -> Option<String> {
    match format? {
        ResponseFormat::Text => None,
        ResponseFormat::JsonObject => Some("Respond with a single valid JSON object and nothing else.".into()),
        ResponseFormat::JsonSchema { json_schema } => Some(match &json_schema.schema {
            Some(schema) => format!("Respond with a single valid JSON value that conforms to this JSON schema, and nothing else:\n{schema}"),
            None => "Respond with a single valid JSON value and nothing else.".into(),
        }),
    }
}

pub use tuneup_agent::toolcall::hermes_tool_prompt;

/// The text of a message's content (text parts joined by new lines); other part kinds are
/// refused naming `param`.
pub(crate) fn content_text(c: &Content, param: &str) -> Result<String, ApiError> {
    match c {
        Content::Text(s) => Ok(s.clone()),
        Content::Parts(parts) => {
            let mut out = Vec::new();
            for p in parts {
                match (p.kind.as_str(), &p.text) {
                    ("text", Some(t)) => out.push(t.clone()),
                    (kind, _) => {
                        return Err(ApiError::invalid_param(
                            param,
                            format!(
                                "content parts of type '{kind}' are not supported; only 'text'"
                            ),
                        ))
                    }
                }
            }
            Ok(out.join("\n"))
        }
    }
}

/// The messages as the chat template expects them (tool-call arguments as
/// objects), with `extra` appended to the system message (or sent as one).
pub fn template_messages(
    req: &ChatCompletionRequest,
    extra: &[String],
) -> Result<Vec<Value>, ApiError> {
    if req.messages.is_empty() {
        return Err(ApiError::invalid_param(
            "messages",
            "messages must not be empty",
        ));
    }
    let mut out = Vec::with_capacity(req.messages.len() + 1);
    for (i, m) in req.messages.iter().enumerate() {
        let param = format!("messages[{i}].content");
        let v = match m {
            ChatMessage::System { content } | ChatMessage::Developer { content } => {
                json!({"role": "system", "content": content_text(content, &param)?})
            }
            ChatMessage::User { content } => {
                json!({"role": "user", "content": content_text(content, &param)?})
            }
            ChatMessage::Assistant {
                content,
                tool_calls,
            } => {
                let text = match content {
                    Some(c) => content_text(c, &param)?,
                    None => String::new(),
                };
                let mut msg = json!({"role": "assistant", "content": text});
                if let Some(calls) = tool_calls.as_ref().filter(|c| !c.is_empty()) {
                    let calls: Vec<Value> = calls
                        .iter()
                        .map(|c| {
                            let args = match &c.function.arguments {
                                Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::String(s.clone())),
                                Some(v) => v.clone(),
                                None => json!({}),
                            };
                            json!({"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": args}})
                        })
                        .collect();
                    msg["tool_calls"] = Value::Array(calls);
                }
                msg
            }
            ChatMessage::Tool {
                content,
                tool_call_id,
            } => {
                json!({"role": "tool", "content": content_text(content, &param)?, "tool_call_id": tool_call_id})
            }
        };
        out.push(v);
    }
    if !extra.is_empty() {
        let add = extra.join("\n\n");
        match out.first_mut() {
            Some(first) if first["role"] == "system" => {
                let old = first["content"].as_str().unwrap_or_default().to_string();
                first["content"] = Value::String(if old.is_empty() {
                    add
                } else {
                    format!("{old}\n\n{add}")
                });
            }
            _ => out.insert(0, json!({"role": "system", "content": add})),
        }
    }
    Ok(out)
}
