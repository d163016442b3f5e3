//! Chat templates (minijinja with tuneup's Python-compatible filters): any template text compiles and
//! renders to a string or an error, within the fuel limit, for a fixed conversation with a tool call.
//! Input: the template, optionally followed by a NUL byte and a JSON array of messages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use tuneup_tokenize::ChatTemplate;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (template, messages) = match text.split_once('\0') {
        Some((t, m)) => match serde_json::from_str::<Vec<Value>>(m) {
            Ok(messages) => (t, messages),
            Err(_) => return,
        },
        None => (
            text,
            vec![
                json!({"role": "system", "content": "be brief"}),
                json!({"role": "user", "content": "서울 날씨 어때?"}),
                json!({"role": "assistant", "content": null, "tool_calls": [
                    {"type": "function", "function": {"name": "weather", "arguments": {"city": "Seoul"}}}]}),
                json!({"role": "tool", "content": "{\"temp\": 21}"}),
            ],
        ),
    };
    let tools = [json!({"type": "function", "function": {"name": "weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}})];
    if let Ok(t) = ChatTemplate::new(template, "<s>", "</s>") {
        let _ = t.with_fixed_time(0).render(&messages, Some(&tools), true);
    }
});
