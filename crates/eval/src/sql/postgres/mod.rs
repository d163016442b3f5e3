//! SQL execution accuracy on a PostgreSQL server.
//!
//! [`PgEvaluator`] judges predictions like the SQLite [`SqlEvaluator`](super::SqlEvaluator) (same
//! [`SqlVerdict`], same comparison through [`evaluate`]) but runs every query, gold and predicted, on its own
//! under these guards:
//!
//! * the connected role must not be able to act outside the database: a superuser or a member of
//!   `pg_read_server_files`, `pg_write_server_files` or `pg_execute_server_program` is refused when connecting
//!   unless the user opted in ([`RolePolicy`], [`guard::privileged_role`]);
//! * the query must pass the allow-list [`check_query`](crate::sql::guard::check_query) (one SELECT / WITH /
//!   VALUES / TABLE statement, no data-modifying CTE, no `SELECT ... INTO`) before it is sent;
//! * the statement is sent with the extended protocol, which refuses several statements in one query;
//! * it runs inside `START TRANSACTION READ ONLY`, whose first statement (`SELECT set_config(...)`) sets a
//!   local `statement_timeout` (and `search_path` to the example's schema) and takes the transaction's
//!   snapshot, so a later `SET TRANSACTION READ WRITE` is refused too; the transaction is always rolled back;
//! * rows are fetched from a portal, at most [`SqlLimits::max_rows`] + 1 of them, and read one at a time
//!   against [`SqlLimits::max_cell_bytes`] and [`SqlLimits::max_result_bytes`].
//!
//! SQLSTATE codes map to error types: 42601 syntax, 42P01/3F000 unknown_table, 42703 unknown_column, 57014
//! timeout, 25006/25001/2D000/42501 write_refused, 54000/53200 too_large, anything else execution.
//! `tuneup eval load-postgres --reader-role` makes a role that can only read the evaluation schemas
//! ([`guard::reader_role_sql`]).

pub mod guard;
mod load;
pub mod tls;
mod values;

use std::collections::HashSet;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, Column, Transaction};

use super::compare::Row;
use super::guard::{check_query, Dialect};
use super::judge::{evaluate, QueryRunner};
use super::{
    Comparison, QueryFailure, ResultSize, SqlErrorType, SqlEvalError, SqlLimits, SqlVerdict,
};
use values::{decode, decoder, needs_text_cast, Raw};

pub use guard::RolePolicy;
pub use load::{copy_sqlite_to_postgres, LoadError, LoadReport, LoadedTable, PgColumnType};
pub use tls::PgTarget;

/// Connection timeout when the URL sets none (`connect_timeout=SECONDS`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to a PostgreSQL server that judges predictions against gold queries, optionally inside one
/// schema (`search_path`). Reconnects when the connection was closed.
pub struct PgEvaluator {
    target: PgTarget,
    url: String,
    client: Option<Client>,
    schema: Option<String>,
    known_schemas: HashSet<String>,
    limits: SqlLimits,
    comparison: Comparison,
    roles: RolePolicy,
}

