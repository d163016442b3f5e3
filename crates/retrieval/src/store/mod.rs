//! The index: where chunks, their embeddings and keyword postings live.
//!
//! [`Store`] is one interface with two implementations: [`SqliteStore`](sqlite::SqliteStore), embedded and the
//! default (a single SQLite file with FTS5 for BM25, plus an HNSW graph persisted beside it), and
//! [`PostgresStore`](postgres::PostgresStore) for PostgreSQL with the pgvector extension. [`open`] picks one from a
//! location string: `postgres://…` / `postgresql://…` or a path.

pub mod ann;
pub mod postgres;
pub mod sqlite;

use std::collections::BTreeMap;

use crate::Result;

/// The embedder an index was built with; every later ingest and query must use the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexInfo {
    /// Embedder name (model alias or folder name).
    pub embedder: String,
    /// Embedding dimension.
    pub dim: usize,
}

/// One chunk ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkRecord {
    /// The chunk text.
    pub text: String,
    /// Heading path, if any.
    pub heading: Option<String>,
    /// 1-based start line in the source.
    pub line: usize,
    /// Its embedding (length = the index dimension; unit length for cosine models).
    pub embedding: Vec<f32>,
}

/// One source file with all of its chunks; stored (or replaced) as a unit.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRecord {
    /// The source path as ingested (also the filter key).
    pub source: String,
    /// SHA-256 of the file's bytes, hex.
    pub hash: String,
    /// Tags given at ingest time.
    pub tags: Vec<String>,
    /// The chunks, in document order.
    pub chunks: Vec<ChunkRecord>,
}

/// Restricts a search to some sources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only sources starting with this prefix.
    pub source_prefix: Option<String>,
    /// Only sources carrying every one of these tags.
    pub tags: Vec<String>,
}

impl Filter {
    /// Whether the filter lets everything through.
    pub fn is_empty(&self) -> bool {
        self.source_prefix.is_none() && self.tags.is_empty()
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Stable id of the chunk within the store.
    pub chunk_id: i64,
    /// The source file.
    pub source: String,
    /// Heading path, if any.
    pub heading: Option<String>,
    /// 1-based start line in the source.
    pub line: usize,
    /// The chunk text.
    pub text: String,
    /// Higher is better: cosine similarity (dense), BM25 or ts_rank (keyword), fused RRF score (hybrid).
    pub score: f32,
}

/// Counts for `tuneup rag stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Files indexed.
    pub files: usize,
    /// Chunks indexed.
    pub chunks: usize,
}

/// An index of chunks. Writes are transactional per file: a crash leaves every file either fully old or fully new.
pub trait Store {
    /// Where the index lives (path or connection string without password), for messages.
    fn location(&self) -> String;
    /// The embedder the index was built with, or `None` for an empty new index.
    fn info(&self) -> Result<Option<IndexInfo>>;
    /// Records the embedder on first ingest; fails with [`Error::EmbedderMismatch`](crate::Error::EmbedderMismatch)
    /// when the index already has a different one.
    fn ensure_info(&mut self, info: &IndexInfo) -> Result<()>;
    /// Source → content hash of every indexed file.
    fn file_hashes(&self) -> Result<BTreeMap<String, String>>;
    /// Adds `file`, replacing any chunks it had before, in one transaction.
    fn upsert_file(&mut self, file: &FileRecord) -> Result<()>;
    /// Removes a source and its chunks.
    fn remove_file(&mut self, source: &str) -> Result<()>;
    /// Called once after a batch of writes (rebuilds derived structures such as the ANN graph).
    fn finish(&mut self) -> Result<()>;
    /// The `k` chunks nearest to `query` by cosine similarity.
    fn dense(&self, query: &[f32], k: usize, filter: &Filter) -> Result<Vec<Hit>>;
    /// The `k` best chunks for `query` by keyword relevance (BM25 on SQLite FTS5; `ts_rank_cd` on PostgreSQL).
    fn keyword(&self, query: &str, k: usize, filter: &Filter) -> Result<Vec<Hit>>;
    /// File and chunk counts.
    fn stats(&self) -> Result<StoreStats>;
}

/// Opens the index `name` in `store`: a PostgreSQL URL (`postgres://`, `postgresql://`; the index is a set of
/// tables named after `name`), a SQLite file (`*.db`, `*.sqlite`; `name` unused), or a folder holding
/// `NAME.db` files. The SQLite file and its folder are created if missing.
pub fn open_index(store: &std::path::Path, name: &str) -> Result<Box<dyn Store>> {
    let text = store.to_string_lossy();
    if postgres::is_postgres_url(&text) {
        return Ok(Box::new(postgres::PostgresStore::connect_named(
            &text, name,
        )?));
    }
    let is_file = matches!(
        store.extension().and_then(|e| e.to_str()),
        Some("db" | "sqlite")
    );
    let path = if is_file {
        store.to_path_buf()
    } else {
        store.join(format!("{name}.db"))
    };
    Ok(Box::new(sqlite::SqliteStore::open(&path)?))
}
