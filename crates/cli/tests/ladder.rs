//! `tuneup ladder` as a user runs it, on a tiny random model and a tiny SQL task written by the test: the table,
//! the outputs, a ladder killed mid-climb that resumes without recomputing finished rungs, `serve --ladder`'s
//! errors, and bad flags.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
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
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the baseline never finished"
        );
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
    for rung in [
        "reference",
        "baseline",
        "prompting",
        "verification",
        "lora",
        "full",
    ] {
        assert!(
            stdout.contains(rung),
            "{rung} missing from the table:\n{stdout}"
        );
    }
    assert!(stdout.contains("recommendation:"), "{stdout}");
    assert!(out.join("report.html").is_file() && out.join("winner/winner.toml").is_file());
    assert_winner_serves_or_says_why(dir.path(), &out);
}

/// `serve --ladder` serves the winner (its model answers a chat request), and on a folder without a winner it is
/// a clear error naming the file.
fn assert_winner_serves_or_says_why(home: &Path, out: &Path) {
    let mut server = Command::new(env!("CARGO_BIN_EXE_tuneup"))
        .args([
            "serve",
            "--ladder",
            out.to_str().unwrap(),
            "--port",
            "0",
            "--threads",
            "2",
        ])
        .env("TUNEUP_HOME", home)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let mut addr = None;
    let mut said_winner = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        said_winner |= line.contains("winner:");
        if let Some(rest) = line.split("at http://").nth(1) {
            addr = rest.split('/').next().map(str::to_owned);
            break;
        }
    }
    let addr = addr.expect("the server printed its address");
    assert!(said_winner, "serve --ladder names the winner");
    let body = r#"{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":3}"#;
    let mut stream = TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("chat.completion"), "{reply}");

    let empty = home.join("no-run");
    std::fs::create_dir_all(&empty).unwrap();
    let r = tuneup(
        home,
        &["serve", "--ladder", empty.to_str().unwrap(), "--port", "0"],
    );
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
        &[
            "ladder",
            file.to_str().unwrap(),
            "--rungs",
            "baseline,lorra",
        ],
    );
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("--rungs") && err.contains("lorra"), "{err}");
}
