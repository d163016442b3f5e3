//! Self-contained HTML reports (inline CSS and SVG, no scripts or network) and the terminal table.

use std::fmt::Write as _;

use crate::record::{ExampleRecord, Verdict};
use crate::summary::{Dist, Summary};
use crate::svg::{escape, hbars, histogram};

pub(crate) use tuneup_report::page_start;

fn dist_row(name: &str, d: &Option<Dist>) -> String {
    match d {
        Some(d) => format!(
            "<tr><td>{name}</td><td class=num>{:.1}</td><td class=num>{:.1}</td><td class=num>{:.1}</td><td class=num>{:.1}</td></tr>",
            d.p50, d.p95, d.mean, d.max
        ),
        None => format!("<tr><td>{name}</td><td colspan=4>—</td></tr>"),
    }
}

fn pre(text: &str) -> String {
    format!("<pre>{}</pre>", escape(text))
}

/// The code sandbox's isolation level, e.g. `jail+landlock`.
fn sandbox_line(s: &Summary) -> Option<String> {
    s.code_sandbox.map(|c| {
        let level = crate::score::type_name(&c.isolation);
        if c.landlock {
            format!("{level}+landlock")
        } else {
            level
        }
    })
}

/// The HTML report of one run.
pub fn run_report(s: &Summary, records: &[ExampleRecord]) -> String {
    let mut h = page_start(&format!("tuneup eval: {}", s.task));
    let _ = write!(
        h,
        "<p>{} · {} examples · {:.1} s · primary metric <b>{}</b></p>",
        escape(&s.backend),
        s.examples,
        s.wall_s,
        escape(&s.primary_metric)
    );
    if let Some(line) = sandbox_line(s) {
        let _ = write!(
            h,
            "<p>model-written code ran in: <b>{}</b></p>",
            escape(&line)
        );
    }
    for w in &s.warnings {
        let _ = write!(h, "<p class=sig>warning: {}</p>", escape(w));
    }
    h.push_str("<h2>Metrics</h2><table><tr><th>metric</th><th>value</th></tr>");
    for (k, v) in &s.metrics {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=num>{v:.4}</td></tr>",
            escape(k)
        );
    }
    let _ = write!(
        h,
        "</table><p>correct {} · wrong {} · scored {} · errors {} · hit the token limit {}</p>",
        s.correct, s.wrong, s.scored, s.errors, s.truncated
    );
    if s.mean_candidates > 1.0 || s.mean_repairs > 0.0 {
        let _ = write!(
            h,
            "<p>verification: {:.2} candidates and {:.2} repair rounds per example (latency and tokens include them)</p>",
            s.mean_candidates, s.mean_repairs
        );
    }
    let cats: Vec<(String, f64, String)> = s
        .by_category
        .iter()
        .map(|(k, c)| (k.clone(), c.score, format!("{:.3} (n={})", c.score, c.n)))
        .collect();
    h.push_str("<h2>By category</h2>");
    h.push_str(&hbars(
        "Primary metric by category",
        &cats,
        Some(1.0_f64.max(cats.iter().map(|c| c.1).fold(0.0, f64::max))),
        "#4e79a7",
    ));
    let errs: Vec<(String, f64, String)> = s
        .error_types
        .iter()
        .map(|(k, e)| (k.clone(), e.count as f64, e.count.to_string()))
        .collect();
    h.push_str("<h2>Error types</h2>");
    h.push_str(&hbars("Failures by type", &errs, None, "#e15759"));
    h.push_str("<table><tr><th>type</th><th>count</th><th>examples</th></tr>");
    for (k, e) in &s.error_types {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=num>{}</td><td>{}</td></tr>",
            escape(k),
            e.count,
            escape(&e.examples.join(", "))
        );
    }
    h.push_str("</table><h2>Latency</h2>");
    let totals: Vec<f64> = records.iter().filter_map(|r| r.total_ms).collect();
    let ttfts: Vec<f64> = records.iter().filter_map(|r| r.ttft_ms).collect();
    h.push_str(&histogram("Request latency", &totals, 20, "ms"));
    h.push_str(&histogram("Time to first token", &ttfts, 20, "ms"));
    h.push_str("<table><tr><th>ms</th><th>p50</th><th>p95</th><th>mean</th><th>max</th></tr>");
    h.push_str(&dist_row("time to first token", &s.latency.ttft_ms));
    h.push_str(&dist_row("per output token", &s.latency.per_token_ms));
    h.push_str(&dist_row("request", &s.latency.total_ms));
    let _ = write!(
        h,
        "</table><p>throughput {:.3} requests/s · {:.1} output tokens/s · tokens: {} prompt, {} completion</p>",
        s.throughput.requests_per_s, s.throughput.output_tokens_per_s, s.tokens.prompt, s.tokens.completion
    );
    if let Some(c) = s.cost.usd_per_1k_examples {
        let _ = write!(h, "<p>estimated cost: ${c:.4} per 1,000 examples</p>");
    }
    let failures: Vec<&ExampleRecord> = records
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Wrong | Verdict::Error))
        .collect();
    let _ = write!(h, "<h2>Failures ({})</h2>", failures.len());
    h.push_str("<table><tr><th>id</th><th>type</th><th>input</th><th>expected</th><th>output</th><th>answer</th><th>message</th></tr>");
    for r in failures.iter().take(500) {
        let target = r
            .target
            .as_ref()
            .map(crate::dataset::as_text)
            .unwrap_or_default();
        let answer = match &r.answer {
            serde_json::Value::String(t) => t.clone(),
            serde_json::Value::Null => String::new(),
            v => v.to_string(),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&r.id),
            escape(r.error_type.as_deref().unwrap_or("")),
            pre(&r.input),
            pre(&target),
            pre(r.raw_output.as_deref().unwrap_or("")),
            pre(&answer),
            pre(r.error_message.as_deref().unwrap_or(""))
        );
    }
    h.push_str("</table></body></html>\n");
    h
}

