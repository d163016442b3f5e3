//! The real `tuneup` binary, driven as a user would: tiny random models for
//! every command and error path, the real default model for the example
//! prompts when its path is given (scripts/test.sh does).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tuneup_test_utils::{write_tiny_gguf, TinySpec};

fn tuneup(home: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tuneup"))
        .args(args)
        .env("TUNEUP_HOME", home)
        .env_remove("TUNEUP_MODEL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tuneup starts");
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tiny_model(dir: &Path, context: usize) -> PathBuf {
    let p = dir.join("tiny.gguf");
    let mut spec = TinySpec::llama();
    spec.context = context;
    write_tiny_gguf(&p, &spec).unwrap();
    p
}

#[test]
fn generate_chat_and_bench_on_a_tiny_model() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny_model(dir.path(), 256);
    let m = m.to_str().unwrap();
    let out = tuneup(
        dir.path(),
        &[
            "generate",
            "-m",
            m,
            "-p",
            "hello",
            "-n",
            "6",
            "--temperature",
            "0",
            "--ignore-eos",
            "--stats",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("generated 6 tok"),
        "{}",
        text(&out.stderr)
    );

    let out = tuneup(
        dir.path(),
        &[
            "chat",
            "-m",
            m,
            "-p",
            "서울 날씨 어때?",
            "-n",
            "4",
            "--seed",
            "3",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Interactive session from stdin: commands, multi-line input, history.
    let script = "/system be brief\nfirst line \\\nsecond line\n\"\"\"\na block\nof text\n\"\"\"\n/reset\nagain\n/exit\n";
    let out = tuneup(
        dir.path(),
        &["chat", "-m", m, "-n", "3", "--temperature", "0"],
        Some(script),
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("system prompt set") && err.contains("conversation cleared"),
        "{err}"
    );
    assert_eq!(
        err.matches("generated 3 tok").count() + err.matches("Stop]").count(),
        3,
        "{err}"
    );

    let out = tuneup(
        dir.path(),
        &[
            "bench", "-m", m, "-p", "16", "-n", "4", "-r", "1", "-t", "1", "--json",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tests: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["test"].as_str().unwrap())
        .collect();
    assert_eq!(tests, ["pp16", "tg4"]);
    assert!(v[0]["avg_ts"].as_f64().unwrap() > 0.0);

    let out = tuneup(dir.path(), &["info", "-m", m], None);
    assert!(text(&out.stdout).contains("Llama"), "{}", text(&out.stdout));
}

#[test]
fn bad_input_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let check = |args: &[&str], want: &str| {
        let out = tuneup(dir.path(), args, None);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        assert!(err.contains(want), "{args:?}: expected '{want}' in: {err}");
    };
    check(
        &["chat", "-m", "no-such-model", "-p", "x"],
        "model not found",
    );
    let corrupt = dir.path().join("corrupt.gguf");
    std::fs::write(&corrupt, b"GGUF\x03\x00\x00\x00garbage").unwrap();
    check(
        &["chat", "-m", corrupt.to_str().unwrap(), "-p", "x"],
        "corrupt.gguf",
    );
    let m = tiny_model(dir.path(), 32);
    let long = "word ".repeat(100);
    check(
        &["generate", "-m", m.to_str().unwrap(), "-p", &long],
        "context window",
    );
    check(
        &["bench", "-m", m.to_str().unwrap(), "-p", "64", "-n", "0"],
        "context window",
    );
}

/// The issue's example prompts on the real default model.
#[test]
fn example_prompts_on_qwen() {
    let Ok(qwen) = std::env::var("TUNEUP_QWEN_GGUF") else {
        assert!(
            std::env::var("TUNEUP_REQUIRE_MODELS").is_err(),
            "TUNEUP_QWEN_GGUF not set"
        );
        eprintln!("skipping: TUNEUP_QWEN_GGUF is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Greedy one-shot chat with the real model; returns the answer.
    let ask = |extra: &[&str]| -> String {
        let mut args = vec!["chat", "-m", &qwen, "--temperature", "0"];
        args.extend_from_slice(extra);
        let out = tuneup(dir.path(), &args, None);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let schema = "You write SQLite queries. Schema:\nCREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT);\nCREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), amount REAL, ordered_at DATE);";
    let answer = ask(&[
        "-n",
        "160",
        "--lookup",
        "--system",
        schema,
        "-p",
        "최근 30일간 주문 금액이 높은 상위 10명의 고객 목록",
    ]);
    let upper = answer.to_uppercase();
    assert!(
        upper.contains("SELECT") && upper.contains("ORDERS") && upper.contains("LIMIT 10"),
        "{answer}"
    );

    let answer = ask(&["-n", "60", "-p", "서울 날씨 어때?"]);
    assert!(
        answer
            .chars()
            .any(|c| ('\u{AC00}'..='\u{D7A3}').contains(&c)),
        "expected a Korean answer: {answer}"
    );
}
