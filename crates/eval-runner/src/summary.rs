//! `summary.json`: metrics, verdict counts, accuracy by category, error types with example ids, latency
//! percentiles, throughput, token counts and the cost estimate.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tuneup_eval::stats::{latency_summary, LatencySummary};

use crate::record::{ExampleRecord, Verdict};
use crate::task::{Metric, Task};

/// Distribution of one latency (milliseconds).
pub type Dist = LatencySummary;

fn dist(values: &[f64]) -> Option<Dist> {
    latency_summary(values).ok()
}

/// Per-category results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryStats {
    /// Examples.
    pub n: usize,
    /// Correct examples.
    pub correct: usize,
    /// Mean primary score (accuracy for pass/fail metrics).
    pub score: f64,
}

/// One error type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorTypeStats {
    /// Examples with this error type.
    pub count: usize,
    /// Their ids (at most 20).
    pub examples: Vec<String>,
}

/// Latency percentiles.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Time to first token.
    pub ttft_ms: Option<Dist>,
    /// Per generated token after the first.
    pub per_token_ms: Option<Dist>,
    /// Whole request.
    pub total_ms: Option<Dist>,
}

/// Throughput over the run's wall-clock time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Requests per second.
    pub requests_per_s: f64,
    /// Generated tokens per second.
    pub output_tokens_per_s: f64,
    /// Prompt + generated tokens per second.
    pub total_tokens_per_s: f64,
}

/// Token counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tokens {
    /// Prompt tokens, all examples.
    pub prompt: usize,
    /// Generated tokens, all examples.
    pub completion: usize,
}

/// Cost estimate from the task's `[cost]` table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CostEstimate {
    /// `usd_per_gpu_hour` × wall-clock hours.
    pub usd_gpu_time: Option<f64>,
    /// Token prices × token counts.
    pub usd_tokens: Option<f64>,
    /// The larger of the two, per 1,000 examples.
    pub usd_per_1k_examples: Option<f64>,
}

/// The summary of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Task name.
    pub task: String,
    /// Where the completions came from.
    pub backend: String,
    /// Start time (seconds since the Unix epoch).
    pub started_at: u64,
    /// Wall-clock seconds of the generation loop.
    pub wall_s: f64,
    /// Examples run.
    pub examples: usize,
    /// Verdict counts.
    pub correct: usize,
    /// Wrong answers.
    pub wrong: usize,
    /// Scored (continuous primary metric).
    pub scored: usize,
    /// Examples that could not be judged.
    pub errors: usize,
    /// The metric that gives verdicts.
    pub primary_metric: String,
    /// Metric values (pass/fail metrics as the share of all examples; `bleu` is corpus BLEU; ROUGE means).
    pub metrics: BTreeMap<String, f64>,
    /// Results per category.
    pub by_category: BTreeMap<String, CategoryStats>,
    /// Failure types with counts and example ids.
    pub error_types: BTreeMap<String, ErrorTypeStats>,
    /// Latency percentiles.
    pub latency: Latency,
    /// Throughput.
    pub throughput: Throughput,
    /// Token counts.
    pub tokens: Tokens,
    /// Cost estimate.
    pub cost: CostEstimate,
    /// Answers whose generation hit `generation.max_tokens` (correct or not; the wrong ones have the error
    /// type `truncated`).
    #[serde(default)]
    pub truncated: usize,
    /// Mean candidate answers generated per example (`[verify]`).
    #[serde(default)]
    pub mean_candidates: f64,
    /// Mean SQL repair rounds per example (`[verify]`).
    #[serde(default)]
    pub mean_repairs: f64,
    /// Things to look at before trusting the numbers (e.g. many answers cut off by the token limit, or
    /// model-written code run outside the full jail).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The weakest isolation model-written code ran at (`None` when no code ran).
    #[serde(default)]
    pub code_sandbox: Option<tuneup_eval::code::sandbox::SandboxReport>,
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        0.0
    } else {
        s / n as f64
    }
}

/// `pass@k` of the primary pass/fail metric, averaged over examples (unbiased estimator over each example's
/// samples; examples with fewer than k samples are left out): the k values of `[code] pass_at`, plus k = 1 and
/// k = `generation.samples` whenever several samples were drawn.
fn pass_at_k(task: &Task, records: &[ExampleRecord]) -> BTreeMap<String, f64> {
    let mut ks: Vec<usize> = task
        .code
        .as_ref()
        .map(|c| c.pass_at.clone())
        .unwrap_or_default();
    if task.generation.samples > 1 {
        ks.extend([1, task.generation.samples]);
    }
    ks.sort_unstable();
    ks.dedup();
    let mut per_example: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for r in records.iter().filter(|r| r.verdict != Verdict::Scored) {
        let e = per_example.entry(r.id.as_str()).or_default();
        e.0 += 1;
        e.1 += usize::from(r.is_correct());
    }
    let mut out = BTreeMap::new();
    for k in ks {
        let values: Vec<f64> = per_example
            .values()
            .filter_map(|&(n, c)| tuneup_eval::code::pass_at_k(n, c, k))
            .collect();
        if !values.is_empty() {
            out.insert(format!("pass@{k}"), mean(values.into_iter()));
        }
    }
    out
}

