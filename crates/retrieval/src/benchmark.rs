//! Retrieval quality on public benchmarks, through the same index and search code users run.
//!
//! - BEIR layout (`corpus.jsonl`, `queries_<split>.jsonl`, `qrels_<split>.tsv`; e.g. SciFact): nDCG@10 and
//!   recall@100, computed as `pytrec_eval` does for BEIR (gain = relevance grade, `log2(rank + 1)` discount).
//! - SQuAD layout (`{"data": [{"paragraphs": [{"context", "qas": [{"question"}]}]}]}`; e.g. KorQuAD 1.0): each
//!   paragraph is a document and a question's gold document is its own paragraph; recall@1/5/20.
//!
//! Documents are chunked like files (a long abstract becomes several chunks); a document's rank is the rank of
//! its best chunk.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::chunk::{chunk_document, ChunkOptions};
use crate::embed::Embedder;
use crate::read::{DocKind, Document};
use crate::search::{fuse, Mode, HYBRID_CANDIDATES};
use crate::store::{Filter, Hit, IndexInfo, Store};
use crate::{Error, Result};

/// A document of a benchmark corpus.
#[derive(Debug, Clone)]
pub struct BenchDoc {
    /// Its id (the qrels key).
    pub id: String,
    /// Its text (title and body).
    pub text: String,
}

/// A query with its relevant documents and their grades.
#[derive(Debug, Clone)]
pub struct BenchQuery {
    /// Its id.
    pub id: String,
    /// The query text.
    pub text: String,
    /// Relevant document id → grade (> 0).
    pub relevant: HashMap<String, u32>,
}

/// A loaded benchmark.
#[derive(Debug, Clone)]
pub struct BenchSet {
    /// Name for reports.
    pub name: String,
    /// The corpus.
    pub docs: Vec<BenchDoc>,
    /// Queries that have at least one relevant document.
    pub queries: Vec<BenchQuery>,
}

#[derive(Deserialize)]
struct BeirDoc {
    #[serde(rename = "_id")]
    id: String,
    #[serde(default)]
    title: String,
    text: String,
}

#[derive(Deserialize)]
struct BeirQuery {
    #[serde(rename = "_id")]
    id: String,
    text: String,
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    read(path)?
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line)
                .map_err(|e| Error::Invalid(format!("{}:{}: {e}", path.display(), i + 1)))
        })
        .collect()
}

/// Loads a BEIR-layout folder; `split` names the query and qrels files (`validation`, `test`, …).
pub fn load_beir(dir: &Path, split: &str) -> Result<BenchSet> {
    let docs = jsonl::<BeirDoc>(&dir.join("corpus.jsonl"))?
        .into_iter()
        .map(|d| BenchDoc {
            id: d.id,
            text: if d.title.is_empty() {
                d.text
            } else {
                format!("{}\n\n{}", d.title, d.text)
            },
        })
        .collect();
    let qrels_path = dir.join(format!("qrels_{split}.tsv"));
    let mut qrels: HashMap<String, HashMap<String, u32>> = HashMap::new();
    for (i, line) in read(&qrels_path)?.lines().enumerate() {
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() < 3 || (i == 0 && fields[2].parse::<i64>().is_err()) {
            continue; // header or blank
        }
        let grade: i64 = fields[2].trim().parse().map_err(|_| {
            Error::Invalid(format!(
                "{}:{}: score {:?} is not a number",
                qrels_path.display(),
                i + 1,
                fields[2]
            ))
        })?;
        if grade > 0 {
            qrels
                .entry(fields[0].to_string())
                .or_default()
                .insert(fields[1].to_string(), grade as u32);
        }
    }
    let queries = jsonl::<BeirQuery>(&dir.join(format!("queries_{split}.jsonl")))?
        .into_iter()
        .filter_map(|q| {
            let relevant = qrels.remove(&q.id)?;
            Some(BenchQuery {
                id: q.id,
                text: q.text,
                relevant,
            })
        })
        .collect();
    Ok(BenchSet {
        name: dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        docs,
        queries,
    })
}

#[derive(Deserialize)]
struct Squad {
    data: Vec<SquadArticle>,
}

#[derive(Deserialize)]
struct SquadArticle {
    paragraphs: Vec<SquadParagraph>,
}

#[derive(Deserialize)]
struct SquadParagraph {
    context: String,
    qas: Vec<SquadQa>,
}

#[derive(Deserialize)]
struct SquadQa {
    id: String,
    question: String,
}

