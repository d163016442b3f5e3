//! Helpers shared by the reference-fixture tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// `fixtures/eval/<name>` at the workspace root, or `$TUNEUP_EVAL_FIXTURE_DIR/<name>` when set (for one-off
/// runs against larger, uncommitted fixtures).
pub fn fixture_path(name: &str) -> PathBuf {
    match std::env::var_os("TUNEUP_EVAL_FIXTURE_DIR") {
        Some(dir) => PathBuf::from(dir).join(name),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/eval")
            .join(name),
    }
}

/// Parses `fixtures/eval/<name>` as JSON.
pub fn load_fixture(name: &str) -> serde_json::Value {
    let path = fixture_path(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// Asserts `|actual - expected| <= 1e-9 * max(1, |expected|)`.
pub fn assert_close(actual: f64, expected: f64, what: &str) {
    let tolerance = 1e-9 * expected.abs().max(1.0);
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: got {actual}, reference {expected}"
    );
}

/// Reads a JSON number as f64.
pub fn f(value: &serde_json::Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("expected a number, got {value}"))
}

/// Reads a JSON array of strings.
pub fn strings(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_str().expect("string").to_owned())
        .collect()
}

/// The shared Spider folder (`../shared/data/text2sql` next to the repository, or `$TUNEUP_TEXT2SQL_DIR`),
/// or `None` (with a note on stderr) when it is absent so data-dependent tests can skip.
pub fn text2sql_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("TUNEUP_TEXT2SQL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/text2sql")
        });
    if dir.join("databases").is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipping: Spider data not found at {} (set TUNEUP_TEXT2SQL_DIR)",
            dir.display()
        );
        None
    }
}

/// The shared code-benchmark folder (`$TUNEUP_DATA/code`, default `../shared/data/code` next to the
/// repository), or `None` (with a note on stderr) when it is absent so data-dependent tests can skip.
pub fn code_dir() -> Option<PathBuf> {
    let data = std::env::var_os("TUNEUP_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    let dir = data.join("code");
    if dir.join("HumanEval.jsonl.gz").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "skipping: code benchmarks not found at {} (set TUNEUP_DATA)",
            dir.display()
        );
        None
    }
}
