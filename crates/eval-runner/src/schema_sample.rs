//! Sample data for `{{ schema }}` (`prompt.schema_style`): the first rows of each table, or the distinct values
//! of each TEXT column, read from the SQLite file opened read-only and written as `-- ` comment lines. Cells are
//! cut to [`MAX_CELL_CHARS`] characters.

use std::fmt::Write as _;
use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};

/// Longest cell text shown; longer cells end in `…`.
pub const MAX_CELL_CHARS: usize = 60;

fn db_error(path: &Path, e: rusqlite::Error) -> Error {
    Error::Database {
        what: format!("reading sample data from {}", path.display()),
        message: e.to_string(),
    }
}

fn open(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Connection::open_with_flags(path, flags).map_err(|e| db_error(path, e))
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The user tables of the database, in creation order.
fn tables(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid",
    )?;
    let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
    names.collect()
}

/// `(name, declared type)` of each column of `table`.
fn columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({})", quote(table)))?;
    let cols = stmt.query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?;
    cols.collect()
}

/// A cell as SQL-ish text: numbers bare, text quoted, cut to [`MAX_CELL_CHARS`].
fn cell(v: ValueRef<'_>) -> String {
    let text = match v {
        ValueRef::Null => return "NULL".into(),
        ValueRef::Integer(i) => return i.to_string(),
        ValueRef::Real(r) => return r.to_string(),
        ValueRef::Text(t) => String::from_utf8_lossy(t).replace('\n', " "),
        ValueRef::Blob(b) => return format!("<blob {} bytes>", b.len()),
    };
    let cut: String = text.chars().take(MAX_CELL_CHARS).collect();
    let cut = if cut.len() < text.len() {
        format!("{cut}…")
    } else {
        cut
    };
    format!("'{}'", cut.replace('\'', "''"))
}

/// SQLite's TEXT affinity rule: a declared type containing CHAR, CLOB or TEXT.
fn is_text(declared: &str) -> bool {
    let t = declared.to_ascii_uppercase();
    ["CHAR", "CLOB", "TEXT"].iter().any(|k| t.contains(k))
}

/// The first `n` rows of each table: `-- rows of singer (first 3):`, a `-- col | col` header and one
/// `-- v | v` line per row.
pub fn sample_rows(path: &Path, n: usize) -> Result<String> {
    let conn = open(path)?;
    let err = |e| db_error(path, e);
    let mut out = String::new();
    for table in tables(&conn).map_err(err)? {
        let cols = columns(&conn, &table).map_err(err)?;
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM {} LIMIT {n}", quote(&table)))
            .map_err(err)?;
        let mut rows = stmt.query([]).map_err(err)?;
        let mut lines = Vec::new();
        while let Some(row) = rows.next().map_err(err)? {
            let cells: Vec<String> = (0..cols.len())
                .map(|i| row.get_ref(i).map_or_else(|_| "?".into(), cell))
                .collect();
            lines.push(cells.join(" | "));
        }
        if lines.is_empty() {
            let _ = writeln!(out, "-- {table}: no rows");
            continue;
        }
        let header: Vec<&str> = cols.iter().map(|(c, _)| c.as_str()).collect();
        let _ = writeln!(out, "-- rows of {table} (first {n}):");
        let _ = writeln!(out, "-- {}", header.join(" | "));
        for l in lines {
            let _ = writeln!(out, "-- {l}");
        }
    }
    Ok(out.trim_end().to_owned())
}

/// Up to `n` distinct non-NULL values of each TEXT column: `-- singer.country: 'France', 'Netherlands'`.
pub fn text_values(path: &Path, n: usize) -> Result<String> {
    let conn = open(path)?;
    let err = |e| db_error(path, e);
    let mut out = String::new();
    for table in tables(&conn).map_err(err)? {
        for (col, declared) in columns(&conn, &table).map_err(err)? {
            if !is_text(&declared) {
                continue;
            }
            let sql = format!(
                "SELECT DISTINCT {c} FROM {t} WHERE {c} IS NOT NULL LIMIT {n}",
                c = quote(&col),
                t = quote(&table)
            );
            let mut stmt = conn.prepare(&sql).map_err(err)?;
            let mut rows = stmt.query([]).map_err(err)?;
            let mut values = Vec::new();
            while let Some(row) = rows.next().map_err(err)? {
                values.push(row.get_ref(0).map_or_else(|_| "?".into(), cell));
            }
            if !values.is_empty() {
                let _ = writeln!(out, "-- {table}.{col}: {}", values.join(", "));
            }
        }
    }
    Ok(out.trim_end().to_owned())
}
