//! Two replicas, one PostgreSQL feedback database (`TUNEUP_TEST_POSTGRES_URL`; skipped
//! without it): a rating sent to the replica that did not give the answer is stored.

use std::path::PathBuf;

use serde_json::json;

use crate::common::{start_tiny, TINY_ID};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_feedback_through_postgres() {
    let Some(url) = tuneup_test_utils::postgres_test_url() else {
        return;
    };
    let location = PathBuf::from(&url);
    let (l1, l2) = (location.clone(), location.clone());
    let a = start_tiny(256, move |c| c.feedback_db = Some(l1)).await;
    let b = start_tiny(256, move |c| c.feedback_db = Some(l2)).await;
    let http = reqwest::Client::new();
    let answer = a
        .post_json(
            &http,
            "/v1/chat/completions",
            &json!({"model": TINY_ID, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}),
        )
        .await;
    let id = answer["id"].as_str().unwrap().to_string();
    // The answer is stored off the request path: wait until replica B can see it.
    let mut status = 0;
    for _ in 0..50 {
        let r = b
            .post(
                &http,
                "/v1/feedback",
                &json!({"response_id": id, "rating": 2, "comment": "from replica b"}),
            )
            .await;
        status = r.status().as_u16();
        if status != 404 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, 201, "feedback sent to the other replica");
    a.stop().await;
    b.stop().await;

    let records = tokio::task::spawn_blocking(move || {
        tuneup_server::FeedbackStore::open(Some(&location), usize::MAX)
            .unwrap()
            .export()
            .unwrap()
    })
    .await
    .unwrap();
    let mine: Vec<_> = records.iter().filter(|r| r.response_id == id).collect();
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0].rating, 2);
    assert_eq!(mine[0].scale.as_deref(), Some("stars"));
    assert_eq!(mine[0].comment.as_deref(), Some("from replica b"));
    assert_eq!(mine[0].request, "", "request capture is off by default");
}
