//! Malformed, hostile and unauthorized requests: always OpenAI-style 4xx, never a crash.

use serde_json::{json, Value};

use crate::common::{assert_openai_error, start_tiny, TINY_ID};

async fn post_raw(
    http: &reqwest::Client,
    url: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let resp = http
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    assert_openai_error(&v);
    (status, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_openai_errors() {
    let s = start_tiny(128, |c| c.max_body_bytes = 64 * 1024).await;
    let http = reqwest::Client::new();
    let chat = s.url("/v1/chat/completions");
    let msgs = json!([{"role": "user", "content": "hi"}]);
    let cases: Vec<(&str, String, u16, Option<&str>)> = vec![
        ("invalid JSON", "{\"model\": ".into(), 400, None),
        ("empty body", "".into(), 400, None),
        ("not an object", "[1, 2]".into(), 400, None),
        ("missing messages", json!({"model": TINY_ID}).to_string(), 400, None),
        ("wrong type", json!({"model": TINY_ID, "messages": msgs, "temperature": "hot"}).to_string(), 400, Some("temperature")),
        ("negative max_tokens", json!({"model": TINY_ID, "messages": msgs, "max_tokens": -5}).to_string(), 400, Some("max_tokens")),
        ("zero max_tokens", json!({"model": TINY_ID, "messages": msgs, "max_tokens": 0}).to_string(), 400, Some("max_tokens")),
        ("bad role", json!({"model": TINY_ID, "messages": [{"role": "wizard", "content": "x"}]}).to_string(), 400, None),
        ("empty messages", json!({"model": TINY_ID, "messages": []}).to_string(), 400, Some("messages")),
        ("n=2", json!({"model": TINY_ID, "messages": msgs, "n": 2}).to_string(), 400, Some("n")),
        ("temperature range", json!({"model": TINY_ID, "messages": msgs, "temperature": 7}).to_string(), 400, Some("temperature")),
        ("image part", json!({"model": TINY_ID, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}).to_string(), 400, None),
        ("unknown tool_choice", json!({"model": TINY_ID, "messages": msgs, "tool_choice": "sometimes"}).to_string(), 400, Some("tool_choice")),
        ("unknown model", json!({"model": "gpt-9", "messages": msgs}).to_string(), 404, Some("model")),
        ("prompt too long", json!({"model": TINY_ID, "messages": [{"role": "user", "content": "word ".repeat(400)}]}).to_string(), 400, Some("messages")),
        ("oversized body", json!({"model": TINY_ID, "messages": [{"role": "user", "content": "x".repeat(100_000)}]}).to_string(), 413, None),
    ];
    for (what, body, status, param) in cases {
        let (got, v) = post_raw(&http, &chat, body).await;
        assert_eq!(got, status, "{what}: {v}");
        if let Some(p) = param {
            assert_eq!(v["error"]["param"], p, "{what}: {v}");
        }
    }
    let (_, v) = post_raw(
        &http,
        &chat,
        json!({"model": "gpt-9", "messages": msgs}).to_string(),
    )
    .await;
    assert_eq!(v["error"]["code"], "model_not_found");
    let long =
        json!({"model": TINY_ID, "messages": [{"role": "user", "content": "word ".repeat(400)}]});
    let (_, v) = post_raw(&http, &chat, long.to_string()).await;
    assert_eq!(v["error"]["code"], "context_length_exceeded");

    // A huge max_tokens is clamped to the room the context leaves.
    let resp: Value = http
        .post(&chat)
        .json(&json!({"model": TINY_ID, "messages": [{"role": "user", "content": "word ".repeat(8)}], "max_tokens": 1_000_000_000_000u64, "temperature": 0}))
        .send().await.unwrap().json().await.unwrap();
    let u = &resp["usage"];
    assert!(u["total_tokens"].as_u64().unwrap() <= 128, "{resp}");

    // Unknown routes and wrong methods.
    let r = http.get(s.url("/v1/nothing")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_openai_error(&r.json().await.unwrap());
    let r = http.get(&chat).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_openai_error(&r.json().await.unwrap());
    let (status, _) = post_raw(
        &http,
        &s.url("/v1/completions"),
        json!({"model": TINY_ID, "prompt": 5}).to_string(),
    )
    .await;
    assert_eq!(status, 400);

    // Still serving.
    let ok = http
        .post(&chat)
        .json(&json!({"model": TINY_ID, "messages": msgs, "max_tokens": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_is_required_when_set() {
    let s = start_tiny(128, |c| c.api_key = Some("sekret".into())).await;
    let http = reqwest::Client::new();
    let r = http.get(s.url("/v1/models")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(assert_openai_error(&v)["code"], "invalid_api_key");
    let r = http
        .get(s.url("/v1/models"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(s.url("/v1/models"))
        .bearer_auth("sekret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        http.get(s.url("/health")).send().await.unwrap().status(),
        200
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_loopback_host_needs_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let model = crate::common::tiny_model(dir.path(), 64);
    let mut cfg = tuneup_server::ServerConfig::new(TINY_ID);
    cfg.host = "0.0.0.0".into();
    cfg.port = 0;
    let err = tuneup_server::Server::bind(model, cfg).await.unwrap_err();
    assert!(err.to_string().contains("--api-key"), "{err}");
}
