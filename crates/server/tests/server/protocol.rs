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
            &json!({"response_id": id, "rating": 1, "scale": "thumbs", "comment": "nice"}),
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

    let models = s.get_json(&http, "/v1/models").await;
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
        .header("content-type", "application/json")
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

/// Decodes standard base64 (test helper).
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let mut out = Vec::new();
    for quad in text.as_bytes().chunks(4) {
        let pad = quad.iter().filter(|&&c| c == b'=').count();
        let n = quad
            .iter()
            .filter(|&&c| c != b'=')
            .fold(0u32, |acc, &c| acc << 6 | value(c))
            << (6 * pad);
        out.extend(&n.to_be_bytes()[1..4 - pad]);
    }
    out
}

/// `/v1/embeddings` with the real all-MiniLM-L6-v2 (skipped without it): OpenAI's response shape, float and
/// base64 encodings that agree, the model listed, and OpenAI-style errors for bad requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_endpoint() {
    let Some(dir) = crate::common::minilm_dir() else {
        return;
    };
    let dir_tmp = tempfile::tempdir().unwrap();
    let model = crate::common::tiny_model(dir_tmp.path(), 256);
    let embedder = tuneup_retrieval::embed::Embedder::load(&dir, "all-minilm-l6-v2").unwrap();
    let server = crate::common::start_with_embedder(model, TINY_ID, Some(embedder)).await;
    let http = reqwest::Client::new();
    let question = "How do I reset my password?";
    let body = server
        .post_json(
            &http,
            "/v1/embeddings",
            &json!({"model": "all-minilm-l6-v2", "input": [question, "a cat"]}),
        )
        .await;
    assert_eq!(body["object"], "list", "{body}");
    assert_eq!(body["model"], "all-minilm-l6-v2");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["index"], 1);
    let first: Vec<f32> = serde_json::from_value(data[0]["embedding"].clone()).unwrap();
    assert_eq!(first.len(), 384);
    let norm: f32 = first.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4);
    assert!(
        body["usage"]["prompt_tokens"].as_u64().unwrap() >= 10,
        "{body}"
    );
    // base64 carries the same little-endian floats.
    let b64 = server
        .post_json(
            &http,
            "/v1/embeddings",
            &json!({"model": "all-minilm-l6-v2", "input": question, "encoding_format": "base64"}),
        )
        .await;
    let bytes = decode_base64(b64["data"][0]["embedding"].as_str().unwrap());
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(decoded.len(), 384);
    for (a, b) in decoded.iter().zip(&first) {
        assert!((a - b).abs() < 1e-6);
    }
    // Listed beside the chat model.
    let models = server.get_json(&http, "/v1/models").await;
    assert!(
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "all-minilm-l6-v2"),
        "{models}"
    );
    // Bad requests get OpenAI's error JSON.
    for (bad, param) in [
        (json!({"model": "all-minilm-l6-v2", "input": []}), "input"),
        (
            json!({"model": "all-minilm-l6-v2", "input": [[1, 2, 3]]}),
            "input",
        ),
        (
            json!({"model": "all-minilm-l6-v2", "input": "x", "encoding_format": "hex"}),
            "encoding_format",
        ),
        (
            json!({"model": "all-minilm-l6-v2", "input": "x", "dimensions": 8}),
            "dimensions",
        ),
        (
            json!({"model": "text-embedding-3-small", "input": "x"}),
            "model",
        ),
    ] {
        let resp = server.post(&http, "/v1/embeddings", &bad).await;
        assert!(resp.status().is_client_error(), "{bad}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            crate::common::assert_openai_error(&body)["param"],
            param,
            "{body}"
        );
    }
    server.stop().await;
}

/// Without `--embedder` the endpoint says how to enable it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_without_a_model_is_a_clear_404() {
    let server = crate::common::start_tiny(256, |_| {}).await;
    let http = reqwest::Client::new();
    let resp = server
        .post(
            &http,
            "/v1/embeddings",
            &json!({"model": "x", "input": "hello"}),
        )
        .await;
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--embedder"),
        "{body}"
    );
    server.stop().await;
}
