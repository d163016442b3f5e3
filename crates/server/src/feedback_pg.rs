//! The feedback store on PostgreSQL (`--feedback-db postgres://…`), so that replicas
//! behind a load balancer share responses and ratings: feedback sent to any replica
//! finds the response another one gave. Same tables as the SQLite store, prefixed
//! `tuneup_`; connections as `psql` takes them (`sslmode`, `sslrootcert`).

use std::sync::Mutex;

use postgres::Client;
use tuneup_eval::sql::postgres::{redact_url, PgTarget};

use crate::feedback::{FeedbackError, FeedbackRecord, Scale, StoredResponse};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tuneup_responses (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    created BIGINT NOT NULL,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    response TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tuneup_feedback (
    id BIGSERIAL PRIMARY KEY,
    response_id TEXT NOT NULL REFERENCES tuneup_responses(id),
    rating BIGINT NOT NULL,
    scale TEXT,
    comment TEXT,
    created BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS tuneup_feedback_response ON tuneup_feedback(response_id);
";

/// Serialises schema creation between replicas starting together.
const SCHEMA_LOCK: i64 = 0x7475_6e65_7570_6662;

/// One connection, reopened when it breaks.
pub(crate) struct PgFeedback {
    target: PgTarget,
    url: String,
    /// `None` after a failed reconnection.
    client: Mutex<Option<Client>>,
}

impl Drop for PgFeedback {
    /// The blocking client runs its own runtime, which must not be shut down on an
    /// async thread: there, it is closed on a thread of its own.
    fn drop(&mut self) {
        let client = self
            .client
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if client.is_some() && tokio::runtime::Handle::try_current().is_ok() {
            let _ = std::thread::spawn(move || drop(client)).join();
        }
    }
}

impl std::fmt::Debug for PgFeedback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgFeedback")
            .field("url", &redact_url(&self.url))
            .finish_non_exhaustive()
    }
}

fn pg_error(url: &str, e: postgres::Error) -> FeedbackError {
    FeedbackError::Postgres {
        url: redact_url(url),
        message: tuneup_eval::sql::postgres::error_chain(&e),
    }
}

impl PgFeedback {
    /// Connects (blocking) and creates the tables when missing.
    pub fn open(url: &str) -> Result<Self, FeedbackError> {
        let target = PgTarget::parse(url).map_err(|message| FeedbackError::Postgres {
            url: redact_url(url),
            message,
        })?;
        let mut client = target.connect().map_err(|e| pg_error(url, e))?;
        let mut tx = client.transaction().map_err(|e| pg_error(url, e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .map_err(|e| pg_error(url, e))?;
        tx.batch_execute(SCHEMA).map_err(|e| pg_error(url, e))?;
        tx.commit().map_err(|e| pg_error(url, e))?;
        Ok(Self {
            target,
            url: url.to_string(),
            client: Mutex::new(Some(client)),
        })
    }

    /// Runs `f` on the connection, reconnecting first when it has closed.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, FeedbackError> {
        let mut slot = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_none_or(Client::is_closed) {
            *slot = None;
            *slot = Some(self.target.connect().map_err(|e| pg_error(&self.url, e))?);
        }
        let client = slot.as_mut().expect("connected above");
        f(client).map_err(|e| pg_error(&self.url, e))
    }

    /// Stores a response; forgets the oldest beyond `keep` that have no feedback.
    pub fn put_response(
        &self,
        r: &StoredResponse,
        now: i64,
        keep: i64,
    ) -> Result<(), FeedbackError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO tuneup_responses (id, created, model, request, response) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (id) DO UPDATE SET created = EXCLUDED.created, model = EXCLUDED.model,
                 request = EXCLUDED.request, response = EXCLUDED.response",
                &[&r.id, &now, &r.model, &r.request, &r.response],
            )?;
            c.execute(
                "DELETE FROM tuneup_responses WHERE seq <= (SELECT MAX(seq) FROM tuneup_responses) - $1
                 AND id NOT IN (SELECT response_id FROM tuneup_feedback)",
                &[&keep],
            )?;
            Ok(())
        })
    }

    /// Records a rating; `None` when the response is unknown.
    pub fn add_feedback(
        &self,
        response_id: &str,
        rating: i64,
        scale: Scale,
        comment: Option<&str>,
        now: i64,
    ) -> Result<Option<i64>, FeedbackError> {
        self.with(|c| {
            let row = c.query_opt(
                "INSERT INTO tuneup_feedback (response_id, rating, scale, comment, created)
                 SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM tuneup_responses WHERE id = $1)
                 RETURNING id",
                &[&response_id, &rating, &scale.name(), &comment, &now],
            )?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    /// Every rating with its response, oldest first.
    pub fn export(&self) -> Result<Vec<FeedbackRecord>, FeedbackError> {
        self.with(|c| {
            let rows = c.query(
                "SELECT f.id, f.response_id, f.rating, f.scale, f.comment, f.created, r.request, r.response
                 FROM tuneup_feedback f JOIN tuneup_responses r ON r.id = f.response_id ORDER BY f.id",
                &[],
            )?;
            Ok(rows
                .iter()
                .map(|r| FeedbackRecord {
                    id: r.get(0),
                    response_id: r.get(1),
                    rating: r.get(2),
                    scale: r.get(3),
                    comment: r.get(4),
                    created: r.get(5),
                    request: r.get(6),
                    response: r.get(7),
                })
                .collect())
        })
    }

    /// Number of stored responses.
    pub fn response_count(&self) -> Result<usize, FeedbackError> {
        self.with(|c| {
            let n: i64 = c
                .query_one("SELECT COUNT(*) FROM tuneup_responses", &[])?
                .get(0);
            Ok(n as usize)
        })
    }
}
