//! The real SmolLM2-135M and Qwen2.5-Coder-0.5B behind the server
//! (`TUNEUP_SMOLLM2_GGUF`, `TUNEUP_QWEN_GGUF`; skipped with a message when unset
//! unless `TUNEUP_REQUIRE_MODELS=1`).

use serde_json::{json, Value};

use crate::common::{env_model, sse_chunks, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smollm2_chat_and_stream() {
    let Some(model) = env_model("TUNEUP_SMOLLM2_GGUF") else {
        return;
    };
    let s = start(model, "smollm2-135m", |_| {}).await;
    let http = reqwest::Client::new();
    let req = json!({
        "model": "smollm2-135m",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_tokens": 24,
        "temperature": 0,
    });
    let full: Value = s.post_json(&http, "/v1/chat/completions", &req).await;
    let text = full["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!text.trim().is_empty(), "{full}");
    assert!(
        full["usage"]["prompt_tokens"].as_u64().unwrap() > 10,
        "{full}"
    );
    let mut sreq = req.clone();
    sreq["stream"] = json!(true);
    let body = s
        .post(&http, "/v1/chat/completions", &sreq)
        .await
        .text()
        .await
        .unwrap();
    let streamed: String = sse_chunks(&body)
        .iter()
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert_eq!(streamed, text);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qwen_calls_the_weather_tool() {
    let Some(model) = env_model("TUNEUP_QWEN_GGUF") else {
        return;
    };
    let s = start(model, "qwen2.5-coder-0.5b", |_| {}).await;
    let http = reqwest::Client::new();
    let req = json!({
        "model": "qwen2.5-coder-0.5b",
        "messages": [{"role": "user", "content": "서울 날씨 어때?"}],
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "Get the current weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
        "temperature": 0,
        "max_tokens": 64,
    });
    let r: Value = s.post_json(&http, "/v1/chat/completions", &req).await;
    let choice = &r["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{r}");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(args["city"].is_string(), "{r}");
    s.stop().await;
}
