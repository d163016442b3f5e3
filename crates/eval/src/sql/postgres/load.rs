//! Copying a SQLite database into a PostgreSQL schema, so the same examples can be judged on both.

use std::io::Write;
use std::path::{Path, PathBuf};

use postgres::Client;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::{error_chain, quote_ident};

/// A column type in the PostgreSQL copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PgColumnType {
    /// `bigint`: declared INTEGER-like (the type contains `INT`) and holding only integers.
    Bigint,
    /// `double precision`: declared REAL/FLOAT/DOUBLE/NUMERIC/DECIMAL-like (or integer-like with some reals) and
    /// holding only numbers.
    DoublePrecision,
    /// `bytea`: declared BLOB and holding only blobs.
    Bytea,
    /// `text`: everything else, and every column with a value that does not fit its declared type.
    Text,
}

impl PgColumnType {
    /// The type in SQL.
    pub fn sql(self) -> &'static str {
        match self {
            Self::Bigint => "bigint",
            Self::DoublePrecision => "double precision",
            Self::Bytea => "bytea",
            Self::Text => "text",
        }
    }

    /// The type a SQLite declared type maps to, before looking at the values.
    pub fn from_declared(declared: &str) -> Self {
        let d = declared.to_ascii_uppercase();
        if d.contains("INT") {
            Self::Bigint
        } else if ["REAL", "FLOA", "DOUB", "NUM", "DEC"]
            .iter()
            .any(|k| d.contains(k))
        {
            Self::DoublePrecision
        } else if d.contains("BLOB") {
            Self::Bytea
        } else {
            Self::Text
        }
    }
}

/// One copied table.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LoadedTable {
    /// The table's name in PostgreSQL (the SQLite name in lower case, so unquoted names in queries find it).
    pub name: String,
    /// Rows copied.
    pub rows: u64,
    /// Columns (PostgreSQL names, lower case) and their types.
    pub columns: Vec<(String, PgColumnType)>,
    /// Columns whose values did not all fit the declared type, so they became `text` (or `double precision`).
    pub fallbacks: Vec<String>,
}

/// What [`copy_sqlite_to_postgres`] did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LoadReport {
    /// The schema (created or replaced).
    pub schema: String,
    /// The tables, in SQLite's order.
    pub tables: Vec<LoadedTable>,
    /// Views and other objects that were not copied.
    pub skipped: Vec<String>,
}

/// Errors of [`copy_sqlite_to_postgres`]; each names the database, table or statement.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Reading the SQLite database failed.
    #[error("reading SQLite database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A statement on the PostgreSQL server failed.
    #[error("PostgreSQL: {what}: {}", error_chain(.source))]
    Postgres {
        /// What was being done (`creating table singer`, ...).
        what: String,
        /// The server's error.
        source: postgres::Error,
    },
    /// Sending rows with COPY failed (the server refused a row, or the connection broke).
    #[error("PostgreSQL: {what}: {}", error_chain(.source))]
    Copy {
        /// What was being done.
        what: String,
        /// The error (the server's message for a refused row).
        source: std::io::Error,
    },
}

