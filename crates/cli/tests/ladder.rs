//! `tuneup ladder` as a user runs it, on a tiny random model and a tiny SQL task written by the test: the table,
//! the outputs, a ladder killed mid-climb that resumes without recomputing finished rungs, `serve --ladder`
//! answering as the ladder measured (and its errors), and bad flags.

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
    // The ladder's name answers as the ladder measured: the same prompt (few-shot examples, schema) and
    // verification, so a test-split question gets the reply recorded in the winner's test run.
    let ladder: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("ladder.json")).unwrap()).unwrap();
    let winner = ladder["winner"].as_str().unwrap();
    let row = ladder["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rung"] == winner)
        .unwrap();
    let eval_dir = out.join(row["eval_dir"].as_str().unwrap());
    let first = std::fs::read_to_string(eval_dir.join("examples.jsonl")).unwrap();
    let record: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    let question = record["input"].as_str().unwrap();
    let served = post_chat(
        &addr,
        &serde_json::json!({"model": "tiny", "messages": [{"role": "user", "content": question}]}),
    );
    let plain = post_chat(
        &addr,
        &serde_json::json!({"model": "tiny.gguf", "messages": [{"role": "user", "content": question}],
                            "max_tokens": 3}),
    );
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(served["model"], "tiny", "{served}");
    assert_eq!(
        served["usage"]["prompt_tokens"], record["prompt_tokens"],
        "the served prompt is the measured one: {served}\n{record}"
    );
    assert_eq!(
        served["choices"][0]["message"]["content"], record["raw_output"],
        "the served reply is the measured one: {served}\n{record}"
    );
    assert_eq!(
        served["tuneup"]["candidates"], record["candidates"],
        "{served}"
    );
    assert!(
        plain["usage"]["prompt_tokens"].as_u64() < served["usage"]["prompt_tokens"].as_u64(),
        "the model's own name is plain chat, without the task's prompt: {plain}"
    );

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

/// The retrieval rung climbs when the ladder names a `tuneup rag` index (real all-MiniLM-L6-v2; skipped without
/// it unless `TUNEUP_REQUIRE_MODELS=1`): the rung is measured and the retrieved passage reaches its prompts.
#[test]
fn the_retrieval_rung_uses_a_rag_index() {
    let Some(minilm) = tuneup_test_utils::minilm_dir() else {
        return;
    };
    let minilm = minilm.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("glossary.md"),
        "# Shop glossary\n\nA customer who lives in Seoul is a row of `users` whose city is 'Seoul'. \
         Order totals are the `amount` column of `orders`.\n",
    )
    .unwrap();
    let docs_s = docs.to_str().unwrap();
    ok(&tuneup(
        dir.path(),
        &[
            "rag",
            "ingest",
            docs_s,
            "--index",
            "shopdocs",
            "--embedder",
            minilm,
        ],
    ));
    let extra = format!("[retrieval]\nindex = \"shopdocs\"\nembedder = {minilm:?}\nk = 1\n");
    let file = tuneup_test_utils::ladder::write_tiny_sql_ladder(dir.path(), &extra);
    let out = dir.path().join("run");
    let (file_s, out_s) = (file.to_str().unwrap(), out.to_str().unwrap());
    let mut args = ladder_args(file_s, out_s);
    args.extend(["--rungs", "baseline,retrieval"]);
    ok(&tuneup(dir.path(), &args));
    let ladder: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("ladder.json")).unwrap()).unwrap();
    let row = ladder["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rung"] == "retrieval")
        .expect("a retrieval row");
    assert_eq!(row["status"], "done", "{row}");
    assert!(
        row["config"].as_str().unwrap().contains("retrieval"),
        "{row}"
    );
    let records = std::fs::read_to_string(
        out.join(row["eval_dir"].as_str().unwrap())
            .join("examples.jsonl"),
    )
    .unwrap();
    let first: serde_json::Value = serde_json::from_str(records.lines().next().unwrap()).unwrap();
    assert!(
        first["prompt"]
            .as_str()
            .unwrap()
            .contains("customer who lives in Seoul"),
        "the retrieved passage is in the prompt: {first}"
    );
}

/// POSTs a chat request and returns the 200 reply's JSON body.
fn post_chat(addr: &str, body: &serde_json::Value) -> serde_json::Value {
    let body = body.to_string();
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let (_, json) = reply.split_once("\r\n\r\n").unwrap();
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"))
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
