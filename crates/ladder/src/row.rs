//! One rung's row: the metric with its interval, significance against the baseline and the previous best, the
//! error types, latency, memory, size, cost, return on investment and the recommendation.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tuneup_eval_runner::compare::{compare, Run};
use tuneup_eval_runner::Verdict;

use crate::config::{Budget, Target};
use crate::measure::Measured;
use crate::rung::RungKind;
use crate::train_rung::Trained;
use crate::variant::Variant;

/// How a rung ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Measured.
    Done,
    /// Not tried (does not apply, or not in the list); the note says why.
    Skipped,
    /// Tried and failed; the note holds the error and the ladder went on.
    Failed,
}

/// A difference against another row on the same test examples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Significance {
    /// This row's metric minus the other's.
    pub delta: f64,
    /// p-value (McNemar's exact test on pass/fail, else the paired bootstrap).
    pub p_value: f64,
    /// p below 0.05.
    pub significant: bool,
}

/// What to do after this rung.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Advice {
    /// Every target is met here: stop climbing.
    Stop,
    /// A significant gain (or a gain the targets still need): climb on.
    Climb,
    /// The gain is not significant: this rung does not pay.
    NotWorthIt,
    /// Nothing measured.
    None,
}

/// One rung's row of the ladder table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The rung.
    pub rung: RungKind,
    /// Done, skipped or failed.
    pub status: Status,
    /// Why skipped / the error / what was chosen.
    pub note: String,
    /// Frequent truncation (more than 5 % of the answers hit the token limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// The configuration measured.
    pub variant: Variant,
    /// Its description.
    pub config: String,
    /// Primary metric name.
    pub metric_name: String,
    /// Primary metric on the test split.
    pub metric: Option<f64>,
    /// 95 % interval (Wilson for pass/fail metrics).
    pub ci: Option<(f64, f64)>,
    /// Test examples.
    pub n: usize,
    /// Primary metric on the validation split (what chose it).
    pub validation_metric: Option<f64>,
    /// Against the baseline row.
    pub vs_baseline: Option<Significance>,
    /// Against the best configuration before this rung.
    pub vs_previous: Option<Significance>,
    /// Error types with counts on the test split.
    pub error_types: BTreeMap<String, usize>,
    /// Answers cut off by the token limit.
    pub truncated: usize,
    /// Time to first token, median, ms.
    pub ttft_p50_ms: Option<f64>,
    /// Request latency, median, ms.
    pub latency_p50_ms: Option<f64>,
    /// Request latency, 95th percentile, ms.
    pub latency_p95_ms: Option<f64>,
    /// Generated tokens per second over the run.
    pub tokens_per_s: Option<f64>,
    /// Peak resident memory while answering, MiB.
    pub peak_rss_mib: Option<f64>,
    /// Model + adapter bytes on disk.
    pub size_bytes: u64,
    /// Training wall-clock seconds (trained rungs).
    pub train_s: Option<f64>,
    /// Training tokens seen.
    pub train_tokens: Option<u64>,
    /// Training steps.
    pub train_steps: Option<u64>,
    /// Loss and validation metric by step (trained rungs).
    #[serde(default)]
    pub curve: Vec<crate::train_rung::CurvePoint>,
    /// The forgetting check (trained rungs with `[forgetting]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forgetting: Option<Forgetting>,
    /// This rung's whole wall-clock time (search, training, test), seconds.
    pub rung_s: f64,
    /// One-off cost of the rung (its wall-clock at the machine's price), USD.
    pub one_off_usd: f64,
    /// Serving cost per 1,000 requests, USD.
    pub usd_per_1k: Option<f64>,
    /// Metric gained over the baseline per one-off USD.
    pub gain_per_usd: Option<f64>,
    /// Metric gained over the baseline per hour of the rung.
    pub gain_per_hour: Option<f64>,
    /// Stop, climb or not worth it.
    pub verdict: Advice,
    /// The recommendation in words.
    pub recommendation: String,
    /// The test run's folder, relative to the ladder's run folder.
    pub eval_dir: Option<PathBuf>,
    /// Whether the ladder went on from this configuration (it beat the previous one on validation); a rung
    /// whose candidates all lost shows its best candidate on test with `adopted = false`, and cannot win.
    #[serde(default = "adopted_default")]
    pub adopted: bool,
}

