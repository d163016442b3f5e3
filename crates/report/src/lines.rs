//! Line charts: several named series over a numeric x axis, with optional point markers.

use std::fmt::Write as _;

use crate::bars::{escape, PALETTE};
use crate::{range, tick};

/// One line of a [`line_chart`].
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend name.
    pub name: String,
    /// (x, y) points; non-finite y values are skipped.
    pub points: Vec<(f64, f64)>,
    /// Draw a marker (with a tooltip) at every point.
    pub markers: bool,
    /// Plot against the right-hand axis (its own scale), e.g. an accuracy beside a loss.
    pub right_axis: bool,
}

impl Series {
    /// A plain line on the left axis.
    pub fn line(name: &str, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.to_owned(),
            points,
            markers: false,
            right_axis: false,
        }
    }

    /// Marks every point.
    pub fn with_markers(mut self) -> Self {
        self.markers = true;
        self
    }

    /// Moves the series to the right-hand axis.
    pub fn on_right_axis(mut self) -> Self {
        self.right_axis = true;
        self
    }
}

/// An SVG line chart titled `title` with `x_label` under the x axis; series on the right axis get their own
/// scale (labelled on the right). An empty chart says "no data".
pub fn line_chart(title: &str, x_label: &str, series: &[Series]) -> String {
    let (w, h, left, right, top, bottom) = (720.0, 360.0, 60.0, 60.0, 48.0, 40.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" role="img" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12"><title>{t}</title><text x="{left}" y="18" font-weight="bold">{t}</text>"#,
        t = escape(title)
    );
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    if series
        .iter()
        .all(|sr| sr.points.iter().filter(finite).count() == 0)
    {
        s.push_str(r#"<text x="60" y="80">no data</text></svg>"#);
        return s;
    }
    let (x_lo, x_hi) = range(series.iter().flat_map(|sr| sr.points.iter().map(|p| p.0)));
    let axis = |right_axis: bool| {
        range(
            series
                .iter()
                .filter(|sr| sr.right_axis == right_axis)
                .flat_map(|sr| sr.points.iter().map(|p| p.1)),
        )
    };
    let (left_lo, left_hi) = axis(false);
    let (right_lo, right_hi) = axis(true);
    let x = |v: f64| left + (v - x_lo) / (x_hi - x_lo) * (w - left - right);
    let y = |v: f64, r: bool| {
        let (lo, hi) = if r {
            (right_lo, right_hi)
        } else {
            (left_lo, left_hi)
        };
        top + (hi - v) / (hi - lo) * (h - top - bottom)
    };
    let has_right = series.iter().any(|sr| sr.right_axis);
    for i in 0..=4 {
        let f = i as f64 / 4.0;
        let lv = left_lo + (left_hi - left_lo) * f;
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{x2}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{tx}" y="{ty:.1}" text-anchor="end">{v}</text>"##,
            x2 = w - right,
            yy = y(lv, false),
            tx = left - 6.0,
            ty = y(lv, false) + 4.0,
            v = tick(lv)
        );
        if has_right {
            let rv = right_lo + (right_hi - right_lo) * f;
            let _ = write!(
                s,
                r#"<text x="{tx}" y="{ty:.1}">{v}</text>"#,
                tx = w - right + 6.0,
                ty = y(rv, true) + 4.0,
                v = tick(rv)
            );
        }
    }
    let _ = write!(
        s,
        r#"<text x="{left}" y="{yb}">{a}</text><text x="{xm:.1}" y="{yb}" text-anchor="middle">{l}</text><text x="{xr}" y="{yb}" text-anchor="end">{b}</text>"#,
        yb = h - 12.0,
        a = tick(x_lo),
        xm = (left + w - right) / 2.0,
        l = escape(x_label),
        xr = w - right,
        b = tick(x_hi)
    );
    for (i, sr) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let pts: Vec<(f64, f64)> = sr.points.iter().filter(finite).copied().collect();
        let path: Vec<String> = pts
            .iter()
            .map(|&(a, b)| format!("{:.1},{:.1}", x(a), y(b, sr.right_axis)))
            .collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{}"/>"#,
            path.join(" ")
        );
        if sr.markers {
            for &(a, b) in &pts {
                let _ = write!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"><title>{n} at {a}: {b:.4}</title></circle>"#,
                    x(a),
                    y(b, sr.right_axis),
                    n = escape(&sr.name)
                );
            }
        }
        let lx = left + 170.0 * i as f64;
        let _ = write!(
            s,
            r#"<rect x="{lx}" y="28" width="12" height="4" fill="{color}"/><text x="{tx}" y="34">{n}{r}</text>"#,
            tx = lx + 16.0,
            n = escape(&sr.name),
            r = if sr.right_axis { " (right)" } else { "" }
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_each_series_and_its_markers() {
        let svg = line_chart(
            "loss <by> step",
            "step",
            &[
                Series::line(
                    "training loss",
                    vec![(1.0, 2.0), (2.0, 1.5), (3.0, f64::NAN)],
                ),
                Series::line("accuracy", vec![(2.0, 0.4)])
                    .with_markers()
                    .on_right_axis(),
            ],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 1);
        assert!(svg.contains("accuracy at 2: 0.4000"));
        assert!(svg.contains("loss &lt;by&gt; step"));
        assert!(line_chart("t", "x", &[]).contains("no data"));
    }
}
