//! The official `openai` package for Node against the running server:
//! `tests/node/test_openai_client.cjs`.
//!
//! `TUNEUP_TEST_NODE` names the `node` binary and `TUNEUP_NODE_MODULES` the
//! `node_modules` folder holding `openai` (scripts/test.sh installs it under
//! `$TUNEUP_HOME/node-test`); without them the test is skipped with a message.
//! Qwen2.5-Coder (`TUNEUP_QWEN_GGUF`) is served when set, so tool calls and
//! JSON are checked on a real model; otherwise the tiny model checks the shapes.

use std::path::PathBuf;

use crate::common::{env_model, run_client_script, start, start_tiny, TINY_ID};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_node_sdk() {
    let (node, modules) = match (
        std::env::var("TUNEUP_TEST_NODE"),
        std::env::var("TUNEUP_NODE_MODULES"),
    ) {
        (Ok(n), Ok(m)) if !n.is_empty() && !m.is_empty() => (n, m),
        _ => {
            assert!(
                std::env::var("TUNEUP_REQUIRE_MODELS").as_deref() != Ok("1"),
                "TUNEUP_TEST_NODE and TUNEUP_NODE_MODULES must be set when TUNEUP_REQUIRE_MODELS=1 (scripts/test.sh sets them)"
            );
            eprintln!("skipped: set TUNEUP_TEST_NODE and TUNEUP_NODE_MODULES (node_modules with `openai`)");
            return;
        }
    };
    let qwen = if std::env::var("TUNEUP_QWEN_GGUF").is_ok_and(|p| !p.is_empty()) {
        env_model("TUNEUP_QWEN_GGUF")
    } else {
        None
    };
    let expect_tools = qwen.is_some();
    let (server, id) = match qwen {
        Some(m) => (
            start(m, "qwen2.5-coder-0.5b", |_| {}).await,
            "qwen2.5-coder-0.5b",
        ),
        None => (start_tiny(2048, |_| {}).await, TINY_ID),
    };
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node/test_openai_client.cjs");
    run_client_script(
        &node,
        &script,
        &server,
        id,
        expect_tools,
        &[("NODE_PATH", &modules)],
    )
    .await;
    server.stop().await;
}
