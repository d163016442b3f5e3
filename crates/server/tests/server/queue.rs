//! The bounded queue (429), client disconnects, timeouts and graceful shutdown.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::common::{assert_openai_error, start_tiny, TINY_ID};

/// A request that keeps the worker busy for a while (long prompt, long answer).
fn slow(stream: bool) -> Value {
    json!({
        "model": TINY_ID,
        "messages": [{"role": "user", "content": "word ".repeat(500)}],
        "max_tokens": 1200,
        "temperature": 1.0,
        "seed": 3,
        "stream": stream,
    })
}

async fn metric(http: &reqwest::Client, url: &str, series: &str) -> f64 {
    let text = http.get(url).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_answers_429() {
    // One generation at a time: the others wait in (or overflow) the queue.
    let s = start_tiny(4096, |c| {
        c.queue_size = 1;
        c.max_batch = 1;
    })
    .await;
    let http = reqwest::Client::new();
    let url = s.url("/v1/chat/completions");
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                let r = http.post(url).json(&slow(false)).send().await.unwrap();
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        *by_status.entry(status).or_default() += 1;
        if status == 429 {
            assert_eq!(assert_openai_error(&body)["code"], "queue_full");
        }
    }
    assert!(
        by_status.get(&200).copied().unwrap_or(0) >= 1,
        "{by_status:?}"
    );
    assert!(
        by_status.get(&429).copied().unwrap_or(0) >= 1,
        "{by_status:?}"
    );
    assert_eq!(by_status.values().sum::<usize>(), 6, "{by_status:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_stream_cancels_generation() {
    let s = start_tiny(4096, |_| {}).await;
    let http = reqwest::Client::new();
    let resp = s.post(&http, "/v1/chat/completions", &slow(true)).await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("chat.completion.chunk"));
    drop(body);
    let metrics = s.url("/metrics");
    let start = Instant::now();
    while metric(
        &http,
        &metrics,
        "tuneup_errors_total{type=\"client_disconnected\"}",
    )
    .await
        < 1.0
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the generation was not cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        metric(&http, &metrics, "tuneup_requests_in_flight").await,
        0.0
    );
    let ok = s.post(&http, "/v1/chat/completions", &json!({"model": TINY_ID, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3})).await;
    assert_eq!(ok.status(), 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_is_504() {
    let s = start_tiny(4096, |c| c.request_timeout = Some(Duration::from_millis(1))).await;
    let http = reqwest::Client::new();
    let r = s.post(&http, "/v1/chat/completions", &slow(false)).await;
    assert_eq!(r.status(), 504);
    let v: Value = r.json().await.unwrap();
    assert_eq!(assert_openai_error(&v)["code"], "timeout");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_streams() {
    let s = start_tiny(4096, |_| {}).await;
    let http = reqwest::Client::new();
    let mut req = slow(true);
    req["max_tokens"] = json!(300);
    let resp = s.post(&http, "/v1/chat/completions", &req).await;
    assert_eq!(resp.status(), 200);
    let base = s.base.clone();
    s.stop_in_background();
    let text = resp.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    // New connections are refused once it has stopped.
    let start = Instant::now();
    while http.get(format!("{base}/health")).send().await.is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "still serving after shutdown"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Concurrent requests are decoded together (continuous batching), and each gets
/// exactly the answer it gets alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_decoding_steps_and_keep_their_answers() {
    let s = start_tiny(4096, |c| c.max_batch = 4).await;
    let http = reqwest::Client::new();
    let body = |i: usize| {
        json!({
            "model": TINY_ID,
            "prompt": format!("request number {i} says {}", "hello ".repeat(i)),
            "max_tokens": 40 + 10 * i,
            "temperature": if i.is_multiple_of(2) { 0.0 } else { 0.8 },
            "seed": i,
        })
    };
    let mut alone = Vec::new();
    for i in 0..6 {
        let r: Value = s.post_json(&http, "/v1/completions", &body(i)).await;
        alone.push(r["choices"][0]["text"].as_str().unwrap().to_string());
    }
    let steps_before = metric(&http, &s.url("/metrics"), "tuneup_decode_steps_total").await;
    let rows_before = metric(&http, &s.url("/metrics"), "tuneup_decode_rows_total").await;
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let (http, url, b) = (http.clone(), s.url("/v1/completions"), body(i));
            tokio::spawn(async move {
                let r: Value = http
                    .post(url)
                    .json(&b)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                r["choices"][0]["text"].as_str().unwrap().to_string()
            })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap(), alone[i], "request {i}");
    }
    let steps = metric(&http, &s.url("/metrics"), "tuneup_decode_steps_total").await - steps_before;
    let rows = metric(&http, &s.url("/metrics"), "tuneup_decode_rows_total").await - rows_before;
    assert!(
        rows / steps > 1.5,
        "mean batch {:.2} ({rows} rows in {steps} steps): requests were not batched",
        rows / steps
    );
    s.stop().await;
}
