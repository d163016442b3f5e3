//! `tuneup serve`: the OpenAI-compatible server (see docs/serving.md).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use tuneup_server::{Server, ServerConfig};

use crate::args::ModelArgs;
use crate::model::load;

/// Arguments of `tuneup serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Address to bind; anything beyond loopback needs --api-key.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0 = any free port).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Require `Authorization: Bearer KEY` (every route but /health).
    #[arg(long, env = "TUNEUP_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Requests that may wait for the model; more are answered 429.
    #[arg(long, default_value_t = 16)]
    queue_size: usize,
    /// Generations decoded together (continuous batching); 1 serves one at a time.
    #[arg(long, default_value_t = 8)]
    parallel: usize,
    /// Longest a request may take, queue wait included, in seconds (0 = no limit).
    #[arg(long, default_value_t = 600)]
    request_timeout: u64,
    /// Largest request body, in KiB.
    #[arg(long, default_value_t = 4096)]
    max_body_kb: usize,
    /// Model id clients send and /v1/models lists (default: the -m name).
    #[arg(long)]
    model_id: Option<String>,
    /// SQLite file for responses and feedback (default: $TUNEUP_HOME/feedback.sqlite), or a
    /// postgres:// URL so that replicas share them.
    #[arg(long)]
    feedback_db: Option<PathBuf>,
    /// Also serve `/v1/embeddings` with this sentence-embedding model (e.g. `all-minilm-l6-v2`).
    #[arg(long)]
    embedder: Option<String>,
    /// Serve a LoRA adapter (PEFT folder) as model `MODEL_ID+NAME`; repeatable.
    #[arg(long = "lora", value_name = "NAME=DIR", value_parser = parse_lora)]
    lora: Vec<(String, PathBuf)>,
    /// Serve the winning configuration of a finished `tuneup ladder` run folder (its model and adapter) as
    /// model id = the ladder's name (unless --model-id).
    #[arg(long, value_name = "RUN")]
    ladder: Option<PathBuf>,
    /// Enable the admin endpoints (load/unload adapters at run time) with this bearer key.
    #[arg(long, env = "TUNEUP_ADMIN_KEY", hide_env_values = true)]
    admin_key: Option<String>,
    /// Folder under which `POST /admin/adapters` may load adapters (run-time loading is off without it).
    #[arg(long, value_name = "DIR")]
    adapter_root: Option<PathBuf>,
    /// Largest adapter folder the admin endpoint loads, in MiB.
    #[arg(long, default_value_t = 1024)]
    adapter_max_mb: u64,
    /// Most tokens one request may generate; a larger or absent max_tokens is clamped to it.
    #[arg(long, default_value_t = tuneup_server::DEFAULT_MAX_TOKENS_CAP)]
    max_tokens_cap: usize,
    /// KV cache the running generations may reserve together, in MiB (default: half the
    /// memory available at start-up); requests beyond it wait.
    #[arg(long, value_name = "MIB")]
    kv_budget_mb: Option<u64>,
    /// Requests prepared at once (chat template, tokenizing, grammar, embeddings).
    #[arg(long, default_value_t = 2)]
    prep_workers: usize,
    /// Requests that may wait for preparation; more are answered 429.
    #[arg(long, default_value_t = 32)]
    prep_queue: usize,
    /// Seconds a client may take to send a request's headers; slower ones are disconnected.
    #[arg(long, default_value_t = 10)]
    header_timeout: u64,
    /// Seconds a client may take to send a request's body; then 408.
    #[arg(long, default_value_t = 30)]
    body_timeout: u64,
    /// Connections open at once; more wait until one closes.
    #[arg(long, default_value_t = 256)]
    max_connections: usize,
    /// Without --api-key: also accept this Host name (besides loopback and --host); repeatable.
    #[arg(long = "allow-host", value_name = "HOST")]
    allow_hosts: Vec<String>,
    /// Without --api-key: accept requests from this browser origin (`*` = any); repeatable.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    allow_origins: Vec<String>,
    /// Store each request body with its response (for `tuneup feedback export` pairs); off by default.
    #[arg(long)]
    capture_requests: bool,
}

fn parse_lora(s: &str) -> std::result::Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((name, dir)) if !name.is_empty() && !dir.is_empty() => {
            Ok((name.to_string(), PathBuf::from(dir)))
        }
        _ => Err(format!(
            "expected NAME=DIR (e.g. sql=./out/adapter), got '{s}'"
        )),
    }
}

