//! The run's metrics file (`metrics.jsonl`), memory readings and the
//! loss-curve chart (`loss.svg`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tuneup_report::{line_chart, Series};

use crate::error::{Error, Result};

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// Optimiser step just finished (1-based).
    pub step: u64,
    /// Mean loss per target token of this step.
    pub loss: f64,
    /// Validation loss, on steps where it was measured.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub val_loss: Option<f64>,
    /// The task metric of the run's [`crate::CheckpointScorer`], on steps
    /// where it was measured.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub val_metric: Option<f64>,
    /// Why the scorer failed, on steps where it did.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub val_metric_error: Option<String>,
    /// Learning rate used by this step.
    pub lr: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Tokens (padding excluded) per second in this step.
    pub tokens_per_s: f64,
    /// Tokens seen since the start of the run.
    pub tokens_seen: u64,
    /// Resident memory now, MiB.
    pub rss_mib: f64,
    /// Seconds since the start (of this process).
    pub elapsed_s: f64,
}

/// Appends metrics lines to `metrics.jsonl`.
#[derive(Debug)]
pub struct MetricsFile {
    path: PathBuf,
}

impl MetricsFile {
    /// Opens `dir/metrics.jsonl`, dropping lines after `keep_through_step`
    /// (a resumed run continues the curve where its checkpoint was).
    pub fn open(dir: &Path, keep_through_step: u64) -> Result<Self> {
        let path = dir.join("metrics.jsonl");
        if path.exists() {
            let text = fs_err::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            let kept: String = text
                .lines()
                .filter(|l| {
                    serde_json::from_str::<StepMetrics>(l)
                        .is_ok_and(|m| m.step <= keep_through_step)
                })
                .map(|l| format!("{l}\n"))
                .collect();
            fs_err::write(&path, kept).map_err(|e| Error::io(&path, e))?;
        }
        Ok(Self { path })
    }

    /// Appends one line.
    pub fn append(&self, m: &StepMetrics) -> Result<()> {
        let mut f = fs_err::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::io(&self.path, e))?;
        let line = serde_json::to_string(m).expect("metrics serialise");
        writeln!(f, "{line}").map_err(|e| Error::io(&self.path, e))
    }

    /// Every line so far.
    pub fn read_all(&self) -> Result<Vec<StepMetrics>> {
        if !self.path.exists() {
            return Ok(Vec::new());
        }
        let text = fs_err::read_to_string(&self.path).map_err(|e| Error::io(&self.path, e))?;
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }
}

/// Resident and peak resident memory of this process in MiB (Linux;
/// zeros elsewhere).
pub fn memory_mib() -> (f64, f64) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return (0.0, 0.0);
    };
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// An SVG line chart of training loss and validation loss by step; with `metric` (the scorer's name), its values
/// as a third series on the right-hand axis (drawn by the shared `tuneup-report` charts).
pub fn loss_chart(metrics: &[StepMetrics], title: &str, metric: Option<&str>) -> String {
    let mut series = vec![
        Series::line(
            "training loss",
            metrics.iter().map(|m| (m.step as f64, m.loss)).collect(),
        ),
        Series::line(
            "validation loss",
            metrics
                .iter()
                .filter_map(|m| m.val_loss.map(|v| (m.step as f64, v)))
                .collect(),
        )
        .with_markers(),
    ];
    if let Some(name) = metric {
        let scored: Vec<(f64, f64)> = metrics
            .iter()
            .filter_map(|m| m.val_metric.map(|v| (m.step as f64, v)))
            .collect();
        if !scored.is_empty() {
            series.push(Series::line(name, scored).with_markers().on_right_axis());
        }
    }
    line_chart(title, "step", &series)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(step: u64, loss: f64, val: Option<f64>) -> StepMetrics {
        StepMetrics {
            step,
            loss,
            val_loss: val,
            val_metric: None,
            val_metric_error: None,
            lr: 1e-4,
            grad_norm: 1.0,
            tokens_per_s: 100.0,
            tokens_seen: step * 10,
            rss_mib: 1.0,
            elapsed_s: step as f64,
        }
    }

    #[test]
    fn resume_truncates_later_lines() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tmp", e))?;
        let f = MetricsFile::open(dir.path(), 0)?;
        for s in 1..=5 {
            f.append(&m(s, 2.0 / s as f64, None))?;
        }
        let f = MetricsFile::open(dir.path(), 3)?;
        assert_eq!(f.read_all()?.len(), 3);
        Ok(())
    }

    #[test]
    fn chart_has_both_curves() {
        let svg = loss_chart(
            &[m(1, 2.0, None), m(2, 1.5, Some(1.7)), m(3, 1.2, None)],
            "loss",
            None,
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("validation loss at 2: 1.7000"), "{svg}");
    }

    #[test]
    fn chart_shows_the_task_metric() {
        let mut scored = m(2, 1.5, Some(1.7));
        scored.val_metric = Some(0.42);
        let svg = loss_chart(&[m(1, 2.0, None), scored], "loss", Some("sql_execution"));
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert!(svg.contains("sql_execution at 2: 0.4200"), "{svg}");
        assert!(svg.contains("sql_execution (right)"), "{svg}");
    }
}
