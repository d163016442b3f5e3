//! The feedback store (SQLite): every response is kept (the last N without
//! feedback, all with feedback) with its request, so that a rating posted to
//! `/v1/feedback` can be tied to what was asked and answered.

use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};

/// Responses and ratings in one SQLite database.
#[derive(Debug)]
pub struct FeedbackStore {
    conn: Mutex<Connection>,
    keep: usize,
}

/// A stored response.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    /// The response id (`chatcmpl-...` / `cmpl-...`).
    pub id: String,
    /// Served model id.
    pub model: String,
    /// The request body as received.
    pub request: String,
    /// The answer text (tool calls as JSON).
    pub response: String,
}

/// One feedback row joined with its response, as exported.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FeedbackRecord {
    /// Feedback row id.
    pub id: i64,
    /// The response rated.
    pub response_id: String,
    /// The rating.
    pub rating: i64,
    /// The comment.
    pub comment: Option<String>,
    /// Unix seconds.
    pub created: i64,
    /// The request body.
    pub request: String,
    /// The answer.
    pub response: String,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS responses (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    response TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    response_id TEXT NOT NULL REFERENCES responses(id),
    rating INTEGER NOT NULL,
    comment TEXT,
    created INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_response ON feedback(response_id);
";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl FeedbackStore {
    /// Opens (creating) the database at `path`, or an in-memory one; keeps
    /// the last `keep` responses that have no feedback.
    pub fn open(path: Option<&Path>, keep: usize) -> rusqlite::Result<Self> {
        let conn = match path {
            Some(p) => {
                if let Some(dir) = p.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                Connection::open(p)?
            }
            None => Connection::open_in_memory()?,
        };
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
            keep: keep.clamp(1, i64::MAX as usize),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a response and forgets the oldest ones beyond the limit.
    pub fn put_response(&self, r: &StoredResponse) -> rusqlite::Result<()> {
        let conn = self.lock();
        conn.execute(
            "INSERT OR REPLACE INTO responses (id, created, model, request, response) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![r.id, now(), r.model, r.request, r.response],
        )?;
        conn.execute(
            "DELETE FROM responses WHERE seq <= (SELECT MAX(seq) FROM responses) - ?1
             AND id NOT IN (SELECT response_id FROM feedback)",
            params![self.keep as i64],
        )?;
        Ok(())
    }

    /// Records a rating; `None` when the response is unknown (never given or forgotten).
    pub fn add_feedback(
        &self,
        response_id: &str,
        rating: i64,
        comment: Option<&str>,
    ) -> rusqlite::Result<Option<i64>> {
        let conn = self.lock();
        let known: Option<i64> = conn
            .query_row(
                "SELECT seq FROM responses WHERE id = ?1",
                params![response_id],
                |r| r.get(0),
            )
            .optional()?;
        if known.is_none() {
            return Ok(None);
        }
        conn.execute(
            "INSERT INTO feedback (response_id, rating, comment, created) VALUES (?1, ?2, ?3, ?4)",
            params![response_id, rating, comment, now()],
        )?;
        Ok(Some(conn.last_insert_rowid()))
    }

    /// Every feedback row with its request and response, oldest first.
    pub fn export(&self) -> rusqlite::Result<Vec<FeedbackRecord>> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT f.id, f.response_id, f.rating, f.comment, f.created, r.request, r.response
             FROM feedback f JOIN responses r ON r.id = f.response_id ORDER BY f.id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(FeedbackRecord {
                id: r.get(0)?,
                response_id: r.get(1)?,
                rating: r.get(2)?,
                comment: r.get(3)?,
                created: r.get(4)?,
                request: r.get(5)?,
                response: r.get(6)?,
            })
        })?;
        rows.collect()
    }

    /// Number of stored responses.
    pub fn response_count(&self) -> rusqlite::Result<usize> {
        self.lock()
            .query_row("SELECT COUNT(*) FROM responses", [], |r| r.get::<_, i64>(0))
            .map(|n| n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(id: &str) -> StoredResponse {
        StoredResponse {
            id: id.into(),
            model: "m".into(),
            request: "{}".into(),
            response: format!("answer {id}"),
        }
    }

    #[test]
    fn keeps_rated_and_recent_responses() {
        let s = FeedbackStore::open(None, 2).unwrap();
        s.put_response(&resp("a")).unwrap();
        assert_eq!(s.add_feedback("a", 1, Some("good")).unwrap(), Some(1));
        for id in ["b", "c", "d"] {
            s.put_response(&resp(id)).unwrap();
        }
        // "a" is kept for its feedback, "b" is forgotten, "c" and "d" are recent.
        assert_eq!(s.response_count().unwrap(), 3);
        assert_eq!(s.add_feedback("b", 1, None).unwrap(), None);
        assert!(s.add_feedback("d", -1, None).unwrap().is_some());
        let rows = s.export().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].response, "answer a");
        assert_eq!(rows[1].rating, -1);
    }
}
