//! The databases `sql_execution` judges on: SQLite files under `db_dir`, or a PostgreSQL server at `db_url`.
//!
//! PostgreSQL rule: when the URL holds `{db_id}`, it is replaced by the example's `db_id` (one database per
//! example database, `search_path` left alone); otherwise every example runs on the one URL with `search_path`
//! set to the schema named by its `db_id` (as `tuneup eval load-postgres` creates them). One connection is kept
//! per resolved URL; a URL that could not be reached is not tried again, and its examples are unjudgeable.

use std::collections::HashMap;
use std::path::PathBuf;

use tuneup_eval::sql::postgres::{redact_url, PgEvaluator, RolePolicy};
use tuneup_eval::sql::{QueryFailure, Row, SqlEvalError, SqlEvaluator, SqlLimits, SqlVerdict};

use crate::dataset::database_path;

/// The placeholder replaced by the example's `db_id` in `db_url`.
pub const DB_ID_PLACEHOLDER: &str = "{db_id}";

/// Where the example databases are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseSource {
    /// SQLite files: `{dir}/{db_id}/{db_id}.sqlite` (or `{dir}/{db_id}.sqlite`).
    SqliteDir(PathBuf),
    /// A PostgreSQL URL (environment already expanded).
    Postgres(String),
}

enum Open {
    Sqlite(SqlEvaluator),
    Postgres(Box<PgEvaluator>),
}

/// Open databases, one per SQLite file or PostgreSQL URL.
pub struct Databases {
    source: DatabaseSource,
    limits: SqlLimits,
    roles: RolePolicy,
    open: HashMap<String, Open>,
    /// Connection failures (and refused roles) by key, not retried.
    failed: HashMap<String, Failed>,
}

/// Why a database could not be opened, kept so it is not tried again.
enum Failed {
    Connect(String),
    PrivilegedRole { role: String, why: String },
}

impl Databases {
    /// Databases from `source`, queried under `limits`; PostgreSQL roles are checked under `roles`.
    pub fn new(source: DatabaseSource, limits: SqlLimits, roles: RolePolicy) -> Self {
        Self {
            source,
            limits,
            roles,
            open: HashMap::new(),
            failed: HashMap::new(),
        }
    }

    /// Opens (or connects to) the database of `db_id` and checks that its schema exists. The error's message
    /// names the database (file, or URL with the password redacted).
    pub fn open(&mut self, db_id: &str) -> Result<(), SqlEvalError> {
        self.get(db_id).map(|_| ())
    }

    /// Judges `predicted` against `gold` on the database of `db_id`.
    pub fn evaluate(
        &mut self,
        db_id: &str,
        predicted: &str,
        gold: &str,
    ) -> Result<SqlVerdict, SqlEvalError> {
        match self.get(db_id)? {
            Open::Sqlite(ev) => ev.evaluate(predicted, gold),
            Open::Postgres(pg) => pg.evaluate(predicted, gold),
        }
    }

    /// Runs `sql` on the database of `db_id` under the same read-only guard and limits as [`Self::evaluate`]:
    /// the outer error when the database cannot be reached, the inner one when the query fails.
    pub fn run(
        &mut self,
        db_id: &str,
        sql: &str,
    ) -> Result<Result<Vec<Row>, QueryFailure>, SqlEvalError> {
        match self.get(db_id)? {
            Open::Sqlite(ev) => Ok(ev.run(sql)),
            Open::Postgres(pg) => pg.run(sql),
        }
    }

    /// The open database of `db_id`, with its schema selected.
    fn get(&mut self, db_id: &str) -> Result<&mut Open, SqlEvalError> {
        let (key, schema) = match &self.source {
            DatabaseSource::SqliteDir(dir) => (
                database_path(dir, db_id).to_string_lossy().into_owned(),
                None,
            ),
            DatabaseSource::Postgres(url) if url.contains(DB_ID_PLACEHOLDER) => {
                (url.replace(DB_ID_PLACEHOLDER, db_id), None)
            }
            DatabaseSource::Postgres(url) => (url.clone(), Some(db_id)),
        };
        if let Some(failed) = self.failed.get(&key) {
            let url = redact_url(&key);
            return Err(match failed {
                Failed::Connect(message) => SqlEvalError::Connect {
                    url,
                    message: message.clone(),
                },
                Failed::PrivilegedRole { role, why } => SqlEvalError::PrivilegedRole {
                    url,
                    role: role.clone(),
                    why: why.clone(),
                },
            });
        }
        if !self.open.contains_key(&key) {
            let opened = match &self.source {
                DatabaseSource::SqliteDir(_) => {
                    SqlEvaluator::open(PathBuf::from(&key), self.limits).map(Open::Sqlite)
                }
                DatabaseSource::Postgres(_) => PgEvaluator::connect(&key, self.limits, self.roles)
                    .map(|pg| Open::Postgres(Box::new(pg))),
            };
            match opened {
                Ok(db) => {
                    self.open.insert(key.clone(), db);
                }
                Err(err) => {
                    match &err {
                        SqlEvalError::Connect { message, .. } => {
                            self.failed.insert(key, Failed::Connect(message.clone()));
                        }
                        SqlEvalError::PrivilegedRole { role, why, .. } => {
                            let (role, why) = (role.clone(), why.clone());
                            self.failed
                                .insert(key, Failed::PrivilegedRole { role, why });
                        }
                        _ => {}
                    }
                    return Err(err);
                }
            }
        }
        let db = self
            .open
            .get_mut(&key)
            .ok_or_else(|| SqlEvalError::Connect {
                url: redact_url(&key),
                message: "not open".into(),
            })?;
        if let Open::Postgres(pg) = db {
            pg.use_schema(schema)?;
        }
        Ok(db)
    }
}
