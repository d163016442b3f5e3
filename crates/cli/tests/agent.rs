//! `tuneup agent` driven as a user would: config errors, `--print-tools`, an interactive session with a tiny
//! random model (the loop, `/reset`, `/tools`), and the weather example on the real Qwen2.5-Coder-0.5B when
//! `TUNEUP_QWEN_GGUF` is set (skipped with a message otherwise, unless `TUNEUP_REQUIRE_MODELS=1`).

mod common;

use std::path::{Path, PathBuf};

use common::{ok, tuneup, tuneup_with_stdin};
use serde_json::Value;
use tuneup_test_utils::{write_tiny_gguf, TinySpec};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/agent")
        .join(name)
}

#[test]
fn config_errors_name_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("agent.toml");
    std::fs::write(
        &toml,
        "model = \"x\"\n[[tools]]\nname = \"sh\"\ntype = \"shell\"\n",
    )
    .unwrap();
    let out = tuneup(dir.path(), &["agent", toml.to_str().unwrap(), "-p", "hi"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("agent.toml") && err.contains("tools[0]") && err.contains("shell"),
        "{err}"
    );
    let out = tuneup(dir.path(), &["agent", "/no/such/agent.toml"]);
    assert!(text(&out.stderr).contains("/no/such/agent.toml"));
}

#[test]
fn print_tools_gives_openai_tools() {
    let dir = tempfile::tempdir().unwrap();
    let toml = example("sql.toml");
    let out = tuneup(
        dir.path(),
        &["agent", toml.to_str().unwrap(), "--print-tools"],
    );
    let v: Value = serde_json::from_str(&ok(&out)).unwrap();
    let f = &v["tools"][0]["function"];
    assert_eq!(f["name"], "query_db");
    assert!(f["description"]
        .as_str()
        .unwrap()
        .contains("CREATE TABLE users"));
}

/// The interactive loop with a tiny random model: it answers (gibberish) without calling a tool, and the
/// commands work.
#[test]
fn interactive_session_with_a_tiny_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    let mut spec = TinySpec::llama();
    // The byte-level tokenizer makes the tool prompt long.
    spec.context = 2048;
    write_tiny_gguf(&model, &spec).unwrap();
    let out = tuneup_with_stdin(
        dir.path(),
        &[
            "agent",
            example("weather.toml").to_str().unwrap(),
            "-m",
            model.to_str().unwrap(),
            "--json",
        ],
        "hello\n/tools\n/reset\nagain\n/exit\n",
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("get_weather: Get the current weather")
            && err.contains("conversation cleared"),
        "{err}"
    );
    let stdout = text(&out.stdout);
    let turns: Vec<Value> = serde_json::Deserializer::from_str(&stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(turns.len(), 2, "{stdout}\n{err}");
    for t in &turns {
        assert!(t["steps"].as_u64().unwrap() >= 1, "{t}");
        assert_eq!(t["messages"][0]["role"], "user");
    }
}

#[test]
fn weather_example_on_qwen() {
    let Some(qwen) = tuneup_test_utils::env_model_path("TUNEUP_QWEN_GGUF") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let toml = example("weather.toml");
    let out = tuneup(
        dir.path(),
        &[
            "agent",
            toml.to_str().unwrap(),
            "-m",
            qwen.to_str().unwrap(),
            "-c",
            "4096",
            "-p",
            "서울 날씨 어때?",
            "--json",
        ],
    );
    let turn: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(turn["stop"], "answer", "{turn}");
    assert_eq!(turn["tool_calls"][0]["name"], "get_weather", "{turn}");
    assert_eq!(
        turn["tool_calls"][0]["arguments"]["city"], "Seoul",
        "{turn}"
    );
    assert!(turn["answer"].as_str().unwrap().contains("18"), "{turn}");
}
