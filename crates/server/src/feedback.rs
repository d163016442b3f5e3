//! The feedback store (SQLite): every response is kept (the last N without
//! feedback, all with feedback) so that a rating posted to `/v1/feedback` can be
//! tied to what was answered — and to what was asked, when request capture is on
//! (`--capture-requests`; off by default). The database file is private (0600).
//! `--feedback-db postgres://…` keeps them in PostgreSQL instead, shared by replicas
//! (see [`crate::feedback_pg`]).

use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};

/// Responses and ratings in one SQLite or PostgreSQL database.
#[derive(Debug)]
pub struct FeedbackStore {
    db: Db,
    keep: usize,
}

#[derive(Debug)]
enum Db {
    Sqlite(Mutex<Connection>),
    /// Boxed: a PostgreSQL client is far larger than a SQLite connection.
    Postgres(Box<crate::feedback_pg::PgFeedback>),
}

/// Why the feedback store failed.
#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    /// SQLite failed.
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed (the URL without its password).
    #[error("PostgreSQL {url}: {message}")]
    Postgres {
        /// The database URL, password removed.
        url: String,
        /// What went wrong.
        message: String,
    },
}

/// Whether `location` is a PostgreSQL URL rather than a file path.
pub fn is_postgres_url(location: &Path) -> bool {
    location
        .to_str()
        .is_some_and(|s| s.starts_with("postgres://") || s.starts_with("postgresql://"))
}

/// The scale of a rating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// -1 (down) or 1 (up).
    Thumbs,
    /// 1 to 5 stars.
    Stars,
}

impl Scale {
    /// The scale of `rating`: `scale` when given (checked against the rating), else
    /// inferred (-1 is thumbs, 2–5 are stars; 1 is ambiguous and needs `scale`).
    pub fn of(rating: i64, scale: Option<&str>) -> Result<Self, String> {
        let scale = match scale {
            Some("thumbs") => Scale::Thumbs,
            Some("stars") => Scale::Stars,
            Some(other) => return Err(format!("scale '{other}': expected 'thumbs' or 'stars'")),
            None if rating == -1 => Scale::Thumbs,
            None if (2..=5).contains(&rating) => Scale::Stars,
            None if rating == 1 => {
                return Err("rating 1 is ambiguous: send \"scale\": \"thumbs\" (thumbs up) or \"stars\" (one star)".into())
            }
            None => return Err(format!("rating {rating}: rating must be -1 or 1 (thumbs) or 1 to 5 (stars)")),
        };
        let valid = match scale {
            Scale::Thumbs => rating == -1 || rating == 1,
            Scale::Stars => (1..=5).contains(&rating),
        };
        if !valid {
            return Err(format!(
                "rating {rating} is not on the {} scale ({})",
                scale.name(),
                if scale == Scale::Thumbs {
                    "-1 or 1"
                } else {
                    "1 to 5"
                }
            ));
        }
        Ok(scale)
    }

    /// `thumbs` or `stars`, as stored.
    pub fn name(self) -> &'static str {
        match self {
            Scale::Thumbs => "thumbs",
            Scale::Stars => "stars",
        }
    }
}