/// Loads a SQuAD-layout file: paragraphs become documents `p0`, `p1`, …
pub fn load_squad(path: &Path) -> Result<BenchSet> {
    let squad: Squad = serde_json::from_str(&read(path)?)
        .map_err(|e| Error::Invalid(format!("{}: not SQuAD JSON: {e}", path.display())))?;
    let mut docs = Vec::new();
    let mut queries = Vec::new();
    for paragraph in squad.data.into_iter().flat_map(|a| a.paragraphs) {
        let id = format!("p{}", docs.len());
        for qa in paragraph.qas {
            queries.push(BenchQuery {
                id: qa.id,
                text: qa.question,
                relevant: HashMap::from([(id.clone(), 1)]),
            });
        }
        docs.push(BenchDoc {
            id,
            text: paragraph.context,
        });
    }
    Ok(BenchSet {
        name: path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        docs,
        queries,
    })
}

/// nDCG at `k` of a ranked list of document ids (trec_eval / pytrec_eval definition).
pub fn ndcg_at(ranked: &[String], relevant: &HashMap<String, u32>, k: usize) -> f64 {
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, id)| relevant.get(id).copied().unwrap_or(0) as f64 / (i as f64 + 2.0).log2())
        .sum();
    let mut ideal: Vec<u32> = relevant.values().copied().collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, &g)| g as f64 / (i as f64 + 2.0).log2())
        .sum();
    if idcg == 0.0 {
        0.0
    } else {
        dcg / idcg
    }
}

/// Recall at `k`: the share of relevant documents found in the first `k`.
pub fn recall_at(ranked: &[String], relevant: &HashMap<String, u32>, k: usize) -> f64 {
    if relevant.is_empty() {
        return 0.0;
    }
    let found = ranked
        .iter()
        .take(k)
        .filter(|id| relevant.contains_key(*id))
        .count();
    found as f64 / relevant.len() as f64
}

/// Ranked document ids from chunk hits (each document at the rank of its best chunk).
pub fn doc_ranking(hits: &[Hit]) -> Vec<String> {
    let mut seen = HashSet::new();
    hits.iter()
        .filter(|h| seen.insert(h.source.as_str()))
        .map(|h| h.source.clone())
        .collect()
}

/// Results of one search mode.
#[derive(Debug, Clone, Serialize)]
pub struct ModeResult {
    /// The mode.
    pub mode: String,
    /// Metric name (`ndcg@10`, `recall@100`, …) → mean over queries.
    pub metrics: Vec<(String, f64)>,
    /// Median query latency in milliseconds (query embedding included).
    pub latency_p50_ms: f64,
    /// 95th percentile query latency in milliseconds.
    pub latency_p95_ms: f64,
}

/// A benchmark run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Benchmark name.
    pub dataset: String,
    /// Documents indexed.
    pub docs: usize,
    /// Chunks indexed.
    pub chunks: usize,
    /// Queries evaluated.
    pub queries: usize,
    /// Corpus embedding throughput, chunks per second.
    pub embed_chunks_per_s: f64,
    /// One entry per mode.
    pub modes: Vec<ModeResult>,
}

