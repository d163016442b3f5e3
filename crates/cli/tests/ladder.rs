//! `tuneup ladder` as a user runs it, on a tiny random model and a tiny SQL task written by the test: the table,
//! the outputs, a ladder killed mid-climb that resumes without recomputing finished rungs, `serve --ladder`'s
//! errors, and bad flags.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ok, tuneup};

fn ladder_args<'a>(file: &'a str, out: &'a str) -> Vec<&'a str> {
    vec!["ladder", file, "--out", out, "--threads", "2"]
}

#[test]
fn a_killed_ladder_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let file = tuneup_test_utils::ladder::write_tiny_sql_ladder(dir.path(), "");
    let out = dir.path().join("run");
    let (file_s, out_s) = (file.to_str().unwrap(), out.to_str().unwrap());
    // Start the whole ladder and kill it (SIGKILL: no chance to clean up) once the baseline is stored.
    let mut child = Command::new(env!("CARGO_BIN_EXE_tuneup"))
        .args(ladder_args(file_s, out_s))
        .env("TUNEUP_HOME", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let baseline = out.join("rungs/2-baseline/result.json");
    let started = Instant::now();
    while !baseline.exists() {
        assert!(started.elapsed() < Duration::from_secs(300), "the baseline never finished");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the ladder ended before it could be killed: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let stored = std::fs::read_to_string(&baseline).unwrap();
    serde_json::from_str::<serde_json::Value>(&stored).expect("a stored rung is whole");

    let resumed = tuneup(dir.path(), &ladder_args(file_s, out_s));
    let stdout = ok(&resumed);
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(stderr.contains("baseline: finished earlier"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&baseline).unwrap(), stored);
    for rung in ["reference", "baseline", "prompting", "verification", "lora", "full"] {
        assert!(stdout.contains(rung), "{rung} missing from the table:\n{stdout}");
    }
    assert!(stdout.contains("recommendation:"), "{stdout}");
    assert!(out.join("report.html").is_file() && out.join("winner/winner.toml").is_file());
    assert_winner_serves_or_says_why(dir.path(), &out);
}

/// `serve --ladder` on a folder without a winner is a clear error naming the file.
fn assert_winner_serves_or_says_why(home: &Path, out: &Path) {
    let empty = home.join("no-run");
    std::fs::create_dir_all(&empty).unwrap();
    let r = tuneup(home, &["serve", "--ladder", empty.to_str().unwrap(), "--port", "0"]);
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("winner.toml"), "{err}");
    assert!(out.join("winner/winner.toml").is_file());
}

#[test]
fn bad_rung_names_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = tuneup_test_utils::ladder::write_tiny_sql_ladder(dir.path(), "");
    let r = tuneup(
        dir.path(),
        &["ladder", file.to_str().unwrap(), "--rungs", "baseline,lorra"],
    );
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("--rungs") && err.contains("lorra"), "{err}");
}