impl PgEvaluator {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/dbname[?options]` or `key=value` pairs; TLS as
    /// `sslmode` says, see [`tls`]) and checks its role under `roles` (again on every reconnection): a
    /// privileged role is [`SqlEvalError::PrivilegedRole`] unless [`RolePolicy::AllowPrivileged`]. Errors name
    /// the URL with its password redacted.
    pub fn connect(url: &str, limits: SqlLimits, roles: RolePolicy) -> Result<Self, SqlEvalError> {
        let (target, redacted) = parse_url(url)?;
        let mut evaluator = Self {
            target,
            url: redacted,
            client: None,
            schema: None,
            known_schemas: HashSet::new(),
            limits,
            comparison: Comparison::Strict,
            roles,
        };
        evaluator.client()?;
        Ok(evaluator)
    }

    /// Uses `comparison` for later [`evaluate`](Self::evaluate) calls.
    pub fn with_comparison(mut self, comparison: Comparison) -> Self {
        self.comparison = comparison;
        self
    }

    /// The server URL, password redacted.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema queries run in (`search_path`), if any.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Runs later queries with `search_path` set to `schema` only (`None`: the server's default). The schema
    /// must exist ([`SqlEvalError::MissingSchema`]); it is looked up once per evaluator.
    pub fn use_schema(&mut self, schema: Option<&str>) -> Result<(), SqlEvalError> {
        if let Some(name) = schema {
            if !self.known_schemas.contains(name) {
                let url = self.url.clone();
                let found = self
                    .client()?
                    .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&name])
                    .map_err(|e| SqlEvalError::Server {
                        url: url.clone(),
                        what: "looking up the schema",
                        message: error_chain(&e),
                    })?;
                if found.is_none() {
                    return Err(SqlEvalError::MissingSchema {
                        url,
                        schema: name.to_owned(),
                    });
                }
                self.known_schemas.insert(name.to_owned());
            }
        }
        self.schema = schema.map(str::to_owned);
        Ok(())
    }

    /// The open connection, reconnecting (and checking the role) when there is none or it was closed.
    fn client(&mut self) -> Result<&mut Client, SqlEvalError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            let mut client = self.target.connect().map_err(|e| SqlEvalError::Connect {
                url: self.url.clone(),
                message: error_chain(&e),
            })?;
            self.check_connection(&mut client)?;
            self.client = Some(client);
        }
        self.client.as_mut().ok_or_else(|| SqlEvalError::Connect {
            url: self.url.clone(),
            message: "no connection".into(),
        })
    }

    /// Refuses a new connection whose role is privileged (unless allowed), or whose server lexes strings
    /// differently from the allow-list (`standard_conforming_strings` off).
    fn check_connection(&self, client: &mut Client) -> Result<(), SqlEvalError> {
        let server = |what, e: postgres::Error| SqlEvalError::Server {
            url: self.url.clone(),
            what,
            message: error_chain(&e),
        };
        let conforming: String = client
            .query_one("SELECT current_setting('standard_conforming_strings')", &[])
            .map_err(|e| server("reading standard_conforming_strings", e))?
            .get(0);
        if conforming != "on" {
            return Err(SqlEvalError::Connect {
                url: self.url.clone(),
                message: "standard_conforming_strings is off on this server (or for this role); the SQL guard \
                          reads strings as PostgreSQL does by default, so set it on"
                    .into(),
            });
        }
        if self.roles == RolePolicy::AllowPrivileged {
            return Ok(());
        }
        match guard::privileged_role(client)
            .map_err(|e| server("checking the role's privileges", e))?
        {
            Some((role, why)) => Err(SqlEvalError::PrivilegedRole {
                url: self.url.clone(),
                role,
                why: why.join(" and "),
            }),
            None => Ok(()),
        }
    }

    /// Runs one query under the guards: `Ok(Err(_))` when the query failed (or the allow-list refused it),
    /// `Err` when the server could not be used.
    pub fn run(&mut self, sql: &str) -> Result<Result<Vec<Row>, QueryFailure>, SqlEvalError> {
        if let Err(refused) = check_query(sql, Dialect::Postgres) {
            return Ok(Err(refused));
        }
        // A connection the server closed since the last query (restart, idle timeout, terminated backend) shows
        // only when it is used: reconnect once when starting the transaction fails that way.
        match self.run_once(sql) {
            Err(Attempt::Begin(e)) if e.as_db_error().is_none_or(|db| db.severity() == "FATAL") => {
                self.client = None;
                self.run_once(sql).map_err(|a| self.attempt_error(a))
            }
            other => other.map_err(|a| self.attempt_error(a)),
        }
    }

    fn attempt_error(&self, attempt: Attempt) -> SqlEvalError {
        match attempt {
            Attempt::Begin(e) => self.server_error("starting a read-only transaction", &e),
            Attempt::Failed(e) => e,
        }
    }

    fn server_error(&self, what: &'static str, e: &postgres::Error) -> SqlEvalError {
        SqlEvalError::Server {
            url: self.url.clone(),
            what,
            message: error_chain(e),
        }
    }

    /// [`run`](Self::run) after the checks, on the current (or a new) connection.
    fn run_once(&mut self, sql: &str) -> Result<Result<Vec<Row>, QueryFailure>, Attempt> {
        let timeout = self.limits.timeout;
        let timeout_ms = timeout.as_millis().clamp(1, i32::MAX as u128).to_string();
        let search_path = self.schema.as_deref().map(quote_ident);
        let limits = self.limits;
        let max_rows = limits.max_rows;
        let client = self.client().map_err(Attempt::Failed)?;
        let mut tx = client
            .build_transaction()
            .read_only(true)
            .start()
            .map_err(Attempt::Begin)?;
        // A SELECT takes the transaction's first snapshot: from then on `SET TRANSACTION READ WRITE` is refused.
        let setup = match &search_path {
            Some(path) => tx.query(
                "SELECT set_config('statement_timeout', $1, true), set_config('search_path', $2, true)",
                &[&timeout_ms, path],
            ),
            None => tx.query(
                "SELECT set_config('statement_timeout', $1, true)",
                &[&timeout_ms],
            ),
        };
        if let Err(e) = setup {
            let _ = tx.rollback();
            return Err(Attempt::Failed(
                self.server_error("setting statement_timeout", &e),
            ));
        }
        let result = read_rows(&mut tx, sql, &limits);
        // The rollback fails only with the connection, which the next query reopens.
        let _ = tx.rollback();
        let closed = self.client.as_ref().is_none_or(Client::is_closed);
        match result {
            Ok(rows) => Ok(Ok(rows)),
            // The connection died under the query (not a server error the query caused): cannot judge.
            Err(RowsError::Pg(e)) if e.as_db_error().is_none() && closed => {
                Err(Attempt::Failed(self.server_error("running a query", &e)))
            }
            Err(RowsError::Pg(e)) => Ok(Err(classify(&e, timeout))),
            Err(RowsError::TooMany) => Ok(Err(QueryFailure::new(
                SqlErrorType::TooManyRows,
                format!("more than {max_rows} rows"),
            ))),
            Err(RowsError::Decode(message)) => {
                Ok(Err(QueryFailure::new(SqlErrorType::Execution, message)))
            }
            Err(RowsError::TooLarge(failure)) => Ok(Err(failure)),
        }
    }

    /// Judges `predicted` against `gold`. Errors when the gold query fails or the server cannot be used.
    pub fn evaluate(&mut self, predicted: &str, gold: &str) -> Result<SqlVerdict, SqlEvalError> {
        let comparison = self.comparison;
        evaluate(self, comparison, predicted, gold)
    }
}

impl QueryRunner for PgEvaluator {
    fn run_query(&mut self, sql: &str) -> Result<Result<Vec<Row>, QueryFailure>, SqlEvalError> {
        self.run(sql)
    }

    fn database(&self) -> String {
        match &self.schema {
            Some(schema) => format!("{} (schema {schema})", self.url),
            None => self.url.clone(),
        }
    }
}

/// Why one attempt at running a query could not judge it.
enum Attempt {
    /// Starting the transaction failed (perhaps on a connection the server had closed: worth one retry).
    Begin(postgres::Error),
    /// Anything else.
    Failed(SqlEvalError),
}

enum RowsError {
    Pg(postgres::Error),
    TooMany,
    TooLarge(QueryFailure),
    Decode(String),
}

impl From<postgres::Error> for RowsError {
    fn from(e: postgres::Error) -> Self {
        Self::Pg(e)
    }
}

fn read_rows(
    tx: &mut Transaction<'_>,
    sql: &str,
    limits: &SqlLimits,
) -> Result<Vec<Row>, RowsError> {
    let max_rows = limits.max_rows;
    // Preparing (extended protocol) refuses several statements.
    let mut statement = tx.prepare(sql)?;
    if statement
        .columns()
        .iter()
        .any(|c| needs_text_cast(c.type_()))
    {
        statement = tx.prepare(&text_cast_wrapper(sql, statement.columns()))?;
    }
    let decoders = statement
        .columns()
        .iter()
        .map(|c| {
            decoder(c.type_()).ok_or_else(|| {
                RowsError::Decode(format!(
                    "column {} has type {} that cannot be read",
                    c.name(),
                    c.type_()
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let portal = tx.bind(&statement, &[])?;
    let fetch = i32::try_from(max_rows.saturating_add(1)).unwrap_or(i32::MAX);
    let mut rows = tx.query_portal_raw(&portal, fetch)?;
    let mut out = Vec::new();
    let mut size = ResultSize::new(limits);
    while let Some(row) = rows.next()? {
        if out.len() == max_rows {
            return Err(RowsError::TooMany);
        }
        let mut values = Vec::with_capacity(decoders.len());
        for (i, d) in decoders.iter().enumerate() {
            let raw: Raw<'_> = row.try_get(i)?;
            size.add(raw.0.map_or(0, <[u8]>::len))
                .map_err(RowsError::TooLarge)?;
            let value = decode(*d, raw.0).map_err(|e| {
                RowsError::Decode(format!("column {}: {e}", row.columns()[i].name()))
            })?;
            values.push(value);
        }
        out.push(values);
    }
    Ok(out)
}

/// `sql` wrapped so the server casts the columns whose type has no binary decoder to `text` (their text form);
/// the other columns pass through. A subquery with ORDER BY is never flattened, so row order is kept.
fn text_cast_wrapper(sql: &str, columns: &[Column]) -> String {
    let mut body = sql.trim_end();
    while let Some(rest) = body.strip_suffix(';') {
        body = rest.trim_end();
    }
    let select: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| match needs_text_cast(c.type_()) {
            true => format!("q.c{i}::text"),
            false => format!("q.c{i}"),
        })
        .collect();
    let names: Vec<String> = (0..columns.len()).map(|i| format!("c{i}")).collect();
    format!(
        "SELECT {} FROM (\n{body}\n) AS q({})",
        select.join(", "),
        names.join(", ")
    )
}

/// Sorts a PostgreSQL error into an [`SqlErrorType`] by its SQLSTATE.
fn classify(error: &postgres::Error, timeout: Duration) -> QueryFailure {
    let Some(db) = error.as_db_error() else {
        // Client-side: wrong parameter count (`$1` in the query), a closed connection, ...
        return QueryFailure::new(SqlErrorType::Execution, error_chain(error));
    };
    let code = db.code().code();
    let message = format!("{} (SQLSTATE {code})", db.message());
    let error_type = match code {
        // SQLite reports several statements as a plain execution error; so do we.
        "42601" if db.message().contains("multiple commands") => SqlErrorType::Execution,
        "42601" => SqlErrorType::Syntax,
        "42P01" | "3F000" => SqlErrorType::UnknownTable,
        "42703" => SqlErrorType::UnknownColumn,
        "57014" => {
            return QueryFailure::new(
                SqlErrorType::Timeout,
                format!("statement canceled after {timeout:?} ({message})"),
            )
        }
        "25006" | "25001" | "2D000" | "42501" => SqlErrorType::WriteRefused,
        // program_limit_exceeded (e.g. a value over 1 GB), out_of_memory.
        "54000" | "53200" => SqlErrorType::TooLarge,
        _ => SqlErrorType::Execution,
    };
    QueryFailure::new(error_type, message)
}

/// The connection settings of `url` (with [`DEFAULT_CONNECT_TIMEOUT`] and application name `tuneup-eval` unless
/// it sets them) and the URL with its password redacted.
fn parse_url(url: &str) -> Result<(PgTarget, String), SqlEvalError> {
    let redacted = redact_url(url);
    let mut target = PgTarget::parse(url).map_err(|message| SqlEvalError::Connect {
        url: redacted.clone(),
        message: format!("malformed URL: {message}"),
    })?;
    if target.config.get_connect_timeout().is_none() {
        target.config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
    }
    if target.config.get_application_name().is_none() {
        target.config.application_name("tuneup-eval");
    }
    Ok((target, redacted))
}

/// A connection to `url` (TLS as its `sslmode` says, see [`tls`]), e.g. for [`copy_sqlite_to_postgres`];
/// errors name the URL with its password redacted.
pub fn connect(url: &str) -> Result<Client, SqlEvalError> {
    let (target, url) = parse_url(url)?;
    target.connect().map_err(|e| SqlEvalError::Connect {
        url,
        message: error_chain(&e),
    })
}

/// An error's message followed by its sources' (`postgres::Error` alone says only "error connecting to
/// server" or "db error").
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// `name` as a quoted SQL identifier (`"a""b"`).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `url` with its password replaced by `***`: the `user:password@` part of a `postgres://` URL, a
/// `password=` query parameter, or a `password=` key-value pair.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find('?')
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest_start + colon + 1..rest_start + at, "***");
            }
        }
    }
    password_pattern().replace_all(&out, "${1}***").into_owned()
}

