//! PostgreSQL with pgvector: the same [`Store`](super::Store) for indexes that outgrow one machine.
//!
//! An index is three tables sharing a name prefix (`tuneup_rag_` by default, `tuneup_rag_NAME_` for
//! [`PostgresStore::connect_named`]), so several indexes can live in one database:
//!
//! - `PREFIXinfo (embedder, dim)`: one row, written by the first [`ensure_info`](super::Store::ensure_info);
//! - `PREFIXfiles (source PRIMARY KEY, hash, tags text[])`;
//! - `PREFIXchunks (id, source → files ON DELETE CASCADE, ordinal, heading, line, text, embedding vector(dim),
//!   tsv)`, where `tsv` is a stored generated `tsvector` (English stemming) of heading and text, with an HNSW
//!   index (`vector_cosine_ops`) on `embedding` and a GIN index on `tsv`. It is created once the dimension is
//!   known (on the first `ensure_info`).
//!
//! Dense search orders by cosine distance (`<=>`) and scores `1 - distance` (cosine similarity); keyword search
//! ranks with `ts_rank_cd` against the OR of the query's stemmed words (stop words dropped), so, like BM25, a
//! chunk needs only some of the words and ranks higher the more it has.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};

use pgvector::Vector;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::{Client, Row};
use tuneup_eval::sql::postgres::PgTarget;

use super::{FileRecord, Filter, Hit, IndexInfo, Store, StoreStats};
use crate::{Error, Result};

/// The table-name prefix of the default (unnamed) index.
pub const DEFAULT_PREFIX: &str = "tuneup_rag_";

/// Longest index name [`PostgresStore::connect_named`] accepts (keeps every table and index name under
/// PostgreSQL's 63-byte identifier limit).
pub const MAX_NAME_LEN: usize = 32;

/// pgvector's default `hnsw.ef_search`; raised per query when `k` is larger.
const DEFAULT_EF_SEARCH: usize = 40;
/// pgvector's upper bound for `hnsw.ef_search`.
const MAX_EF_SEARCH: usize = 1000;

/// Whether `location` is a PostgreSQL connection URL.
pub fn is_postgres_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// `url` without its password (in the user info or a `password=` parameter), for messages.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => {
            let (userinfo, host) = authority.split_at(at);
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{user}{host}")
        }
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|kv| !kv.to_ascii_lowercase().starts_with("password="))
                .collect();
            if kept.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{}", kept.join("&"))
            }
        }
        None => tail.to_string(),
    };
    format!("{}{authority}{tail}", &url[..scheme_end])
}

/// An index in a PostgreSQL database with the `vector` extension.
///
/// Queries take `&self`; the connection sits behind a mutex, so a store can be shared between threads (queries
/// on one store run one at a time).
pub struct PostgresStore {
    location: String,
    prefix: String,
    inner: Mutex<Inner>,
}

struct Inner {
    client: Client,
    /// The recorded embedder, once known (the chunks table exists exactly when this is `Some`).
    info: Option<IndexInfo>,
    /// The session's current `hnsw.ef_search`.
    ef_search: usize,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("location", &self.location)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the default index (tables `tuneup_rag_*`) and creates the extension and tables if missing.
    ///
    /// `url` is a libpq connection URL (`postgres://user[:password]@host[:port]/database[?param=value…]`) or a
    /// `key=value` connection string; `sslmode`/`sslrootcert` work as in libpq (see
    /// [`tuneup_eval::sql::postgres::tls`]).
    pub fn connect(url: &str) -> Result<Self> {
        Self::open(url, DEFAULT_PREFIX.to_string(), None)
    }

