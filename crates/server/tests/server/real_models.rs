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

/// SmolLM2-135M rarely writes valid JSON or tool calls on its own; with
/// grammar-constrained decoding its answers always parse and match the schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smollm2_json_schema_and_forced_tool_calls_always_conform() {
    let Some(model) = env_model("TUNEUP_SMOLLM2_GGUF") else {
        return;
    };
    let s = start(model, "smollm2-135m", |_| {}).await;
    let http = reqwest::Client::new();
    let schema = json!({
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 40},
            "population_millions": {"type": "number"},
            "landmarks": {"type": "array", "items": {"type": "string", "maxLength": 40}, "maxItems": 3}
        },
        "required": ["city", "population_millions", "landmarks"],
        "additionalProperties": false
    });
    for (i, question) in ["Describe Paris.", "Tell me about Seoul in JSON.", "hello"]
        .iter()
        .enumerate()
    {
        let req = json!({
            "model": "smollm2-135m",
            "messages": [{"role": "user", "content": question}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
            "temperature": if i == 0 { 0.0 } else { 0.9 },
            "seed": i,
            "max_tokens": 200,
        });
        let r: Value = s.post_json(&http, "/v1/chat/completions", &req).await;
        assert_eq!(r["choices"][0]["finish_reason"], "stop", "{r}");
        let content = r["choices"][0]["message"]["content"].as_str().unwrap();
        let v: Value = serde_json::from_str(content).unwrap_or_else(|e| panic!("{e}: {content}"));
        assert!(
            v["city"].is_string() && v["population_millions"].is_number(),
            "{v}"
        );
        assert!(v["landmarks"].as_array().unwrap().len() <= 3, "{v}");
        assert_eq!(v.as_object().unwrap().len(), 3, "{v}");
    }
    // A named tool choice forces a call of that tool with valid arguments, even for a
    // question that has nothing to do with it (SmolLM2's template ignores tools, so
    // the Hermes <tool_call> form is used).
    let req = json!({
        "model": "smollm2-135m",
        "messages": [{"role": "user", "content": "What should I eat for lunch?"}],
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "parameters": {"type": "object",
                "properties": {"city": {"type": "string", "maxLength": 30}, "unit": {"enum": ["celsius", "fahrenheit"]}},
                "required": ["city", "unit"]}}},
            {"type": "function", "function": {"name": "other", "parameters": {"type": "object", "properties": {}}}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "temperature": 0,
        "max_tokens": 80,
    });
    let r: Value = s.post_json(&http, "/v1/chat/completions", &req).await;
    assert_eq!(r["choices"][0]["finish_reason"], "tool_calls", "{r}");
    let calls = r["choices"][0]["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{r}");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(args["city"].is_string(), "{args}");
    assert!(
        ["celsius", "fahrenheit"].contains(&args["unit"].as_str().unwrap()),
        "{args}"
    );
    // A schema llguidance cannot use is the client's error, not a crash.
    let bad = json!({
        "model": "smollm2-135m",
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "no-such-type"}}},
    });
    let resp = s.post(&http, "/v1/chat/completions", &bad).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"]["param"], "response_format.json_schema.schema",
        "{body}"
    );
    s.stop().await;
}