/// Loads the model and serves until SIGINT/SIGTERM.
pub fn run(mut args: ServeArgs) -> Result<()> {
    let mut task_model = None;
    if let Some(run) = &args.ladder {
        let w = tuneup_ladder::read_winner(run)
            .with_context(|| format!("--ladder {}", run.display()))?;
        args.model.model = w
            .model_dir
            .as_ref()
            .map_or_else(|| w.model.clone(), |d| d.display().to_string());
        args.model.adapter = w.adapter.clone();
        println!(
            "tuneup serve: ladder '{}' winner: {} — {} ({} {})",
            w.ladder,
            w.rung,
            w.config,
            w.metric_name,
            w.metric
                .map_or_else(|| "—".into(), |m| format!("{:.1} %", 100.0 * m))
        );
        match &w.served_task {
            // Requests for the ladder's name get the measured prompt, few-shot examples and verification;
            // the model's own name gives plain chat with the same weights.
            Some(path) => {
                let task = tuneup_eval_runner::Task::load(path)
                    .with_context(|| format!("--ladder {}", run.display()))?;
                task_model = Some(tuneup_server::TaskModel {
                    id: w.ladder.clone(),
                    task,
                });
            }
            None => {
                if args.model_id.is_none() {
                    args.model_id = Some(w.ladder.clone());
                }
                println!(
                    "tuneup serve: this run has no winner/task.toml (an older ladder): the ladder's name serves \
                     plain chat, without its few-shot examples or verification"
                );
            }
        }
    }
    let model = load(&args.model)?;
    let name = args.model.model.clone();
    let file_name = std::path::Path::new(&name)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned());
    let mut config = ServerConfig::new(args.model_id.clone().unwrap_or_else(|| name.clone()));
    config.model_aliases = [Some(name), file_name].into_iter().flatten().collect();
    config.host = args.host.clone();
    config.port = args.port;
    config.api_key = args.api_key.clone().filter(|k| !k.is_empty());
    config.queue_size = args.queue_size;
    config.max_batch = args.parallel.max(1);
    config.request_timeout =
        (args.request_timeout > 0).then(|| Duration::from_secs(args.request_timeout));
    config.max_body_bytes = args.max_body_kb.saturating_mul(1024);
    config.adapters = args.lora.clone();
    config.task_model = task_model;
    config.admin_key = args.admin_key.clone().filter(|k| !k.is_empty());
    config.adapter_root = args.adapter_root.clone();
    config.adapter_max_bytes = args.adapter_max_mb.saturating_mul(1 << 20);
    config.max_tokens_cap = args.max_tokens_cap.max(1);
    config.kv_budget_bytes = args.kv_budget_mb.map(|m| m.saturating_mul(1 << 20));
    config.prep_workers = args.prep_workers.max(1);
    config.prep_queue = args.prep_queue;
    config.header_timeout = Duration::from_secs(args.header_timeout.max(1));
    config.body_timeout = Duration::from_secs(args.body_timeout.max(1));
    config.max_connections = args.max_connections.max(1);
    config.allow_hosts = args.allow_hosts.clone();
    config.allow_origins = args.allow_origins.clone();
    config.capture_requests = args.capture_requests;
    config.feedback_db = Some(match &args.feedback_db {
        Some(p) => p.clone(),
        None => tuneup_hub::Cache::from_env()?
            .root()
            .join("feedback.sqlite"),
    });
    let embedder = match &args.embedder {
        Some(spec) => Some(tuneup_server::embeddings::EmbeddingModel {
            id: spec.clone(),
            embedder: crate::rag::load_embedder(spec, 32)?,
        }),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let embedding_id = embedder.as_ref().map(|e| e.id.clone());
        let server = Server::bind_with_embedder(model, config.clone(), embedder).await?;
        let addr = server.local_addr();
        println!(
            "tuneup serve: model '{}' at http://{addr}/v1 (batch {}, queue {}, {})",
            config.model_id,
            config.max_batch,
            config.queue_size,
            if config.api_key.is_some() {
                "API key required"
            } else {
                "no API key"
            }
        );
        if let Some(t) = &config.task_model {
            println!(
                "tuneup serve: model '{}' answers as the ladder measured it (task '{}': its prompt, few-shot \
                 examples and verification); send the question as the user message",
                t.id, t.task.name
            );
        }
        for (name, _) in &config.adapters {
            println!(
                "tuneup serve: adapter as model '{}+{name}'",
                config.model_id
            );
        }
        if config.admin_key.is_some() {
            println!("tuneup serve: admin endpoints at http://{addr}/admin/adapters");
        }
        if let Some(id) = embedding_id {
            println!("tuneup serve: embeddings with '{id}' at http://{addr}/v1/embeddings");
        }
        server.run(tuneup_server::shutdown_signal()).await?;
        eprintln!("tuneup serve: stopped");
        Ok(())
    })
}