    /// Connects to the index called `name` (tables `tuneup_rag_NAME_*`), so several indexes can share one
    /// database. `name` is 1 to [`MAX_NAME_LEN`] characters among lowercase ASCII letters, digits and `_`.
    pub fn connect_named(url: &str, name: &str) -> Result<Self> {
        let valid = !name.is_empty()
            && name.len() <= MAX_NAME_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(Error::Invalid(format!(
                "PostgreSQL index name {name:?}: use 1 to {MAX_NAME_LEN} lowercase ASCII letters, digits or _"
            )));
        }
        Self::open(url, format!("{DEFAULT_PREFIX}{name}_"), Some(name))
    }

    /// The table-name prefix of this index (`tuneup_rag_` or `tuneup_rag_NAME_`).
    pub fn table_prefix(&self) -> &str {
        &self.prefix
    }

    fn open(url: &str, prefix: String, name: Option<&str>) -> Result<Self> {
        let mut location = if is_postgres_url(url) {
            redact_url(url)
        } else {
            redact_key_values(url)
        };
        if let Some(name) = name {
            let _ = write!(location, " (index {name})");
        }
        let store_err = |message: String| Error::Store {
            location: location.clone(),
            message,
        };
        let target = PgTarget::parse(url)
            .map_err(|e| store_err(format!("invalid connection string: {e}")))?;
        let mut client = target.connect().map_err(|e| {
            store_err(format!(
                "cannot connect to PostgreSQL: {} (is the server running and reachable? for tests, \
                 scripts/postgres.sh start prints a URL)",
                describe(&e)
            ))
        })?;
        create_schema(&mut client, &prefix).map_err(store_err)?;
        let mut store_inner = Inner {
            client,
            info: None,
            ef_search: DEFAULT_EF_SEARCH,
        };
        // Exact results under filters: keep scanning the HNSW graph until k rows pass the WHERE clause
        // (pgvector 0.8+; older versions do not know the setting, which is fine).
        let _ = store_inner
            .client
            .batch_execute("SET hnsw.iterative_scan = strict_order");
        let store = PostgresStore {
            location,
            prefix,
            inner: Mutex::new(store_inner),
        };
        let info = store.read_info()?;
        store.lock().info = info;
        Ok(store)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn err(&self, what: &str, e: &postgres::Error) -> Error {
        Error::Store {
            location: self.location.clone(),
            message: format!("{what}: {}", describe(e)),
        }
    }

    fn table(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn read_info(&self) -> Result<Option<IndexInfo>> {
        let sql = format!(
            "SELECT embedder, dim FROM {} WHERE id = 1",
            self.table("info")
        );
        let row = self
            .lock()
            .client
            .query_opt(&sql, &[])
            .map_err(|e| self.err("reading the index info", &e))?;
        Ok(row.map(|r| IndexInfo {
            embedder: r.get(0),
            dim: usize::try_from(r.get::<_, i32>(1)).unwrap_or(0),
        }))
    }

    /// The `WHERE` conditions and parameters for `filter`, numbering parameters from `first`.
    fn filter_sql(&self, filter: &Filter, first: usize) -> (String, Vec<Box<dyn ToSql + Sync>>) {
        let mut sql = String::new();
        let mut params: Vec<Box<dyn ToSql + Sync>> = Vec::new();
        if let Some(prefix) = &filter.source_prefix {
            let _ = write!(
                sql,
                " AND c.source LIKE ${} ESCAPE '\\'",
                first + params.len()
            );
            params.push(Box::new(format!("{}%", escape_like(prefix))));
        }
        if !filter.tags.is_empty() {
            let _ = write!(
                sql,
                " AND EXISTS (SELECT 1 FROM {} f WHERE f.source = c.source AND f.tags @> ${}::text[])",
                self.table("files"),
                first + params.len()
            );
            params.push(Box::new(filter.tags.clone()));
        }
        (sql, params)
    }
}

impl Store for PostgresStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn info(&self) -> Result<Option<IndexInfo>> {
        let info = self.read_info()?;
        self.lock().info.clone_from(&info);
        Ok(info)
    }

    fn ensure_info(&mut self, info: &IndexInfo) -> Result<()> {
        if info.dim == 0 || info.dim > 16000 {
            return Err(Error::Invalid(format!(
                "embedding dimension {} is out of range for pgvector (1 to 16000)",
                info.dim
            )));
        }
        let prefix = self.prefix.clone();
        let location = self.location.clone();
        let mut inner = self.lock();
        let mut tx = inner
            .client
            .transaction()
            .map_err(|e| store_error(&location, "starting a transaction", &e))?;
        lock_schema(&mut tx).map_err(|e| store_error(&location, "locking the schema", &e))?;
        let existing = tx
            .query_opt(
                &format!("SELECT embedder, dim FROM {prefix}info WHERE id = 1"),
                &[],
            )
            .map_err(|e| store_error(&location, "reading the index info", &e))?;
        if let Some(row) = existing {
            let indexed: String = row.get(0);
            let indexed_dim = usize::try_from(row.get::<_, i32>(1)).unwrap_or(0);
            if indexed != info.embedder || indexed_dim != info.dim {
                return Err(Error::EmbedderMismatch {
                    location,
                    indexed,
                    indexed_dim,
                    current: info.embedder.clone(),
                    current_dim: info.dim,
                });
            }
        } else {
            let dim = i32::try_from(info.dim).unwrap_or(i32::MAX);
            tx.execute(
                &format!("INSERT INTO {prefix}info (id, embedder, dim) VALUES (1, $1, $2)"),
                &[&info.embedder, &dim],
            )
            .map_err(|e| store_error(&location, "recording the embedder", &e))?;
        }
        tx.batch_execute(&chunks_ddl(&prefix, info.dim))
            .map_err(|e| store_error(&location, "creating the chunks table", &e))?;
        tx.commit()
            .map_err(|e| store_error(&location, "committing the index info", &e))?;
        inner.info = Some(info.clone());
        Ok(())
    }

    fn file_hashes(&self) -> Result<BTreeMap<String, String>> {
        let sql = format!("SELECT source, hash FROM {}", self.table("files"));
        let rows = self
            .lock()
            .client
            .query(&sql, &[])
            .map_err(|e| self.err("listing files", &e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn upsert_file(&mut self, file: &FileRecord) -> Result<()> {
        let prefix = self.prefix.clone();
        let location = self.location.clone();
        let mut inner = self.lock();
        let Some(info) = inner.info.clone() else {
            return Err(Error::Store {
                location,
                message: "no embedder recorded yet: call ensure_info before the first upsert_file"
                    .into(),
            });
        };
        if let Some((i, c)) = file
            .chunks
            .iter()
            .enumerate()
            .find(|(_, c)| c.embedding.len() != info.dim)
        {
            return Err(Error::Store {
                location,
                message: format!(
                    "{}: chunk {i} has a {}-dimensional embedding; the index holds dimension {}",
                    file.source,
                    c.embedding.len(),
                    info.dim
                ),
            });
        }
        let mut tx = inner
            .client
            .transaction()
            .map_err(|e| store_error(&location, "starting a transaction", &e))?;
        let fail = |what: &str, e: postgres::Error| {
            store_error(&location, &format!("storing {}: {what}", file.source), &e)
        };
        tx.execute(
            &format!(
                "INSERT INTO {prefix}files (source, hash, tags) VALUES ($1, $2, $3) \
                 ON CONFLICT (source) DO UPDATE SET hash = EXCLUDED.hash, tags = EXCLUDED.tags"
            ),
            &[&file.source, &file.hash, &file.tags],
        )
        .map_err(|e| fail("file row", e))?;
        tx.execute(
            &format!("DELETE FROM {prefix}chunks WHERE source = $1"),
            &[&file.source],
        )
        .map_err(|e| fail("deleting old chunks", e))?;
        if !file.chunks.is_empty() {
            // The column types (the vector type's oid varies per database) come from a prepared insert.
            let types: Vec<Type> = tx
                .prepare(&format!(
                    "INSERT INTO {prefix}chunks (source, ordinal, heading, line, text, embedding) \
                     VALUES ($1, $2, $3, $4, $5, $6)"
                ))
                .map_err(|e| fail("preparing", e))?
                .params()
                .to_vec();
            let sink = tx
                .copy_in(&format!(
                    "COPY {prefix}chunks (source, ordinal, heading, line, text, embedding) FROM STDIN BINARY"
                ))
                .map_err(|e| fail("starting COPY", e))?;
            let mut writer = BinaryCopyInWriter::new(sink, &types);
            for (ordinal, chunk) in file.chunks.iter().enumerate() {
                let ordinal = i32::try_from(ordinal).unwrap_or(i32::MAX);
                let line = i32::try_from(chunk.line).unwrap_or(i32::MAX);
                let embedding = Vector::from(chunk.embedding.clone());
                writer
                    .write(&[
                        &file.source,
                        &ordinal,
                        &chunk.heading,
                        &line,
                        &chunk.text,
                        &embedding,
                    ])
                    .map_err(|e| fail("writing chunks", e))?;
            }
            writer.finish().map_err(|e| fail("writing chunks", e))?;
        }
        tx.commit().map_err(|e| fail("commit", e))?;
        Ok(())
    }

    fn remove_file(&mut self, source: &str) -> Result<()> {
        let sql = format!("DELETE FROM {} WHERE source = $1", self.table("files"));
        self.lock()
            .client
            .execute(&sql, &[&source])
            .map_err(|e| self.err(&format!("removing {source}"), &e))?;
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        // The HNSW and GIN indexes are maintained on every write; just refresh the planner's statistics.
        if self.lock().info.is_some() {
            let sql = format!("ANALYZE {0}files, {0}chunks", self.prefix);
            self.lock()
                .client
                .batch_execute(&sql)
                .map_err(|e| self.err("analyzing the tables", &e))?;
        }
        Ok(())
    }

    fn dense(&self, query: &[f32], k: usize, filter: &Filter) -> Result<Vec<Hit>> {
        let mut inner = self.lock();
        let Some(info) = inner.info.clone() else {
            return Ok(Vec::new());
        };
        if k == 0 {
            return Ok(Vec::new());
        }
        if query.len() != info.dim {
            return Err(Error::Store {
                location: self.location.clone(),
                message: format!(
                    "the query embedding has dimension {}; the index holds dimension {}",
                    query.len(),
                    info.dim
                ),
            });
        }
        let ef_search = k.clamp(DEFAULT_EF_SEARCH, MAX_EF_SEARCH);
        if ef_search != inner.ef_search {
            inner
                .client
                .batch_execute(&format!("SET hnsw.ef_search = {ef_search}"))
                .map_err(|e| self.err("setting hnsw.ef_search", &e))?;
            inner.ef_search = ef_search;
        }
        let (where_sql, filter_params) = self.filter_sql(filter, 3);
        let sql = format!(
            "SELECT c.id, c.source, c.heading, c.line, c.text, (c.embedding <=> $1)::float8 \
             FROM {}chunks c WHERE true{where_sql} ORDER BY c.embedding <=> $1 LIMIT $2",
            self.prefix
        );
        let vector = Vector::from(query.to_vec());
        let limit = i64::try_from(k).unwrap_or(i64::MAX);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&vector, &limit];
        params.extend(filter_params.iter().map(|p| &**p));
        let rows = inner
            .client
            .query(&sql, &params)
            .map_err(|e| self.err("dense search", &e))?;
        Ok(rows
            .iter()
            .map(|r| hit(r, (1.0 - r.get::<_, f64>(5)) as f32))
            .collect())
    }

    fn keyword(&self, query: &str, k: usize, filter: &Filter) -> Result<Vec<Hit>> {
        let mut inner = self.lock();
        if inner.info.is_none() || k == 0 || query.trim().is_empty() {
            return Ok(Vec::new());
        }
        let (where_sql, filter_params) = self.filter_sql(filter, 3);
        // The OR of the query's English lexemes (stemmed, stop words dropped), each quoted and cast to tsquery
        // verbatim (the tsquery input syntax does no further parsing). No lexemes → NULL → no rows.
        let sql = format!(
            "WITH q AS (\
               SELECT string_agg(\
                 '''' || replace(replace(lexeme, '\\', '\\\\'), '''', '''''') || '''', ' | ')::tsquery AS q \
               FROM unnest(tsvector_to_array(to_tsvector('english', $1))) AS lexeme) \
             SELECT c.id, c.source, c.heading, c.line, c.text, ts_rank_cd(c.tsv, q.q) AS rank \
             FROM {}chunks c, q WHERE c.tsv @@ q.q{where_sql} \
             ORDER BY rank DESC, c.id LIMIT $2",
            self.prefix
        );
        let limit = i64::try_from(k).unwrap_or(i64::MAX);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&query, &limit];
        params.extend(filter_params.iter().map(|p| &**p));
        let rows = inner
            .client
            .query(&sql, &params)
            .map_err(|e| self.err("keyword search", &e))?;
        Ok(rows.iter().map(|r| hit(r, r.get::<_, f32>(5))).collect())
    }

    fn stats(&self) -> Result<StoreStats> {
        let mut inner = self.lock();
        let chunks_sql = if inner.info.is_some() {
            format!("(SELECT count(*) FROM {}chunks)", self.prefix)
        } else {
            "0::bigint".to_string()
        };
        let sql = format!(
            "SELECT (SELECT count(*) FROM {}files), {chunks_sql}",
            self.prefix
        );
        let row = inner
            .client
            .query_one(&sql, &[])
            .map_err(|e| self.err("counting", &e))?;
        Ok(StoreStats {
            files: usize::try_from(row.get::<_, i64>(0)).unwrap_or(0),
            chunks: usize::try_from(row.get::<_, i64>(1)).unwrap_or(0),
        })
    }
}

fn hit(row: &Row, score: f32) -> Hit {
    Hit {
        chunk_id: row.get(0),
        source: row.get(1),
        heading: row.get(2),
        line: usize::try_from(row.get::<_, i32>(3)).unwrap_or(0),
        text: row.get(4),
        score,
    }
}

fn store_error(location: &str, what: &str, e: &postgres::Error) -> Error {
    Error::Store {
        location: location.to_string(),
        message: format!("{what}: {}", describe(e)),
    }
}

/// A one-line description of a driver error: the server's message (with detail and hint) or the I/O cause.
fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = db.message().to_string();
        if let Some(detail) = db.detail() {
            let _ = write!(s, " ({detail})");
        }
        if let Some(hint) = db.hint() {
            let _ = write!(s, "; hint: {hint}");
        }
        return s;
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !s.contains(&text) {
            let _ = write!(s, ": {text}");
        }
        source = cause.source();
    }
    s
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// `key=value` connection string without its `password=` entry.
fn redact_key_values(conn: &str) -> String {
    conn.split_whitespace()
        .filter(|kv| !kv.to_ascii_lowercase().starts_with("password="))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Serializes schema changes between connections (a database-wide advisory lock held until the transaction ends).
fn lock_schema(tx: &mut postgres::Transaction<'_>) -> Result<(), postgres::Error> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('tuneup_rag_schema'))",
        &[],
    )
    .map(|_| ())
}

