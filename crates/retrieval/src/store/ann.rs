//! Nearest-neighbour search over unit vectors: exact (a parallel scan) and approximate (an HNSW graph from
//! `instant-distance`, persisted beside the SQLite index).
//!
//! The graph file is derived data. It records the index *generation* it was built from; when that differs from the
//! database's (a crash between a write and the rebuild, or a write by an older run), the graph is ignored and
//! search falls back to the exact scan, so a stale graph can never return wrong chunks.

use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use instant_distance::{Builder, HnswMap, Point, Search};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};
use tuneup_nn::dispatch;

/// Below this many vectors the exact scan is as fast as the graph, so no graph is built.
pub const MIN_GRAPH_SIZE: usize = 20_000;

/// A unit vector; distance is `1 - cosine`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnitVector(pub Vec<f32>);

impl Point for UnitVector {
    fn distance(&self, other: &Self) -> f32 {
        1.0 - dot(&self.0, &other.0)
    }
}

dispatch! {
    /// The dot product of two equal-length slices (the shorter length when they differ).
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        tuneup_nn::vmath::dot(a, b)
    }
}

/// Scales `v` to unit length (zero vectors stay zero).
pub fn normalize(v: &mut [f32]) {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// All vectors of an index in one row-major matrix, with their chunk ids.
#[derive(Debug, Default, Clone)]
pub struct VectorTable {
    /// Vector length.
    pub dim: usize,
    /// Chunk id of each row.
    pub ids: Vec<i64>,
    /// `ids.len() × dim` floats, unit rows.
    pub data: Vec<f32>,
}

impl VectorTable {
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// The exact top `k` rows by cosine with `query`, restricted to rows whose id passes `keep`.
    pub fn exact(
        &self,
        query: &[f32],
        k: usize,
        keep: &(dyn Fn(i64) -> bool + Sync),
    ) -> Vec<(i64, f32)> {
        let mut scored: Vec<(i64, f32)> = (0..self.ids.len())
            .into_par_iter()
            .with_min_len(1024)
            .filter(|&i| keep(self.ids[i]))
            .map(|i| (self.ids[i], dot(self.row(i), query)))
            .collect();
        top_k(&mut scored, k);
        scored
    }
}

/// Sorts by descending score (ties by id) and keeps the first `k`.
pub fn top_k(scored: &mut Vec<(i64, f32)>, k: usize) {
    let by_score = |a: &(i64, f32), b: &(i64, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if scored.len() > k && k > 0 {
        scored.select_nth_unstable_by(k - 1, by_score);
        scored.truncate(k);
    }
    scored.sort_by(by_score);
}

/// A persisted HNSW graph and the generation it was built from.
#[derive(Serialize, Deserialize)]
pub struct Graph {
    /// Index generation at build time.
    pub generation: u64,
    map: HnswMap<UnitVector, i64>,
}

impl Graph {
    /// Builds a graph over every row of `table`.
    pub fn build(table: &VectorTable, generation: u64) -> Graph {
        let points: Vec<UnitVector> = (0..table.ids.len())
            .map(|i| UnitVector(table.row(i).to_vec()))
            .collect();
        let map = Builder::default().seed(17).build(points, table.ids.clone());
        Graph { generation, map }
    }

    /// The approximate top `k` ids by cosine with `query`.
    pub fn search(&self, query: &[f32], k: usize) -> Vec<(i64, f32)> {
        let mut search = Search::default();
        let point = UnitVector(query.to_vec());
        self.map
            .search(&point, &mut search)
            .take(k)
            .map(|item| (*item.value, 1.0 - item.distance))
            .collect()
    }

    /// Writes the graph to `path` atomically (temporary file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("hnsw.tmp");
        let io = |source| Error::Io {
            path: tmp.clone(),
            source,
        };
        let file = std::fs::File::create(&tmp).map_err(io)?;
        let mut writer = BufWriter::new(file);
        bincode::serialize_into(&mut writer, self).map_err(|e| Error::Store {
            location: tmp.display().to_string(),
            message: format!("writing the HNSW graph: {e}"),
        })?;
        writer.flush().map_err(io)?;
        writer.get_ref().sync_all().map_err(io)?;
        drop(writer);
        std::fs::rename(&tmp, path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads a graph; `None` when the file is missing or unreadable (it is only a cache).
    pub fn load(path: &Path) -> Option<Graph> {
        let file = std::fs::File::open(path).ok()?;
        match bincode::deserialize_from(BufReader::new(file)) {
            Ok(graph) => Some(graph),
            Err(e) => {
                tracing::warn!("ignoring unreadable HNSW graph {}: {e}", path.display());
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_f64_sums_at_every_length() {
        for len in [0, 1, 5, 31, 32, 33, 384, 1000] {
            let a: Vec<f32> = (0..len)
                .map(|i| ((i * 17 % 23) as f32 - 11.0) / 7.0)
                .collect();
            let b: Vec<f32> = (0..len)
                .map(|i| ((i * 29 % 31) as f32 - 15.0) / 9.0)
                .collect();
            let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let got = dot(&a, &b) as f64;
            assert!(
                (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                "len {len}: {got} vs {want}"
            );
        }
    }

    fn table(n: usize, dim: usize) -> VectorTable {
        let mut state = 12345u64;
        let mut data = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let mut v: Vec<f32> = (0..dim)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
                })
                .collect();
            normalize(&mut v);
            data.extend(v);
        }
        VectorTable {
            dim,
            ids: (0..n as i64).map(|i| i * 10).collect(),
            data,
        }
    }

    #[test]
    fn exact_search_finds_the_query_itself_first_and_respects_the_filter() {
        let t = table(500, 16);
        let hits = t.exact(t.row(42), 3, &|_| true);
        assert_eq!(hits[0].0, 420);
        assert!((hits[0].1 - 1.0).abs() < 1e-5);
        assert!(hits[0].1 >= hits[1].1 && hits[1].1 >= hits[2].1);
        let filtered = t.exact(t.row(42), 3, &|id| id != 420);
        assert!(filtered.iter().all(|h| h.0 != 420));
    }

    #[test]
    fn graph_recall_is_high_and_survives_a_save_load_round_trip() {
        let t = table(2000, 16);
        let graph = Graph::build(&t, 7);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.hnsw");
        graph.save(&path).unwrap();
        let loaded = Graph::load(&path).unwrap();
        assert_eq!(loaded.generation, 7);
        let mut found = 0;
        for q in 0..50 {
            let exact: Vec<i64> = t
                .exact(t.row(q * 7), 10, &|_| true)
                .iter()
                .map(|h| h.0)
                .collect();
            let approx: Vec<i64> = loaded
                .search(t.row(q * 7), 10)
                .iter()
                .map(|h| h.0)
                .collect();
            found += exact.iter().filter(|id| approx.contains(id)).count();
        }
        assert!(found as f64 / 500.0 > 0.9, "recall@10 {found}/500");
    }

    #[test]
    fn a_damaged_graph_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.hnsw");
        std::fs::write(&path, b"not a graph").unwrap();
        assert!(Graph::load(&path).is_none());
    }
}
