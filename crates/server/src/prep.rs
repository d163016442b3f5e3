//! CPU work done on request threads before a request reaches the model worker
//! (template rendering, tokenizing, grammar compilation, embeddings): bounded, so a
//! flood of requests cannot occupy every blocking thread. At most `workers` jobs run;
//! up to `queue` more wait; beyond that a request gets 429 `prep_queue_full`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// The bounded pool of preprocessing jobs.
#[derive(Debug)]
pub struct PrepPool {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    workers: usize,
    queue: usize,
}

/// Decrements the waiting count when a waiter leaves (served or cancelled).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl PrepPool {
    /// A pool running at most `workers` jobs with `queue` more waiting.
    pub fn new(workers: usize, queue: usize) -> Self {
        let workers = workers.max(1);
        Self {
            permits: Arc::new(Semaphore::new(workers)),
            waiting: AtomicUsize::new(0),
            workers,
            queue,
        }
    }

    /// Runs `job` (`what` names it in errors) on a blocking thread once a slot is
    /// free; 429 when `queue` requests are already waiting.
    pub async fn run<T: Send + 'static>(
        &self,
        what: &str,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    return Err(ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limit_error",
                        format!(
                            "the server is busy preparing other requests ({} running, {} waiting); retry later",
                            self.workers, self.queue
                        ),
                    )
                    .with_code("prep_queue_full"));
                }
                let _waiting = Waiting(&self.waiting);
                Arc::clone(&self.permits)
                    .acquire_owned()
                    .await
                    .map_err(|_| ApiError::internal("the preprocessing pool is closed"))?
            }
        };
        // The permit lives as long as the work, even when the client has gone.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job()
        })
        .await
        .map_err(|e| ApiError::internal(format!("{what} panicked: {e}")))
    }
}
