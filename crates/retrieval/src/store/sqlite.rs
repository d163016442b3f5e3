//! The embedded default index: one SQLite file (chunks, embeddings, FTS5) plus an HNSW graph beside it.

/// An index in a SQLite file.
pub struct SqliteStore {}

impl SqliteStore {
    /// Opens or creates the index at `path`.
    pub fn open(path: &std::path::Path) -> crate::Result<Self> {
        let _ = path;
        todo!()
    }
}

impl super::Store for SqliteStore {
    fn location(&self) -> String { todo!() }
    fn info(&self) -> crate::Result<Option<super::IndexInfo>> { todo!() }
    fn ensure_info(&mut self, _: &super::IndexInfo) -> crate::Result<()> { todo!() }
    fn file_hashes(&self) -> crate::Result<std::collections::BTreeMap<String, String>> { todo!() }
    fn upsert_file(&mut self, _: &super::FileRecord) -> crate::Result<()> { todo!() }
    fn remove_file(&mut self, _: &str) -> crate::Result<()> { todo!() }
    fn finish(&mut self) -> crate::Result<()> { todo!() }
    fn dense(&self, _: &[f32], _: usize, _: &super::Filter) -> crate::Result<Vec<super::Hit>> { todo!() }
    fn keyword(&self, _: &str, _: usize, _: &super::Filter) -> crate::Result<Vec<super::Hit>> { todo!() }
    fn stats(&self) -> crate::Result<super::StoreStats> { todo!() }
}
