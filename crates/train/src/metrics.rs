//! The run's metrics file (`metrics.jsonl`), memory readings and the
//! loss-curve chart (`loss.svg`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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

/// An SVG line chart of training loss (and validation loss points) by step;
/// with `metric` (the scorer's name), its values as a third series on a
/// 0–1 scale of their own (wider when a value falls outside).
pub fn loss_chart(metrics: &[StepMetrics], title: &str, metric: Option<&str>) -> String {
    let (w, h, left, right, top, bottom) = (720.0, 360.0, 60.0, 20.0, 40.0, 40.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12"><title>{title}</title><text x="{left}" y="20" font-weight="bold">{title}</text>"#
    );
    if metrics.is_empty() {
        s.push_str("</svg>");
        return s;
    }
    let max_step = metrics.iter().map(|m| m.step).max().unwrap_or(1).max(1) as f64;
    let min_step = metrics.iter().map(|m| m.step).min().unwrap_or(0) as f64;
    let values: Vec<f64> = metrics
        .iter()
        .flat_map(|m| std::iter::once(m.loss).chain(m.val_loss))
        .filter(|v| v.is_finite())
        .collect();
    let lo = values.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        (lo - 1.0, hi + 1.0)
    };
    let span_x = (max_step - min_step).max(1.0);
    let x = |step: f64| left + (step - min_step) / span_x * (w - left - right);
    let y = |v: f64| top + (hi - v) / (hi - lo) * (h - top - bottom);
    for i in 0..=4 {
        let v = lo + (hi - lo) * i as f64 / 4.0;
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{x2}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{tx}" y="{ty:.1}" text-anchor="end">{v:.3}</text>"##,
            x2 = w - right,
            yy = y(v),
            tx = left - 6.0,
            ty = y(v) + 4.0
        );
    }
    let _ = write!(
        s,
        r#"<text x="{left}" y="{yb}">step {min_step}</text><text x="{xr}" y="{yb}" text-anchor="end">step {max_step}</text>"#,
        yb = h - 12.0,
        xr = w - right
    );
    let train: Vec<String> = metrics
        .iter()
        .filter(|m| m.loss.is_finite())
        .map(|m| format!("{:.1},{:.1}", x(m.step as f64), y(m.loss)))
        .collect();
    let _ = write!(
        s,
        r##"<polyline fill="none" stroke="#4e79a7" stroke-width="1.5" points="{}"/>"##,
        train.join(" ")
    );
    let val: Vec<(f64, f64)> = metrics
        .iter()
        .filter_map(|m| m.val_loss.map(|v| (m.step as f64, v)))
        .collect();
    if !val.is_empty() {
        let pts: Vec<String> = val
            .iter()
            .map(|&(st, v)| format!("{:.1},{:.1}", x(st), y(v)))
            .collect();
        let _ = write!(
            s,
            r##"<polyline fill="none" stroke="#e15759" stroke-width="2" points="{}"/>"##,
            pts.join(" ")
        );
        for &(st, v) in &val {
            let _ = write!(
                s,
                r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="#e15759"><title>step {st}: validation {v:.4}</title></circle>"##,
                x(st),
                y(v)
            );
        }
    }
    let scored: Vec<(f64, f64)> = metrics
        .iter()
        .filter_map(|m| m.val_metric.map(|v| (m.step as f64, v)))
        .filter(|(_, v)| v.is_finite())
        .collect();
    if let (Some(name), false) = (metric, scored.is_empty()) {
        let mlo = scored.iter().map(|p| p.1).fold(0.0, f64::min);
        let mhi = scored.iter().map(|p| p.1).fold(1.0, f64::max);
        let ym = |v: f64| top + (mhi - v) / (mhi - mlo) * (h - top - bottom);
        let pts: Vec<String> = scored
            .iter()
            .map(|&(st, v)| format!("{:.1},{:.1}", x(st), ym(v)))
            .collect();
        let _ = write!(
            s,
            r##"<polyline fill="none" stroke="#59a14f" stroke-width="2" stroke-dasharray="5,3" points="{}"/>"##,
            pts.join(" ")
        );
        for &(st, v) in &scored {
            let _ = write!(
                s,
                r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="#59a14f"><title>step {st}: {name} {v:.4}</title></circle>"##,
                x(st),
                ym(v)
            );
        }
        let _ = write!(
            s,
            r##"<rect x="{lx}" y="{ly}" width="10" height="3" fill="#59a14f"/><text x="{tx}" y="{ty}">{name} (scale {mlo}–{mhi})</text>"##,
            lx = w - 260.0,
            ly = 42.0,
            tx = w - 245.0,
            ty = 47.0
        );
    }
    let _ = write!(
        s,
        r##"<rect x="{lx}" y="28" width="10" height="3" fill="#4e79a7"/><text x="{tx}" y="33">training loss</text><rect x="{lx2}" y="28" width="10" height="3" fill="#e15759"/><text x="{tx2}" y="33">validation loss</text></svg>"##,
        lx = w - 260.0,
        tx = w - 245.0,
        lx2 = w - 140.0,
        tx2 = w - 125.0
    );
    s
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
        assert!(svg.contains("validation 1.7000"));
    }

    #[test]
    fn chart_shows_the_task_metric() {
        let mut scored = m(2, 1.5, Some(1.7));
        scored.val_metric = Some(0.42);
        let svg = loss_chart(&[m(1, 2.0, None), scored], "loss", Some("sql_execution"));
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert!(svg.contains("step 2: sql_execution 0.4200"), "{svg}");
        assert!(svg.contains("sql_execution (scale 0–1)"), "{svg}");
    }
}