/// Copies every table of the SQLite database at `sqlite_path` into `schema` on `client`, replacing the schema
/// if it exists (`DROP SCHEMA ... CASCADE`), all in one transaction.
///
/// Table and column names are lower-cased (ASCII only, as PostgreSQL folds unquoted identifiers in queries;
/// SQLite's names are unique up to ASCII case, so no two collide). Column types
/// follow [`PgColumnType::from_declared`], then the values: a column holding a value that does not fit becomes
/// `text` (an integer column with non-integral reals becomes `double precision`), and SQLite's text form of
/// each value is kept. NUL characters, which PostgreSQL text cannot hold, are dropped; invalid UTF-8 is
/// replaced. Rows go in through `COPY ... FROM STDIN`. Views, indexes and constraints are not copied.
pub fn copy_sqlite_to_postgres(
    sqlite_path: &Path,
    client: &mut Client,
    schema: &str,
) -> Result<LoadReport, LoadError> {
    let path = sqlite_path.to_path_buf();
    let lite = |source| LoadError::Sqlite {
        path: path.clone(),
        source,
    };
    if !path.is_file() {
        return Err(lite(rusqlite::Error::InvalidPath(path.clone())));
    }
    let db = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(lite)?;
    let (tables, skipped) = list_tables(&db).map_err(lite)?;
    let pg = |what: String| move |source| LoadError::Postgres { what, source };
    let mut tx = client
        .transaction()
        .map_err(pg("starting a transaction".into()))?;
    let qschema = quote_ident(schema);
    tx.batch_execute(&format!(
        "SET LOCAL client_min_messages = warning; DROP SCHEMA IF EXISTS {qschema} CASCADE; CREATE SCHEMA {qschema}"
    ))
    .map_err(pg(format!("creating schema {schema}")))?;
    let mut loaded = Vec::with_capacity(tables.len());
    for table in &tables {
        let columns = plan_columns(&db, table).map_err(lite)?;
        let target = format!("{qschema}.{}", quote_ident(&table.to_ascii_lowercase()));
        let names: Vec<String> = columns.iter().map(|c| quote_ident(&c.name)).collect();
        let defs: Vec<String> = columns
            .iter()
            .map(|c| format!("{} {}", quote_ident(&c.name), c.pg.sql()))
            .collect();
        tx.batch_execute(&format!("CREATE TABLE {target} ({})", defs.join(", ")))
            .map_err(pg(format!("creating table {target}")))?;
        let rows = if columns.is_empty() {
            0
        } else {
            let copy = format!("COPY {target} ({}) FROM STDIN", names.join(", "));
            let mut writer = tx.copy_in(&copy).map_err(pg(format!("starting {copy}")))?;
            let rows = write_rows(&db, table, &columns, &mut writer).map_err(|e| match e {
                WriteError::Sqlite(source) => lite(source),
                WriteError::Io(source) => LoadError::Copy {
                    what: format!("copying rows into {target}"),
                    source,
                },
            })?;
            writer.finish().map_err(pg(format!("finishing {copy}")))?;
            rows
        };
        loaded.push(LoadedTable {
            name: table.to_ascii_lowercase(),
            rows,
            columns: columns.iter().map(|c| (c.name.clone(), c.pg)).collect(),
            fallbacks: columns
                .iter()
                .filter(|c| c.fallback)
                .map(|c| c.name.clone())
                .collect(),
        });
    }
    tx.commit()
        .map_err(pg(format!("committing schema {schema}")))?;
    Ok(LoadReport {
        schema: schema.to_owned(),
        tables: loaded,
        skipped,
    })
}

/// User tables (in creation order) and the names of skipped objects (views).
fn list_tables(db: &Connection) -> rusqlite::Result<(Vec<String>, Vec<String>)> {
    let mut statement = db.prepare(
        "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid",
    )?;
    let mut tables = Vec::new();
    let mut skipped = Vec::new();
    let rows = statement.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    for row in rows {
        let (name, kind) = row?;
        if kind == "table" {
            tables.push(name);
        } else {
            skipped.push(format!("{kind} {name}"));
        }
    }
    Ok((tables, skipped))
}

/// A column to copy.
struct ColumnPlan {
    /// SQLite name.
    source: String,
    /// PostgreSQL name (lower case).
    name: String,
    pg: PgColumnType,
    /// The values did not fit the declared type.
    fallback: bool,
}

/// The columns of `table` with their types, checked against the values (one aggregate scan).
fn plan_columns(db: &Connection, table: &str) -> rusqlite::Result<Vec<ColumnPlan>> {
    let mut info = db.prepare(&format!("PRAGMA table_info({})", quote_ident(table)))?;
    let declared: Vec<(String, String)> = info
        .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    if declared.is_empty() {
        return Ok(Vec::new());
    }
    // Per column: does it hold an integer, a real, a text, a blob?
    let probes: Vec<String> = declared
        .iter()
        .flat_map(|(name, _)| {
            let q = quote_ident(name);
            ["integer", "real", "text", "blob"]
                .map(|t| format!("coalesce(max(typeof({q}) = '{t}'), 0)"))
        })
        .collect();
    let sql = format!("SELECT {} FROM {}", probes.join(", "), quote_ident(table));
    let present: Vec<bool> = db.query_row(&sql, [], |r| {
        (0..probes.len())
            .map(|i| r.get::<_, i64>(i).map(|v| v != 0))
            .collect()
    })?;
    Ok(declared
        .into_iter()
        .zip(present.chunks(4))
        .map(|((name, decl), has)| {
            let (int, real, text, blob) = (has[0], has[1], has[2], has[3]);
            let wanted = PgColumnType::from_declared(&decl);
            let pg = match wanted {
                PgColumnType::Text => PgColumnType::Text,
                _ if text => PgColumnType::Text,
                PgColumnType::Bytea if int || real => PgColumnType::Text,
                PgColumnType::Bytea => PgColumnType::Bytea,
                _ if blob => PgColumnType::Text,
                PgColumnType::Bigint if real => PgColumnType::DoublePrecision,
                numeric => numeric,
            };
            ColumnPlan {
                name: name.to_ascii_lowercase(),
                source: name,
                pg,
                fallback: pg != wanted,
            }
        })
        .collect())
}