/// `url` (`postgres://[user[:password]@]host...`) with its user and password replaced by `user` (percent-encoded)
/// and `password_text` (written as is: percent-encode a literal password, or pass `${VAR}` for a task's
/// `db_url`); `None` for a URL of another form (`key=value` pairs).
pub fn url_with_user(url: &str, user: &str, password_text: &str) -> Option<String> {
    let scheme_end = url.find("://")? + 3;
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let host = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    let mut encoded = String::with_capacity(user.len());
    for b in user.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    Some(format!(
        "{}{encoded}:{password_text}@{host}",
        &url[..scheme_end]
    ))
}

fn password_pattern() -> &'static regex::Regex {
    static PATTERN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| {
        regex::Regex::new(r"(?i)((?:^|[?&\s])password\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s]*)")
            .expect("constant regex")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://bob:s3cr%40t@db.example:5432/x?sslmode=disable"),
            "postgres://bob:***@db.example:5432/x?sslmode=disable"
        );
        assert_eq!(
            redact_url("postgresql://bob@host/db"),
            "postgresql://bob@host/db"
        );
        assert_eq!(
            redact_url("postgres://host/db?user=bob&password=hunter2&x=1"),
            "postgres://host/db?user=bob&password=***&x=1"
        );
        assert_eq!(
            redact_url("host=h user=bob password='a b' dbname=x"),
            "host=h user=bob password=*** dbname=x"
        );
        assert_eq!(redact_url("password=pw host=h"), "password=*** host=h");
    }

    #[test]
    fn urls_get_another_user() {
        assert_eq!(
            url_with_user(
                "postgres://admin:pw@db:5432/x?sslmode=require",
                "tuneup reader",
                "${PW}"
            )
            .as_deref(),
            Some("postgres://tuneup%20reader:${PW}@db:5432/x?sslmode=require")
        );
        assert_eq!(
            url_with_user("postgresql://db/x", "r", "p").as_deref(),
            Some("postgresql://r:p@db/x")
        );
        assert_eq!(url_with_user("host=db user=admin", "r", "p"), None);
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("concert_singer"), "\"concert_singer\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
