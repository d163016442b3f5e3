//! PostgreSQL with pgvector: the same [`Store`](super::Store) for indexes that outgrow one machine.

use super::{FileRecord, Filter, Hit, IndexInfo, Store, StoreStats};
use crate::Result;
use std::collections::BTreeMap;

/// Whether `location` is a PostgreSQL connection URL.
pub fn is_postgres_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// An index in a PostgreSQL database with the `vector` extension.
pub struct PostgresStore {}

impl PostgresStore {
    /// Connects, creates the extension and tables if missing.
    pub fn connect(url: &str) -> Result<Self> {
        let _ = url;
        todo!("postgres store")
    }

    /// Connects to the index `name` in the database at `url`.
    pub fn connect_named(url: &str, name: &str) -> Result<Self> {
        let _ = (url, name);
        todo!("postgres store")
    }
}

impl Store for PostgresStore {
    fn location(&self) -> String {
        todo!()
    }
    fn info(&self) -> Result<Option<IndexInfo>> {
        todo!()
    }
    fn ensure_info(&mut self, info: &IndexInfo) -> Result<()> {
        let _ = info;
        todo!()
    }
    fn file_hashes(&self) -> Result<BTreeMap<String, String>> {
        todo!()
    }
    fn upsert_file(&mut self, file: &FileRecord) -> Result<()> {
        let _ = file;
        todo!()
    }
    fn remove_file(&mut self, source: &str) -> Result<()> {
        let _ = source;
        todo!()
    }
    fn finish(&mut self) -> Result<()> {
        todo!()
    }
    fn dense(&self, query: &[f32], k: usize, filter: &Filter) -> Result<Vec<Hit>> {
        let _ = (query, k, filter);
        todo!()
    }
    fn keyword(&self, query: &str, k: usize, filter: &Filter) -> Result<Vec<Hit>> {
        let _ = (query, k, filter);
        todo!()
    }
    fn stats(&self) -> Result<StoreStats> {
        todo!()
    }
}
