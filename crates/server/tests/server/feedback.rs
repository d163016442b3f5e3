//! Feedback storage: request bodies are kept only when capture is on, the database
//! is private, and ratings keep their scale so that one star exports as rejected.

use std::os::unix::fs::PermissionsExt;

use serde_json::{json, Value};

use crate::common::{start_tiny, TINY_ID};

fn chat(seed: u64) -> Value {
    json!({"model": TINY_ID, "messages": [{"role": "user", "content": "rate me"}],
           "max_tokens": 4, "temperature": 1.0, "seed": seed})
}

async fn answer_id(s: &crate::common::TestServer, http: &reqwest::Client, seed: u64) -> String {
    let v = s.post_json(http, "/v1/chat/completions", &chat(seed)).await;
    v["id"].as_str().unwrap().to_string()
}

async fn rate(s: &crate::common::TestServer, http: &reqwest::Client, body: Value) -> (u16, Value) {
    let r = s.post(http, "/v1/feedback", &body).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_not_stored_by_default_and_the_database_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fb.sqlite");
    let db_cfg = db.clone();
    let s = start_tiny(256, move |c| c.feedback_db = Some(db_cfg)).await;
    let http = reqwest::Client::new();
    let id = answer_id(&s, &http, 1).await;
    assert_eq!(
        rate(&s, &http, json!({"response_id": id, "rating": -1}))
            .await
            .0,
        201
    );
    s.stop().await;
    let mode = std::fs::metadata(&db).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "feedback database mode {mode:o}");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let stored: String = conn
        .query_row("SELECT request FROM responses WHERE id = ?1", [&id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        stored, "",
        "the request body was stored without --capture-requests"
    );
    let raw = std::fs::read(&db).unwrap();
    assert!(
        !String::from_utf8_lossy(&raw).contains("rate me"),
        "the prompt is on disk"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_star_is_negative_in_the_export() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fb.sqlite");
    let db_cfg = db.clone();
    let s = start_tiny(256, move |c| {
        c.feedback_db = Some(db_cfg);
        c.capture_requests = true;
    })
    .await;
    let http = reqwest::Client::new();
    let (good, bad) = (answer_id(&s, &http, 1).await, answer_id(&s, &http, 2).await);
    // A rating of 1 without a scale is ambiguous.
    let (status, v) = rate(&s, &http, json!({"response_id": bad, "rating": 1})).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["param"], "rating");
    let (status, _) = rate(
        &s,
        &http,
        json!({"response_id": bad, "rating": 7, "scale": "stars"}),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = rate(
        &s,
        &http,
        json!({"response_id": bad, "rating": 3, "scale": "thumbs"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        rate(
            &s,
            &http,
            json!({"response_id": bad, "rating": 1, "scale": "stars"})
        )
        .await
        .0,
        201
    );
    assert_eq!(
        rate(&s, &http, json!({"response_id": good, "rating": 5}))
            .await
            .0,
        201
    );
    s.stop().await;

    let store = tuneup_server::FeedbackStore::open(Some(&db), usize::MAX).unwrap();
    let records = store.export().unwrap();
    assert_eq!(records.len(), 2);
    let (pairs, summary) = tuneup_server::export::preferences(&records);
    assert_eq!(pairs.len(), 1, "{summary}");
    assert_eq!(pairs[0]["chosen_id"], good.as_str());
    assert_eq!(pairs[0]["rejected_id"], bad.as_str());
    assert_eq!(summary["negative"], 1, "{summary}");
    assert_eq!(summary["ratings"]["stars:1"], 1, "{summary}");
}