fn adopted_default() -> bool {
    true
}

impl Row {
    /// A row for a rung that was not measured.
    pub fn empty(rung: RungKind, status: Status, note: String) -> Self {
        Row {
            rung,
            status,
            note,
            warning: None,
            variant: Variant::default(),
            config: String::new(),
            metric_name: String::new(),
            metric: None,
            ci: None,
            n: 0,
            validation_metric: None,
            vs_baseline: None,
            vs_previous: None,
            error_types: BTreeMap::new(),
            truncated: 0,
            ttft_p50_ms: None,
            latency_p50_ms: None,
            latency_p95_ms: None,
            tokens_per_s: None,
            peak_rss_mib: None,
            size_bytes: 0,
            train_s: None,
            train_tokens: None,
            train_steps: None,
            curve: Vec::new(),
            forgetting: None,
            rung_s: 0.0,
            one_off_usd: 0.0,
            usd_per_1k: None,
            gain_per_usd: None,
            gain_per_hour: None,
            verdict: Advice::None,
            recommendation: String::new(),
            eval_dir: None,
            adopted: true,
        }
    }

    /// A measured row (significance, ROI and recommendation are filled by [`Row::judge`]).
    #[allow(clippy::too_many_arguments)]
    pub fn measured(
        rung: RungKind,
        variant: &Variant,
        test: &Measured,
        validation_metric: Option<f64>,
        size_bytes: u64,
        trained: Option<&Trained>,
        budget: &Budget,
        price: Price,
        eval_dir: PathBuf,
    ) -> Self {
        let s = &test.summary;
        let correct = test.records.iter().filter(|r| r.is_correct()).count();
        let binary = test.records.iter().all(|r| r.verdict != Verdict::Scored);
        let n = test.records.len();
        let metric = test.metric();
        let mean_s = s.latency.total_ms.map(|d| d.mean / 1000.0);
        let usd_per_1k = match price {
            Price::Machine => mean_s.map(|m| m * 1000.0 / 3600.0 * budget.usd_per_cpu_hour),
            Price::Tokens { input, output } => (n > 0).then(|| {
                (s.tokens.prompt as f64 * input + s.tokens.completion as f64 * output)
                    / 1e6
                    / n as f64
                    * 1000.0
            }),
        };
        let mut row = Row::empty(rung, Status::Done, String::new());
        row.variant = variant.clone();
        row.config = variant.describe();
        row.metric_name = s.primary_metric.clone();
        row.metric = Some(metric);
        row.ci = if binary {
            Some(tuneup_eval::stats::wilson_interval(
                correct as u64,
                n as u64,
            ))
        } else {
            None
        };
        row.n = n;
        row.validation_metric = validation_metric;
        row.error_types = s
            .error_types
            .iter()
            .map(|(k, v)| (k.clone(), v.count))
            .collect();
        row.truncated = test
            .records
            .iter()
            .filter(|r| r.error_type.as_deref() == Some("truncated"))
            .count();
        row.ttft_p50_ms = s.latency.ttft_ms.map(|d| d.p50);
        row.latency_p50_ms = s.latency.total_ms.map(|d| d.p50);
        row.latency_p95_ms = s.latency.total_ms.map(|d| d.p95);
        row.tokens_per_s = Some(s.throughput.output_tokens_per_s);
        row.peak_rss_mib = test.peak_rss_mib;
        row.size_bytes = size_bytes;
        row.train_s = trained.map(|t| t.wall_s);
        row.train_tokens = trained.map(|t| t.tokens);
        row.train_steps = trained.map(|t| t.steps);
        row.curve = trained.map(|t| t.curve.clone()).unwrap_or_default();
        row.usd_per_1k = usd_per_1k;
        row.eval_dir = Some(eval_dir);
        row
    }

    /// Records the rung's whole wall-clock time and its one-off cost at `usd_per_hour`.
    pub fn set_rung_time(&mut self, rung_s: f64, usd_per_hour: f64) {
        self.rung_s = rung_s;
        self.one_off_usd = rung_s / 3600.0 * usd_per_hour;
    }

