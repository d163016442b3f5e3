//! Bar charts and a histogram as inline SVG (no scripts, no external resources).

use std::fmt::Write as _;

/// Escapes text for HTML and SVG (`& < > " '`).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Series colours (Tableau 10), used in order.
pub const PALETTE: [&str; 6] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1",
];

/// Horizontal bar chart of (label, value, annotation); `max` fixes the scale (e.g. 1.0 for accuracy).
pub fn hbars(title: &str, rows: &[(String, f64, String)], max: Option<f64>, color: &str) -> String {
    let row_h = 22.0;
    let label_w = 180.0;
    let bar_w = 380.0;
    let h = 30.0 + row_h * rows.len() as f64;
    let top = max
        .unwrap_or_else(|| rows.iter().map(|r| r.1).fold(0.0, f64::max))
        .max(1e-12);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" role="img" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}"><title>{t}</title><text x="0" y="16" font-weight="bold">{t}</text>"#,
        w = label_w + bar_w + 90.0,
        t = escape(title)
    );
    for (i, (label, v, note)) in rows.iter().enumerate() {
        let y = 26.0 + row_h * i as f64;
        let w = (v / top).clamp(0.0, 1.0) * bar_w;
        let _ = write!(
            s,
            r#"<text x="{lx}" y="{ty}" text-anchor="end">{l}</text><rect x="{x}" y="{y}" width="{w:.1}" height="16" fill="{color}"><title>{l}: {n}</title></rect><text x="{nx:.1}" y="{ty}">{n}</text>"#,
            lx = label_w - 6.0,
            ty = y + 12.0,
            l = escape(label),
            x = label_w,
            nx = label_w + w + 4.0,
            n = escape(note)
        );
    }
    s.push_str("</svg>");
    s
}

/// Histogram of `values` in `bins` equal-width bins.
pub fn histogram(title: &str, values: &[f64], bins: usize, unit: &str) -> String {
    let (w, h, pad) = (560.0, 180.0, 30.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" role="img" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{th}" viewBox="0 0 {w} {th}"><title>{t}</title><text x="0" y="16" font-weight="bold">{t}</text>"#,
        th = h + 2.0 * pad,
        t = escape(title)
    );
    if values.is_empty() || bins == 0 {
        s.push_str(r#"<text x="10" y="50">no data</text></svg>"#);
        return s;
    }
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let width = ((hi - lo) / bins as f64).max(1e-9);
    let mut counts = vec![0usize; bins];
    for v in values {
        let b = (((v - lo) / width) as usize).min(bins - 1);
        counts[b] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let bw = w / bins as f64;
    for (i, c) in counts.iter().enumerate() {
        let bh = *c as f64 / top * h;
        let _ = write!(
            s,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{bw:.1}" height="{bh:.1}" fill="{col}" stroke="white"><title>{a:.1}–{b:.1} {u}: {c}</title></rect>"#,
            x = i as f64 * bw,
            y = pad + h - bh,
            bw = bw,
            col = PALETTE[0],
            a = lo + width * i as f64,
            b = lo + width * (i + 1) as f64,
            u = escape(unit)
        );
    }
    let _ = write!(
        s,
        r#"<text x="0" y="{y}">{lo:.1} {u}</text><text x="{w}" y="{y}" text-anchor="end">{hi:.1} {u}</text></svg>"#,
        y = pad + h + 18.0,
        u = escape(unit)
    );
    s
}

/// Grouped vertical bars: one group per metric, one bar per run (values scaled per metric to its largest).
pub fn grouped_bars(title: &str, groups: &[(String, Vec<f64>)], series: &[String]) -> String {
    let (h, pad) = (200.0, 30.0);
    let bar = 18.0;
    let group_w = bar * series.len().max(1) as f64 + 24.0;
    let w = (group_w * groups.len() as f64).max(300.0) + 20.0;
    let legend_h = 18.0 * series.len() as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" role="img" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{th}" viewBox="0 0 {w} {th}"><title>{t}</title><text x="0" y="16" font-weight="bold">{t}</text>"#,
        th = h + 2.0 * pad + 40.0 + legend_h,
        t = escape(title)
    );
    for (g, (name, values)) in groups.iter().enumerate() {
        let top = values.iter().copied().fold(0.0, f64::max).max(1e-12);
        let x0 = 10.0 + g as f64 * group_w;
        for (i, v) in values.iter().enumerate() {
            let bh = (v / top).clamp(0.0, 1.0) * h;
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{bar}" height="{bh:.1}" fill="{c}"><title>{sn} · {n}: {v:.4}</title></rect>"#,
                x = x0 + bar * i as f64,
                y = pad + h - bh,
                c = PALETTE[i % PALETTE.len()],
                sn = escape(series.get(i).map_or("", String::as_str)),
                n = escape(name)
            );
        }
        let _ = write!(
            s,
            r#"<text x="{x:.1}" y="{y}" font-size="11">{n}</text>"#,
            x = x0,
            y = pad + h + 16.0,
            n = escape(name)
        );
    }
    for (i, name) in series.iter().enumerate() {
        let y = pad + h + 40.0 + 18.0 * i as f64;
        let _ = write!(
            s,
            r#"<rect x="10" y="{ry}" width="12" height="12" fill="{c}"/><text x="28" y="{ty}">{n}</text>"#,
            ry = y - 10.0,
            ty = y,
            c = PALETTE[i % PALETTE.len()],
            n = escape(name)
        );
    }
    s.push_str("</svg>");
    s
}
