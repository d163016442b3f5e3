//! The official `openai` package for Node against the running server:
//! `tests/node/test_openai_client.cjs`.
//!
//! `TUNEUP_TEST_NODE` names the `node` binary and `TUNEUP_NODE_MODULES` the
//! `node_modules` folder holding `openai` (scripts/test.sh installs it under
//! `$TUNEUP_HOME/node-test`); without them the test is skipped with a message.
//! Qwen2.5-Coder (`TUNEUP_QWEN_GGUF`) is served when set, so tool calls and
//! JSON are checked on a real model; otherwise the tiny model checks the shapes.

use std::path::PathBuf;

use crate::common::{client_tool, optional_qwen, run_client_script, start, start_tiny, TINY_ID};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_node_sdk() {
    let hint = "set TUNEUP_TEST_NODE and TUNEUP_NODE_MODULES (node_modules with `openai`)";
    let (Some(node), Some(modules)) = (
        client_tool("TUNEUP_TEST_NODE", hint),
        client_tool("TUNEUP_NODE_MODULES", hint),
    ) else {
        return;
    };
    let qwen = optional_qwen();
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
