//! Starting a real server on an ephemeral port, and a few client helpers.

use std::path::Path;

use serde_json::Value;
use tokio::sync::oneshot;
use tuneup_generate::ChatModel;
use tuneup_models::{LoadOptions, ModelFiles};
use tuneup_server::{Server, ServerConfig};
use tuneup_test_utils::{write_tiny_gguf, TinySpec};

pub const TINY_ID: &str = "tiny";

/// A running server; stopped (gracefully) on drop of the handle via `stop`.
pub struct TestServer {
    pub base: String,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<Result<(), tuneup_server::ServerError>>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `POST path` with a JSON body; the response as it came.
    pub async fn post(
        &self,
        http: &reqwest::Client,
        path: &str,
        body: &Value,
    ) -> reqwest::Response {
        http.post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// `POST path` with a JSON body; the response body as JSON.
    pub async fn post_json(&self, http: &reqwest::Client, path: &str, body: &Value) -> Value {
        self.post(http, path, body)
            .await
            .json()
            .await
            .expect("JSON response")
    }

    /// `GET path`; the response body as JSON.
    pub async fn get_json(&self, http: &reqwest::Client, path: &str) -> Value {
        http.get(self.url(path))
            .send()
            .await
            .expect("request sent")
            .json()
            .await
            .expect("JSON response")
    }

    /// Asks the server to stop without waiting.
    pub fn stop_in_background(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            tokio::spawn(h);
        }
    }

    /// Waits (up to `within`) for the server to end on its own; what it ended with.
    pub async fn exited(
        mut self,
        within: std::time::Duration,
    ) -> Result<(), tuneup_server::ServerError> {
        let h = self.handle.take().expect("server running");
        tokio::time::timeout(within, h)
            .await
            .expect("the server exits")
            .expect("server task")
    }

    /// Stops the server and waits for in-flight requests.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("server task").expect("server ran");
        }
    }
}

/// The tiny random model (ChatML template) with `context` positions.
pub fn tiny_model(dir: &Path, context: usize) -> ChatModel {
    let path = dir.join("tiny.gguf");
    let mut spec = TinySpec::llama();
    spec.context = context;
    write_tiny_gguf(&path, &spec).expect("write tiny model");
    ChatModel::load(&ModelFiles::Gguf(path), &LoadOptions::default()).expect("load tiny model")
}

/// Serves the tiny model with `configure` applied to the defaults.
pub async fn start_tiny(context: usize, configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = tiny_model(dir.path(), context);
    let mut s = start(model, TINY_ID, configure).await;
    s._dir = Some(dir);
    s
}

/// Serves `model` as `id` on 127.0.0.1 and an ephemeral port.
pub async fn start(
    model: ChatModel,
    id: &str,
    configure: impl FnOnce(&mut ServerConfig),
) -> TestServer {
    let mut cfg = ServerConfig::new(id);
    cfg.port = 0;
    configure(&mut cfg);
    serve(Server::bind(model, cfg).await.expect("bind"))
}

/// Runs a bound server in the background.
fn serve(server: Server) -> TestServer {
    let base = format!("http://{}", server.local_addr());
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    TestServer {
        base,
        shutdown: Some(tx),
        handle: Some(handle),
        _dir: None,
    }
}

/// Serves `model` as `id`, plus `/v1/embeddings` with `embedder` (id `all-minilm-l6-v2`) when given.
pub async fn start_with_embedder(
    model: ChatModel,
    id: &str,
    embedder: Option<tuneup_retrieval::embed::Embedder>,
) -> TestServer {
    let mut cfg = ServerConfig::new(id);
    cfg.port = 0;
    let embedding = embedder.map(|embedder| tuneup_server::embeddings::EmbeddingModel {
        id: "all-minilm-l6-v2".into(),
        embedder,
    });
    serve(
        Server::bind_with_embedder(model, cfg, embedding)
            .await
            .expect("bind"),
    )
}

pub use tuneup_test_utils::minilm_dir;

/// A real model from an environment variable, or `None` (with a message)
/// unless `TUNEUP_REQUIRE_MODELS=1`.
pub fn env_model(var: &str) -> Option<ChatModel> {
    match std::env::var(var) {
        Ok(p) if !p.is_empty() => Some(
            ChatModel::load(&ModelFiles::Gguf(p.clone().into()), &LoadOptions::default())
                .unwrap_or_else(|e| panic!("loading {var}={p}: {e}")),
        ),
        _ => {
            if std::env::var("TUNEUP_REQUIRE_MODELS").as_deref() == Ok("1") {
                panic!("{var} is not set but TUNEUP_REQUIRE_MODELS=1");
            }
            eprintln!("skipped: set {var} to a GGUF file to run this test");
            None
        }
    }
}

/// The `data:` payloads of an SSE body.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|ev| {
            let data: Vec<&str> = ev
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}

/// The JSON chunks of an SSE body, checking it ends with `[DONE]`.
pub fn sse_chunks(body: &str) -> Vec<Value> {
    let data = sse_data(body);
    assert_eq!(
        data.last().map(String::as_str),
        Some("[DONE]"),
        "stream must end with [DONE]: {body}"
    );
    data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("chunk {d}: {e}")))
        .collect()
}

/// Asserts OpenAI's error shape and returns the error object.
pub fn assert_openai_error(body: &Value) -> &Value {
    let e = &body["error"];
    assert!(
        e["message"].is_string() && !e["message"].as_str().unwrap().is_empty(),
        "{body}"
    );
    assert!(e["type"].is_string(), "{body}");
    assert!(
        e.get("param").is_some() && e.get("code").is_some(),
        "{body}"
    );
    e
}

/// Runs a client test script (`program script`) against `server` serving `id`, with
/// `env`; fails the test with the script's output when it fails.
pub async fn run_client_script(
    program: &str,
    script: &Path,
    server: &TestServer,
    id: &str,
    expect_tools: bool,
    env: &[(&str, &str)],
) {
    let out = tokio::process::Command::new(program)
        .arg(script)
        .env("TUNEUP_BASE_URL", server.url("/v1"))
        .env("TUNEUP_MODEL_ID", id)
        .env(
            "TUNEUP_EXPECT_TOOL_CALLS",
            if expect_tools { "1" } else { "0" },
        )
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(
        out.status.success(),
        "{} failed:\n{stdout}\n{stderr}",
        script.display()
    );
}

/// The value of the client-tool variable `var` (an interpreter path), or `None` (test skipped
/// with `hint`); a missing one fails the test when `TUNEUP_REQUIRE_MODELS=1`.
pub fn client_tool(var: &str, hint: &str) -> Option<String> {
    tuneup_test_utils::env_or_skip(var, Some("TUNEUP_REQUIRE_MODELS"), hint)
}

/// Qwen2.5-Coder when `TUNEUP_QWEN_GGUF` is set (client tests then check real tool calls).
pub fn optional_qwen() -> Option<ChatModel> {
    if std::env::var("TUNEUP_QWEN_GGUF").is_ok_and(|p| !p.is_empty()) {
        env_model("TUNEUP_QWEN_GGUF")
    } else {
        None
    }
}
