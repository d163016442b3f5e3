//! Spider `tables.json` rendered as CREATE TABLE DDL for prompts (the same DDL `tuneup data prepare` trains on).

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, Result};

/// DDL per `db_id`.
#[derive(Debug, Default, Clone)]
pub struct Schemas {
    ddl: HashMap<String, String>,
}

impl Schemas {
    /// Reads a Spider `tables.json`.
    pub fn load(path: &Path) -> Result<Self> {
        let ddl = tuneup_data::text2sql::schema_from_tables_json(path).map_err(|e| match e {
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
        })?;
        Ok(Self { ddl })
    }

    /// The DDL of `db_id`, if known.
    pub fn get(&self, db_id: &str) -> Option<&str> {
        self.ddl.get(db_id).map(String::as_str)
    }
}
