//! Statistics of a prepared data set: what was read, rejected and kept, token counts, a length histogram.
//! Serialised as `stats.json`; [`Stats::render`] is the terminal summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::read::Format;
use crate::record::RejectKind;
use crate::split::{Split, SplitRatios};

/// One input file.
#[derive(Debug, Clone, Serialize)]
pub struct InputStats {
    /// The file.
    pub file: PathBuf,
    /// Its format (detected or given).
    pub format: Format,
    /// Valid records read.
    pub records: usize,
    /// Records rejected while reading (malformed or empty).
    pub rejected: usize,
}

/// Records and tokens of one split.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SplitStats {
    /// Records.
    pub records: usize,
    /// Tokens, all records together.
    pub tokens: usize,
}

/// Token counts of the kept records.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TokenStats {
    /// How tokens were counted (the model and its chat template, or the whitespace estimate).
    pub counter: String,
    /// All records together.
    pub total: usize,
    /// Mean per record.
    pub mean: f64,
    /// Smallest record.
    pub min: usize,
    /// Median record.
    pub p50: usize,
    /// 95th percentile.
    pub p95: usize,
    /// Largest record.
    pub max: usize,
}

/// Records whose token count is in `[min, max)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// Smallest count in the bucket.
    pub min: usize,
    /// One past the largest count in the bucket.
    pub max: usize,
    /// Records in it.
    pub records: usize,
}

/// The settings a data set was prepared with (so `stats.json` says how to make it again).
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Split seed.
    pub seed: u64,
    /// Split fractions.
    pub split: SplitRatios,
    /// Token limit (0 = none).
    pub max_tokens: usize,
    /// Near-duplicate Jaccard threshold.
    pub near_dup_threshold: f64,
    /// Whether text-to-SQL records were split by database.
    pub group_by_db: bool,
}

/// Everything `stats.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// Per input file.
    pub inputs: Vec<InputStats>,
    /// Records in the input files (valid or not).
    pub read: usize,
    /// Records not kept, by kind (every kind listed).
    pub rejected: BTreeMap<RejectKind, usize>,
    /// Records written.
    pub kept: usize,
    /// Per split.
    pub splits: BTreeMap<Split, SplitStats>,
    /// Token counts of the kept records.
    pub tokens: TokenStats,
    /// Length histogram of the kept records (power-of-two buckets from 32 tokens).
    pub histogram: Vec<Bucket>,
    /// How the set was made.
    pub settings: Settings,
}

/// Power-of-two buckets (`[0,32)`, `[32,64)`, …) over `counts`, without empty buckets at either end.
pub fn histogram(counts: &[usize]) -> Vec<Bucket> {
    let bucket = |n: usize| {
        if n < 32 {
            0
        } else {
            (usize::BITS - 1 - n.leading_zeros()) as usize - 4
        }
    };
    let lower = |b: usize| if b == 0 { 0 } else { 16 << b };
    let Some(last) = counts.iter().map(|&n| bucket(n)).max() else {
        return Vec::new();
    };
    let mut records = vec![0usize; last + 1];
    for &n in counts {
        records[bucket(n)] += 1;
    }
    let first = records.iter().position(|&r| r > 0).unwrap_or(0);
    (first..=last)
        .map(|b| Bucket {
            min: lower(b),
            max: lower(b + 1),
            records: records[b],
        })
        .collect()
}

/// Token statistics of `counts` (the per-record token counts).
pub fn token_stats(counter: &str, counts: &[usize]) -> TokenStats {
    let mut sorted = counts.to_vec();
    sorted.sort_unstable();
    let total: usize = sorted.iter().sum();
    let pct = |p: f64| {
        if sorted.is_empty() {
            0
        } else {
            sorted[((sorted.len() - 1) as f64 * p).round() as usize]
        }
    };
    TokenStats {
        counter: counter.to_owned(),
        total,
        mean: if sorted.is_empty() {
            0.0
        } else {
            total as f64 / sorted.len() as f64
        },
        min: sorted.first().copied().unwrap_or(0),
        p50: pct(0.5),
        p95: pct(0.95),
        max: sorted.last().copied().unwrap_or(0),
    }
}

