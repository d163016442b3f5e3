//! The official `openai` Python SDK (and LangChain's ChatOpenAI when installed)
//! against the running server: `tests/python/test_openai_client.py`.
//!
//! The interpreter is `TUNEUP_TEST_PYTHON` (scripts/test.sh sets it to a venv
//! with `openai` and `langchain-openai`); without it the test is skipped with a
//! message. Qwen2.5-Coder (`TUNEUP_QWEN_GGUF`) is served when set, so the tool
//! tests check real calls; otherwise the tiny model checks the shapes.

use std::path::PathBuf;

use crate::common::{
    client_tool, minilm_dir, optional_qwen, run_client_script, start_tiny, start_with_embedder,
    TINY_ID,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_python_sdk() {
    let Some(python) = client_tool(
        "TUNEUP_TEST_PYTHON",
        "set TUNEUP_TEST_PYTHON to a python with the `openai` package",
    ) else {
        return;
    };
    let qwen = optional_qwen();
    let expect_tools = qwen.is_some();
    let embedder = minilm_dir().map(|dir| {
        tuneup_retrieval::embed::Embedder::load(&dir, "all-minilm-l6-v2")
            .expect("load all-MiniLM-L6-v2")
    });
    let embedding_model = if embedder.is_some() {
        "all-minilm-l6-v2"
    } else {
        ""
    };
    let (server, id) = match qwen {
        Some(m) => (
            start_with_embedder(m, "qwen2.5-coder-0.5b", embedder).await,
            "qwen2.5-coder-0.5b",
        ),
        None => (start_tiny(2048, |_| {}).await, TINY_ID),
    };
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/test_openai_client.py");
    run_client_script(
        &python,
        &script,
        &server,
        id,
        expect_tools,
        &[("TUNEUP_EMBEDDING_MODEL", embedding_model)],
    )
    .await;
    server.stop().await;
}
