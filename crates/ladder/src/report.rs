//! The ladder's outputs for people: the terminal table and the offline HTML report (metric against cost with
//! the target line, error types per rung, training curves, links to each rung's eval report).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use tuneup_report::{
    escape, grouped_bars, line_chart, page_end, page_start, scatter, Point, Series,
};

use crate::config::Target;
use crate::row::{Row, Status};
use crate::rung::RungKind;
use crate::split::Splits;

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{:.1}", 100.0 * v))
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{v:.digits$}"))
}

fn ci(r: &Row) -> String {
    r.ci.map_or_else(String::new, |(a, b)| {
        format!(" [{:.0}–{:.0}]", 100.0 * a, 100.0 * b)
    })
}

fn sig(s: Option<crate::row::Significance>) -> String {
    s.map_or_else(
        || "—".into(),
        |s| {
            format!(
                "{:+.1} (p {:.2}){}",
                100.0 * s.delta,
                s.p_value,
                if s.significant { "*" } else { "" }
            )
        },
    )
}

/// The rung table for the terminal.
pub fn terminal_table(rows: &[Row]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<12} {:<34} {:>16} {:>16} {:>13} {:>7} {:>7} {:>8} {:>8} {:>9}",
        "rung",
        "configuration",
        "metric % [95%]",
        "vs base",
        "p50/p95 s",
        "tok/s",
        "RSS MiB",
        "size MB",
        "train s",
        "$/1k req"
    );
    for r in rows {
        let config: String = if r.status == Status::Done && !r.adopted {
            format!("(not kept) {}", r.config)
        } else if r.status == Status::Done {
            r.config.clone()
        } else {
            format!("{:?}: {}", r.status, r.note).to_lowercase()
        };
        let config: String = config.chars().take(34).collect();
        let _ = writeln!(
            t,
            "{:<12} {:<34} {:>16} {:>16} {:>13} {:>7} {:>7} {:>8} {:>8} {:>9}",
            r.rung.name(),
            config,
            format!("{}{}", pct(r.metric), ci(r)),
            sig(r.vs_baseline),
            format!(
                "{}/{}",
                num(r.latency_p50_ms.map(|v| v / 1000.0), 2),
                num(r.latency_p95_ms.map(|v| v / 1000.0), 2)
            ),
            num(r.tokens_per_s, 1),
            num(r.peak_rss_mib, 0),
            if r.size_bytes > 0 {
                format!("{:.0}", r.size_bytes as f64 / 1e6)
            } else {
                "—".into()
            },
            num(r.train_s, 0),
            num(r.usd_per_1k, 4),
        );
        if r.status == Status::Done && !r.recommendation.is_empty() {
            let _ = writeln!(t, "{:<12} └ {}", "", r.recommendation);
        }
        if let Some(w) = &r.warning {
            let _ = writeln!(t, "{:<12} └ warning: {w}", "");
        }
    }
    t
}