impl Stats {
    /// The terminal summary: inputs, rejections by kind, splits, tokens, and the histogram as text bars.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for i in &self.inputs {
            let _ = writeln!(
                out,
                "{}: {}, {} records, {} rejected",
                i.file.display(),
                i.format,
                i.records,
                i.rejected
            );
        }
        let rejected: usize = self.rejected.values().sum();
        let kinds: Vec<String> = self
            .rejected
            .iter()
            .filter(|(_, &n)| n > 0)
            .map(|(k, n)| format!("{} {n}", k.name()))
            .collect();
        let _ = writeln!(
            out,
            "read {}, rejected {}{}, kept {}",
            self.read,
            rejected,
            if kinds.is_empty() {
                String::new()
            } else {
                format!(" ({})", kinds.join(", "))
            },
            self.kept
        );
        let splits: Vec<String> = self
            .splits
            .iter()
            .map(|(s, st)| format!("{} {} ({} tokens)", s.name(), st.records, st.tokens))
            .collect();
        let _ = writeln!(
            out,
            "split (seed {}): {}",
            self.settings.seed,
            splits.join(", ")
        );
        let t = &self.tokens;
        let _ = writeln!(
            out,
            "tokens ({}): total {}, mean {:.1}, min {}, p50 {}, p95 {}, max {}",
            t.counter, t.total, t.mean, t.min, t.p50, t.p95, t.max
        );
        let widest = self.histogram.iter().map(|b| b.records).max().unwrap_or(0);
        for b in &self.histogram {
            let range = format!("{}-{}", b.min, b.max - 1);
            let bar = if widest == 0 {
                0
            } else {
                (b.records * 40).div_ceil(widest)
            };
            let _ = writeln!(out, "{range:>11} | {:<40} {}", "#".repeat(bar), b.records);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_of_two_buckets() {
        let h = histogram(&[40, 63, 64, 300, 5000]);
        let got: Vec<(usize, usize)> = h.iter().map(|b| (b.min, b.records)).collect();
        assert_eq!(
            got,
            [
                (32, 2),
                (64, 1),
                (128, 0),
                (256, 1),
                (512, 0),
                (1024, 0),
                (2048, 0),
                (4096, 1)
            ]
        );
        assert_eq!(h[0].max, 64);
        assert_eq!(
            histogram(&[0, 31])[0],
            Bucket {
                min: 0,
                max: 32,
                records: 2
            }
        );
        assert!(histogram(&[]).is_empty());
    }

    #[test]
    fn token_percentiles() {
        let t = token_stats("words", &[10, 30, 20, 40, 100]);
        assert_eq!((t.total, t.min, t.p50, t.max), (200, 10, 30, 100));
        assert_eq!(t.p95, 100);
        assert!((t.mean - 40.0).abs() < 1e-9);
        assert_eq!(token_stats("x", &[]).total, 0);
    }

    #[test]
    fn renders_bars() {
        let stats = Stats {
            inputs: vec![InputStats {
                file: "a.jsonl".into(),
                format: Format::Alpaca,
                records: 3,
                rejected: 1,
            }],
            read: 4,
            rejected: RejectKind::ALL
                .iter()
                .map(|&k| (k, usize::from(k == RejectKind::Empty)))
                .collect(),
            kept: 3,
            splits: Split::ALL
                .iter()
                .map(|&s| (s, SplitStats::default()))
                .collect(),
            tokens: token_stats("words", &[40, 50, 300]),
            histogram: histogram(&[40, 50, 300]),
            settings: Settings {
                seed: 42,
                split: SplitRatios::default(),
                max_tokens: 2048,
                near_dup_threshold: 0.9,
                group_by_db: false,
            },
        };
        let text = stats.render();
        assert!(
            text.contains("a.jsonl: alpaca, 3 records, 1 rejected"),
            "{text}"
        );
        assert!(
            text.contains("read 4, rejected 1 (empty 1), kept 3"),
            "{text}"
        );
        assert!(
            text.contains(&format!("      32-63 | {:<40} 2", "#".repeat(40))),
            "{text}"
        );
        assert!(
            text.contains(&format!("    256-511 | {:<40} 1", "#".repeat(20))),
            "{text}"
        );
        let json = serde_json::to_value(&stats).unwrap();
        assert_eq!(json["rejected"]["empty"], 1);
        assert_eq!(json["rejected"]["too_long"], 0);
        assert_eq!(json["splits"]["validation"]["records"], 0);
        assert_eq!(json["inputs"][0]["format"], "alpaca");
    }
}
