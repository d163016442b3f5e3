//! The SQLite back-end: a read-only connection with the allow-list, the authorizer, a progress-handler timeout,
//! `SQLITE_LIMIT_LENGTH`, a heap limit and row and size caps.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rusqlite::limits::Limit;
use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::compare::{CellValue, Row};
use super::guard::{self, check_query, Dialect};
use super::judge::{evaluate, QueryRunner};
use super::ResultSize;
use super::{Comparison, QueryFailure, SqlErrorType, SqlEvalError, SqlLimits, SqlVerdict};

/// The hard heap limit set for SQLite when an evaluator opens (1 GiB): a query that needs more memory fails with
/// `SQLITE_NOMEM` ([`SqlErrorType::TooLarge`]) instead of exhausting the machine. It is process-wide
/// (`sqlite3_hard_heap_limit64`): a smaller limit set before is kept.
pub const SQLITE_HEAP_LIMIT: i64 = 1 << 30;

/// Lowers SQLite's process-wide hard heap limit to [`SQLITE_HEAP_LIMIT`] unless a smaller one is set.
fn limit_sqlite_heap() {
    // SAFETY: `sqlite3_hard_heap_limit64` only reads (-1) or sets a global integer under SQLite's own mutex.
    unsafe {
        let current = rusqlite::ffi::sqlite3_hard_heap_limit64(-1);
        if current <= 0 || current > SQLITE_HEAP_LIMIT {
            rusqlite::ffi::sqlite3_hard_heap_limit64(SQLITE_HEAP_LIMIT);
        }
    }
}

/// SQLite's current process-wide hard heap limit in bytes (0: none).
pub fn sqlite_heap_limit() -> i64 {
    // SAFETY: a negative argument only reads the limit.
    unsafe { rusqlite::ffi::sqlite3_hard_heap_limit64(-1) }
}

/// A read-only connection to one database that judges predictions against gold queries.
pub struct SqlEvaluator {
    connection: Connection,
    path: PathBuf,
    limits: SqlLimits,
    comparison: Comparison,
}

impl SqlEvaluator {
    /// Opens `path` read-only with the authorizer installed, `SQLITE_LIMIT_LENGTH` set to
    /// [`SqlLimits::max_cell_bytes`] and SQLite's heap limited ([`SQLITE_HEAP_LIMIT`]).
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
        let length = i32::try_from(limits.max_cell_bytes.max(1)).unwrap_or(i32::MAX);
        connection
            .set_limit(Limit::SQLITE_LIMIT_LENGTH, length)
            .map_err(|source| SqlEvalError::Guard {
                path: path.clone(),
                source,
            })?;
        limit_sqlite_heap();
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
        check_query(sql, Dialect::Sqlite)?;
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
        let result = read_rows(&self.connection, sql, &self.limits);
        let _ = self.connection.progress_handler(0, None::<fn() -> bool>);
        result.map_err(|failure| match failure {
            RowsError::Sqlite(e) => classify(&e, timed_out.load(Ordering::Relaxed), &self.limits),
            RowsError::NotReadOnly => QueryFailure {
                error_type: SqlErrorType::WriteRefused,
                message: "statement is not read-only (sqlite3_stmt_readonly)".into(),
            },
            RowsError::TooMany => QueryFailure {
                error_type: SqlErrorType::TooManyRows,
                message: format!("more than {} rows", self.limits.max_rows),
            },
            RowsError::TooLarge(failure) => failure,
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
    TooLarge(QueryFailure),
    NotReadOnly,
}

fn read_rows(
    connection: &Connection,
    sql: &str,
    limits: &SqlLimits,
) -> Result<Vec<Row>, RowsError> {
    let mut statement = connection.prepare(sql).map_err(RowsError::Sqlite)?;
    // Belt and braces: some statements (e.g. a bare REINDEX) never reach the authorizer.
    if !statement.readonly() {
        return Err(RowsError::NotReadOnly);
    }
    let columns = statement.column_count();
    let mut rows = statement.query([]).map_err(RowsError::Sqlite)?;
    let mut out = Vec::new();
    let mut size = ResultSize::new(limits);
    while let Some(row) = rows.next().map_err(RowsError::Sqlite)? {
        if out.len() == limits.max_rows {
            return Err(RowsError::TooMany);
        }
        let mut values = Vec::with_capacity(columns);
        for i in 0..columns {
            let value = row.get_ref(i).map_err(RowsError::Sqlite)?;
            let bytes = match value {
                rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => b.len(),
                _ => 8,
            };
            size.add(bytes).map_err(RowsError::TooLarge)?;
            values.push(CellValue::from_sqlite(value));
        }
        out.push(values);
    }
    Ok(out)
}

/// Sorts a SQLite error into an [`SqlErrorType`] by its code and message.
fn classify(error: &rusqlite::Error, timed_out: bool, limits: &SqlLimits) -> QueryFailure {
    let timeout = limits.timeout;
    let message = error.to_string();
    let code = error.sqlite_error_code();
    if timed_out || code == Some(ErrorCode::OperationInterrupted) {
        return QueryFailure {
            error_type: SqlErrorType::Timeout,
            message: format!("statement interrupted after {timeout:?} ({message})"),
        };
    }
    if matches!(code, Some(ErrorCode::TooBig | ErrorCode::OutOfMemory)) {
        return QueryFailure {
            error_type: SqlErrorType::TooLarge,
            message: format!(
                "{message} (values are limited to {} bytes by SQLITE_LIMIT_LENGTH, SQLite's memory to {} bytes)",
                limits.max_cell_bytes,
                sqlite_heap_limit()
            ),
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
