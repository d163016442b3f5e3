//! SQL execution accuracy on SQLite.
//!
//! The predicted and gold queries run on the same database and their results are compared as multisets of rows,
//! in order when the gold query has a top-level `ORDER BY` ([`has_top_level_order_by`]); values are normalized by
//! [`CellValue`] (`1 == 1.0`, text exact, `NULL == NULL`). Column order matters ([`Comparison::Strict`], the
//! default). [`Comparison::SpiderOfficial`] reproduces the extra rules of Spider's official execution evaluation
//! instead (column permutations, DISTINCT removed, `order by` anywhere).
//!
//! Model-written SQL runs under three guards: the database is opened with `SQLITE_OPEN_READ_ONLY`, an authorizer
//! ([`guard::authorize`]) refuses writes, ATTACH/DETACH and PRAGMAs other than schema reads (and any prepared
//! statement that SQLite does not report as read-only is refused too), and a progress handler interrupts a
//! statement after [`SqlLimits::timeout`]. At most [`SqlLimits::max_rows`] rows are read.

mod compare;
pub mod guard;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags};

pub use compare::{difference, equal_up_to_column_order, CellValue, Row};
pub use guard::{has_any_order_by, has_top_level_order_by, remove_distinct};

/// How the predicted and gold results are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Comparison {
    /// Rows as a multiset, in order when the gold query has a top-level `ORDER BY`; columns in query order.
    #[default]
    Strict,
    /// The rules of Spider's official execution match (`eval_exec_match` in taoyds/test-suite-sql-eval, with its
    /// defaults and a single database): both queries get `> =`, `< =`, `! =` joined and, unless `keep_distinct`,
    /// every `DISTINCT` removed ([`remove_distinct`]); rows are ordered when the gold text contains `order by`
    /// anywhere ([`has_any_order_by`]); any permutation of the predicted columns may match
    /// ([`equal_up_to_column_order`]).
    SpiderOfficial {
        /// Keep `DISTINCT` (the official `--keep_distinct` flag).
        keep_distinct: bool,
    },
}

/// The official script's `postprocess`: join `> =`, `< =` and `! =`.
fn join_split_operators(sql: &str) -> String {
    sql.replace("> =", ">=")
        .replace("< =", "<=")
        .replace("! =", "!=")
}

/// Resource limits for one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlLimits {
    /// Wall-clock limit per statement.
    pub timeout: Duration,
    /// Most rows read from one result; more is an error ([`SqlErrorType::TooManyRows`]).
    pub max_rows: usize,
}

impl Default for SqlLimits {
    /// 5 seconds and 100,000 rows.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            max_rows: 100_000,
        }
    }
}

/// Why a prediction was judged wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SqlErrorType {
    /// SQLite could not parse the query (`syntax error`, `incomplete input`, `unrecognized token`, empty query).
    Syntax,
    /// `no such table`.
    UnknownTable,
    /// `no such column`.
    UnknownColumn,
    /// Any other failure while preparing or running the query (unknown function, misuse of aggregate,
    /// several statements, ...).
    Execution,
    /// The query ran but its rows differ from the gold rows.
    WrongResult,
    /// The query returned no rows while the gold query returned some.
    EmptyResult,
    /// The statement ran past [`SqlLimits::timeout`].
    Timeout,
    /// The query tried to write or reach outside the database (refused by the authorizer or the read-only open).
    WriteRefused,
    /// The query returned more than [`SqlLimits::max_rows`] rows.
    TooManyRows,
}

/// A failed query: its type and SQLite's message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QueryFailure {
    /// Classified failure.
    pub error_type: SqlErrorType,
    /// SQLite's message (or ours for timeouts and the row cap).
    pub message: String,
}

/// The verdict for one example.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SqlVerdict {
    /// `true` when the predicted result equals the gold result.
    pub correct: bool,
    /// Why not, when not correct.
    pub error_type: Option<SqlErrorType>,
    /// SQLite's error message or a description of the row difference.
    pub message: Option<String>,
    /// Whether row order was compared (the gold query has a top-level `ORDER BY`).
    pub order_matters: bool,
    /// Rows the prediction returned, when it ran.
    pub predicted_rows: Option<usize>,
    /// Rows the gold query returned.
    pub gold_rows: usize,
}

/// Errors that make an example impossible to judge (as opposed to a wrong prediction).
#[derive(Debug, thiserror::Error)]
pub enum SqlEvalError {
    /// The database could not be opened.
    #[error("opening SQLite database {path} read-only: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// Installing the authorizer or progress handler failed.
    #[error("configuring the read-only guard on {path}: {source}")]
    Guard {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The gold query itself failed; the example is broken.
    #[error("gold query failed on {path} ({error_type:?}): {message}; query: {query}")]
    GoldFailed {
        /// The database file.
        path: PathBuf,
        /// The gold query.
        query: String,
        /// Classified failure.
        error_type: SqlErrorType,
        /// SQLite's message.
        message: String,
    },
}

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
        let (predicted, gold) = match self.comparison {
            Comparison::Strict => (predicted.to_owned(), gold.to_owned()),
            Comparison::SpiderOfficial { keep_distinct } => {
                let (p, g) = (join_split_operators(predicted), join_split_operators(gold));
                if keep_distinct {
                    (p, g)
                } else {
                    (remove_distinct(&p), remove_distinct(&g))
                }
            }
        };
        let gold_rows = self.run(&gold).map_err(|f| SqlEvalError::GoldFailed {
            path: self.path.clone(),
            query: gold.clone(),
            error_type: f.error_type,
            message: f.message,
        })?;
        let order_matters = match self.comparison {
            Comparison::Strict => has_top_level_order_by(&gold),
            Comparison::SpiderOfficial { .. } => has_any_order_by(&gold),
        };
        let mut verdict = SqlVerdict {
            correct: false,
            error_type: None,
            message: None,
            order_matters,
            predicted_rows: None,
            gold_rows: gold_rows.len(),
        };
        match self.run(&predicted) {
            Err(failure) => {
                verdict.error_type = Some(failure.error_type);
                verdict.message = Some(failure.message);
            }
            Ok(rows) => {
                verdict.predicted_rows = Some(rows.len());
                let mismatch = match self.comparison {
                    Comparison::Strict => difference(&rows, &gold_rows, order_matters),
                    Comparison::SpiderOfficial { .. } => {
                        (!equal_up_to_column_order(&rows, &gold_rows, order_matters)).then(|| {
                            difference(&rows, &gold_rows, order_matters).unwrap_or_else(|| {
                                "no column permutation makes the results equal".into()
                            })
                        })
                    }
                };
                match mismatch {
                    None => verdict.correct = true,
                    Some(message) => {
                        let empty = rows.is_empty() && !gold_rows.is_empty();
                        verdict.error_type = Some(if empty {
                            SqlErrorType::EmptyResult
                        } else {
                            SqlErrorType::WrongResult
                        });
                        verdict.message = Some(message);
                    }
                }
            }
        }
        Ok(verdict)
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
