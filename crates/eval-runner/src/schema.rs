//! `{{ schema }}` for SQL prompts: CREATE TABLE DDL from a Spider `tables.json` (the same DDL `tuneup data
//! prepare` trains on) or, without one, from each SQLite file itself (`sqlite_master`), optionally followed by
//! sample rows or column values ([`crate::schema_sample`], `prompt.schema_style`). Rendered once per `db_id`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::dataset::database_path;
use crate::error::{Error, Result};
use crate::task::{SchemaStyle, Task};

/// The schema text per `db_id`, rendered on first use and cached.
#[derive(Debug, Default)]
pub struct Schemas {
    ddl: HashMap<String, String>,
    db_dir: Option<PathBuf>,
    style: SchemaStyle,
    rendered: Mutex<HashMap<String, Option<String>>>,
}

fn data_error(path: &Path, e: tuneup_data::Error) -> Error {
    match e {
        tuneup_data::Error::Io { path, source } => Error::Io {
            what: "reading tables file",
            path,
            source,
        },
        tuneup_data::Error::Data {
            path,
            line,
            message,
        } => Error::Data {
            path,
            line,
            message,
        },
        other => Error::Data {
            path: path.to_path_buf(),
            line: 0,
            message: other.to_string(),
        },
    }
}

impl Schemas {
    /// Reads a Spider `tables.json` (plain DDL, no database files).
    pub fn load(path: &Path) -> Result<Self> {
        let ddl = tuneup_data::text2sql::schema_from_tables_json(path)
            .map_err(|e| data_error(path, e))?;
        Ok(Self {
            ddl,
            ..Self::default()
        })
    }

    /// The schemas of `task`: `dataset.tables` when set, else the SQLite files under `dataset.db_dir`, rendered
    /// in `prompt.schema_style`; `None` when the task has neither.
    pub fn for_task(task: &Task) -> Result<Option<Self>> {
        let d = &task.dataset;
        if d.tables.is_none() && d.db_dir.is_none() {
            return Ok(None);
        }
        let mut s = match &d.tables {
            Some(path) => Self::load(path)?,
            None => Self::default(),
        };
        s.db_dir = d.db_dir.clone();
        s.style = task.prompt.schema_style;
        Ok(Some(s))
    }

    /// Schemas read from the SQLite files under `db_dir`, rendered in `style`.
    pub fn from_db_dir(db_dir: &Path, style: SchemaStyle) -> Self {
        Self {
            db_dir: Some(db_dir.to_path_buf()),
            style,
            ..Self::default()
        }
    }

    /// The schema text of `db_id`: `Ok(None)` when no source knows it, an error (naming the file) when its
    /// database cannot be read.
    pub fn get(&self, db_id: &str) -> Result<Option<String>> {
        if let Some(hit) = self.cache().get(db_id) {
            return Ok(hit.clone());
        }
        let text = self.render(db_id)?;
        self.cache().insert(db_id.to_owned(), text.clone());
        Ok(text)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<String>>> {
        // A panic elsewhere cannot leave the cache half-written (one insert), so a poisoned lock is still usable.
        self.rendered.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn render(&self, db_id: &str) -> Result<Option<String>> {
        let file = self
            .db_dir
            .as_deref()
            .map(|dir| database_path(dir, db_id))
            .filter(|p| p.is_file());
        let ddl = match (self.ddl.get(db_id), &file) {
            (Some(d), _) => d.clone(),
            (None, Some(path)) => {
                tuneup_data::text2sql::schema_from_sqlite(path).map_err(|e| data_error(path, e))?
            }
            (None, None) => return Ok(None),
        };
        let extra = match (self.style, &file) {
            (SchemaStyle::Ddl, _) | (_, None) => String::new(),
            (SchemaStyle::DdlRows, Some(path)) => crate::schema_sample::sample_rows(path, 3)?,
            (SchemaStyle::DdlValues, Some(path)) => crate::schema_sample::text_values(path, 8)?,
        };
        Ok(Some(if extra.is_empty() {
            ddl
        } else {
            format!("{ddl}\n\n{extra}")
        }))
    }
}
