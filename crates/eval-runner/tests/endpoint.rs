//! The OpenAI-compatible endpoint client against a real HTTP server (axum) that serves canned chat
//! completions. This is a fake for what we cannot provoke otherwise: the project's own server is not built
//! yet, and a real server cannot be made to fail one request with HTTP 500 or to split a tool call across
//! stream events on demand. Everything else (HTTP, SSE parsing, scoring, outputs) is the real code path.

use std::path::Path;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use tuneup_eval_runner::{run_task, RunOptions, Task, Verdict};

fn event(v: Value) -> String {
    format!("data: {v}\n\n")
}

fn chunk(delta: Value, finish: Option<&str>) -> String {
    event(
        json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
    )
}

async fn completions(body: String) -> axum::response::Response {
    let req: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    assert_eq!(req["stream"], true);
    assert_eq!(req["model"], "canned-model");
    let question = req["messages"]
        .as_array()
        .and_then(|m| m.last())
        .map_or("", |m| m["content"].as_str().unwrap_or(""))
        .to_owned();
    if question.contains("fail") {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "{\"error\": \"canned failure\"}",
        )
            .into_response();
    }
    let mut sse = String::new();
    if req.get("tools").is_some() {
        assert_eq!(req["tools"][0]["type"], "function");
        // One call split across three events, as servers stream it.
        sse += &chunk(
            json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "c1", "type": "function", "function": {"name": "calculate_area", "arguments": ""}}]}),
            None,
        );
        sse += &chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"base\": 10, "}}]}),
            None,
        );
        sse += &chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"height\": 5}"}}]}),
            Some("tool_calls"),
        );
    } else {
        let answer = if question.contains("France") {
            "Par|is"
        } else {
            "Mil|an"
        };
        for piece in answer.split('|') {
            sse += &chunk(json!({"content": piece}), None);
        }
        sse += &chunk(json!({}), Some("stop"));
    }
    sse += &event(
        json!({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14}}),
    );
    sse += "data: [DONE]\n\n";
    ([(header::CONTENT_TYPE, "text/event-stream")], sse).into_response()
}

/// Starts the canned server on a free port; returns its base URL.
fn serve() -> String {
    tuneup_test_utils::http::serve_in_background(
        Router::new().route("/v1/chat/completions", post(completions)),
    )
}

fn task(dir: &Path, toml: &str, data: &str) -> Task {
    std::fs::write(dir.join("data.jsonl"), data).unwrap();
    Task::from_toml(toml, dir, &dir.join("t.toml")).unwrap()
}

#[test]
fn text_task_over_endpoint_records_failures_and_timings() {
    let url = serve();
    let dir = tempfile::tempdir().unwrap();
    let data = "{\"id\": \"fr\", \"q\": \"Capital of France?\", \"a\": \"Paris\"}\n{\"id\": \"bad\", \"q\": \"please fail\", \"a\": \"x\"}\n{\"id\": \"it\", \"q\": \"Capital of Italy?\", \"a\": \"Rome\"}\n";
    let toml = format!("metrics = [\"exact_match\", \"latency\"]\n[dataset]\npath = \"data.jsonl\"\ninput = \"q\"\ntarget = \"a\"\nid = \"id\"\n[model]\nendpoint = \"{url}\"\nmodel = \"canned-model\"\n");
    let t = task(dir.path(), &toml, data);
    let out = dir.path().join("run");
    let r = run_task(
        &t,
        &RunOptions {
            out: Some(out.clone()),
            progress: false,
        },
    )
    .unwrap();
    let v: Vec<Verdict> = r.records.iter().map(|x| x.verdict).collect();
    assert_eq!(v, [Verdict::Correct, Verdict::Error, Verdict::Wrong]);
    assert_eq!(r.records[0].raw_output.as_deref(), Some("Paris"));
    assert_eq!(r.records[0].completion_tokens, 2);
    assert_eq!(r.records[0].prompt_tokens, 12);
    assert!(r.records[0].ttft_ms.unwrap() <= r.records[0].total_ms.unwrap());
    assert_eq!(r.records[1].error_type.as_deref(), Some("generation_error"));
    assert!(r.records[1]
        .error_message
        .as_deref()
        .unwrap()
        .contains("HTTP 500"));
    assert_eq!(r.records[2].error_type.as_deref(), Some("mismatch"));
    assert_eq!(r.summary.errors, 1);
    assert!(r.summary.backend.contains("canned-model"));
    assert!(out.join("report.html").exists());
}

#[test]
fn tool_calls_streamed_in_pieces_are_judged_by_bfcl_checker() {
    let url = serve();
    let dir = tempfile::tempdir().unwrap();
    let record = json!({
        "id": "simple_python_0",
        "question": [[{"role": "user", "content": "Find the area of a triangle with a base of 10 units and height of 5 units."}]],
        "function": [{"name": "calculate_area", "description": "Calculate the area of a triangle.", "parameters": {"type": "dict",
            "properties": {"base": {"type": "integer", "description": "b"}, "height": {"type": "integer", "description": "h"},
            "unit": {"type": "string", "description": "u"}}, "required": ["base", "height"]}}],
        "ground_truth": [{"calculate_area": {"base": [10], "height": [5], "unit": ["units", ""]}}]
    });
    let toml = format!("metrics = [\"function_call\"]\n[dataset]\npath = \"data.jsonl\"\ninput = \"question.0.0.content\"\ntarget = \"ground_truth\"\nid = \"id\"\ntools = \"function\"\n[prompt]\noutput = \"tool_calls\"\n[model]\nendpoint = \"{url}/v1\"\nmodel = \"canned-model\"\n");
    let t = task(dir.path(), &toml, &format!("{record}\n"));
    let r = run_task(&t, &RunOptions::default()).unwrap();
    let rec = &r.records[0];
    assert_eq!(rec.verdict, Verdict::Correct, "{rec:?}");
    assert_eq!(rec.answer[0]["name"], "calculate_area");
    assert_eq!(rec.answer[0]["arguments"]["height"], 5);
}

#[test]
fn unreachable_endpoint_is_recorded_per_example() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let toml = format!("metrics = [\"exact_match\"]\n[dataset]\npath = \"data.jsonl\"\ninput = \"q\"\ntarget = \"a\"\n[model]\nendpoint = \"http://127.0.0.1:{port}\"\n");
    let t = task(
        dir.path(),
        &toml,
        "{\"q\": \"a\", \"a\": \"b\"}\n{\"q\": \"c\", \"a\": \"d\"}\n",
    );
    let r = run_task(&t, &RunOptions::default()).unwrap();
    assert_eq!(r.summary.errors, 2);
    assert_eq!(
        r.summary.error_types["generation_error"].examples,
        ["line-1", "line-2"]
    );
}
