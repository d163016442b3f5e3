//! Text-to-SQL records (`{db_id, question, query}`) as chat: the database schema as CREATE TABLE statements in
//! the system prompt, the question as the user turn, the SQL as the assistant's answer. Schemas come from a
//! Spider `tables.json` or from live SQLite databases.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{read_to_string, Error, Result};
use crate::record::{ChatRecord, Invalid};

/// The system prompt of text-to-SQL records when none is given; `{schema}` stands for the DDL.
pub const DEFAULT_SYSTEM: &str =
    "You are an expert SQLite developer. Answer the question with one SQLite query for this database.\n\nDatabase schema:\n{schema}";

#[derive(Debug, Deserialize)]
struct TablesEntry {
    db_id: String,
    table_names_original: Vec<String>,
    column_names_original: Vec<(i64, String)>,
    column_types: Vec<String>,
    #[serde(default)]
    primary_keys: Vec<Value>,
    #[serde(default)]
    foreign_keys: Vec<(usize, usize)>,
}

/// Reads a Spider `tables.json` and renders each database's schema as CREATE TABLE statements (original table
/// and column names, quoted where needed; types upper-cased; primary keys inline; foreign keys as clauses).
pub fn schema_from_tables_json(path: &Path) -> Result<HashMap<String, String>> {
    let text = read_to_string(path)?;
    let entries: Vec<TablesEntry> = serde_json::from_str(&text).map_err(|e| Error::Data {
        path: path.to_path_buf(),
        line: e.line(),
        message: format!("not a Spider tables.json: {e}"),
    })?;
    Ok(entries.iter().map(|e| (e.db_id.clone(), ddl(e))).collect())
}

