//! Dense, keyword and hybrid search over a [`Store`].
//!
//! Hybrid search runs both and fuses the two rankings by reciprocal rank (Cormack et al. 2009):
//! `score(d) = Σ 1 / (RRF_K + rank(d))` over the lists `d` appears in, with `RRF_K = 60`.

use std::collections::HashMap;
use std::str::FromStr;

use crate::embed::Embedder;
use crate::store::{Filter, Hit, Store};
use crate::{Error, Result};

/// The constant of reciprocal-rank fusion.
pub const RRF_K: f32 = 60.0;

/// How many candidates each side contributes to a hybrid search, at least.
pub const HYBRID_CANDIDATES: usize = 50;

/// Which search to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Embedding similarity.
    Dense,
    /// Keyword relevance: BM25 on SQLite, `ts_rank_cd` on PostgreSQL.
    Bm25,
    /// Both, fused by reciprocal rank.
    #[default]
    Hybrid,
}

impl FromStr for Mode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "dense" => Ok(Mode::Dense),
            "bm25" | "keyword" => Ok(Mode::Bm25),
            "hybrid" => Ok(Mode::Hybrid),
            other => Err(Error::Invalid(format!(
                "unknown search mode {other:?}: expected dense, bm25 or hybrid"
            ))),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Dense => "dense",
            Mode::Bm25 => "bm25",
            Mode::Hybrid => "hybrid",
        })
    }
}

/// Finds the `k` best chunks for `text`.
pub fn search(
    store: &dyn Store,
    embedder: &Embedder,
    text: &str,
    k: usize,
    mode: Mode,
    filter: &Filter,
) -> Result<Vec<Hit>> {
    let dense = |n: usize| -> Result<Vec<Hit>> {
        let query = embedder.embed(&[text])?.pop().unwrap_or_default();
        store.dense(&query, n, filter)
    };
    match mode {
        Mode::Dense => dense(k),
        Mode::Bm25 => store.keyword(text, k, filter),
        Mode::Hybrid => {
            let n = k.max(HYBRID_CANDIDATES);
            Ok(fuse(&[dense(n)?, store.keyword(text, n, filter)?], k))
        }
    }
}

/// An index, its embedder and search settings: what prompts and agents retrieve with.
pub struct Retriever {
    /// The index.
    pub store: Box<dyn Store>,
    /// The embedder the index was built with.
    pub embedder: Embedder,
    /// Chunks per query.
    pub k: usize,
    /// Search mode.
    pub mode: Mode,
    /// Restriction to some sources.
    pub filter: Filter,
}

impl Retriever {
    /// Checks that the index exists and was built with `embedder`.
    pub fn new(store: Box<dyn Store>, embedder: Embedder, k: usize, mode: Mode) -> Result<Self> {
        let info = store.info()?.ok_or_else(|| {
            Error::Invalid(format!(
                "index {} is empty: run `tuneup rag ingest` first",
                store.location()
            ))
        })?;
        if info.embedder != embedder.name() || info.dim != embedder.dim() {
            return Err(Error::EmbedderMismatch {
                location: store.location(),
                indexed: info.embedder,
                indexed_dim: info.dim,
                current: embedder.name().to_string(),
                current_dim: embedder.dim(),
            });
        }
        Ok(Retriever {
            store,
            embedder,
            k,
            mode,
            filter: Filter::default(),
        })
    }

    /// The best chunks for `text`.
    pub fn retrieve(&self, text: &str) -> Result<Vec<Hit>> {
        search(
            self.store.as_ref(),
            &self.embedder,
            text,
            self.k,
            self.mode,
            &self.filter,
        )
    }
}

/// Retrieved chunks as prompt context: each chunk under a `[n] source:line` header.
pub fn format_context(hits: &[Hit]) -> String {
    hits.iter()
        .enumerate()
        .map(|(i, h)| format!("[{}] {}:{}\n{}", i + 1, h.source, h.line, h.text.trim()))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Reciprocal-rank fusion of ranked lists; the result's scores are the fused scores.
pub fn fuse(lists: &[Vec<Hit>], k: usize) -> Vec<Hit> {
    let mut fused: HashMap<i64, Hit> = HashMap::new();
    for list in lists {
        for (rank, hit) in list.iter().enumerate() {
            let add = 1.0 / (RRF_K + rank as f32 + 1.0);
            fused
                .entry(hit.chunk_id)
                .and_modify(|h| h.score += add)
                .or_insert_with(|| Hit {
                    score: add,
                    ..hit.clone()
                });
        }
    }
    let mut hits: Vec<Hit> = fused.into_values().collect();
    hits.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.chunk_id.cmp(&b.chunk_id))
    });
    hits.truncate(k);
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: i64) -> Hit {
        Hit {
            chunk_id: id,
            source: format!("s{id}"),
            heading: None,
            line: 1,
            text: String::new(),
            score: 0.0,
        }
    }

    #[test]
    fn fusion_rewards_agreement_between_lists() {
        let dense = vec![hit(1), hit(2), hit(3)];
        let keyword = vec![hit(3), hit(4), hit(1)];
        let fused = fuse(&[dense, keyword], 4);
        let ids: Vec<i64> = fused.iter().map(|h| h.chunk_id).collect();
        // 1: 1/61 + 1/63; 3: 1/63 + 1/61 (tie, lower id first); 2: 1/62; 4: 1/62.
        assert_eq!(ids, vec![1, 3, 2, 4]);
        assert!((fused[0].score - (1.0 / 61.0 + 1.0 / 63.0)).abs() < 1e-6);
    }

    #[test]
    fn modes_parse_and_print() {
        for m in [Mode::Dense, Mode::Bm25, Mode::Hybrid] {
            assert_eq!(m.to_string().parse::<Mode>().unwrap(), m);
        }
        assert!("vector".parse::<Mode>().is_err());
    }
}
