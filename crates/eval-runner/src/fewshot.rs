//! Few-shot example selection: `fixed` (the first k), `random` (seeded per test example) or `similar`
//! (BM25, k1 = 1.2, b = 0.75, over lowercase alphanumeric word tokens) or `embedding` (cosine of sentence
//! embeddings, after [`ShotPool::embed_with`]). A pool example whose input equals the
//! test input (after lowercasing and collapsing whitespace) is never chosen.

use std::collections::HashMap;

use crate::dataset::{shuffle, Example};
use crate::task::Selection;
use tuneup_retrieval::embed::Embedder;

const K1: f64 = 1.2;
const B: f64 = 0.75;

/// Lowercase alphanumeric word tokens.
pub fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn canonical(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// A pool of examples to draw shots from.
#[derive(Debug)]
pub struct ShotPool {
    examples: Vec<Example>,
    canon: Vec<String>,
    /// Term frequencies per document.
    tf: Vec<HashMap<String, f64>>,
    lengths: Vec<f64>,
    df: HashMap<String, f64>,
    avg_len: f64,
    /// The embedder and the pool inputs' unit vectors, for `embedding` selection.
    dense: Option<(Embedder, Vec<Vec<f32>>)>,
}

impl ShotPool {
    /// Indexes `examples`.
    pub fn new(examples: Vec<Example>) -> Self {
        let mut tf = Vec::with_capacity(examples.len());
        let mut lengths = Vec::with_capacity(examples.len());
        let mut df: HashMap<String, f64> = HashMap::new();
        for e in &examples {
            let toks = tokens(&e.input);
            lengths.push(toks.len() as f64);
            let mut counts: HashMap<String, f64> = HashMap::new();
            for t in toks {
                *counts.entry(t).or_default() += 1.0;
            }
            for t in counts.keys() {
                *df.entry(t.clone()).or_default() += 1.0;
            }
            tf.push(counts);
        }
        let avg_len = if lengths.is_empty() {
            0.0
        } else {
            lengths.iter().sum::<f64>() / lengths.len() as f64
        };
        let canon = examples.iter().map(|e| canonical(&e.input)).collect();
        Self {
            examples,
            canon,
            tf,
            lengths,
            df,
            avg_len,
            dense: None,
        }
    }

    /// Embeds every pool input with `embedder`, enabling `embedding` selection.
    pub fn embed_with(mut self, embedder: Embedder) -> tuneup_retrieval::Result<Self> {
        let inputs: Vec<&str> = self.examples.iter().map(|e| e.input.as_str()).collect();
        let vectors = embedder.embed(&inputs)?;
        self.dense = Some((embedder, vectors));
        Ok(self)
    }

    /// Number of pool examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// `true` when the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// BM25 score of pool document `i` for `query` tokens.
    pub fn bm25(&self, query: &[String], i: usize) -> f64 {
        let n = self.examples.len() as f64;
        let mut score = 0.0;
        for q in query {
            let Some(&f) = self.tf[i].get(q) else {
                continue;
            };
            let df = self.df.get(q).copied().unwrap_or(0.0);
            let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
            let norm = f + K1 * (1.0 - B + B * self.lengths[i] / self.avg_len.max(1e-9));
            score += idf * f * (K1 + 1.0) / norm;
        }
        score
    }

    /// Chooses `k` shots for `test` (deterministic for a given `seed`). `embedding` selection without
    /// [`embed_with`](Self::embed_with) is an error.
    pub fn select(
        &self,
        test: &Example,
        k: usize,
        how: Selection,
        seed: u64,
    ) -> tuneup_retrieval::Result<Vec<&Example>> {
        let own = canonical(&test.input);
        let allowed: Vec<usize> = (0..self.examples.len())
            .filter(|&i| self.canon[i] != own)
            .collect();
        let chosen: Vec<usize> = match how {
            Selection::Fixed => allowed.into_iter().take(k).collect(),
            Selection::Random => {
                let mut all = allowed;
                shuffle(
                    &mut all,
                    seed ^ (test.index as u64).wrapping_mul(0x9E37_79B9),
                );
                all.truncate(k);
                all
            }
            Selection::Similar | Selection::Embedding => {
                let score: Box<dyn Fn(usize) -> f64> = if how == Selection::Embedding {
                    let (embedder, vectors) = self.dense.as_ref().ok_or_else(|| {
                        tuneup_retrieval::Error::Invalid(
                            "embedding selection needs ShotPool::embed_with".into(),
                        )
                    })?;
                    let q = embedder
                        .embed(&[test.input.as_str()])?
                        .pop()
                        .unwrap_or_default();
                    Box::new(move |i| tuneup_retrieval::store::ann::dot(&q, &vectors[i]) as f64)
                } else {
                    let q = tokens(&test.input);
                    Box::new(move |i| self.bm25(&q, i))
                };
                let mut scored: Vec<(f64, usize)> =
                    allowed.into_iter().map(|i| (score(i), i)).collect();
                // Highest score first; ties by position, so the choice is deterministic.
                scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                // Most similar last, nearest to the question.
                let mut top: Vec<usize> = scored.into_iter().take(k).map(|(_, i)| i).collect();
                top.reverse();
                top
            }
        };
        Ok(chosen.into_iter().map(|i| &self.examples[i]).collect())
    }
}
