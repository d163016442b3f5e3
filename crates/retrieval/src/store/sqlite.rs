//! The embedded default index: one SQLite file (files, chunks, embeddings, an FTS5 table for BM25) plus an HNSW
//! graph beside it (`<index>.hnsw`).
//!
//! Crash safety: every file's chunks are replaced in one SQLite transaction (WAL journal), and each write bumps the
//! index *generation*. The HNSW graph is rebuilt by [`finish`](super::Store::finish) and written atomically with the
//! generation it saw; a graph whose generation differs from the database's is ignored (exact scan instead). So a
//! killed ingest leaves every file either fully old or fully new, and search stays correct.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use super::ann::{normalize, top_k, Graph, VectorTable, MIN_GRAPH_SIZE};
use super::{FileRecord, Filter, Hit, IndexInfo, Store, StoreStats};
use crate::{Error, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files(
    source TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS chunks(
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL REFERENCES files(source) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    heading TEXT,
    line INTEGER NOT NULL,
    text TEXT NOT NULL,
    embedding BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_source ON chunks(source);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    text, content='chunks', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
";

/// An index in a SQLite file.
pub struct SqliteStore {
    path: PathBuf,
    conn: Connection,
    /// Vectors and graph loaded for the current generation.
    cache: RefCell<Option<Loaded>>,
}

struct Loaded {
    generation: u64,
    table: VectorTable,
    graph: Option<Graph>,
}

impl SqliteStore {
    /// Opens or creates the index at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let err = |e: rusqlite::Error| store_error(path, e);
        let conn = Connection::open(path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(|e| Error::Store {
            location: path.display().to_string(),
            message: format!("not a tuneup index (or unreadable): {e}"),
        })?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            conn,
            cache: RefCell::new(None),
        })
    }

    /// Where the HNSW graph of this index is kept.
    pub fn graph_path(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".hnsw");
        self.path.with_file_name(name)
    }

    fn err(&self, e: rusqlite::Error) -> Error {
        store_error(&self.path, e)
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    fn generation(&self) -> Result<u64> {
        Ok(self
            .meta("generation")?
            .and_then(|g| g.parse().ok())
            .unwrap_or(0))
    }

    fn read_vectors(&self) -> Result<VectorTable> {
        let dim = self.info()?.map(|i| i.dim).unwrap_or(0);
        let mut stmt = self
            .conn
            .prepare("SELECT id, embedding FROM chunks ORDER BY id")
            .map_err(|e| self.err(e))?;
        let mut table = VectorTable {
            dim,
            ..VectorTable::default()
        };
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let id: i64 = row.get(0).map_err(|e| self.err(e))?;
            let blob: Vec<u8> = row.get(1).map_err(|e| self.err(e))?;
            if blob.len() != dim * 4 {
                return Err(Error::Store {
                    location: self.location(),
                    message: format!(
                        "chunk {id} has a {}-byte embedding, expected {dim} floats",
                        blob.len()
                    ),
                });
            }
            table.ids.push(id);
            table.data.extend(
                blob.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
        }
        Ok(table)
    }

    /// Loads vectors (and the graph, when it matches) for the current generation if not loaded yet.
    fn ensure_loaded(&self) -> Result<()> {
        let generation = self.generation()?;
        if self
            .cache
            .borrow()
            .as_ref()
            .is_some_and(|l| l.generation == generation)
        {
            return Ok(());
        }
        let table = self.read_vectors()?;
        let graph = Graph::load(&self.graph_path()).filter(|g| g.generation == generation);
        *self.cache.borrow_mut() = Some(Loaded {
            generation,
            table,
            graph,
        });
        Ok(())
    }

    /// Chunk ids passing `filter` (`None` = all).
    fn allowed_ids(&self, filter: &Filter) -> Result<Option<HashSet<i64>>> {
        if filter.is_empty() {
            return Ok(None);
        }
        let (clause, args) = filter_sql(filter);
        let sql = format!("SELECT chunks.id FROM chunks JOIN files USING(source) WHERE {clause}");
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let ids = stmt
            .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, i64>(0))
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<HashSet<i64>>>()
            .map_err(|e| self.err(e))?;
        Ok(Some(ids))
    }

    fn hits_for(&self, scored: &[(i64, f32)]) -> Result<Vec<Hit>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT source, heading, line, text FROM chunks WHERE id = ?1")
            .map_err(|e| self.err(e))?;
        scored
            .iter()
            .map(|&(id, score)| {
                stmt.query_row([id], |r| {
                    Ok(Hit {
                        chunk_id: id,
                        source: r.get(0)?,
                        heading: r.get(1)?,
                        line: r.get::<_, i64>(2)? as usize,
                        text: r.get(3)?,
                        score,
                    })
                })
                .map_err(|e| self.err(e))
            })
            .collect()
    }

    fn bump_generation(tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
        tx.execute(
            "INSERT INTO meta(key, value) VALUES ('generation', '1')
             ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
            [],
        )
        .map(|_| ())
    }
}