/// Creates the `vector` extension (if missing) and the info and files tables; the chunks table too when the
/// index already has an embedder.
fn create_schema(client: &mut Client, prefix: &str) -> std::result::Result<(), String> {
    let mut tx = client
        .transaction()
        .map_err(|e| format!("starting a transaction: {}", describe(&e)))?;
    lock_schema(&mut tx).map_err(|e| format!("locking the schema: {}", describe(&e)))?;
    let has_vector = tx
        .query_opt("SELECT 1 FROM pg_extension WHERE extname = 'vector'", &[])
        .map_err(|e| format!("checking for the vector extension: {}", describe(&e)))?
        .is_some();
    if !has_vector {
        tx.batch_execute("CREATE EXTENSION IF NOT EXISTS vector")
            .map_err(|e| {
                format!(
                    "the PostgreSQL extension `vector` (pgvector) is not enabled in this database and could not be \
                     created ({}): install pgvector on the server (https://github.com/pgvector/pgvector#installation, \
                     e.g. `apt install postgresql-NN-pgvector`), then run `CREATE EXTENSION vector;` in the database \
                     as a superuser; for tests, scripts/postgres.sh starts a server that has it",
                    describe(&e)
                )
            })?;
    }
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {prefix}info (\
           id int PRIMARY KEY DEFAULT 1 CHECK (id = 1), \
           embedder text NOT NULL, \
           dim int NOT NULL); \
         CREATE TABLE IF NOT EXISTS {prefix}files (\
           source text PRIMARY KEY, \
           hash text NOT NULL, \
           tags text[] NOT NULL DEFAULT '{{}}');"
    ))
    .map_err(|e| format!("creating the tables: {}", describe(&e)))?;
    let dim = tx
        .query_opt(&format!("SELECT dim FROM {prefix}info WHERE id = 1"), &[])
        .map_err(|e| format!("reading the index info: {}", describe(&e)))?
        .map(|r| r.get::<_, i32>(0));
    if let Some(dim) = dim {
        tx.batch_execute(&chunks_ddl(prefix, usize::try_from(dim).unwrap_or(0)))
            .map_err(|e| format!("creating the chunks table: {}", describe(&e)))?;
    }
    tx.commit()
        .map_err(|e| format!("committing the schema: {}", describe(&e)))
}