/// Summarizes `records` of `task` run on `backend` in `wall_s` seconds.
pub fn summarize(
    task: &Task,
    backend: &str,
    started_at: u64,
    wall_s: f64,
    records: &[ExampleRecord],
) -> Summary {
    let count = |v: Verdict| records.iter().filter(|r| r.verdict == v).count();
    let mut metrics = BTreeMap::new();
    for m in &task.metrics {
        match m {
            Metric::Latency => {}
            Metric::Bleu => {
                let hyps: Vec<String> = records
                    .iter()
                    .map(|r| {
                        r.answer.as_str().map_or_else(
                            || {
                                if r.answer.is_null() {
                                    String::new()
                                } else {
                                    r.answer.to_string()
                                }
                            },
                            str::to_owned,
                        )
                    })
                    .collect();
                let refs: Vec<Vec<String>> = records
                    .iter()
                    .map(|r| {
                        vec![r
                            .target
                            .as_ref()
                            .map(crate::dataset::as_text)
                            .unwrap_or_default()]
                    })
                    .collect();
                if let Ok(b) = tuneup_eval::bleu::corpus_bleu(&hyps, &refs) {
                    metrics.insert("bleu".into(), b.score);
                }
            }
            Metric::Rouge => {
                for k in ["rouge1", "rouge2", "rougeL"] {
                    metrics.insert(
                        k.into(),
                        mean(
                            records
                                .iter()
                                .map(|r| r.scores.get(k).copied().unwrap_or(0.0)),
                        ),
                    );
                }
            }
            other => {
                let k = other.name();
                metrics.insert(
                    k.into(),
                    mean(
                        records
                            .iter()
                            .map(|r| r.scores.get(k).copied().unwrap_or(0.0)),
                    ),
                );
            }
        }
    }
    metrics.extend(pass_at_k(task, records));
    let mut by_category: BTreeMap<String, CategoryStats> = BTreeMap::new();
    for r in records {
        let c = by_category
            .entry(r.category.clone().unwrap_or_else(|| "all".into()))
            .or_insert(CategoryStats {
                n: 0,
                correct: 0,
                score: 0.0,
            });
        c.n += 1;
        c.correct += usize::from(r.is_correct());
        c.score += r.primary_score;
    }
    for c in by_category.values_mut() {
        c.score /= c.n.max(1) as f64;
    }
    let mut error_types: BTreeMap<String, ErrorTypeStats> = BTreeMap::new();
    for r in records {
        if let Some(t) = &r.error_type {
            let e = error_types.entry(t.clone()).or_insert(ErrorTypeStats {
                count: 0,
                examples: Vec::new(),
            });
            e.count += 1;
            if e.examples.len() < 20 {
                e.examples.push(r.id.clone());
            }
        }
    }
    let pick = |f: fn(&ExampleRecord) -> Option<f64>| {
        dist(&records.iter().filter_map(f).collect::<Vec<_>>())
    };
    let tokens = Tokens {
        prompt: records.iter().map(|r| r.prompt_tokens).sum(),
        completion: records.iter().map(|r| r.completion_tokens).sum(),
    };
    let secs = wall_s.max(1e-9);
    let throughput = Throughput {
        requests_per_s: records.len() as f64 / secs,
        output_tokens_per_s: tokens.completion as f64 / secs,
        total_tokens_per_s: (tokens.prompt + tokens.completion) as f64 / secs,
    };
    let c = &task.cost;
    let usd_gpu_time = c.usd_per_gpu_hour.map(|p| p * wall_s / 3600.0);
    let usd_tokens = match (
        c.usd_per_million_input_tokens,
        c.usd_per_million_output_tokens,
    ) {
        (None, None) => None,
        (i, o) => Some(
            i.unwrap_or(0.0) * tokens.prompt as f64 / 1e6
                + o.unwrap_or(0.0) * tokens.completion as f64 / 1e6,
        ),
    };
    let worst = usd_gpu_time
        .into_iter()
        .chain(usd_tokens)
        .fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.max(x))));
    let truncated = records
        .iter()
        .filter(|r| crate::truncation::hit_limit(r))
        .count();
    let warnings = crate::truncation::warning(truncated, records.len(), task.generation.max_tokens)
        .into_iter()
        .collect();
    Summary {
        task: task.name.clone(),
        backend: backend.to_owned(),
        started_at,
        wall_s,
        examples: records.len(),
        correct: count(Verdict::Correct),
        wrong: count(Verdict::Wrong),
        scored: count(Verdict::Scored),
        errors: count(Verdict::Error),
        primary_metric: task.primary_metric().map_or("latency", |m| m.name()).into(),
        metrics,
        by_category,
        error_types,
        latency: Latency {
            ttft_ms: pick(|r| r.ttft_ms),
            per_token_ms: pick(|r| r.per_token_ms),
            total_ms: pick(|r| r.total_ms),
        },
        throughput,
        tokens,
        cost: CostEstimate {
            usd_gpu_time,
            usd_tokens,
            usd_per_1k_examples: worst.map(|w| w * 1000.0 / records.len().max(1) as f64),
        },
        truncated,
        mean_candidates: mean(records.iter().map(|r| r.candidates as f64)),
        mean_repairs: mean(records.iter().map(|r| r.repairs as f64)),
        warnings,
        code_sandbox: None,
    }
}
