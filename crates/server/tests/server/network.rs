//! Connection-level attacks with raw TCP clients: half a header and silence, a body
//! that never arrives, more connections than the cap.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::{start_tiny, TestServer};

fn addr(s: &TestServer) -> String {
    s.base.trim_start_matches("http://").to_string()
}

/// Writes `bytes` and waits (up to `patience`) for the server to answer or close;
/// returns what it sent and how long that took.
fn stall(addr: &str, bytes: &[u8], patience: Duration) -> (String, Duration) {
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(bytes).unwrap();
    c.set_read_timeout(Some(patience)).unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server kept the stalled connection open past {patience:?}: {e}"),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_and_slow_body_are_dropped() {
    let s = start_tiny(128, |c| {
        c.header_timeout = Duration::from_secs(1);
        c.body_timeout = Duration::from_secs(1);
    })
    .await;
    let a = addr(&s);
    let (said, took) = tokio::task::spawn_blocking(move || {
        stall(
            &a,
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le",
            Duration::from_secs(10),
        )
    })
    .await
    .unwrap();
    assert!(
        took < Duration::from_secs(5),
        "dropped after {took:?}: {said}"
    );
    let a = addr(&s);
    let head = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"model\":";
    let (said, took) =
        tokio::task::spawn_blocking(move || stall(&a, head.as_bytes(), Duration::from_secs(10)))
            .await
            .unwrap();
    assert!(took < Duration::from_secs(5), "dropped after {took:?}");
    assert!(said.starts_with("HTTP/1.1 408"), "{said}");
    assert!(said.contains("request_timeout"), "{said}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_for_a_free_one() {
    let s = start_tiny(128, |c| {
        c.max_connections = 2;
        c.header_timeout = Duration::from_secs(60);
    })
    .await;
    let a = addr(&s);
    let mut hogs: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut c = TcpStream::connect(&a).unwrap();
            c.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                .unwrap();
            c
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(800))
        .build()
        .unwrap();
    assert!(
        http.get(s.url("/health")).send().await.is_err(),
        "a third connection was served while two were open and the cap is 2"
    );
    hogs.pop();
    let r = reqwest::Client::new()
        .get(s.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(hogs);
    s.stop().await;
}

/// What a keyless server on loopback answers to `req` (status, error code).
async fn answer(req: reqwest::RequestBuilder) -> (u16, String) {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    (
        status,
        v["error"]["code"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_server_refuses_web_pages_and_rebound_hosts() {
    let s = start_tiny(128, |c| {
        c.allow_hosts = vec!["tuneup.internal".into()];
        c.allow_origins = vec!["https://app.example".into()];
    })
    .await;
    let http = reqwest::Client::new();
    let chat = s.url("/v1/chat/completions");
    let body =
        r#"{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}"#;
    let json_post = || {
        http.post(&chat)
            .header("content-type", "application/json")
            .body(body)
    };
    // DNS rebinding: evil.example resolves to 127.0.0.1, the browser sends its own name.
    assert_eq!(
        answer(json_post().header("host", "evil.example:8080")).await,
        (403, "host_not_allowed".into())
    );
    assert_eq!(
        answer(http.get(s.url("/v1/models")).header("host", "evil.example")).await,
        (403, "host_not_allowed".into())
    );
    // A page on another site posting with fetch(): JSON with its Origin.
    assert_eq!(
        answer(json_post().header("origin", "https://evil.example")).await,
        (403, "origin_not_allowed".into())
    );
    assert_eq!(
        answer(json_post().header("origin", "null")).await,
        (403, "origin_not_allowed".into())
    );
    // A CORS-simple request (no preflight): text/plain with a JSON body, no Origin check needed.
    assert_eq!(
        answer(
            http.post(&chat)
                .header("content-type", "text/plain")
                .body(body)
        )
        .await,
        (415, "unsupported_media_type".into())
    );
    assert_eq!(
        answer(
            http.post(&chat)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
        )
        .await
        .0,
        415
    );
    // What is configured or local is served.
    for req in [
        json_post(),
        json_post().header("host", "localhost:1234"),
        json_post().header("host", "tuneup.internal"),
        json_post().header("origin", "https://app.example"),
        json_post().header("origin", &s.base),
    ] {
        assert_eq!(answer(req).await.0, 200);
    }
    s.stop().await;

    // With an API key the checks are off (a browser cannot send the key without a preflight).
    let s = start_tiny(128, |c| c.api_key = Some("k".into())).await;
    let r = http
        .get(s.url("/v1/models"))
        .header("host", "api.example")
        .bearer_auth("k")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
}
