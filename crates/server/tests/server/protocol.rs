//! Response shapes, streaming, text completions, models, health, feedback, metrics.

use serde_json::{json, Value};

use crate::common::{sse_chunks, start_tiny, TINY_ID};

fn chat(max_tokens: u64) -> Value {
    json!({
        "model": TINY_ID,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}],
        "max_tokens": max_tokens,
        "temperature": 0,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_completion_shape_usage_and_feedback() {
    let s = start_tiny(512, |_| {}).await;
    let http = reqwest::Client::new();
    let resp = s.post(&http, "/v1/chat/completions", &chat(8)).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], TINY_ID);
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(["stop", "length"].contains(&choice["finish_reason"].as_str().unwrap()));
    let u = &body["usage"];
    let completion = u["completion_tokens"].as_u64().unwrap();
    assert!(completion <= 8);
    assert!(u["prompt_tokens"].as_u64().unwrap() > 5);
    assert_eq!(
        u["total_tokens"].as_u64().unwrap(),
        u["prompt_tokens"].as_u64().unwrap() + completion
    );

    // Greedy decoding is deterministic (and the second run reuses the prompt cache).
    let again: Value = s.post_json(&http, "/v1/chat/completions", &chat(8)).await;
    assert_eq!(
        again["choices"][0]["message"]["content"],
        choice["message"]["content"]
    );
    assert!(
        again["usage"]["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );

    // Feedback on that response is stored; unknown ids and bad ratings are refused.
    let id = body["id"].as_str().unwrap();
    let fb = s
        .post(
            &http,
            "/v1/feedback",
            &json!({"response_id": id, "rating": 1, "comment": "nice"}),
        )
        .await;
    assert_eq!(fb.status(), 201);
    let fb = s
        .post(
            &http,
            "/v1/feedback",
            &json!({"response_id": "chatcmpl-nope", "rating": 5}),
        )
        .await;
    assert_eq!(fb.status(), 404);
    let fb = s
        .post(
            &http,
            "/v1/feedback",
            &json!({"response_id": id, "rating": 0}),
        )
        .await;
    assert_eq!(fb.status(), 400);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_chat_matches_non_streaming() {
    let s = start_tiny(512, |_| {}).await;
    let http = reqwest::Client::new();
    let full: Value = s.post_json(&http, "/v1/chat/completions", &chat(12)).await;
    let mut req = chat(12);
    req["stream"] = json!(true);
    req["stream_options"] = json!({"include_usage": true});
    let resp = s.post(&http, "/v1/chat/completions", &req).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let chunks = sse_chunks(&resp.text().await.unwrap());
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let id = &chunks[0]["id"];
    let mut text = String::new();
    let mut finish = None;
    for c in &chunks {
        assert_eq!(&c["id"], id);
        assert_eq!(c["object"], "chat.completion.chunk");
        if let Some(ch) = c["choices"].get(0) {
            text.push_str(ch["delta"]["content"].as_str().unwrap_or(""));
            if !ch["finish_reason"].is_null() {
                finish = ch["finish_reason"].as_str().map(String::from);
            }
        }
    }
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    for k in ["prompt_tokens", "completion_tokens", "total_tokens"] {
        assert_eq!(last["usage"][k], full["usage"][k], "{k}");
    }
    assert_eq!(
        Some(text.as_str()),
        full["choices"][0]["message"]["content"]
            .as_str()
            .or(Some(""))
    );
    assert_eq!(
        finish.as_deref(),
        full["choices"][0]["finish_reason"].as_str()
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_completions_models_health_metrics() {
    let s = start_tiny(512, |_| {}).await;
    let http = reqwest::Client::new();
    let body: Value = s.post_json(&http, "/v1/completions", &json!({"model": TINY_ID, "prompt": "def add(a, b):", "max_tokens": 5, "temperature": 0})).await;
    assert_eq!(body["object"], "text_completion");
    assert!(body["id"].as_str().unwrap().starts_with("cmpl-"));
    assert!(body["choices"][0]["text"].is_string());
    assert!(body["usage"]["completion_tokens"].as_u64().unwrap() <= 5);

    let resp = s.post(&http, "/v1/completions", &json!({"model": TINY_ID, "prompt": ["def add(a, b):"], "max_tokens": 5, "temperature": 0, "stream": true})).await;
    let chunks = sse_chunks(&resp.text().await.unwrap());
    let streamed: String = chunks
        .iter()
        .map(|c| c["choices"][0]["text"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(streamed, body["choices"][0]["text"].as_str().unwrap());

    let models: Value = http
        .get(s.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], TINY_ID);
    assert_eq!(
        http.get(s.url("/v1/models/tiny"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let health: Value = http
        .get(s.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");

    let _ = http
        .post(s.url("/v1/chat/completions"))
        .body("{")
        .send()
        .await
        .unwrap();
    let metrics = http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        "tuneup_requests_total{route=\"/v1/completions\",status=\"200\"} 2",
        "tuneup_requests_total{route=\"/v1/chat/completions\",status=\"400\"} 1",
        "tuneup_request_duration_seconds_bucket",
        "tuneup_time_to_first_token_seconds_bucket",
        "tuneup_generated_tokens_total",
        "tuneup_prompt_tokens_total",
        "tuneup_tokens_per_second",
        "tuneup_queue_depth 0",
        "tuneup_errors_total{type=\"invalid_request_error\"} 1",
    ] {
        assert!(metrics.contains(series), "missing {series} in\n{metrics}");
    }
    s.stop().await;
}
