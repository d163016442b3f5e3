//! Spider `tables.json` rendered as CREATE TABLE DDL for prompts.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;

use crate::error::{read_to_string, Error, Result};

#[derive(Debug, Deserialize)]
struct TablesEntry {
    db_id: String,
    table_names_original: Vec<String>,
    column_names_original: Vec<(i64, String)>,
    column_types: Vec<String>,
    #[serde(default)]
    primary_keys: Vec<serde_json::Value>,
    #[serde(default)]
    foreign_keys: Vec<(usize, usize)>,
}

/// DDL per `db_id`.
#[derive(Debug, Default, Clone)]
pub struct Schemas {
    ddl: HashMap<String, String>,
}

impl Schemas {
    /// Reads a Spider `tables.json`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = read_to_string(path, "reading tables file")?;
        let entries: Vec<TablesEntry> = serde_json::from_str(&text).map_err(|e| Error::Data {
            path: path.to_path_buf(),
            line: e.line(),
            message: format!("not a Spider tables.json: {e}"),
        })?;
        Ok(Self {
            ddl: entries.iter().map(|e| (e.db_id.clone(), ddl(e))).collect(),
        })
    }

    /// The DDL of `db_id`, if known.
    pub fn get(&self, db_id: &str) -> Option<&str> {
        self.ddl.get(db_id).map(String::as_str)
    }
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
            serde_json::Value::Array(a) => a.iter().filter_map(|v| v.as_u64()).collect(),
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
        let e: TablesEntry = serde_json::from_value(serde_json::json!({
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
}
