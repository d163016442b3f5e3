//! Server-sent events: a task produces `data:` events into a channel; the
//! response streams them. When the client goes away the channel closes, the
//! task stops, and dropping its event receiver cancels the generation.

use std::convert::Infallible;

use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::engine::{Event, Finished};
use crate::error::ApiError;

/// The sending side of an SSE response.
#[derive(Debug, Clone)]
pub struct SseSender(mpsc::Sender<SseEvent>);

impl SseSender {
    /// Sends one JSON `data:` event; false when the client is gone.
    pub async fn json(&self, v: &Value) -> bool {
        self.0
            .send(SseEvent::default().data(v.to_string()))
            .await
            .is_ok()
    }

    /// Sends `data: [DONE]`.
    pub async fn done(&self) -> bool {
        self.0
            .send(SseEvent::default().data("[DONE]"))
            .await
            .is_ok()
    }

    /// Resolves when the client has gone away.
    pub async fn closed(&self) {
        self.0.closed().await
    }
}

/// A channel and the streaming response that drains it.
pub fn sse_channel() -> (SseSender, Response) {
    let (tx, rx) = mpsc::channel::<SseEvent>(64);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    (SseSender(tx), Sse::new(stream).into_response())
}

/// The next worker event, or `None` when the client has gone away first.
pub async fn next_event(
    events: &mut mpsc::UnboundedReceiver<Event>,
    client: &SseSender,
) -> Option<Event> {
    tokio::select! {
        e = events.recv() => Some(e.unwrap_or_else(|| Event::Failed("the model worker stopped".into()))),
        _ = client.closed() => None,
    }
}

/// Waits for the whole generation (non-streaming requests).
pub async fn collect(events: &mut mpsc::UnboundedReceiver<Event>) -> Result<Finished, ApiError> {
    loop {
        match events.recv().await {
            Some(Event::Text(_)) => {}
            Some(Event::Done(f)) if f.timed_out => return Err(timeout_error()),
            Some(Event::Done(f)) => return Ok(f),
            Some(Event::Failed(msg)) => {
                return Err(ApiError::internal(format!("generation failed: {msg}")))
            }
            None => return Err(ApiError::internal("the model worker stopped")),
        }
    }
}

/// The error of a request that ran past `--request-timeout`.
pub fn timeout_error() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::GATEWAY_TIMEOUT,
        "timeout_error",
        "the request ran past the server's request timeout",
    )
    .with_code("timeout")
}
