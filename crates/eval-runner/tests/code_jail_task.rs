//! A whole `code_execution` evaluation whose model is hostile: an OpenAI-compatible stand-in (a real HTTP
//! server with canned answers; a real model cannot be made to write these attacks on demand) answers each
//! problem with an attack. Everything else is the path `tuneup eval` takes: HTTP client, extraction,
//! assembly, the jail, scoring, `summary.json`. Every attack must fail, the run must finish in time, and the
//! summary must say how the code was isolated.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use tuneup_eval::code::sandbox::Isolation;
use tuneup_eval_runner::{run_task, RunOptions, Task, Verdict};

/// The attack for each example id (the id is in the prompt).
fn answer(id: &str, home_file: &Path) -> String {
    let code = match id {
        "honest" => "def add(a, b):\n    return a + b\n".to_owned(),
        "early_exit" => "import os\ndef add(a, b):\n    return 0\nos._exit(0)\n".to_owned(),
        "read_home" => format!(
            "def add(a, b):\n    return a + b\nprint(open({:?}).read())\n",
            home_file.display().to_string()
        ),
        "detached" => "import subprocess\nsubprocess.Popen(['sleep', '295.5'], start_new_session=True)\ndef add(a, b):\n    return a + b\n".to_owned(),
        "fork_bomb" => "def add(a, b):\n    return a + b\nimport os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n".to_owned(),
        _ => "def add(a, b):\n    return None\n".to_owned(),
    };
    format!("Here you go:\n\n```python\n{code}```\n")
}

fn event(v: Value) -> String {
    format!("data: {v}\n\n")
}

/// Starts the stand-in on a free port; returns its base URL.
fn serve(home_file: PathBuf) -> String {
    let completions = move |body: String| {
        let home_file = home_file.clone();
        async move {
            let req: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let prompt = req["messages"]
                .as_array()
                .and_then(|m| m.last())
                .map_or(String::new(), |m| {
                    m["content"].as_str().unwrap_or("").to_owned()
                });
            let id = prompt.split("# problem ").nth(1).unwrap_or("").trim();
            let id = id.split_whitespace().next().unwrap_or("");
            let mut sse = event(
                json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": answer(id, &home_file)}, "finish_reason": null}]}),
            );
            sse += &event(
                json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            );
            sse += &event(
                json!({"choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 30, "total_tokens": 50}}),
            );
            sse += "data: [DONE]\n\n";
            ([(header::CONTENT_TYPE, "text/event-stream")], sse).into_response()
        }
    };
    tuneup_test_utils::http::serve_in_background(
        Router::new().route("/v1/chat/completions", post(completions)),
    )
}

#[test]
fn hostile_answers_fail_and_the_summary_reports_the_jail() {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    let secret = home.join(format!("tuneup-task-secret-{}", std::process::id()));
    let content = format!("classified {}", std::process::id() * 7);
    std::fs::write(&secret, &content).unwrap();
    let url = serve(secret.clone());
    let dir = tempfile::tempdir().unwrap();
    let ids = ["honest", "early_exit", "read_home", "detached", "fork_bomb"];
    let mut data = String::new();
    for id in ids {
        let row = json!({
            "id": id,
            "prompt": format!("# problem {id}\ndef add(a, b):\n"),
            "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n",
            "entry_point": "add",
        });
        data += &format!("{row}\n");
    }
    std::fs::write(dir.path().join("data.jsonl"), data).unwrap();
    let toml = format!(
        "metrics = [\"code_execution\"]\n[dataset]\npath = \"data.jsonl\"\ninput = \"prompt\"\nid = \"id\"\n[code]\nlanguage = \"python\"\ntimeout_s = 3\nmemory_mb = 512\n[prompt]\noutput = \"code\"\n[model]\nendpoint = \"{url}\"\nmodel = \"hostile\"\n"
    );
    let task = Task::from_toml(&toml, dir.path(), &dir.path().join("t.toml")).unwrap();
    let out = dir.path().join("run");
    let start = Instant::now();
    let r = run_task(
        &task,
        &RunOptions {
            out: Some(out.clone()),
            progress: false,
        },
    );
    let _ = std::fs::remove_file(&secret);
    let r = r.unwrap();
    // Five programs with a 3 s limit each: the detached sleep (295 s) and the bomb must not hold it up.
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    for rec in &r.records {
        let expected = if rec.id == "honest" {
            Verdict::Correct
        } else {
            Verdict::Wrong
        };
        assert_eq!(rec.verdict, expected, "{}: {:?}", rec.id, rec.error_message);
        let why = match rec.id.as_str() {
            "early_exit" => "exited before its tests finished",
            "read_home" => "Error",
            "detached" if r.summary.code_sandbox.map(|s| s.isolation) == Some(Isolation::Jail) => {
                "left processes running"
            }
            "fork_bomb" => "",
            _ => "",
        };
        let message = rec.error_message.as_deref().unwrap_or("");
        assert!(message.contains(why), "{}: {message}", rec.id);
        if rec.id == "fork_bomb" {
            assert!(
                matches!(rec.error_type.as_deref(), Some("timeout" | "runtime_error")),
                "{rec:?}"
            );
        }
        assert!(
            !rec.error_message
                .as_deref()
                .unwrap_or("")
                .contains(&content),
            "{}: {:?}",
            rec.id,
            rec.error_message
        );
    }
    let sandbox = r.summary.code_sandbox.expect("code ran");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(
        summary["code_sandbox"]["isolation"],
        serde_json::to_value(sandbox.isolation).unwrap()
    );
    if sandbox.isolation < Isolation::Jail {
        assert!(
            r.summary
                .warnings
                .iter()
                .any(|w| w.contains("not in the full jail")),
            "{:?}",
            r.summary.warnings
        );
    } else {
        assert_eq!(summary["code_sandbox"]["isolation"], "jail");
    }
}
