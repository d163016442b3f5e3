//! Response bodies in OpenAI's exact shapes.

use serde_json::{json, Value};
use tuneup_generate::GenerationStats;

use crate::toolcall::{new_call_id, ParsedCall};

/// `usage` of a generation.
pub fn usage(s: &GenerationStats) -> Value {
    json!({
        "prompt_tokens": s.prompt_tokens,
        "completion_tokens": s.completion_tokens,
        "total_tokens": s.prompt_tokens + s.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": s.cached_prompt_tokens},
    })
}

/// OpenAI `tool_calls` entries (with fresh ids); `index` is set for stream deltas.
pub fn tool_calls(calls: &[ParsedCall], with_index: bool) -> Vec<Value> {
    calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut v = json!({
                "id": new_call_id(),
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            });
            if with_index {
                v["index"] = json!(i);
            }
            v
        })
        .collect()
}

/// Identity of one response.
#[derive(Debug, Clone)]
pub struct Ident {
    /// `chatcmpl-...` or `cmpl-...`.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// Served model id.
    pub model: String,
}

/// A `chat.completion`.
pub fn chat_completion(
    ident: &Ident,
    content: Option<&str>,
    calls: &[ParsedCall],
    finish: &str,
    stats: &GenerationStats,
) -> Value {
    let mut message = json!({"role": "assistant", "content": content, "refusal": null});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls(calls, false));
    }
    json!({
        "id": ident.id,
        "object": "chat.completion",
        "created": ident.created,
        "model": ident.model,
        "system_fingerprint": null,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": usage(stats),
    })
}

/// A `chat.completion.chunk` with one choice.
pub fn chat_chunk(ident: &Ident, delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": ident.id,
        "object": "chat.completion.chunk",
        "created": ident.created,
        "model": ident.model,
        "system_fingerprint": null,
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
    })
}

/// The final usage chunk (`stream_options.include_usage`): no choices.
pub fn usage_chunk(ident: &Ident, object: &str, stats: &GenerationStats) -> Value {
    json!({
        "id": ident.id,
        "object": object,
        "created": ident.created,
        "model": ident.model,
        "system_fingerprint": null,
        "choices": [],
        "usage": usage(stats),
    })
}

/// A `text_completion` (also its stream chunks, with `usage` left out).
pub fn text_completion(
    ident: &Ident,
    text: &str,
    finish: Option<&str>,
    stats: Option<&GenerationStats>,
) -> Value {
    let mut v = json!({
        "id": ident.id,
        "object": "text_completion",
        "created": ident.created,
        "model": ident.model,
        "system_fingerprint": null,
        "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}],
    });
    if let Some(s) = stats {
        v["usage"] = usage(s);
    }
    v
}
