//! Scatter charts of labelled points, e.g. each ladder rung's metric against its cost, with a target line.

use std::fmt::Write as _;

use crate::bars::{escape, PALETTE};
use crate::{range, tick};

/// One labelled point of a [`scatter`] chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Label drawn beside the point.
    pub label: String,
    /// X value.
    pub x: f64,
    /// Y value.
    pub y: f64,
    /// Highlight (e.g. the recommended configuration).
    pub highlight: bool,
}

/// An SVG scatter chart; points are joined in order by a thin line (a ladder climbs), `target` draws a dashed
/// horizontal line at that y value. Non-finite points are left out.
pub fn scatter(
    title: &str,
    x_label: &str,
    y_label: &str,
    points: &[Point],
    target: Option<f64>,
) -> String {
    let (w, h, left, right, top, bottom) = (720.0, 380.0, 70.0, 150.0, 40.0, 46.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" role="img" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12"><title>{t}</title><text x="{left}" y="18" font-weight="bold">{t}</text>"#,
        t = escape(title)
    );
    let pts: Vec<&Point> = points
        .iter()
        .filter(|p| p.x.is_finite() && p.y.is_finite())
        .collect();
    if pts.is_empty() {
        s.push_str(r#"<text x="70" y="80">no data</text></svg>"#);
        return s;
    }
    let (x_lo, x_hi) = range(pts.iter().map(|p| p.x).chain([0.0]));
    let (y_lo, y_hi) = range(pts.iter().map(|p| p.y).chain(target).chain([0.0]));
    let x = |v: f64| left + (v - x_lo) / (x_hi - x_lo) * (w - left - right);
    let y = |v: f64| top + (y_hi - v) / (y_hi - y_lo) * (h - top - bottom);
    for i in 0..=4 {
        let v = y_lo + (y_hi - y_lo) * i as f64 / 4.0;
        let xv = x_lo + (x_hi - x_lo) * i as f64 / 4.0;
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{x2}" y1="{yy:.1}" y2="{yy:.1}" stroke="#e5e5e5"/><text x="{tx}" y="{ty:.1}" text-anchor="end">{v}</text><text x="{xx:.1}" y="{xb}" text-anchor="middle">{xt}</text>"##,
            x2 = w - right,
            yy = y(v),
            tx = left - 6.0,
            ty = y(v) + 4.0,
            v = tick(v),
            xx = x(xv),
            xb = h - bottom + 16.0,
            xt = tick(xv)
        );
    }
    let _ = write!(
        s,
        r#"<text x="{xm:.1}" y="{yb}" text-anchor="middle">{xl}</text><text x="14" y="{ym:.1}" transform="rotate(-90 14 {ym:.1})" text-anchor="middle">{yl}</text>"#,
        xm = (left + w - right) / 2.0,
        yb = h - 8.0,
        xl = escape(x_label),
        ym = (top + h - bottom) / 2.0,
        yl = escape(y_label)
    );
    if let Some(t) = target.filter(|t| t.is_finite()) {
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{x2}" y1="{yy:.1}" y2="{yy:.1}" stroke="#e15759" stroke-dasharray="6 4" stroke-width="1.5"/><text x="{tx}" y="{ty:.1}" fill="#e15759">target {tv}</text>"##,
            x2 = w - right,
            yy = y(t),
            tx = w - right + 6.0,
            ty = y(t) + 4.0,
            tv = tick(t)
        );
    }
    let path: Vec<String> = pts
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(p.x), y(p.y)))
        .collect();
    let _ = write!(
        s,
        r##"<polyline fill="none" stroke="#bbb" stroke-width="1" points="{}"/>"##,
        path.join(" ")
    );
    for (i, p) in pts.iter().enumerate() {
        let color = if p.highlight { PALETTE[2] } else { PALETTE[0] };
        let _ = write!(
            s,
            r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="{r}" fill="{color}"><title>{l}: {xv:.4} → {yv:.4}</title></circle><text x="{lx:.1}" y="{ly:.1}" font-size="11">{n}. {l}</text>"#,
            cx = x(p.x),
            cy = y(p.y),
            r = if p.highlight { 6 } else { 4 },
            l = escape(&p.label),
            xv = p.x,
            yv = p.y,
            lx = x(p.x) + 8.0,
            ly = y(p.y) - 6.0 - 11.0 * (i % 2) as f64,
            n = i + 1
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(label: &str, x: f64, y: f64) -> Point {
        Point {
            label: label.into(),
            x,
            y,
            highlight: false,
        }
    }

    #[test]
    fn draws_points_in_order_with_the_target() {
        let svg = scatter(
            "rungs",
            "cost (USD)",
            "accuracy",
            &[
                p("baseline", 0.0, 0.2),
                p("lora", 0.5, 0.6),
                p("bad", f64::NAN, 1.0),
            ],
            Some(0.7),
        );
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains("stroke-dasharray") && svg.contains("target 0.70"));
        assert!(svg.contains("2. lora"));
        assert!(scatter("t", "x", "y", &[], None).contains("no data"));
    }
}