fn chunks_ddl(prefix: &str, dim: usize) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {prefix}chunks (\
           id bigserial PRIMARY KEY, \
           source text NOT NULL REFERENCES {prefix}files (source) ON DELETE CASCADE, \
           ordinal int NOT NULL, \
           heading text, \
           line int NOT NULL, \
           text text NOT NULL, \
           embedding vector({dim}) NOT NULL, \
           tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', coalesce(heading, '') || ' ' || text)) STORED); \
         CREATE INDEX IF NOT EXISTS {prefix}chunks_source ON {prefix}chunks (source); \
         CREATE INDEX IF NOT EXISTS {prefix}chunks_hnsw ON {prefix}chunks USING hnsw (embedding vector_cosine_ops); \
         CREATE INDEX IF NOT EXISTS {prefix}chunks_tsv ON {prefix}chunks USING gin (tsv);"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://alice:s3cr@t@db.example:5432/rag?sslmode=disable&password=x"),
            "postgres://alice@db.example:5432/rag?sslmode=disable"
        );
        assert_eq!(
            redact_url("postgresql://bob@localhost/db"),
            "postgresql://bob@localhost/db"
        );
        assert_eq!(
            redact_url("postgres://localhost:5433"),
            "postgres://localhost:5433"
        );
        assert_eq!(
            redact_url("postgres://u:p@h/db?password=x"),
            "postgres://u@h/db"
        );
        assert_eq!(
            redact_key_values("host=h user=u password=secret dbname=d"),
            "host=h user=u dbname=d"
        );
    }

    #[test]
    fn escapes_like_patterns() {
        assert_eq!(escape_like("a_b%c\\d"), "a\\_b\\%c\\\\d");
    }

    #[test]
    fn rejects_bad_index_names() {
        for name in [
            "",
            "Upper",
            "has-dash",
            "x; DROP TABLE y",
            "a".repeat(MAX_NAME_LEN + 1).as_str(),
        ] {
            assert!(matches!(
                PostgresStore::connect_named("postgres://127.0.0.1:1/db", name),
                Err(Error::Invalid(_))
            ));
        }
    }
}
