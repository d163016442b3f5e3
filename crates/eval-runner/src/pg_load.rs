//! `tuneup eval load-postgres`: copies a folder of SQLite databases into PostgreSQL, one schema per `db_id`, so
//! a task with `dataset.db_url` can judge the same examples there.

use std::path::{Path, PathBuf};

use tuneup_eval::sql::postgres::guard::reader_role_sql;
use tuneup_eval::sql::postgres::{connect, copy_sqlite_to_postgres, quote_ident, url_with_user};
pub use tuneup_eval::sql::postgres::{redact_url, LoadReport};

use crate::error::{Error, Result};

/// The SQLite databases under `db_dir` as `(db_id, file)`, sorted by `db_id`: `{db_dir}/{id}/{id}.sqlite`
/// folders (Spider's layout) and `{db_dir}/{id}.sqlite` files.
pub fn sqlite_databases(db_dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let entries = std::fs::read_dir(db_dir).map_err(|source| Error::Io {
        what: "listing databases in",
        path: db_dir.to_path_buf(),
        source,
    })?;
    let mut found = std::collections::BTreeMap::new();
    for entry in entries {
        let path = entry
            .map_err(|source| Error::Io {
                what: "listing databases in",
                path: db_dir.to_path_buf(),
                source,
            })?
            .path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        let nested = path.join(format!("{name}.sqlite"));
        if nested.is_file() {
            found.insert(name, nested);
        } else if let Some(id) = name.strip_suffix(".sqlite") {
            if path.is_file() {
                found.entry(id.to_owned()).or_insert(path);
            }
        }
    }
    Ok(found.into_iter().collect())
}

/// Copies the databases under `db_dir` (only those named in `only`, when not empty) into schemas named by their
/// `db_id` on the server at `url`, replacing existing schemas; calls `each` after every database. Stops at the
/// first failure (databases already copied stay).
pub fn load_postgres(
    db_dir: &Path,
    only: &[String],
    url: &str,
    mut each: impl FnMut(&LoadReport),
) -> Result<Vec<LoadReport>> {
    let all = sqlite_databases(db_dir)?;
    let what = |id: &str| format!("loading {id} into PostgreSQL at {}", redact_url(url));
    let selected: Vec<(String, PathBuf)> = if only.is_empty() {
        all
    } else {
        let mut picked = Vec::with_capacity(only.len());
        for id in only {
            let db = all
                .iter()
                .find(|(name, _)| name == id)
                .ok_or_else(|| Error::Database {
                    what: what(id),
                    message: format!(
                        "no database {id} in {} (expected {id}/{id}.sqlite or {id}.sqlite)",
                        db_dir.display()
                    ),
                })?;
            picked.push(db.clone());
        }
        picked
    };
    if selected.is_empty() {
        return Err(Error::Database {
            what: format!("loading {} into PostgreSQL", db_dir.display()),
            message: "no SQLite databases found ({id}/{id}.sqlite or {id}.sqlite)".into(),
        });
    }
    let mut client = connect(url).map_err(|e| Error::Database {
        what: format!("loading {} into PostgreSQL", db_dir.display()),
        message: e.to_string(),
    })?;
    let mut reports = Vec::with_capacity(selected.len());
    for (id, path) in &selected {
        let report =
            copy_sqlite_to_postgres(path, &mut client, id).map_err(|e| Error::Database {
                what: what(id),
                message: e.to_string(),
            })?;
        each(&report);
        reports.push(report);
    }
    Ok(reports)
}

/// Makes `role` a login role with `password` that can only read the tables of `schemas` (and the database at
/// `url`): created, or updated when it exists (its password reset, the grants added). Returns `url` with the
/// user and password replaced by `role` and `password_text` (e.g. `${VAR}`, for a task's `db_url`; written as
/// is, so a literal password is percent-encoded first).
pub fn create_reader_role(
    url: &str,
    role: &str,
    password: &str,
    password_text: &str,
    schemas: &[String],
) -> Result<String> {
    let what = || format!("creating the reader role {role} on {}", redact_url(url));
    let fail = |message: String| Error::Database {
        what: what(),
        message,
    };
    if role.is_empty() || password.is_empty() {
        return Err(fail(
            "the role name and its password must not be empty".into(),
        ));
    }
    let mut client = connect(url).map_err(|e| fail(e.to_string()))?;
    let mut tx = client.transaction().map_err(|e| fail(e.to_string()))?;
    let exists = tx
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
        .map_err(|e| fail(e.to_string()))?
        .is_some();
    let database: String = tx
        .query_one("SELECT current_database()::text", &[])
        .map_err(|e| fail(e.to_string()))?
        .get(0);
    let mut statements = reader_role_sql(role, password, exists, schemas);
    statements.push(format!(
        "GRANT CONNECT ON DATABASE {} TO {}",
        quote_ident(&database),
        quote_ident(role)
    ));
    for sql in &statements {
        // The password is in the statement: never echo it in the error.
        tx.batch_execute(sql).map_err(|e| {
            let shown = sql.split(" PASSWORD ").next().unwrap_or(sql);
            fail(format!(
                "{shown}: {}",
                tuneup_eval::sql::postgres::error_chain(&e)
            ))
        })?;
    }
    tx.commit().map_err(|e| fail(e.to_string()))?;
    url_with_user(url, role, password_text).ok_or_else(|| {
        fail(
            "the URL is not postgres://...; connect as the role with user= and password= instead"
                .into(),
        )
    })
}