fn store_error(path: &Path, e: rusqlite::Error) -> Error {
    Error::Store {
        location: path.display().to_string(),
        message: e.to_string(),
    }
}

/// SQL condition over `chunks JOIN files` for `filter`, with its parameters.
fn filter_sql(filter: &Filter) -> (String, Vec<String>) {
    let mut clauses = vec!["1".to_string()];
    let mut args = Vec::new();
    if let Some(prefix) = &filter.source_prefix {
        args.push(prefix.clone());
        clauses.push(format!(
            "substr(source, 1, length(?{n})) = ?{n}",
            n = args.len()
        ));
    }
    for tag in &filter.tags {
        args.push(tag.clone());
        clauses.push(format!(
            "EXISTS (SELECT 1 FROM json_each(files.tags) WHERE json_each.value = ?{})",
            args.len()
        ));
    }
    (clauses.join(" AND "), args)
}

/// An FTS5 query matching any word of `text` (each word quoted, so punctuation and operators are literal).
pub fn fts_query(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{w}\""))
        .collect();
    (!words.is_empty()).then(|| words.join(" OR "))
}

impl Store for SqliteStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn info(&self) -> Result<Option<IndexInfo>> {
        let (Some(embedder), Some(dim)) = (self.meta("embedder")?, self.meta("dim")?) else {
            return Ok(None);
        };
        Ok(Some(IndexInfo {
            embedder,
            dim: dim.parse().unwrap_or(0),
        }))
    }

    fn ensure_info(&mut self, info: &IndexInfo) -> Result<()> {
        match self.info()? {
            Some(existing) if existing == *info => Ok(()),
            Some(existing) => Err(Error::EmbedderMismatch {
                location: self.location(),
                indexed: existing.embedder,
                indexed_dim: existing.dim,
                current: info.embedder.clone(),
                current_dim: info.dim,
            }),
            None => {
                let tx = self
                    .conn
                    .transaction()
                    .map_err(|e| store_error(&self.path, e))?;
                for (k, v) in [
                    ("embedder", info.embedder.clone()),
                    ("dim", info.dim.to_string()),
                ] {
                    tx.execute(
                        "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)",
                        params![k, v],
                    )
                    .map_err(|e| store_error(&self.path, e))?;
                }
                tx.commit().map_err(|e| store_error(&self.path, e))
            }
        }
    }

    fn file_hashes(&self) -> Result<BTreeMap<String, String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT source, hash FROM files")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    fn upsert_file(&mut self, file: &FileRecord) -> Result<()> {
        let dim = self.info()?.map(|i| i.dim).ok_or_else(|| Error::Store {
            location: self.location(),
            message: "no embedder recorded: call ensure_info first".into(),
        })?;
        let path = self.path.clone();
        let err = |e| store_error(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        tx.execute("DELETE FROM files WHERE source = ?1", [&file.source])
            .map_err(err)?;
        let tags = serde_json::to_string(&file.tags).expect("strings serialize");
        tx.execute(
            "INSERT INTO files(source, hash, tags) VALUES (?1, ?2, ?3)",
            params![file.source, file.hash, tags],
        )
        .map_err(err)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO chunks(source, ordinal, heading, line, text, embedding) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(err)?;
            for (ordinal, chunk) in file.chunks.iter().enumerate() {
                if chunk.embedding.len() != dim {
                    return Err(Error::Store {
                        location: path.display().to_string(),
                        message: format!(
                            "{}: chunk {ordinal} has {} dimensions, the index has {dim}",
                            file.source,
                            chunk.embedding.len()
                        ),
                    });
                }
                let mut v = chunk.embedding.clone();
                normalize(&mut v);
                let blob: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                insert
                    .execute(params![
                        file.source,
                        ordinal as i64,
                        chunk.heading,
                        chunk.line as i64,
                        chunk.text,
                        blob
                    ])
                    .map_err(err)?;
            }
        }
        Self::bump_generation(&tx).map_err(err)?;
        tx.commit().map_err(err)
    }

    fn remove_file(&mut self, source: &str) -> Result<()> {
        let path = self.path.clone();
        let err = |e| store_error(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        tx.execute("DELETE FROM files WHERE source = ?1", [source])
            .map_err(err)?;
        Self::bump_generation(&tx).map_err(err)?;
        tx.commit().map_err(err)
    }

    fn finish(&mut self) -> Result<()> {
        let generation = self.generation()?;
        let graph_path = self.graph_path();
        if Graph::load(&graph_path).is_some_and(|g| g.generation == generation) {
            return Ok(());
        }
        let table = self.read_vectors()?;
        if table.ids.len() < MIN_GRAPH_SIZE {
            // Small index: the exact scan is used; drop any stale graph.
            let _ = std::fs::remove_file(&graph_path);
            return Ok(());
        }
        tracing::info!("building the HNSW graph over {} chunks", table.ids.len());
        let graph = Graph::build(&table, generation);
        graph.save(&graph_path)?;
        *self.cache.borrow_mut() = Some(Loaded {
            generation,
            table,
            graph: Some(graph),
        });
        Ok(())
    }

    fn dense(&self, query: &[f32], k: usize, filter: &Filter) -> Result<Vec<Hit>> {
        self.ensure_loaded()?;
        let mut q = query.to_vec();
        normalize(&mut q);
        let allowed = self.allowed_ids(filter)?;
        let scored = {
            let cache = self.cache.borrow();
            let loaded = cache.as_ref().expect("loaded above");
            if q.len() != loaded.table.dim && !loaded.table.ids.is_empty() {
                return Err(Error::Store {
                    location: self.location(),
                    message: format!(
                        "query has {} dimensions, the index {}",
                        q.len(),
                        loaded.table.dim
                    ),
                });
            }
            match (&loaded.graph, &allowed) {
                (Some(graph), None) => graph.search(&q, k),
                (_, Some(allowed)) => loaded.table.exact(&q, k, &|id| allowed.contains(&id)),
                (None, None) => loaded.table.exact(&q, k, &|_| true),
            }
        };
        self.hits_for(&scored)
    }

    fn keyword(&self, query: &str, k: usize, filter: &Filter) -> Result<Vec<Hit>> {
        let Some(fts) = fts_query(query) else {
            return Ok(Vec::new());
        };
        let (clause, mut args) = filter_sql(filter);
        args.push(fts);
        let match_param = args.len();
        let sql = format!(
            "SELECT chunks.id, -bm25(chunks_fts) AS score FROM chunks_fts
             JOIN chunks ON chunks.id = chunks_fts.rowid JOIN files USING(source)
             WHERE chunks_fts MATCH ?{match_param} AND {clause}
             ORDER BY bm25(chunks_fts) LIMIT {k}"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let mut scored = stmt
            .query_map(rusqlite::params_from_iter(args), |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)? as f32))
            })
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))?;
        top_k(&mut scored, k);
        self.hits_for(&scored)
    }

    fn stats(&self) -> Result<StoreStats> {
        let count = |sql: &str| -> Result<usize> {
            self.conn
                .query_row(sql, [], |r| r.get::<_, i64>(0))
                .map(|n| n as usize)
                .map_err(|e| self.err(e))
        };
        Ok(StoreStats {
            files: count("SELECT count(*) FROM files")?,
            chunks: count("SELECT count(*) FROM chunks")?,
        })
    }
}