enum WriteError {
    Sqlite(rusqlite::Error),
    Io(std::io::Error),
}

/// Streams the rows of `table` in COPY text format; returns the row count.
fn write_rows(
    db: &Connection,
    table: &str,
    columns: &[ColumnPlan],
    out: &mut impl Write,
) -> Result<u64, WriteError> {
    // Text columns take SQLite's own text form of any value (CAST), so `1.0` stays `1.0`.
    let select: Vec<String> = columns
        .iter()
        .map(|c| match c.pg {
            PgColumnType::Text => format!("CAST({} AS TEXT)", quote_ident(&c.source)),
            _ => quote_ident(&c.source),
        })
        .collect();
    let sql = format!("SELECT {} FROM {}", select.join(", "), quote_ident(table));
    let mut statement = db.prepare(&sql).map_err(WriteError::Sqlite)?;
    let mut rows = statement.query([]).map_err(WriteError::Sqlite)?;
    let mut line = String::new();
    let mut count = 0;
    while let Some(row) = rows.next().map_err(WriteError::Sqlite)? {
        line.clear();
        for (i, c) in columns.iter().enumerate() {
            if i > 0 {
                line.push('\t');
            }
            let value = row.get_ref(i).map_err(WriteError::Sqlite)?;
            copy_field(&mut line, c.pg, value);
        }
        line.push('\n');
        out.write_all(line.as_bytes()).map_err(WriteError::Io)?;
        count += 1;
    }
    Ok(count)
}

/// Appends one value in COPY text format (`\N` for NULL, backslash escapes).
fn copy_field(line: &mut String, pg: PgColumnType, value: ValueRef<'_>) {
    match (pg, value) {
        (_, ValueRef::Null) => line.push_str("\\N"),
        (PgColumnType::Bytea, ValueRef::Blob(b)) => {
            line.push_str("\\\\x");
            for byte in b {
                line.push_str(&format!("{byte:02x}"));
            }
        }
        (_, ValueRef::Integer(i)) => line.push_str(&i.to_string()),
        (_, ValueRef::Real(r)) if r.is_infinite() => {
            line.push_str(if r > 0.0 { "Infinity" } else { "-Infinity" })
        }
        (_, ValueRef::Real(r)) => line.push_str(&format!("{r:?}")),
        (_, ValueRef::Text(t) | ValueRef::Blob(t)) => {
            for c in String::from_utf8_lossy(t).chars() {
                match c {
                    '\0' => {}
                    '\\' => line.push_str("\\\\"),
                    '\t' => line.push_str("\\t"),
                    '\n' => line.push_str("\\n"),
                    '\r' => line.push_str("\\r"),
                    c => line.push(c),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_map_like_sqlite_affinity() {
        for (decl, pg) in [
            ("INTEGER", PgColumnType::Bigint),
            ("int(11)", PgColumnType::Bigint),
            ("REAL", PgColumnType::DoublePrecision),
            ("float", PgColumnType::DoublePrecision),
            ("DOUBLE PRECISION", PgColumnType::DoublePrecision),
            ("NUMERIC(10,2)", PgColumnType::DoublePrecision),
            ("decimal", PgColumnType::DoublePrecision),
            ("BLOB", PgColumnType::Bytea),
            ("VARCHAR(255)", PgColumnType::Text),
            ("date", PgColumnType::Text),
            ("", PgColumnType::Text),
        ] {
            assert_eq!(PgColumnType::from_declared(decl), pg, "{decl}");
        }
    }

    #[test]
    fn copy_fields_escape_like_postgres_text_format() {
        let mut line = String::new();
        copy_field(
            &mut line,
            PgColumnType::Text,
            ValueRef::Text(b"a\tb\\c\nd\0"),
        );
        assert_eq!(line, "a\\tb\\\\c\\nd");
        line.clear();
        copy_field(
            &mut line,
            PgColumnType::DoublePrecision,
            ValueRef::Real(0.1),
        );
        assert_eq!(line, "0.1");
        line.clear();
        copy_field(&mut line, PgColumnType::Bytea, ValueRef::Blob(&[0, 255]));
        assert_eq!(line, "\\\\x00ff");
        line.clear();
        copy_field(&mut line, PgColumnType::Bigint, ValueRef::Null);
        assert_eq!(line, "\\N");
    }
}
