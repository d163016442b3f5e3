//! Summaries, run reports (charts, escaping) and comparisons, on synthetic records.

use std::collections::BTreeMap;
use std::path::Path;

use tuneup_eval_runner::runner::write_outputs;
use tuneup_eval_runner::summary::summarize;
use tuneup_eval_runner::{
    compare, compare_report, compare_table, load_run, ExampleRecord, RunResult, Task, Verdict,
};

fn task() -> Task {
    let toml = "metrics = [\"exact_match\", \"latency\"]\n[dataset]\npath = \"/x/test.jsonl\"\ninput = \"q\"\ntarget = \"a\"\n[cost]\nusd_per_gpu_hour = 3.6\nusd_per_million_output_tokens = 10.0\n";
    Task::from_toml(toml, Path::new("/x"), Path::new("/x/t.toml")).unwrap()
}

fn record(i: usize, correct: bool, cat: &str) -> ExampleRecord {
    ExampleRecord {
        id: format!("ex{i}"),
        index: i,
        sample: 0,
        category: Some(cat.into()),
        input: format!("<script>alert({i})</script> & question"),
        target: Some(serde_json::json!("gold <b>")),
        prompt: "p".into(),
        shots: vec![],
        raw_output: Some(if correct {
            "gold <b>".into()
        } else {
            "</td><img src=x onerror=alert(1)>".into()
        }),
        answer: serde_json::json!("a"),
        verdict: if correct {
            Verdict::Correct
        } else {
            Verdict::Wrong
        },
        primary_score: if correct { 1.0 } else { 0.0 },
        error_type: (!correct).then(|| "mismatch".into()),
        error_message: None,
        scores: BTreeMap::from([("exact_match".to_string(), if correct { 1.0 } else { 0.0 })]),
        ttft_ms: Some(10.0 + i as f64),
        per_token_ms: Some(2.0),
        total_ms: Some(100.0 + 10.0 * i as f64),
        prompt_tokens: 50,
        completion_tokens: 10,
        finish_reason: Some("stop".into()),
        candidates: 1,
        repairs: 0,
    }
}

fn run(dir: &Path, correct: impl Fn(usize) -> bool) -> RunResult {
    let t = task();
    let mut records: Vec<ExampleRecord> = (0..30)
        .map(|i| record(i, correct(i), if i % 2 == 0 { "even" } else { "odd" }))
        .collect();
    records.push(ExampleRecord {
        verdict: Verdict::Error,
        error_type: Some("generation_error".into()),
        raw_output: None,
        ttft_ms: None,
        total_ms: None,
        per_token_ms: None,
        primary_score: 0.0,
        prompt_tokens: 0,
        completion_tokens: 0,
        ..record(30, false, "odd")
    });
    let summary = summarize(&t, "test backend", 0, 10.0, &records);
    let result = RunResult { records, summary };
    write_outputs(dir, &t, &result).unwrap();
    result
}

#[test]
fn summary_counts_latency_and_cost() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(dir.path(), |i| i < 12);
    let s = &r.summary;
    assert_eq!(s.examples, 31);
    assert_eq!(s.correct + s.wrong + s.errors + s.scored, s.examples);
    assert_eq!((s.correct, s.wrong, s.errors), (12, 18, 1));
    assert!((s.metrics["exact_match"] - 12.0 / 31.0).abs() < 1e-12);
    assert_eq!(s.error_types["mismatch"].count, 18);
    assert_eq!(s.error_types["generation_error"].examples, ["ex30"]);
    assert_eq!(s.by_category["even"].n, 15);
    assert_eq!(s.by_category["even"].correct, 6);
    let ttft = s.latency.ttft_ms.unwrap();
    assert_eq!(ttft.count, 30);
    assert!((ttft.p50 - 24.5).abs() < 1e-9);
    assert_eq!(s.tokens.completion, 300);
    assert!((s.throughput.requests_per_s - 3.1).abs() < 1e-9);
    // 3.6 $/h for 10 s = 0.01 $; 300 output tokens at 10 $/M = 0.003 $.
    assert!((s.cost.usd_gpu_time.unwrap() - 0.01).abs() < 1e-12);
    assert!((s.cost.usd_tokens.unwrap() - 0.003).abs() < 1e-12);
    for f in ["examples.jsonl", "summary.json", "report.html", "task.toml"] {
        assert!(dir.path().join(f).exists(), "{f}");
    }
    let back = load_run(dir.path()).unwrap();
    assert_eq!(back.summary, r.summary);
    assert_eq!(back.records.len(), 31);
}

#[test]
fn html_report_has_charts_and_escapes_user_text() {
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), |i| i % 3 == 0);
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("Primary metric by category") && html.contains("Failures by type"));
    assert!(html.contains("Request latency") && html.matches("<svg").count() >= 4);
    assert!(!html.contains("<script"), "user text must be escaped");
    assert!(!html.contains("<img"), "model output must be escaped");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; question"));
    assert!(html.contains("&lt;/td&gt;&lt;img src=x onerror=alert(1)&gt;"));
    assert!(!html.contains("src=\"http"), "no external resources");
}

#[test]
fn compare_flags_significant_differences() {
    let base = tempfile::tempdir().unwrap();
    let better = tempfile::tempdir().unwrap();
    let same = tempfile::tempdir().unwrap();
    run(base.path(), |i| i < 5);
    run(better.path(), |i| i < 25);
    run(same.path(), |i| (1..7).contains(&i));
    let runs = [base.path(), better.path(), same.path()]
        .map(|d| load_run(d).unwrap())
        .to_vec();
    let c = compare(runs);
    assert_eq!(c.tests.len(), 2);
    let t = &c.tests[0];
    assert_eq!(t.common, 31);
    let m = t.mcnemar.unwrap();
    assert_eq!((m.a_only, m.b_only), (0, 20));
    assert!(t.significant && m.p_value < 1e-5);
    let b = t.bootstrap.unwrap();
    assert!((b.delta - 20.0 / 31.0).abs() < 1e-12 && b.ci_low > 0.0);
    assert!(!c.tests[1].significant);
    let table = compare_table(&c);
    assert!(
        table.contains("exact_match") && table.contains("SIGNIFICANT") && table.contains("+0.6452"),
        "{table}"
    );
    let html = compare_report(&c);
    assert!(
        html.contains("Metrics by run") && html.contains("<svg") && html.contains("significant")
    );
}

#[test]
fn load_run_errors_name_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_run(dir.path()).unwrap_err().to_string();
    assert!(err.contains("summary.json"), "{err}");
}
