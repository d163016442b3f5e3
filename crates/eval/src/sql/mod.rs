//! SQL execution accuracy on SQLite ([`SqlEvaluator`]) and PostgreSQL ([`postgres::PgEvaluator`]).
//!
//! The predicted and gold queries run on the same database and their results are compared as multisets of rows,
//! in order when the gold query has a top-level `ORDER BY` ([`has_top_level_order_by`]); values are normalized by
//! [`CellValue`] (`1 == 1.0`, text exact, `NULL == NULL`). Column order matters ([`Comparison::Strict`], the
//! default). [`Comparison::SpiderOfficial`] reproduces the extra rules of Spider's official execution evaluation
//! instead (column permutations, DISTINCT removed, `order by` anywhere). Both back-ends only run queries
//! ([`QueryRunner`]); the verdict is made once, by [`evaluate`].
//!
//! On SQLite, model-written SQL runs under three guards: the database is opened with `SQLITE_OPEN_READ_ONLY`, an
//! authorizer ([`guard::authorize`]) refuses writes, ATTACH/DETACH and PRAGMAs other than schema reads (and any
//! prepared statement that SQLite does not report as read-only is refused too), and a progress handler interrupts
//! a statement after [`SqlLimits::timeout`]; `SQLITE_LIMIT_LENGTH` caps values at [`SqlLimits::max_cell_bytes`]
//! and a process-wide heap limit ([`SQLITE_HEAP_LIMIT`]) bounds SQLite's memory. On PostgreSQL every query runs
//! alone (extended protocol) in a `READ ONLY` transaction with a local `statement_timeout`, rolled back
//! afterwards, and only on a role that cannot reach the server's files (see [`postgres`]). Before either engine
//! sees it, a query must pass the allow-list [`guard::check_query`] (one SELECT / WITH / VALUES / TABLE
//! statement). At most [`SqlLimits::max_rows`] rows and [`SqlLimits::max_result_bytes`] bytes are read.

mod compare;
pub mod guard;
mod judge;
mod lex;
pub mod postgres;
mod sqlite;

use std::time::Duration;

pub use compare::{difference, equal_up_to_column_order, CellValue, Row};
pub use guard::{has_any_order_by, has_top_level_order_by, remove_distinct};
pub use judge::{evaluate, QueryRunner};
pub use sqlite::{execution_match, sqlite_heap_limit, SqlEvaluator, SQLITE_HEAP_LIMIT};

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

/// Resource limits for one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlLimits {
    /// Wall-clock limit per statement.
    pub timeout: Duration,
    /// Most rows read from one result; more is an error ([`SqlErrorType::TooManyRows`]).
    pub max_rows: usize,
    /// Most bytes in one value (text or blob); more is an error ([`SqlErrorType::TooLarge`]). On SQLite this is
    /// also `SQLITE_LIMIT_LENGTH`, which bounds every string, blob and row the query builds.
    pub max_cell_bytes: usize,
    /// Most bytes of values in one result, all rows together; more is an error ([`SqlErrorType::TooLarge`]).
    pub max_result_bytes: usize,
}

impl SqlLimits {
    /// The default limits with `timeout`.
    pub fn with_timeout(timeout: Duration) -> Self {
        Self {
            timeout,
            ..Self::default()
        }
    }
}

impl Default for SqlLimits {
    /// 5 seconds, 100,000 rows, 4 MiB per value and 64 MiB per result.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            max_rows: 100_000,
            max_cell_bytes: 4 << 20,
            max_result_bytes: 64 << 20,
        }
    }
}

/// Counts the bytes of a result as it is read, against [`SqlLimits::max_cell_bytes`] and
/// [`SqlLimits::max_result_bytes`].
struct ResultSize {
    total: usize,
    max_cell: usize,
    max_total: usize,
}

impl ResultSize {
    fn new(limits: &SqlLimits) -> Self {
        Self {
            total: 0,
            max_cell: limits.max_cell_bytes,
            max_total: limits.max_result_bytes,
        }
    }

    /// Adds one value of `bytes` bytes; a [`SqlErrorType::TooLarge`] failure when a cap is passed.
    fn add(&mut self, bytes: usize) -> Result<(), QueryFailure> {
        if bytes > self.max_cell {
            return Err(QueryFailure::new(
                SqlErrorType::TooLarge,
                format!(
                    "a value of {bytes} bytes is larger than the {} bytes allowed",
                    self.max_cell
                ),
            ));
        }
        self.total = self.total.saturating_add(bytes);
        if self.total > self.max_total {
            return Err(QueryFailure::new(
                SqlErrorType::TooLarge,
                format!(
                    "the result is larger than the {} bytes allowed",
                    self.max_total
                ),
            ));
        }
        Ok(())
    }
}