    /// Whether every target that is set is met by this row.
    pub fn meets(&self, t: &Target) -> bool {
        if self.status != Status::Done {
            return false;
        }
        let le = |v: Option<f64>, max: Option<f64>| max.is_none_or(|m| v.is_some_and(|v| v <= m));
        t.metric.is_none_or(|m| self.metric.is_some_and(|v| v >= m))
            && le(self.latency_p95_ms.map(|v| v / 1000.0), t.p95_latency_s)
            && le(self.peak_rss_mib.map(|v| v / 1024.0), t.peak_ram_gb)
            && le(self.usd_per_1k, t.usd_per_1k_requests)
            && (t.metric.is_some()
                || t.p95_latency_s.is_some()
                || t.peak_ram_gb.is_some()
                || t.usd_per_1k_requests.is_some())
    }

    /// Fills significance (against `baseline` and `previous`, the best configuration before this rung), return on
    /// investment and the recommendation; `next` names the next rung to try.
    pub fn judge(
        &mut self,
        own: &Run,
        baseline: Option<(&Row, &Run)>,
        previous: Option<(&Row, &Run)>,
        target: &Target,
        next: Option<RungKind>,
    ) {
        if self.status != Status::Done {
            return;
        }
        self.warning = (self.n > 0 && self.truncated * 20 > self.n).then(|| {
            format!(
                "{} of {} answers hit the token limit (truncated): raise generation.max_tokens",
                self.truncated, self.n
            )
        });
        self.vs_baseline = baseline.map(|(_, run)| significance(run, own));
        self.vs_previous = previous.map(|(_, run)| significance(run, own));
        if let (Some(m), Some((b, _))) = (self.metric, baseline) {
            let gain = m - b.metric.unwrap_or(0.0);
            if self.rung != RungKind::Baseline && self.rung != RungKind::Reference {
                self.gain_per_usd = (self.one_off_usd > 0.0).then(|| gain / self.one_off_usd);
                self.gain_per_hour = (self.rung_s > 0.0).then(|| gain / (self.rung_s / 3600.0));
            }
        }
        let next_text = next.map_or_else(
            || "no rung left to climb".to_owned(),
            |n| format!("next: {n}"),
        );
        if self.rung == RungKind::Reference {
            self.verdict = Advice::None;
            self.recommendation = "the bar to compare against".into();
            return;
        }
        if self.meets(target) {
            self.verdict = Advice::Stop;
            self.recommendation = "stop: every target is met here".into();
            return;
        }
        match self.vs_previous {
            Some(s) if s.significant && s.delta > 0.0 => {
                self.verdict = Advice::Climb;
                self.recommendation = format!(
                    "pays: {:+.1} points (p = {:.3}); target not met — climb ({next_text})",
                    100.0 * s.delta,
                    s.p_value
                );
            }
            Some(s) => {
                self.verdict = Advice::NotWorthIt;
                self.recommendation = format!(
                    "not worth it: {:+.1} points, not significant (p = {:.3}); {next_text}",
                    100.0 * s.delta,
                    s.p_value
                );
            }
            None => {
                self.verdict = Advice::Climb;
                self.recommendation = format!("target not met — climb ({next_text})");
            }
        }
    }
}

/// A general task's metric before and after training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forgetting {
    /// The general task's name.
    pub task: String,
    /// Its primary metric name.
    pub metric_name: String,
    /// On the base model.
    pub before: f64,
    /// On the trained model.
    pub after: f64,
}

/// How serving is priced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Price {
    /// By the machine's time (in-process models).
    Machine,
    /// By tokens (a hosted reference): USD per million input and output tokens.
    Tokens {
        /// Input price.
        input: f64,
        /// Output price.
        output: f64,
    },
}

/// `b` against `a` on the examples both ran.
pub fn significance(a: &Run, b: &Run) -> Significance {
    let c = compare(vec![a.clone(), b.clone()]);
    let t = &c.tests[0];
    let delta = t.bootstrap.map_or_else(
        || crate::measure::primary_value(&b.summary) - crate::measure::primary_value(&a.summary),
        |x| x.delta,
    );
    let p = t
        .mcnemar
        .map(|m| m.p_value)
        .or(t.bootstrap.map(|x| x.p_value))
        .unwrap_or(1.0);
    Significance {
        delta,
        p_value: p,
        significant: t.significant,
    }
}
