//! `tuneup eval compare`: runs side by side, deltas against the first run, and significance on the examples
//! the runs share (matched by id): McNemar's exact test on pass/fail verdicts and a paired bootstrap
//! (10,000 resamples, seed 0) of the primary score with its 95% interval.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use tuneup_eval::stats::{mcnemar_exact, paired_bootstrap, McNemar, PairedBootstrap};

use crate::error::{read_to_string, Error, Result};
use crate::record::{ExampleRecord, Verdict};
use crate::report::page_start;
use crate::summary::Summary;
use crate::svg::{escape, grouped_bars};

/// Significance level for flagging differences.
pub const ALPHA: f64 = 0.05;
/// Bootstrap resamples.
pub const RESAMPLES: usize = 10_000;

/// A finished run read back from its folder.
#[derive(Debug, Clone)]
pub struct Run {
    /// The folder.
    pub dir: PathBuf,
    /// Its label (folder name).
    pub label: String,
    /// `summary.json`.
    pub summary: Summary,
    /// `examples.jsonl`.
    pub records: Vec<ExampleRecord>,
}

/// Reads `summary.json` and `examples.jsonl` from `dir`.
pub fn load_run(dir: &Path) -> Result<Run> {
    let bad = |message: String| Error::Run {
        path: dir.to_path_buf(),
        message,
    };
    let summary: Summary = serde_json::from_str(&read_to_string(
        &dir.join("summary.json"),
        "reading run summary",
    )?)
    .map_err(|e| bad(format!("summary.json: {e}")))?;
    let path = dir.join("examples.jsonl");
    let mut records = Vec::new();
    for (i, line) in read_to_string(&path, "reading run examples")?
        .lines()
        .enumerate()
    {
        if line.trim().is_empty() {
            continue;
        }
        records.push(serde_json::from_str(line).map_err(|e| Error::Data {
            path: path.clone(),
            line: i + 1,
            message: e.to_string(),
        })?);
    }
    let label = dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Ok(Run {
        dir: dir.to_path_buf(),
        label,
        summary,
        records,
    })
}

/// A run tested against the first one.
#[derive(Debug, Clone)]
pub struct Significance {
    /// Index of the run (≥ 1).
    pub run: usize,
    /// Examples both runs have.
    pub common: usize,
    /// McNemar on pass/fail verdicts (absent for scored metrics).
    pub mcnemar: Option<McNemar>,
    /// Paired bootstrap of the primary score (run minus first run).
    pub bootstrap: Option<PairedBootstrap>,
    /// p below [`ALPHA`] (McNemar when available, else the bootstrap).
    pub significant: bool,
}

/// Runs side by side.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The runs, first one the baseline.
    pub runs: Vec<Run>,
    /// (row name, value per run).
    pub rows: Vec<(String, Vec<Option<f64>>)>,
    /// Tests of runs 1.. against run 0.
    pub tests: Vec<Significance>,
}

/// Compares `runs` (the first is the baseline).
pub fn compare(runs: Vec<Run>) -> Comparison {
    let names: BTreeSet<String> = runs
        .iter()
        .flat_map(|r| r.summary.metrics.keys().cloned())
        .collect();
    let mut rows: Vec<(String, Vec<Option<f64>>)> = names
        .into_iter()
        .map(|n| {
            let v = runs
                .iter()
                .map(|r| r.summary.metrics.get(&n).copied())
                .collect();
            (n, v)
        })
        .collect();
    type Pick = fn(&Summary) -> Option<f64>;
    let extra: [(&str, Pick); 5] = [
        ("examples", |s| Some(s.examples as f64)),
        ("errors", |s| Some(s.errors as f64)),
        ("ttft p50 (ms)", |s| s.latency.ttft_ms.map(|d| d.p50)),
        ("per-token p50 (ms)", |s| {
            s.latency.per_token_ms.map(|d| d.p50)
        }),
        ("output tokens/s", |s| {
            Some(s.throughput.output_tokens_per_s)
        }),
    ];
    for (name, f) in extra {
        rows.push((name.into(), runs.iter().map(|r| f(&r.summary)).collect()));
    }
    let tests = (1..runs.len())
        .map(|i| test_pair(&runs[0], &runs[i], i))
        .collect();
    Comparison { runs, rows, tests }
}

fn test_pair(a: &Run, b: &Run, index: usize) -> Significance {
    // Paired by example id and sample number (several samples per example with `generation.samples`).
    let by_id: HashMap<(&str, usize), &ExampleRecord> = b
        .records
        .iter()
        .map(|r| ((r.id.as_str(), r.sample), r))
        .collect();
    let pairs: Vec<(&ExampleRecord, &ExampleRecord)> = a
        .records
        .iter()
        .filter_map(|r| by_id.get(&(r.id.as_str(), r.sample)).map(|s| (r, *s)))
        .collect();
    let binary = pairs
        .iter()
        .all(|(x, y)| x.verdict != Verdict::Scored && y.verdict != Verdict::Scored);
    let mcnemar = (binary && !pairs.is_empty())
        .then(|| {
            let xa: Vec<bool> = pairs.iter().map(|p| p.0.is_correct()).collect();
            let xb: Vec<bool> = pairs.iter().map(|p| p.1.is_correct()).collect();
            mcnemar_exact(&xa, &xb).ok()
        })
        .flatten();
    let sa: Vec<f64> = pairs.iter().map(|p| p.0.primary_score).collect();
    let sb: Vec<f64> = pairs.iter().map(|p| p.1.primary_score).collect();
    let bootstrap = (!pairs.is_empty())
        .then(|| paired_bootstrap(&sa, &sb, RESAMPLES, 0).ok())
        .flatten();
    let p = mcnemar.map(|m| m.p_value).or(bootstrap.map(|b| b.p_value));
    Significance {
        run: index,
        common: pairs.len(),
        mcnemar,
        bootstrap,
        significant: p.is_some_and(|p| p < ALPHA),
    }
}

fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{v:.4}"))
}

/// Terminal table of a comparison.
pub fn compare_table(c: &Comparison) -> String {
    // Columns as wide as the longest label (run folders often share a long prefix), 12 to 40.
    let w = c
        .runs
        .iter()
        .map(|r| r.label.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(12, 40);
    let mut t = String::new();
    let _ = write!(t, "{:<22}", "metric");
    for (i, r) in c.runs.iter().enumerate() {
        let _ = write!(t, " {:>w$}", truncate_start(&r.label, w));
        if i > 0 {
            let _ = write!(t, " {:>9}", "Δ");
        }
    }
    t.push('\n');
    for (name, vals) in &c.rows {
        let _ = write!(t, "{:<22}", truncate(name, 22));
        for (i, v) in vals.iter().enumerate() {
            let _ = write!(t, " {:>w$}", fmt(*v));
            if i > 0 {
                let d = v.zip(vals[0]).map(|(x, y)| x - y);
                let _ = write!(
                    t,
                    " {:>9}",
                    d.map_or_else(|| "—".into(), |d| format!("{d:+.4}"))
                );
            }
        }
        t.push('\n');
    }
    for s in &c.tests {
        let _ = write!(
            t,
            "\n{} vs {} on {} shared examples:",
            c.runs[s.run].label, c.runs[0].label, s.common
        );
        if let Some(m) = s.mcnemar {
            let _ = write!(
                t,
                " McNemar p = {:.4} ({} vs {} discordant)",
                m.p_value, m.b_only, m.a_only
            );
        }
        if let Some(b) = s.bootstrap {
            let _ = write!(
                t,
                "; Δ = {:+.4}, 95% CI [{:+.4}, {:+.4}]",
                b.delta, b.ci_low, b.ci_high
            );
        }
        t.push_str(if s.significant {
            "  SIGNIFICANT (p < 0.05)"
        } else {
            "  not significant"
        });
    }
    t.push('\n');
    t
}

/// Keeps the end of `s` (where run names differ) within `n` characters.
fn truncate_start(s: &str, n: usize) -> String {
    let len = s.chars().count();
    if len <= n {
        s.to_owned()
    } else {
        let tail: String = s.chars().skip(len - (n - 1)).collect();
        format!("…{tail}")
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(n - 1).collect();
        out.push('…');
        out
    }
}

/// Side-by-side HTML report with a grouped bar chart of the metrics.
pub fn compare_report(c: &Comparison) -> String {
    let mut h = page_start("tuneup eval compare");
    let labels: Vec<String> = c.runs.iter().map(|r| r.label.clone()).collect();
    let groups: Vec<(String, Vec<f64>)> = c
        .rows
        .iter()
        .filter(|(n, _)| c.runs[0].summary.metrics.contains_key(n))
        .map(|(n, v)| (n.clone(), v.iter().map(|x| x.unwrap_or(0.0)).collect()))
        .collect();
    h.push_str(&grouped_bars("Metrics by run", &groups, &labels));
    h.push_str("<table><tr><th>metric</th>");
    for (i, r) in c.runs.iter().enumerate() {
        let _ = write!(h, "<th>{}</th>", escape(&r.label));
        if i > 0 {
            h.push_str("<th>Δ</th>");
        }
    }
    h.push_str("</tr>");
    for (name, vals) in &c.rows {
        let _ = write!(h, "<tr><td>{}</td>", escape(name));
        for (i, v) in vals.iter().enumerate() {
            let _ = write!(h, "<td class=num>{}</td>", fmt(*v));
            if i > 0 {
                let d = v.zip(vals[0]).map(|(x, y)| x - y);
                let _ = write!(
                    h,
                    "<td class=num>{}</td>",
                    d.map_or_else(|| "—".into(), |d| format!("{d:+.4}"))
                );
            }
        }
        h.push_str("</tr>");
    }
    h.push_str("</table><h2>Significance</h2><table><tr><th>run</th><th>shared</th><th>McNemar p</th><th>Δ primary</th><th>95% CI</th><th></th></tr>");
    for s in &c.tests {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&c.runs[s.run].label),
            s.common,
            s.mcnemar.map_or_else(|| "—".into(), |m| format!("{:.4}", m.p_value)),
            s.bootstrap.map_or_else(|| "—".into(), |b| format!("{:+.4}", b.delta)),
            s.bootstrap.map_or_else(|| "—".into(), |b| format!("[{:+.4}, {:+.4}]", b.ci_low, b.ci_high)),
            if s.significant { "<span class=sig>significant</span>" } else { "not significant" }
        );
    }
    let _ = writeln!(
        h,
        "</table><p>Runs: {}</p></body></html>",
        escape(
            &c.runs
                .iter()
                .map(|r| r.dir.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    );
    h
}
