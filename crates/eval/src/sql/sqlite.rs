//! The SQLite back-end: a read-only connection with the authorizer, a progress-handler timeout and a row cap.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::compare::{CellValue, Row};
use super::judge::{evaluate, QueryRunner};
use super::{guard, Comparison, QueryFailure, SqlErrorType, SqlEvalError, SqlLimits, SqlVerdict};

/// A read-only connection to one database that judges predictions against gold queries.
pub struct SqlEvaluator {
    connection: Connection,
    path: PathBuf,
    limits: SqlLimits,
    comparison: Comparison,
}

impl SqlEvaluator {
    /// Opens `path` read-only with the authorizer installed.
    pub fn open(path: impl AsRef<Path>, limits: SqlLimits) -> Result<Self, SqlEvalError> {
        let path = path.as_ref().to_path_buf();
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        // Opening never creates a file in read-only mode; check first for a clearer message than SQLite's.
        if !path.is_file() {
            let source = rusqlite::Error::InvalidPath(path.clone());
            return Err(SqlEvalError::Open { path, source });
        }
        let mut connection =
            Connection::open_with_flags(&path, flags).map_err(|source| SqlEvalError::Open {
                path: path.clone(),
                source,
            })?;
        connection
            .authorizer(Some(guard::authorize))
            .map_err(|source| SqlEvalError::Guard {
                path: path.clone(),
                source,
            })?;
        Ok(Self {
            connection,
            path,
            limits,
            comparison: Comparison::Strict,
        })
    }

    /// Uses `comparison` for later [`evaluate`](Self::evaluate) calls.
    pub fn with_comparison(mut self, comparison: Comparison) -> Self {
        self.comparison = comparison;
        self
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs one query under the guards and returns its normalized rows.
    pub fn run(&mut self, sql: &str) -> Result<Vec<Row>, QueryFailure> {
        if sql.trim().is_empty() {
            return Err(QueryFailure {
                error_type: SqlErrorType::Syntax,
                message: "empty query".into(),
            });
        }
        let timed_out = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + self.limits.timeout;
        let flag = Arc::clone(&timed_out);
        let handler = move || {
            let late = Instant::now() >= deadline;
            if late {
                flag.store(true, Ordering::Relaxed);
            }
            late
        };
        if let Err(e) = self.connection.progress_handler(1000, Some(handler)) {
            return Err(QueryFailure {
                error_type: SqlErrorType::Execution,
                message: e.to_string(),
            });
        }
        let result = read_rows(&self.connection, sql, self.limits.max_rows);
        let _ = self.connection.progress_handler(0, None::<fn() -> bool>);
        result.map_err(|failure| match failure {
            RowsError::Sqlite(e) => {
                classify(&e, timed_out.load(Ordering::Relaxed), self.limits.timeout)
            }
            RowsError::NotReadOnly => QueryFailure {
                error_type: SqlErrorType::WriteRefused,
                message: "statement is not read-only (sqlite3_stmt_readonly)".into(),
            },
            RowsError::TooMany => QueryFailure {
                error_type: SqlErrorType::TooManyRows,
                message: format!("more than {} rows", self.limits.max_rows),
            },
        })
    }

    /// Judges `predicted` against `gold`. Errors only when the gold query fails.
    pub fn evaluate(&mut self, predicted: &str, gold: &str) -> Result<SqlVerdict, SqlEvalError> {
        let comparison = self.comparison;
        evaluate(self, comparison, predicted, gold)
    }
}

impl QueryRunner for SqlEvaluator {
    fn run_query(&mut self, sql: &str) -> Result<Result<Vec<Row>, QueryFailure>, SqlEvalError> {
        Ok(self.run(sql))
    }

    fn database(&self) -> String {
        self.path.display().to_string()
    }
}

/// Opens `database` and judges one prediction; see [`SqlEvaluator`] to judge many on the same database.
pub fn execution_match(
    database: impl AsRef<Path>,
    predicted: &str,
    gold: &str,
    limits: SqlLimits,
) -> Result<SqlVerdict, SqlEvalError> {
    SqlEvaluator::open(database, limits)?.evaluate(predicted, gold)
}

enum RowsError {
    Sqlite(rusqlite::Error),
    TooMany,
    NotReadOnly,
}

fn read_rows(connection: &Connection, sql: &str, max_rows: usize) -> Result<Vec<Row>, RowsError> {
    let mut statement = connection.prepare(sql).map_err(RowsError::Sqlite)?;
    // Belt and braces: some statements (e.g. a bare REINDEX) never reach the authorizer.
    if !statement.readonly() {
        return Err(RowsError::NotReadOnly);
    }
    let columns = statement.column_count();
    let mut rows = statement.query([]).map_err(RowsError::Sqlite)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(RowsError::Sqlite)? {
        if out.len() == max_rows {
            return Err(RowsError::TooMany);
        }
        let mut values = Vec::with_capacity(columns);
        for i in 0..columns {
            values.push(CellValue::from_sqlite(
                row.get_ref(i).map_err(RowsError::Sqlite)?,
            ));
        }
        out.push(values);
    }
    Ok(out)
}

/// Sorts a SQLite error into an [`SqlErrorType`] by its code and message.
fn classify(error: &rusqlite::Error, timed_out: bool, timeout: Duration) -> QueryFailure {
    let message = error.to_string();
    let code = error.sqlite_error_code();
    if timed_out || code == Some(ErrorCode::OperationInterrupted) {
        return QueryFailure {
            error_type: SqlErrorType::Timeout,
            message: format!("statement interrupted after {timeout:?} ({message})"),
        };
    }
    let refused = matches!(
        code,
        Some(ErrorCode::AuthorizationForStatementDenied | ErrorCode::ReadOnly)
    ) || message.contains("not authorized");
    let syntax = ["syntax error", "incomplete input", "unrecognized token"]
        .iter()
        .any(|m| message.contains(m));
    let error_type = if refused {
        SqlErrorType::WriteRefused
    } else if message.contains("no such table") {
        SqlErrorType::UnknownTable
    } else if message.contains("no such column") {
        SqlErrorType::UnknownColumn
    } else if syntax {
        SqlErrorType::Syntax
    } else {
        // Unknown functions, misused aggregates, several statements, ...
        SqlErrorType::Execution
    };
    QueryFailure {
        error_type,
        message,
    }
}
