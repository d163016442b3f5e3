//! `sql`: read-only queries on SQLite or PostgreSQL, through `tuneup-eval`'s guarded runners (SQLite opened
//! read-only with an authorizer that refuses writes; PostgreSQL in a `READ ONLY` transaction, rolled back, and
//! only on a role that cannot reach the server's files unless `allow_privileged_role = true`). Only one
//! SELECT / WITH / VALUES / TABLE statement is run, and values and results are size-capped.
//! The description given to the model ends with the database's tables as DDL.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tuneup_eval::sql::postgres::{PgEvaluator, RolePolicy};
use tuneup_eval::sql::{CellValue, QueryFailure, Row, SqlErrorType, SqlEvaluator, SqlLimits};

use super::{string_arg, Builtin, Run, ToolSpec};
use crate::config::{AgentConfig, SqlConfig};
use crate::error::ToolError;

/// Rows read at most from one result; more is reported as too many (the model should aggregate or LIMIT).
pub const ROW_CAP: usize = 1000;

enum Database {
    Sqlite {
        runner: SqlEvaluator,
        /// The temporary database built from a `.sql` script, removed on drop.
        _script_db: Option<tempfile::TempPath>,
    },
    Postgres(Box<PgEvaluator>),
}

/// The database of one `sql` tool.
pub struct Sql {
    database: Database,
    max_rows: usize,
}

impl std::fmt::Debug for Sql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sql")
            .field("max_rows", &self.max_rows)
            .finish()
    }
}

/// A `sql` tool.
pub type SqlTool = Builtin<Sql>;