/// Why a prediction was judged wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SqlErrorType {
    /// The query could not be parsed (SQLite `syntax error`, `incomplete input`, `unrecognized token`;
    /// PostgreSQL SQLSTATE 42601; an empty query).
    Syntax,
    /// `no such table` (PostgreSQL 42P01).
    UnknownTable,
    /// `no such column` (PostgreSQL 42703).
    UnknownColumn,
    /// Any other failure while preparing or running the query (unknown function, misuse of aggregate,
    /// several statements, ...).
    Execution,
    /// The query ran but its rows differ from the gold rows.
    WrongResult,
    /// The query returned no rows while the gold query returned some.
    EmptyResult,
    /// The statement ran past [`SqlLimits::timeout`] (PostgreSQL 57014).
    Timeout,
    /// The query is not one the allow-list admits ([`guard::check_query`]: another statement kind, a
    /// data-modifying CTE, `SELECT ... INTO`), or it tried to write, end or change its transaction, or reach
    /// outside the database (SQLite's authorizer or read-only open; PostgreSQL 25006, 25001, 2D000, 42501).
    WriteRefused,
    /// The query returned more than [`SqlLimits::max_rows`] rows.
    TooManyRows,
    /// A value or the whole result was larger than [`SqlLimits::max_cell_bytes`] or
    /// [`SqlLimits::max_result_bytes`], or the query ran out of the memory it may use (SQLite `SQLITE_TOOBIG`,
    /// `SQLITE_NOMEM` under the heap limit; PostgreSQL 54000, 53200).
    TooLarge,
}

/// A failed query: its type and the database's message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QueryFailure {
    /// Classified failure.
    pub error_type: SqlErrorType,
    /// The database's message (or ours for timeouts, the row cap and refused statements).
    pub message: String,
}

impl QueryFailure {
    /// A failure of type `error_type` with `message`.
    pub fn new(error_type: SqlErrorType, message: impl Into<String>) -> Self {
        Self {
            error_type,
            message: message.into(),
        }
    }
}

/// The verdict for one example.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SqlVerdict {
    /// `true` when the predicted result equals the gold result.
    pub correct: bool,
    /// Why not, when not correct.
    pub error_type: Option<SqlErrorType>,
    /// The database's error message or a description of the row difference.
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
    /// The SQLite database could not be opened.
    #[error("opening SQLite database {path} read-only: {source}")]
    Open {
        /// The database file.
        path: std::path::PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// Installing the authorizer or progress handler failed.
    #[error("configuring the read-only guard on {path}: {source}")]
    Guard {
        /// The database file.
        path: std::path::PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The PostgreSQL server could not be reached (or the URL is malformed).
    #[error("connecting to PostgreSQL at {url}: {message}")]
    Connect {
        /// The server URL, password redacted ([`postgres::redact_url`]).
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The connected PostgreSQL role could act outside the database (superuser, or a member of
    /// `pg_read_server_files`, `pg_write_server_files`, `pg_execute_server_program`) and the user did not opt in
    /// ([`postgres::RolePolicy`]).
    #[error("PostgreSQL at {url}: role {role:?} is {why}, so model-written SQL could read the server's files or run programs; {hint}", hint = postgres::guard::READER_ROLE_HINT)]
    PrivilegedRole {
        /// The server URL, password redacted.
        url: String,
        /// The connected role.
        role: String,
        /// What makes it privileged (`"a superuser"`, `"a member of pg_read_server_files"`, ...).
        why: String,
    },
    /// The example's schema does not exist on the PostgreSQL server.
    #[error("schema {schema:?} not found on PostgreSQL at {url} (load it with `tuneup eval load-postgres`)")]
    MissingSchema {
        /// The server URL, password redacted.
        url: String,
        /// The schema (the example's `db_id`).
        schema: String,
    },
    /// The PostgreSQL connection failed while judging (e.g. the server went away).
    #[error("PostgreSQL at {url}: {what}: {message}")]
    Server {
        /// The server URL, password redacted.
        url: String,
        /// What was being done.
        what: &'static str,
        /// The server's or the client's message.
        message: String,
    },
    /// The gold query itself failed; the example is broken.
    #[error("gold query failed on {database} ({error_type:?}): {message}; query: {query}")]
    GoldFailed {
        /// The database: SQLite file, or PostgreSQL URL (password redacted) and schema.
        database: String,
        /// The gold query.
        query: String,
        /// Classified failure.
        error_type: SqlErrorType,
        /// The database's message.
        message: String,
    },
}