/// The CREATE TABLE statements of a SQLite database as stored in it (`sqlite_master`, internal tables left
/// out), one per table in creation order, each ending with `;`. The database is opened read-only.
pub fn schema_from_sqlite(path: &Path) -> Result<String> {
    let err = |source| Error::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    let mut stmt = conn
        .prepare(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL \
             AND name NOT LIKE 'sqlite_%' ORDER BY rowid",
        )
        .map_err(err)?;
    let statements = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(err)?;
    Ok(statements
        .iter()
        .map(|s| {
            let body = s
                .lines()
                .map(str::trim_end)
                .filter(|l| !l.trim().is_empty())
                .collect::<Vec<_>>()
                .join("\n");
            format!("{};", body.trim_end_matches(';').trim_end())
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

/// The SQLite file of `db_id` under `db_dir`: `{db_dir}/{db_id}/{db_id}.sqlite`, else `{db_dir}/{db_id}.sqlite`.
pub fn database_path(db_dir: &Path, db_id: &str) -> PathBuf {
    let nested = db_dir.join(db_id).join(format!("{db_id}.sqlite"));
    if nested.exists() {
        nested
    } else {
        db_dir.join(format!("{db_id}.sqlite"))
    }
}

/// Where schemas come from: a `tables.json` (looked up first), then SQLite databases under a folder (read on
/// first use, once each).
#[derive(Debug, Default)]
pub struct Schemas {
    tables: HashMap<String, String>,
    db_dir: Option<PathBuf>,
    from_db: RefCell<HashMap<String, Option<String>>>,
}

impl Schemas {
    /// Schemas from `tables` (e.g. [`schema_from_tables_json`]) and/or the databases under `db_dir`.
    pub fn new(tables: HashMap<String, String>, db_dir: Option<PathBuf>) -> Self {
        Self {
            tables,
            db_dir,
            from_db: RefCell::default(),
        }
    }

    /// The DDL of `db_id`: `Ok(None)` when neither source knows it, an error when its database cannot be read.
    pub fn ddl(&self, db_id: &str) -> Result<Option<String>> {
        if let Some(d) = self.tables.get(db_id) {
            return Ok(Some(d.clone()));
        }
        let Some(dir) = &self.db_dir else {
            return Ok(None);
        };
        if let Some(cached) = self.from_db.borrow().get(db_id) {
            return Ok(cached.clone());
        }
        let path = database_path(dir, db_id);
        let ddl = if path.is_file() {
            Some(schema_from_sqlite(&path)?)
        } else {
            None
        };
        self.from_db
            .borrow_mut()
            .insert(db_id.to_owned(), ddl.clone());
        Ok(ddl)
    }
}

/// The chat record of one text-to-SQL example: `system` (default [`DEFAULT_SYSTEM`]) with `{schema}` replaced by
/// `ddl` (appended after a blank line when the prompt has no `{schema}`), the question, and the query.
pub fn to_chat(
    question: &str,
    query: &str,
    ddl: &str,
    system: Option<&str>,
) -> std::result::Result<ChatRecord, Invalid> {
    let system = system.unwrap_or(DEFAULT_SYSTEM);
    let system = if system.contains("{schema}") {
        system.replace("{schema}", ddl)
    } else {
        format!("{system}\n\n{ddl}")
    };
    ChatRecord::new(
        vec![
            json!({"role": "system", "content": system}),
            json!({"role": "user", "content": question.trim()}),
            json!({"role": "assistant", "content": query.trim()}),
        ],
        None,
    )
}

fn quote(name: &str) -> String {
    if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
    {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

fn ddl(e: &TablesEntry) -> String {
    let mut pk = vec![false; e.column_names_original.len()];
    for p in &e.primary_keys {
        let cols: Vec<u64> = match p {
            Value::Array(a) => a.iter().filter_map(Value::as_u64).collect(),
            v => v.as_u64().into_iter().collect(),
        };
        for c in cols {
            if let Some(slot) = pk.get_mut(c as usize) {
                *slot = true;
            }
        }
    }
    let mut out = String::new();
    for (t, table) in e.table_names_original.iter().enumerate() {
        let mut lines = Vec::new();
        for (c, (ti, name)) in e.column_names_original.iter().enumerate() {
            if *ti != t as i64 {
                continue;
            }
            let ty = e.column_types.get(c).map_or("text", String::as_str);
            let mut line = format!("  {} {}", quote(name), ty.to_uppercase());
            if pk[c] {
                line.push_str(" PRIMARY KEY");
            }
            lines.push(line);
        }
        for (from, to) in &e.foreign_keys {
            let (Some((ft, fc)), Some((tt, tc))) = (
                e.column_names_original.get(*from),
                e.column_names_original.get(*to),
            ) else {
                continue;
            };
            if *ft == t as i64 {
                let target = usize::try_from(*tt)
                    .ok()
                    .and_then(|i| e.table_names_original.get(i));
                if let Some(target) = target {
                    lines.push(format!(
                        "  FOREIGN KEY ({}) REFERENCES {}({})",
                        quote(fc),
                        quote(target),
                        quote(tc)
                    ));
                }
            }
        }
        let _ = writeln!(
            out,
            "CREATE TABLE {} (\n{}\n);",
            quote(table),
            lines.join(",\n")
        );
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_ddl_with_keys() {
        let e: TablesEntry = serde_json::from_value(json!({
            "db_id": "x",
            "table_names_original": ["singer", "concert"],
            "column_names_original": [[-1, "*"], [0, "Singer_ID"], [0, "Name"], [1, "id"], [1, "Singer ID"]],
            "column_types": ["text", "number", "text", "number", "number"],
            "primary_keys": [1, 3],
            "foreign_keys": [[4, 1]]
        }))
        .unwrap();
        let d = ddl(&e);
        assert!(
            d.contains("CREATE TABLE singer (\n  Singer_ID NUMBER PRIMARY KEY,\n  Name TEXT\n);"),
            "{d}"
        );
        assert!(
            d.contains("FOREIGN KEY (\"Singer ID\") REFERENCES singer(Singer_ID)"),
            "{d}"
        );
    }

    #[test]
    fn tables_json_and_sqlite_schemas() {
        let dir = tempfile::tempdir().unwrap();
        let tables = dir.path().join("tables.json");
        std::fs::write(
            &tables,
            json!([{
                "db_id": "shop",
                "table_names_original": ["item"],
                "column_names_original": [[-1, "*"], [0, "id"], [0, "name"]],
                "column_types": ["text", "number", "text"],
                "primary_keys": [1],
                "foreign_keys": []
            }])
            .to_string(),
        )
        .unwrap();
        let map = schema_from_tables_json(&tables).unwrap();
        assert_eq!(
            map["shop"],
            "CREATE TABLE item (\n  id NUMBER PRIMARY KEY,\n  name TEXT\n);"
        );

        std::fs::create_dir_all(dir.path().join("zoo")).unwrap();
        let db = dir.path().join("zoo/zoo.sqlite");
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE animal (id INTEGER PRIMARY KEY, name TEXT NOT NULL)   ;\n\
             CREATE TABLE keeper (id INTEGER, animal_id INTEGER REFERENCES animal(id));\n\
             CREATE INDEX k ON keeper(animal_id);",
        )
        .unwrap();
        drop(conn);
        assert_eq!(
            schema_from_sqlite(&db).unwrap(),
            "CREATE TABLE animal (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n\
             CREATE TABLE keeper (id INTEGER, animal_id INTEGER REFERENCES animal(id));"
        );
        let e = schema_from_sqlite(&dir.path().join("none.sqlite")).unwrap_err();
        assert!(e.to_string().contains("none.sqlite"), "{e}");

        let schemas = Schemas::new(map, Some(dir.path().to_path_buf()));
        assert!(schemas
            .ddl("shop")
            .unwrap()
            .unwrap()
            .starts_with("CREATE TABLE item"));
        assert!(schemas
            .ddl("zoo")
            .unwrap()
            .unwrap()
            .starts_with("CREATE TABLE animal"));
        assert_eq!(schemas.ddl("zoo").unwrap(), schemas.ddl("zoo").unwrap());
        assert_eq!(schemas.ddl("nowhere").unwrap(), None);
    }

    #[test]
    fn chat_from_a_question() {
        let r = to_chat(
            " How many? ",
            "SELECT count(*) FROM t",
            "CREATE TABLE t (a);",
            None,
        )
        .unwrap();
        assert_eq!(
            r.messages[0]["content"],
            DEFAULT_SYSTEM.replace("{schema}", "CREATE TABLE t (a);")
        );
        assert_eq!(r.messages[1]["content"], "How many?");
        assert_eq!(r.messages[2]["content"], "SELECT count(*) FROM t");
        let r = to_chat("q", "SELECT 1", "DDL", Some("Write SQL.")).unwrap();
        assert_eq!(r.messages[0]["content"], "Write SQL.\n\nDDL");
        assert_eq!(
            to_chat("q", " ", "DDL", None).unwrap_err().kind,
            crate::RejectKind::Empty
        );
    }
}