fn is_postgres(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

impl SqlTool {
    /// Opens the database of `config` and appends its schema to the description in `spec`.
    pub fn open(
        mut spec: ToolSpec,
        config: &SqlConfig,
        agent: &AgentConfig,
    ) -> Result<Self, String> {
        let limits = SqlLimits {
            max_rows: ROW_CAP.max(config.max_rows),
            ..SqlLimits::with_timeout(Duration::from_secs_f64(config.timeout_secs))
        };
        let (database, kind) = if is_postgres(&config.database) {
            let roles = RolePolicy::allowing(config.allow_privileged_role);
            let mut pg =
                PgEvaluator::connect(&config.database, limits, roles).map_err(|e| e.to_string())?;
            pg.use_schema(config.schema.as_deref())
                .map_err(|e| e.to_string())?;
            (Database::Postgres(Box::new(pg)), "PostgreSQL")
        } else {
            let path = agent.resolve_path(&config.database);
            let (file, script_db) = if path.extension().is_some_and(|e| e == "sql") {
                let temp = load_script(&path)?;
                (temp.to_path_buf(), Some(temp))
            } else {
                (path, None)
            };
            let runner = SqlEvaluator::open(&file, limits).map_err(|e| e.to_string())?;
            let database = Database::Sqlite {
                runner,
                _script_db: script_db,
            };
            (database, "SQLite")
        };
        let mut sql = Sql {
            database,
            max_rows: config.max_rows,
        };
        let ddl = sql
            .schema_ddl()
            .map_err(|e| format!("reading the schema: {e}"))?;
        let intro = if spec.description.is_empty() {
            format!("Run one read-only SQL query on a {kind} database and get the rows.")
        } else {
            spec.description.clone()
        };
        spec.description = format!("{intro} ({kind}, read-only; tables:\n{ddl})");
        Ok(Builtin { spec, runner: sql })
    }
}

/// A temporary SQLite database built from the SQL script at `path`.
fn load_script(path: &Path) -> Result<tempfile::TempPath, String> {
    let script = std::fs::read_to_string(path)
        .map_err(|e| format!("reading SQL script {}: {e}", path.display()))?;
    let temp = tempfile::Builder::new()
        .prefix("tuneup-agent-")
        .suffix(".db")
        .tempfile()
        .map_err(|e| format!("creating a temporary database: {e}"))?
        .into_temp_path();
    let conn = rusqlite::Connection::open(&temp)
        .map_err(|e| format!("opening {}: {e}", PathBuf::from(&*temp).display()))?;
    conn.execute_batch(&script)
        .map_err(|e| format!("running SQL script {}: {e}", path.display()))?;
    Ok(temp)
}

impl Sql {
    fn query(&mut self, sql: &str) -> Result<Vec<Row>, ToolError> {
        let result = match &mut self.database {
            Database::Sqlite { runner, .. } => runner.run(sql),
            Database::Postgres(pg) => pg.run(sql).map_err(|e| ToolError::Failed(e.to_string()))?,
        };
        result.map_err(failure)
    }

    /// `CREATE TABLE` statements of the tables (PostgreSQL: rebuilt from `information_schema`).
    fn schema_ddl(&mut self) -> Result<String, ToolError> {
        if let Database::Sqlite { .. } = self.database {
            let rows = self.query(
                "SELECT sql FROM sqlite_master WHERE type IN ('table', 'view') AND sql IS NOT NULL \
                 AND name NOT LIKE 'sqlite_%' ORDER BY name",
            )?;
            let ddl: Vec<String> = rows.iter().map(|r| text(&r[0])).collect();
            return Ok(ddl.join(";\n") + ";");
        }
        let rows = self.query(
            "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position",
        )?;
        let mut tables: Vec<(String, Vec<String>)> = Vec::new();
        for r in &rows {
            let (table, column) = (text(&r[0]), format!("{} {}", text(&r[1]), text(&r[2])));
            match tables.last_mut() {
                Some((name, columns)) if *name == table => columns.push(column),
                _ => tables.push((table, vec![column])),
            }
        }
        let ddl: Vec<String> = tables
            .iter()
            .map(|(t, c)| format!("CREATE TABLE {t} ({});", c.join(", ")))
            .collect();
        Ok(ddl.join("\n"))
    }
}

fn failure(f: QueryFailure) -> ToolError {
    match f.error_type {
        SqlErrorType::WriteRefused => {
            ToolError::Refused(format!("the database is read-only ({})", f.message))
        }
        SqlErrorType::TooManyRows | SqlErrorType::TooLarge => {
            ToolError::Failed(format!("{}; add a LIMIT or aggregate", f.message))
        }
        _ => ToolError::Failed(format!("SQL error: {}", f.message)),
    }
}

fn text(v: &CellValue) -> String {
    match cell_json(v) {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

fn cell_json(v: &CellValue) -> Value {
    match v {
        CellValue::Null => Value::Null,
        CellValue::Integer(i) => Value::from(*i),
        CellValue::Real(bits) => Value::from(f64::from_bits(*bits)),
        CellValue::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        CellValue::Blob(b) => Value::String(format!("<blob, {} bytes>", b.len())),
    }
}

/// Rows as one JSON array per line, with a count (and a note when only the first rows are shown).
fn format_rows(rows: &[Row], max_rows: usize) -> String {
    let mut out = match rows.len() {
        1 => "1 row".to_string(),
        n => format!("{n} rows"),
    };
    if rows.len() > max_rows {
        out.push_str(&format!(", the first {max_rows} shown"));
    }
    for r in rows.iter().take(max_rows) {
        out.push('\n');
        out.push_str(&Value::Array(r.iter().map(cell_json).collect()).to_string());
    }
    out
}

impl Run for Sql {
    fn run(&mut self, args: &Value) -> Result<String, ToolError> {
        let sql = string_arg(args, "query")?;
        let rows = self.query(sql)?;
        Ok(format_rows(&rows, self.max_rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_compact_and_truncation_is_said() {
        let rows: Vec<Row> = (0..3)
            .map(|i| {
                vec![
                    CellValue::Integer(i),
                    CellValue::Text(b"a".to_vec()),
                    CellValue::Null,
                ]
            })
            .collect();
        assert_eq!(
            format_rows(&rows, 2),
            "3 rows, the first 2 shown\n[0,\"a\",null]\n[1,\"a\",null]"
        );
        assert_eq!(format_rows(&rows[..1], 2), "1 row\n[0,\"a\",null]");
        assert_eq!(
            cell_json(&CellValue::from_real(2.5)),
            serde_json::json!(2.5)
        );
    }
}
