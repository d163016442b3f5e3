//! OpenAI request bodies as serde types. Unknown fields are ignored (clients
//! send many); every field a client may send as `null` is an `Option`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatCompletionRequest {
    /// The model id (must be the served one).
    pub model: String,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Stream chunks as server-sent events.
    pub stream: Option<bool>,
    /// Streaming options.
    pub stream_options: Option<StreamOptions>,
    /// Sampling temperature (0–2; 0 = greedy).
    pub temperature: Option<f32>,
    /// Nucleus sampling mass (0–1].
    pub top_p: Option<f32>,
    /// Most tokens to generate (deprecated name).
    pub max_tokens: Option<u64>,
    /// Most tokens to generate.
    pub max_completion_tokens: Option<u64>,
    /// Stop string(s).
    pub stop: Option<Stop>,
    /// Random seed.
    pub seed: Option<i64>,
    /// Number of choices (only 1).
    pub n: Option<u32>,
    /// Tools the model may call.
    pub tools: Option<Vec<Tool>>,
    /// Whether and which tool to call.
    pub tool_choice: Option<ToolChoice>,
    /// Whether the model may make several tool calls in one answer (default true).
    pub parallel_tool_calls: Option<bool>,
    /// Output format.
    pub response_format: Option<ResponseFormat>,
    /// Presence penalty (-2–2).
    pub presence_penalty: Option<f32>,
    /// Frequency penalty (-2–2).
    pub frequency_penalty: Option<f32>,
    /// Log-probabilities (not supported: only `false`).
    pub logprobs: Option<bool>,
    /// Extension (as vLLM / llama-server): top-k (0 = off).
    pub top_k: Option<u32>,
    /// Extension: min-p (0 = off).
    pub min_p: Option<f32>,
    /// Extension: repetition penalty (1 = off).
    pub repetition_penalty: Option<f32>,
    /// Key/value pairs about the request; a task model reads `db_id` (the database a question is about).
    pub metadata: Option<serde_json::Map<String, Value>>,
}

/// `stream_options`.
#[derive(Debug, Clone, Deserialize)]
pub struct StreamOptions {
    /// Send usage in a final chunk.
    pub include_usage: Option<bool>,
}

/// One message of a conversation.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum ChatMessage {
    /// Instructions.
    System {
        /// Text.
        content: Content,
    },
    /// Instructions (newer name of `system`).
    Developer {
        /// Text.
        content: Content,
    },
    /// The user.
    User {
        /// Text.
        content: Content,
    },
    /// An earlier answer, possibly with tool calls.
    Assistant {
        /// Text (may be null with tool calls).
        content: Option<Content>,
        /// Tool calls it made.
        tool_calls: Option<Vec<ToolCallIn>>,
    },
    /// A tool's result.
    Tool {
        /// The result.
        content: Content,
        /// The call it answers.
        tool_call_id: Option<String>,
    },
}

/// Message content: a string or a list of parts.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Content parts (only `text` parts are supported).
    Parts(Vec<ContentPart>),
}

/// One content part.
#[derive(Debug, Clone, Deserialize)]
pub struct ContentPart {
    /// Part type (`text`; images are not supported).
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a `text` part.
    pub text: Option<String>,
}

/// A tool call in an assistant message of the history.
#[derive(Debug, Clone, Deserialize)]
pub struct ToolCallIn {
    /// Call id.
    pub id: Option<String>,
    /// The call.
    pub function: FunctionCallIn,
}

/// The function of a tool call in the history.
#[derive(Debug, Clone, Deserialize)]
pub struct FunctionCallIn {
    /// Function name.
    pub name: String,
    /// Arguments: a JSON string (OpenAI) or an object.
    pub arguments: Option<Value>,
}

/// A declared tool.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Tool {
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function.
    pub function: FunctionDef,
}

/// A declared function.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FunctionDef {
    /// Name.
    pub name: String,
    /// What it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON schema of the arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
}

/// `tool_choice`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice {
    /// `none`, `auto` or `required`.
    Mode(String),
    /// `{"type": "function", "function": {"name": ...}}`.
    Named {
        /// The function to call.
        function: NamedFunction,
    },
}

/// The function of a named `tool_choice`.
#[derive(Debug, Clone, Deserialize)]
pub struct NamedFunction {
    /// Name.
    pub name: String,
}

/// `response_format`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Free text.
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// The schema.
        json_schema: JsonSchemaFormat,
    },
}

/// `response_format.json_schema`.
#[derive(Debug, Clone, Deserialize)]
pub struct JsonSchemaFormat {
    /// Schema name.
    pub name: Option<String>,
    /// The schema.
    pub schema: Option<Value>,
}

/// `stop`: one string or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl Stop {
    /// The strings, empty ones dropped.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s],
            Stop::Many(v) => v,
        }
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect()
    }
}

/// `POST /v1/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    /// The model id.
    pub model: String,
    /// The text to continue: a string or a list holding one string.
    pub prompt: Prompt,
    /// Most tokens to generate (default 16, as OpenAI).
    pub max_tokens: Option<u64>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Nucleus sampling mass.
    pub top_p: Option<f32>,
    /// Stop string(s).
    pub stop: Option<Stop>,
    /// Random seed.
    pub seed: Option<i64>,
    /// Number of choices (only 1).
    pub n: Option<u32>,
    /// Stream chunks.
    pub stream: Option<bool>,
    /// Streaming options.
    pub stream_options: Option<StreamOptions>,
    /// Echo the prompt before the completion.
    pub echo: Option<bool>,
    /// Presence penalty.
    pub presence_penalty: Option<f32>,
    /// Frequency penalty.
    pub frequency_penalty: Option<f32>,
    /// Log-probabilities (not supported).
    pub logprobs: Option<Value>,
    /// Extension: top-k.
    pub top_k: Option<u32>,
    /// Extension: min-p.
    pub min_p: Option<f32>,
    /// Extension: repetition penalty.
    pub repetition_penalty: Option<f32>,
}

/// A completion prompt.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    /// One text.
    Text(String),
    /// A batch of texts (only one is supported).
    Batch(Vec<String>),
}

/// `POST /v1/feedback`.
#[derive(Debug, Clone, Deserialize)]
pub struct FeedbackRequest {
    /// The `id` of a response this server gave.
    pub response_id: String,
    /// -1 / 1 (thumbs) or 1–5 (stars).
    pub rating: i64,
    /// `thumbs` or `stars`; needed for a rating of 1, inferred otherwise.
    pub scale: Option<String>,
    /// Free text.
    pub comment: Option<String>,
}
