//! A panic in the model worker: the worker restarts and serves the next requests, and
//! `/health` reports it; after repeated panics the server stops with an error and
//! `/health` answers 503 until it has stopped. The panic is injected (`ServerConfig::fault_injection`):
//! no request can make the worker panic otherwise.

use std::time::Duration;

use serde_json::{json, Value};
use tuneup_server::engine::PanicOnMaxTokens;

use crate::common::{start_tiny, TINY_ID};

fn chat(max_tokens: u64) -> Value {
    json!({"model": TINY_ID, "messages": [{"role": "user", "content": "hi"}], "max_tokens": max_tokens})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_panics_are_recovered_then_fatal() {
    let s = start_tiny(128, |c| c.fault_injection = PanicOnMaxTokens(Some(13))).await;
    let http = reqwest::Client::new();
    let r = s.post(&http, "/v1/chat/completions", &chat(13)).await;
    assert_eq!(r.status(), 500, "the request the worker died on fails");
    // The worker was restarted: the next request is served and /health says so.
    let r = s.post(&http, "/v1/chat/completions", &chat(3)).await;
    assert_eq!(r.status(), 200);
    let h = http.get(s.url("/health")).send().await.unwrap();
    assert_eq!(h.status(), 200);
    let h: Value = h.json().await.unwrap();
    assert_eq!(h["worker_restarts"], 1, "{h}");
    assert!(
        h["last_panic"].as_str().unwrap().contains("injected"),
        "{h}"
    );

    // Two more panics within a minute: the worker gives up, /health is 503 and the
    // server ends with an error (the CLI exits non-zero).
    for _ in 0..2 {
        let r = s.post(&http, "/v1/chat/completions", &chat(13)).await;
        assert_eq!(r.status(), 500);
    }
    let health = s.url("/health");
    let err = s.exited(Duration::from_secs(10)).await.unwrap_err();
    assert!(err.to_string().contains("panicked"), "{err}");
    // Nothing answers for the dead worker any more (a supervisor restarts the process).
    assert!(http.get(&health).send().await.is_err());
}