/// The HTML report.
pub fn ladder_report(
    name: &str,
    model: &str,
    task: &str,
    target: &Target,
    splits: &Splits,
    rows: &[Row],
    winner: Option<RungKind>,
) -> String {
    let mut h = page_start(&format!("tuneup ladder: {name}"));
    let _ = write!(
        h,
        "<p>Model <b>{}</b> on task <b>{}</b> · train {} · validation {} (chooses) · test {} (reports) examples.</p>",
        escape(model),
        escape(task),
        splits.counts[0],
        splits.counts[1],
        splits.counts[2]
    );
    if let Some(w) = winner.and_then(|w| rows.iter().find(|r| r.rung == w)) {
        let _ = write!(
            h,
            "<p class=ok>Recommended: {} — {} ({} %). Serve it with <code>tuneup serve --ladder RUN_FOLDER</code>.</p>",
            w.rung,
            escape(&w.config),
            pct(w.metric)
        );
    }
    let done: Vec<&Row> = rows.iter().filter(|r| r.status == Status::Done).collect();
    // Metric against cumulative one-off cost, climbing order.
    let mut spent = 0.0;
    let points: Vec<Point> = done
        .iter()
        .filter(|r| r.rung != RungKind::Reference)
        .map(|r| {
            spent += r.one_off_usd;
            Point {
                label: format!("{} · {}", r.rung, r.config),
                x: spent,
                y: r.metric.unwrap_or(f64::NAN) * 100.0,
                highlight: Some(r.rung) == winner,
            }
        })
        .collect();
    h.push_str("<h2>The ladder</h2>");
    h.push_str(&scatter(
        "test metric (%) against what the climb cost so far (USD)",
        "cumulative one-off cost (USD)",
        "metric %",
        &points,
        target.metric.map(|t| t * 100.0),
    ));
    h.push_str("<table><tr><th>rung</th><th>configuration</th><th>metric % [95 %]</th><th>validation %</th><th>vs baseline</th><th>vs previous best</th><th>TTFT p50 ms</th><th>latency p50 / p95 s</th><th>tokens/s</th><th>peak RSS MiB</th><th>size MB</th><th>training</th><th>one-off $</th><th>$ / 1k requests</th><th>gain / $</th><th>gain / hour</th><th>recommendation</th><th>eval</th></tr>");
    for r in rows {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}<br><small>{}</small></td><td class=num>{}{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{} / {}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td>{}</td><td>{}</td></tr>",
            r.rung,
            escape(if r.status == Status::Done { &r.config } else { "" }),
            escape(&match &r.warning {
                Some(w) if r.note.is_empty() => w.clone(),
                Some(w) => format!("{}; {w}", r.note),
                None => r.note.clone(),
            }),
            pct(r.metric),
            ci(r),
            pct(r.validation_metric),
            escape(&sig(r.vs_baseline)),
            escape(&sig(r.vs_previous)),
            num(r.ttft_p50_ms, 0),
            num(r.latency_p50_ms.map(|v| v / 1000.0), 2),
            num(r.latency_p95_ms.map(|v| v / 1000.0), 2),
            num(r.tokens_per_s, 1),
            num(r.peak_rss_mib, 0),
            if r.size_bytes > 0 { format!("{:.1}", r.size_bytes as f64 / 1e6) } else { "—".into() },
            match (r.train_s, r.train_steps, r.train_tokens) {
                (Some(s), Some(st), Some(tok)) => format!("{st} steps, {tok} tokens, {s:.0} s"),
                _ => "—".into(),
            },
            num(Some(r.one_off_usd), 4),
            num(r.usd_per_1k, 4),
            num(r.gain_per_usd.map(|g| g * 100.0), 1),
            num(r.gain_per_hour.map(|g| g * 100.0), 1),
            escape(&r.recommendation),
            r.eval_dir.as_ref().map_or_else(String::new, |d| format!(
                "<a href=\"{}/report.html\">report</a>",
                escape(&d.display().to_string())
            )),
        );
    }
    h.push_str("</table><p>* p &lt; 0.05 (McNemar's exact test on the same test examples, else a paired bootstrap). Gains are in points of the metric; gain / $ and gain / hour count the rung's own search and training time.</p>");
    for r in rows.iter().filter(|r| r.forgetting.is_some()) {
        let f = r.forgetting.as_ref().expect("filtered");
        let _ = write!(
            h,
            "<p>Forgetting check, {}: {} on {} {:.1} % before → {:.1} % after training ({:+.1} points).</p>",
            r.rung,
            escape(&f.metric_name),
            escape(&f.task),
            100.0 * f.before,
            100.0 * f.after,
            100.0 * (f.after - f.before)
        );
    }
    // Error types per rung.
    let kinds: BTreeSet<&String> = done.iter().flat_map(|r| r.error_types.keys()).collect();
    if !kinds.is_empty() {
        let series: Vec<String> = done.iter().map(|r| r.rung.name().to_owned()).collect();
        let groups: Vec<(String, Vec<f64>)> = kinds
            .iter()
            .map(|k| {
                (
                    (*k).clone(),
                    done.iter()
                        .map(|r| r.error_types.get(*k).copied().unwrap_or(0) as f64)
                        .collect(),
                )
            })
            .collect();
        h.push_str("<h2>How the errors moved</h2>");
        h.push_str(&grouped_bars(
            "test errors by type and rung (count)",
            &groups,
            &series,
        ));
    }
    for r in done.iter().filter(|r| !r.curve.is_empty()) {
        let _ = write!(h, "<h2>Training: {}</h2>", r.rung);
        let loss: Vec<(f64, f64)> = r.curve.iter().map(|c| (c.step as f64, c.loss)).collect();
        let val: Vec<(f64, f64)> = r
            .curve
            .iter()
            .filter_map(|c| c.val_loss.map(|v| (c.step as f64, v)))
            .collect();
        let metric: Vec<(f64, f64)> = r
            .curve
            .iter()
            .filter_map(|c| c.val_metric.map(|v| (c.step as f64, v * 100.0)))
            .collect();
        h.push_str(&line_chart(
            &format!("{}: loss and validation {} by step", r.rung, r.metric_name),
            "step",
            &[
                Series::line("training loss", loss),
                Series::line("validation loss", val).with_markers(),
                Series::line(&format!("validation {} %", r.metric_name), metric)
                    .with_markers()
                    .on_right_axis(),
            ],
        ));
    }
    h.push_str(page_end());
    h
}
