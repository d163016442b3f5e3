//! Approximate nearest-neighbour graph (HNSW) persisted beside the SQLite index.