/// Indexes `set.docs` into `store` (which should be empty), reporting `(done, total)` documents to `progress`.
pub fn index_corpus(
    set: &BenchSet,
    store: &mut dyn Store,
    embedder: &Embedder,
    chunking: ChunkOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(usize, f64)> {
    store.ensure_info(&IndexInfo {
        embedder: embedder.name().to_string(),
        dim: embedder.dim(),
    })?;
    let already = store.file_hashes()?;
    let mut chunks_total = 0;
    let mut embed_secs = 0.0;
    for (group_start, group) in set.docs.chunks(64).enumerate().map(|(i, g)| (i * 64, g)) {
        let mut records = Vec::new();
        for doc in group {
            // The chunking is part of the hash, so a reused index built with other chunk sizes is re-chunked.
            let keyed = format!("{}/{}\n{}", chunking.max_tokens, chunking.overlap, doc.text);
            let hash =
                crate::ingest::hex(&<sha2::Sha256 as sha2::Digest>::digest(keyed.as_bytes()));
            if already.get(&doc.id) == Some(&hash) {
                continue;
            }
            let document = Document {
                path: doc.id.clone().into(),
                kind: DocKind::Text,
                text: doc.text.clone(),
            };
            let chunks = chunk_document(&document, chunking, &|t: &str| embedder.count_tokens(t));
            records.push(crate::ingest::unembedded_record(
                doc.id.clone(),
                hash,
                Vec::new(),
                chunks,
            ));
        }
        let texts: Vec<&str> = records
            .iter()
            .flat_map(|r| r.chunks.iter().map(|c| c.text.as_str()))
            .collect();
        let started = Instant::now();
        let mut vectors = embedder.embed(&texts)?.into_iter();
        embed_secs += started.elapsed().as_secs_f64();
        chunks_total += texts.len();
        for mut record in records {
            for chunk in &mut record.chunks {
                chunk.embedding = vectors.next().expect("one vector per chunk");
            }
            store.upsert_file(&record)?;
        }
        progress(group_start + group.len(), set.docs.len());
    }
    store.finish()?;
    let rate = if embed_secs > 0.0 {
        chunks_total as f64 / embed_secs
    } else {
        0.0
    };
    Ok((chunks_total, rate))
}

/// Runs every query of `set` in each mode and computes the metrics at `cutoffs` (`ndcg@10` is always included).
pub fn evaluate(
    set: &BenchSet,
    store: &dyn Store,
    embedder: &Embedder,
    modes: &[Mode],
    recall_cutoffs: &[usize],
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<ModeResult>> {
    let depth = recall_cutoffs.iter().copied().max().unwrap_or(10).max(10);
    // Documents may have several chunks: fetch more chunks than documents needed.
    let chunk_depth = depth * 2;
    let filter = Filter::default();
    let total = set.queries.len() * modes.len();
    let mut results = Vec::new();
    for (m, &mode) in modes.iter().enumerate() {
        let mut sums = vec![0.0; recall_cutoffs.len() + 1];
        let mut latencies = Vec::with_capacity(set.queries.len());
        for (i, query) in set.queries.iter().enumerate() {
            let started = Instant::now();
            let dense = |n: usize| -> Result<Vec<Hit>> {
                let vector = embedder
                    .embed(&[query.text.as_str()])?
                    .pop()
                    .unwrap_or_default();
                store.dense(&vector, n, &filter)
            };
            let hits = match mode {
                Mode::Dense => dense(chunk_depth)?,
                Mode::Bm25 => store.keyword(&query.text, chunk_depth, &filter)?,
                Mode::Hybrid => {
                    let n = chunk_depth.max(HYBRID_CANDIDATES);
                    fuse(
                        &[dense(n)?, store.keyword(&query.text, n, &filter)?],
                        chunk_depth,
                    )
                }
            };
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            let ranked = doc_ranking(&hits);
            sums[0] += ndcg_at(&ranked, &query.relevant, 10);
            for (j, &k) in recall_cutoffs.iter().enumerate() {
                sums[j + 1] += recall_at(&ranked, &query.relevant, k);
            }
            progress(m * set.queries.len() + i + 1, total);
        }
        let n = set.queries.len().max(1) as f64;
        let mut metrics = vec![("ndcg@10".to_string(), sums[0] / n)];
        metrics.extend(
            recall_cutoffs
                .iter()
                .enumerate()
                .map(|(j, k)| (format!("recall@{k}"), sums[j + 1] / n)),
        );
        results.push(ModeResult {
            mode: mode.to_string(),
            metrics,
            latency_p50_ms: latency_percentile(&latencies, 50.0),
            latency_p95_ms: latency_percentile(&latencies, 95.0),
        });
    }
    Ok(results)
}

/// Linear-interpolated percentile of sorted values (numpy's default).
/// A latency percentile (numpy's linear interpolation); 0 without queries.
fn latency_percentile(latencies: &[f64], q: f64) -> f64 {
    tuneup_eval::stats::percentile(latencies, q).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(pairs: &[(&str, u32)]) -> HashMap<String, u32> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ndcg_matches_hand_computed_values() {
        // One relevant doc at rank 2: 1/log2(3).
        let r = rel(&[("a", 1)]);
        assert!((ndcg_at(&ids(&["x", "a"]), &r, 10) - 1.0 / 3f64.log2()).abs() < 1e-12);
        assert_eq!(ndcg_at(&ids(&["a"]), &r, 10), 1.0);
        assert_eq!(ndcg_at(&ids(&["x"]), &r, 10), 0.0);
        // Graded: ranking (b=1, a=2) vs ideal (a=2, b=1).
        let r = rel(&[("a", 2), ("b", 1)]);
        let dcg = 1.0 + 2.0 / 3f64.log2();
        let idcg = 2.0 + 1.0 / 3f64.log2();
        assert!((ndcg_at(&ids(&["b", "a"]), &r, 10) - dcg / idcg).abs() < 1e-12);
        // Cut-off applies.
        assert_eq!(ndcg_at(&ids(&["x", "a"]), &rel(&[("a", 1)]), 1), 0.0);
    }

    #[test]
    fn recall_and_doc_ranking() {
        let r = rel(&[("a", 1), ("b", 1)]);
        assert_eq!(recall_at(&ids(&["a", "x", "b"]), &r, 2), 0.5);
        assert_eq!(recall_at(&ids(&["a", "x", "b"]), &r, 3), 1.0);
        let hit = |source: &str| Hit {
            chunk_id: 0,
            source: source.into(),
            heading: None,
            line: 1,
            text: String::new(),
            score: 0.0,
        };
        let ranked = doc_ranking(&[hit("a"), hit("b"), hit("a"), hit("c")]);
        assert_eq!(ranked, ids(&["a", "b", "c"]));
    }

    #[test]
    fn latency_percentiles_interpolate_like_numpy() {
        let v = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(latency_percentile(&v, 50.0), 2.5);
        assert!((latency_percentile(&v, 95.0) - 3.85).abs() < 1e-12);
        assert_eq!(latency_percentile(&[], 95.0), 0.0);
    }
}