/// A stored response.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    /// The response id (`chatcmpl-...` / `cmpl-...`).
    pub id: String,
    /// Served model id.
    pub model: String,
    /// The request body as received (empty unless request capture is on).
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
    /// `thumbs` or `stars` (`None` for ratings stored before scales were recorded).
    pub scale: Option<String>,
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
    scale TEXT,
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
    /// Opens (creating) the SQLite database at `path`, the PostgreSQL database when
    /// `path` is a `postgres://` URL (blocking: call it off the async runtime), or an
    /// in-memory one; keeps the last `keep` responses that have no feedback.
    pub fn open(path: Option<&Path>, keep: usize) -> Result<Self, FeedbackError> {
        let keep = keep.clamp(1, i64::MAX as usize);
        if let Some(url) = path.filter(|p| is_postgres_url(p)).and_then(Path::to_str) {
            return Ok(Self {
                db: Db::Postgres(Box::new(crate::feedback_pg::PgFeedback::open(url)?)),
                keep,
            });
        }
        let conn = match path {
            Some(p) => {
                if let Some(dir) = p.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                make_private(p).map_err(|e| {
                    rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                        Some(format!("making {} private (0600): {e}", p.display())),
                    )
                })?;
                Connection::open(p)?
            }
            None => Connection::open_in_memory()?,
        };
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        let has_scale = conn
            .prepare("SELECT 1 FROM pragma_table_info('feedback') WHERE name = 'scale'")?
            .exists([])?;
        if !has_scale {
            conn.execute_batch("ALTER TABLE feedback ADD COLUMN scale TEXT")?;
        }
        Ok(Self {
            db: Db::Sqlite(Mutex::new(conn)),
            keep,
        })
    }

    fn sqlite(conn: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
        conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a response and forgets the oldest ones beyond the limit.
    pub fn put_response(&self, r: &StoredResponse) -> Result<(), FeedbackError> {
        let conn = match &self.db {
            Db::Sqlite(c) => Self::sqlite(c),
            Db::Postgres(pg) => return pg.put_response(r, now(), self.keep as i64),
        };
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
        scale: Scale,
        comment: Option<&str>,
    ) -> Result<Option<i64>, FeedbackError> {
        let conn = match &self.db {
            Db::Sqlite(c) => Self::sqlite(c),
            Db::Postgres(pg) => return pg.add_feedback(response_id, rating, scale, comment, now()),
        };
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
            "INSERT INTO feedback (response_id, rating, scale, comment, created) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![response_id, rating, scale.name(), comment, now()],
        )?;
        Ok(Some(conn.last_insert_rowid()))
    }

    /// Every feedback row with its request and response, oldest first.
    pub fn export(&self) -> Result<Vec<FeedbackRecord>, FeedbackError> {
        let conn = match &self.db {
            Db::Sqlite(c) => Self::sqlite(c),
            Db::Postgres(pg) => return pg.export(),
        };
        let mut stmt = conn.prepare(
            "SELECT f.id, f.response_id, f.rating, f.scale, f.comment, f.created, r.request, r.response
             FROM feedback f JOIN responses r ON r.id = f.response_id ORDER BY f.id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(FeedbackRecord {
                id: r.get(0)?,
                response_id: r.get(1)?,
                rating: r.get(2)?,
                scale: r.get(3)?,
                comment: r.get(4)?,
                created: r.get(5)?,
                request: r.get(6)?,
                response: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Number of stored responses.
    pub fn response_count(&self) -> Result<usize, FeedbackError> {
        let conn = match &self.db {
            Db::Sqlite(c) => Self::sqlite(c),
            Db::Postgres(pg) => return pg.response_count(),
        };
        Ok(conn
            .query_row("SELECT COUNT(*) FROM responses", [], |r| r.get::<_, i64>(0))
            .map(|n| n as usize)?)
    }
}

/// Creates `path` readable and writable by its owner only, or narrows an existing
/// file to that (SQLite gives its journal and WAL files the database's mode).
fn make_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
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
        assert_eq!(
            s.add_feedback("a", 1, Scale::Thumbs, Some("good")).unwrap(),
            Some(1)
        );
        for id in ["b", "c", "d"] {
            s.put_response(&resp(id)).unwrap();
        }
        // "a" is kept for its feedback, "b" is forgotten, "c" and "d" are recent.
        assert_eq!(s.response_count().unwrap(), 3);
        assert_eq!(s.add_feedback("b", 1, Scale::Thumbs, None).unwrap(), None);
        assert!(s
            .add_feedback("d", -1, Scale::Thumbs, None)
            .unwrap()
            .is_some());
        let rows = s.export().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].response, "answer a");
        assert_eq!(rows[1].rating, -1);
    }
}
