//! Resource limits attacked for real: huge stop lists, absurd `max_tokens`, and
//! many parallel long generations against the KV-cache budget.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{assert_openai_error, start, start_tiny, tiny_model, TINY_ID};

fn chat(extra: Value) -> Value {
    let mut body = json!({
        "model": TINY_ID,
        "messages": [{"role": "user", "content": "hello there"}],
        "temperature": 1.0,
        "seed": 7,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_lists_are_capped_like_openai() {
    let s = start_tiny(4096, |_| {}).await;
    let http = reqwest::Client::new();
    // The attack of the issue: a hundred 40 KB stop strings (4 MB, under the body limit).
    let huge: Vec<String> = (0..100)
        .map(|i| format!("{i}{}", "z".repeat(40_000)))
        .collect();
    let cases = [
        (
            "a hundred 40 KB stop strings",
            json!({"stop": huge, "max_tokens": 4}),
            "at most 4",
        ),
        (
            "five stop strings",
            json!({"stop": ["a", "b", "c", "d", "e"]}),
            "at most 4",
        ),
        (
            "one 257-byte stop string",
            json!({"stop": "s".repeat(257)}),
            "256 bytes",
        ),
    ];
    for (what, extra, says) in cases {
        for path in ["/v1/chat/completions", "/v1/completions"] {
            let mut body = chat(extra.clone());
            if path == "/v1/completions" {
                body["prompt"] = json!("hello");
            }
            let r = s.post(&http, path, &body).await;
            assert_eq!(r.status(), 400, "{what} on {path}");
            let v: Value = r.json().await.unwrap();
            let e = assert_openai_error(&v);
            assert_eq!(e["param"], "stop", "{what}: {v}");
            assert!(e["message"].as_str().unwrap().contains(says), "{what}: {v}");
        }
    }
    // Four stop strings of 256 bytes are fine.
    let ok: Vec<String> = (0..4).map(|i| format!("{i}{}", "q".repeat(255))).collect();
    let r = s
        .post(
            &http,
            "/v1/chat/completions",
            &chat(json!({"stop": ok, "max_tokens": 8})),
        )
        .await;
    assert_eq!(r.status(), 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_tokens_is_capped_by_the_server() {
    let s = start_tiny(4096, |c| c.max_tokens_cap = 6).await;
    let http = reqwest::Client::new();
    for extra in [
        json!({}),
        json!({"max_tokens": 1_000_000}),
        json!({"max_completion_tokens": 3000}),
    ] {
        let v = s
            .post_json(&http, "/v1/chat/completions", &chat(extra.clone()))
            .await;
        let n = v["usage"]["completion_tokens"].as_u64().unwrap();
        assert!(n <= 6, "{extra}: {n} tokens generated: {v}");
    }
    let v = s
        .post_json(
            &http,
            "/v1/completions",
            &json!({"model": TINY_ID, "prompt": "hello", "max_tokens": 500, "temperature": 1.0}),
        )
        .await;
    assert!(
        v["usage"]["completion_tokens"].as_u64().unwrap() <= 6,
        "{v}"
    );
    s.stop().await;
}

async fn gauge(http: &reqwest::Client, url: &str, series: &str) -> f64 {
    let text = http.get(url).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_budget_holds_parallel_long_generations_back() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), 4096);
    let c = model.model.decoder.config();
    let per_token = (c.num_layers * 2 * c.num_kv_heads * c.head_dim * 4) as u64;
    // A short prompt with max_tokens 400 reserves a 512-position cache; the budget fits two.
    let one = 512 * per_token;
    let budget = 2 * one + one / 2;
    let s = start(model, TINY_ID, |c| {
        c.kv_budget_bytes = Some(budget);
        c.max_batch = 8;
    })
    .await;
    let http = reqwest::Client::new();
    // One request that alone exceeds the budget is refused at once.
    let r = s
        .post(
            &http,
            "/v1/chat/completions",
            &chat(json!({"max_tokens": 4000})),
        )
        .await;
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await.unwrap();
    assert_eq!(assert_openai_error(&v)["code"], "kv_budget_exceeded", "{v}");

    let url = s.url("/v1/chat/completions");
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                let body = chat(json!({"max_tokens": 400, "seed": i}));
                http.post(url)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let metrics = s.url("/metrics");
    let (mut most_running, mut most_reserved) = (0.0f64, 0.0f64);
    while !tasks.iter().all(|t| t.is_finished()) {
        most_running = most_running.max(gauge(&http, &metrics, "tuneup_requests_in_flight ").await);
        most_reserved =
            most_reserved.max(gauge(&http, &metrics, "tuneup_kv_reserved_bytes ").await);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for t in tasks {
        assert_eq!(
            t.await.unwrap(),
            200,
            "requests over the budget wait, they are not refused"
        );
    }
    assert!(
        most_running <= 2.0,
        "{most_running} generations ran together; the budget fits 2"
    );
    assert!(
        most_reserved > 0.0 && most_reserved <= budget as f64,
        "reserved {most_reserved} of {budget}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preprocessing_is_bounded_and_overflow_gets_429() {
    // Template rendering and tokenizing of a 1 MB message take a while; with one
    // preparation slot and no queue, a burst of them must be refused with 429 instead of
    // each taking a blocking thread.
    let s = start_tiny(256, |c| {
        c.prep_workers = 1;
        c.prep_queue = 0;
        c.max_body_bytes = 2 << 20;
    })
    .await;
    let http = reqwest::Client::new();
    let body = json!({"model": TINY_ID, "messages": [{"role": "user", "content": "many words ".repeat(100_000)}]});
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let (http, url, body) = (http.clone(), s.url("/v1/chat/completions"), body.clone());
            tokio::spawn(async move {
                let r = http.post(url).json(&body).send().await.unwrap();
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut by_code = std::collections::BTreeMap::<String, usize>::new();
    for t in tasks {
        let (status, v) = t.await.unwrap();
        let code = assert_openai_error(&v)["code"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match status {
            429 => assert_eq!(code, "prep_queue_full", "{v}"),
            400 => assert_eq!(code, "context_length_exceeded", "{v}"),
            other => panic!("unexpected {other}: {v}"),
        }
        *by_code.entry(code).or_default() += 1;
    }
    assert!(
        by_code.get("prep_queue_full").copied().unwrap_or(0) >= 1,
        "{by_code:?}"
    );
    assert!(
        by_code.get("context_length_exceeded").copied().unwrap_or(0) >= 1,
        "{by_code:?}"
    );
    s.stop().await;
}