/// A plain-text table of the summary for the terminal.
pub fn terminal_table(s: &Summary) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "task {} · {} · {} examples in {:.1} s",
        s.task, s.backend, s.examples, s.wall_s
    );
    let _ = writeln!(t, "{:<28} {:>12}", "metric", "value");
    let _ = writeln!(t, "{:-<28} {:->12}", "", "");
    for (k, v) in &s.metrics {
        let _ = writeln!(t, "{k:<28} {v:>12.4}");
    }
    let _ = writeln!(
        t,
        "{:<28} {:>12}",
        "correct / wrong / errors",
        format!("{}/{}/{}", s.correct, s.wrong, s.errors)
    );
    if let Some(d) = &s.latency.ttft_ms {
        let _ = writeln!(
            t,
            "{:<28} {:>12}",
            "ttft p50 / p95 (ms)",
            format!("{:.0}/{:.0}", d.p50, d.p95)
        );
    }
    if let Some(d) = &s.latency.per_token_ms {
        let _ = writeln!(
            t,
            "{:<28} {:>12}",
            "per token p50 / p95 (ms)",
            format!("{:.1}/{:.1}", d.p50, d.p95)
        );
    }
    let _ = writeln!(
        t,
        "{:<28} {:>12.2}",
        "output tokens/s", s.throughput.output_tokens_per_s
    );
    let _ = writeln!(
        t,
        "{:<28} {:>12.3}",
        "requests/s", s.throughput.requests_per_s
    );
    if let Some(c) = s.cost.usd_per_1k_examples {
        let _ = writeln!(t, "{:<28} {:>12.4}", "usd per 1k examples", c);
    }
    if s.mean_candidates > 1.0 || s.mean_repairs > 0.0 {
        let _ = writeln!(
            t,
            "{:<28} {:>12}",
            "candidates / repairs (mean)",
            format!("{:.2}/{:.2}", s.mean_candidates, s.mean_repairs)
        );
    }
    if let Some(line) = sandbox_line(s) {
        let _ = writeln!(t, "{:<28} {:>12}", "code sandbox", line);
    }
    for w in &s.warnings {
        let _ = writeln!(t, "warning: {w}");
    }
    if !s.error_types.is_empty() {
        let _ = writeln!(t, "\nerror types:");
        let mut v: Vec<_> = s.error_types.iter().collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.1.count));
        for (k, e) in v {
            let _ = writeln!(
                t,
                "  {k:<26} {:>5}  e.g. {}",
                e.count,
                e.examples
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    t
}
