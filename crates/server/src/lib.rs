//! An OpenAI-compatible HTTP server for one tuneup model.
//!
//! Endpoints: `POST /v1/chat/completions` (streaming, tools, response formats), `POST /v1/completions`,
//! `POST /v1/embeddings` (with an embedding model), `GET /v1/models`, `POST /v1/feedback`, `GET /health`, `GET /metrics` (Prometheus). Requests are
//! served one at a time by a worker thread that owns the model, from a bounded queue (429 when full);
//! continuous batching is a later step. Every error is OpenAI's error JSON.
//!
//! ```no_run
//! # async fn run(model: tuneup_generate::ChatModel) -> Result<(), tuneup_server::ServerError> {
//! let config = tuneup_server::ServerConfig::new("qwen2.5-coder-0.5b");
//! let server = tuneup_server::Server::bind(model, config).await?;
//! println!("listening on http://{}", server.local_addr());
//! server.run(tuneup_server::shutdown_signal()).await
//! # }
//! ```

pub mod adapters;
mod admin;
mod chat;
mod completions;
pub mod constrain;
pub mod embeddings;
pub mod engine;
pub mod error;
pub mod export;
mod extract;
pub mod feedback;
mod feedback_pg;
mod guard;
pub mod holdback;
mod listen;
pub mod metrics;
pub mod prep;
pub mod prompt;
pub mod response;
mod routes;
mod stream;
pub mod task_model;
pub mod toolcall;
pub mod types;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tuneup_generate::ChatModel;

pub use error::{ApiError, ServerError};
pub use feedback::FeedbackStore;
pub use task_model::TaskModel;
pub use toolcall::{parse_tool_calls, ParsedCall, ParsedOutput};

/// Default of [`ServerConfig::max_tokens_cap`].
pub const DEFAULT_MAX_TOKENS_CAP: usize = 2048;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Host or IP to bind (default `127.0.0.1`).
    pub host: String,
    /// Port (0 = any free one).
    pub port: u16,
    /// Bearer key required on every route but `/health`.
    pub api_key: Option<String>,
    /// Requests that may wait for the model; more are answered 429.
    pub queue_size: usize,
    /// Generations decoded together (continuous batching); 1 = one at a time.
    pub max_batch: usize,
    /// Longest a request may take, queue wait included.
    pub request_timeout: Option<Duration>,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// The model id clients use (`/v1/models`).
    pub model_id: String,
    /// Other names accepted in the `model` field (e.g. the file name).
    pub model_aliases: Vec<String>,
    /// SQLite file for responses and feedback, or a `postgres://` URL shared by
    /// replicas (`None` = in memory).
    pub feedback_db: Option<PathBuf>,
    /// Responses kept for feedback (those with feedback are kept forever).
    pub keep_responses: usize,
    /// LoRA adapters to serve from the start, as (name, PEFT folder).
    pub adapters: Vec<(String, PathBuf)>,
    /// Bearer key of the admin endpoints (`/admin/…`); they are off without one.
    pub admin_key: Option<String>,
    /// A model id answered through an eval task (prompt, few-shot, verification): `tuneup serve --ladder`.
    pub task_model: Option<task_model::TaskModel>,
    /// Folder under which `POST /admin/adapters` may load adapters (off without one).
    pub adapter_root: Option<PathBuf>,
    /// Largest adapter folder `POST /admin/adapters` loads, in bytes.
    pub adapter_max_bytes: u64,
    /// Store request bodies with responses for feedback export (off by default).
    pub capture_requests: bool,
    /// Most tokens one request may generate (`max_tokens` above it, or absent, is clamped).
    pub max_tokens_cap: usize,
    /// KV cache the running generations may reserve together, in bytes (`None`: half
    /// the memory available at start-up); a request that does not fit waits.
    pub kv_budget_bytes: Option<u64>,
    /// Without an API key: extra `Host` names accepted besides loopback and the bound host.
    pub allow_hosts: Vec<String>,
    /// Without an API key: browser origins accepted (`*` = any) besides this server's own.
    pub allow_origins: Vec<String>,
    /// Longest time to receive a request's head (headers); slower clients are dropped.
    pub header_timeout: Duration,
    /// Longest time to receive a request's body; then 408.
    pub body_timeout: Duration,
    /// Connections open at once; more wait until one closes.
    pub max_connections: usize,
    /// Requests prepared at once (template, tokenizing, grammar, embeddings).
    pub prep_workers: usize,
    /// Requests that may wait for preparation; more are answered 429.
    pub prep_queue: usize,
    #[doc(hidden)]
    pub fault_injection: engine::PanicOnMaxTokens,
}

impl ServerConfig {
    /// Defaults for serving `model_id` on 127.0.0.1:8080.
    pub fn new(model_id: impl Into<String>) -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            api_key: None,
            queue_size: 16,
            max_batch: 8,
            request_timeout: Some(Duration::from_secs(600)),
            max_body_bytes: 4 << 20,
            model_id: model_id.into(),
            model_aliases: Vec::new(),
            feedback_db: None,
            keep_responses: 1000,
            adapters: Vec::new(),
            admin_key: None,
            task_model: None,
            adapter_root: None,
            adapter_max_bytes: 1 << 30,
            capture_requests: false,
            max_tokens_cap: DEFAULT_MAX_TOKENS_CAP,
            kv_budget_bytes: None,
            allow_hosts: Vec::new(),
            allow_origins: Vec::new(),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 256,
            prep_workers: 2,
            prep_queue: 32,
            fault_injection: engine::PanicOnMaxTokens::default(),
        }
    }

    fn is_loopback(&self) -> bool {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

/// Shared by every request.
#[derive(Debug)]
pub(crate) struct AppState {
    pub engine: engine::Engine,
    pub config: ServerConfig,
    pub metrics: metrics::Metrics,
    pub feedback: Arc<FeedbackStore>,
    pub started: u64,
    pub embedder: Option<Arc<embeddings::EmbeddingModel>>,
    pub adapters: adapters::Adapters,
    pub task: Option<task_model::TaskWorker>,
    pub prep: prep::PrepPool,
}

impl AppState {
    /// Resolves the `model` field of a request: the base model (`None`) or
    /// `BASE+ADAPTER` (the adapter).
    pub fn resolve_model(&self, model: &str) -> Result<Option<adapters::Adapter>, ApiError> {
        let c = &self.config;
        let is_base = |m: &str| m == c.model_id || c.model_aliases.iter().any(|a| a == m);
        if is_base(model) {
            return Ok(None);
        }
        if let Some((base, name)) = model.rsplit_once('+') {
            if is_base(base) {
                if let Some(a) = self.adapters.get(name) {
                    return Ok(Some(a));
                }
            }
        }
        let names: Vec<String> = self
            .adapters
            .list()
            .into_iter()
            .map(|a| format!("'{}+{}'", c.model_id, a.name))
            .collect();
        let also = if names.is_empty() {
            String::new()
        } else {
            format!(" (and the adapters {})", names.join(", "))
        };
        Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!(
                "The model '{model}' does not exist; this server serves '{}'{also}",
                c.model_id
            ),
        )
        .with_param("model")
        .with_code("model_not_found"))
    }

    /// Queues a generation; its events arrive on the returned receiver
    /// (dropping it cancels the generation). 429/503 when not queued.
    pub fn submit(
        &self,
        adapter: Option<adapters::Adapter>,
        prompt: Vec<u32>,
        params: tuneup_generate::GenerateParams,
    ) -> Result<tokio::sync::mpsc::UnboundedReceiver<engine::Event>, error::ApiError> {
        let (events, rx) = tokio::sync::mpsc::unbounded_channel();
        let kv_bytes = self.engine.kv_bytes(prompt.len(), params.max_tokens);
        self.engine
            .submit(engine::Job {
                kv_bytes,
                adapter,
                prompt,
                params,
                events,
                deadline: self.deadline(),
                enqueued: std::time::Instant::now(),
            })
            .map_err(routes::submit_error)?;
        Ok(rx)
    }

    /// The model id of answers: the base id, or `BASE+ADAPTER`.
    pub fn served_id(&self, adapter: Option<&str>) -> String {
        match adapter {
            Some(a) => format!("{}+{a}", self.config.model_id),
            None => self.config.model_id.clone(),
        }
    }

    /// Deadline of a request starting now.
    pub fn deadline(&self) -> Option<std::time::Instant> {
        self.config
            .request_timeout
            .map(|t| std::time::Instant::now() + t)
    }
}

/// The request body to store with its response: the body when request capture is on,
/// nothing otherwise.
pub(crate) fn captured(config: &ServerConfig, body: &[u8]) -> String {
    if config.capture_requests {
        String::from_utf8_lossy(body).into_owned()
    } else {
        String::new()
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A bound server, ready to run.
#[derive(Debug)]
pub struct Server {
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: listen::ConnLimits,
    worker: std::thread::JoinHandle<()>,
    health: Arc<engine::WorkerHealth>,
}

impl Server {
    /// Checks the configuration, opens the feedback database, starts the
    /// model worker and binds the address.
    pub async fn bind(model: ChatModel, config: ServerConfig) -> Result<Self, ServerError> {
        Self::bind_with_embedder(model, config, None).await
    }

    /// [`bind`](Self::bind), also serving `/v1/embeddings` with `embedder`.
    pub async fn bind_with_embedder(
        model: ChatModel,
        config: ServerConfig,
        embedder: Option<embeddings::EmbeddingModel>,
    ) -> Result<Self, ServerError> {
        if !config.is_loopback() && config.api_key.as_deref().is_none_or(str::is_empty) {
            return Err(ServerError::NoApiKey {
                host: config.host.clone(),
            });
        }
        if config.model_id.is_empty() {
            return Err(ServerError::Config("the model id is empty".into()));
        }
        // Blocking (PostgreSQL runs its own runtime): off the async threads.
        let (db, keep) = (config.feedback_db.clone(), config.keep_responses);
        let feedback =
            tokio::task::spawn_blocking(move || FeedbackStore::open(db.as_deref(), keep))
                .await
                .map_err(|e| ServerError::Config(format!("opening the feedback database: {e}")))?
                .map_err(|source| ServerError::FeedbackDb {
                    path: config.feedback_db.as_ref().map_or(":memory:".into(), |p| {
                        if feedback::is_postgres_url(p) {
                            "(PostgreSQL)".into()
                        } else {
                            p.display().to_string()
                        }
                    }),
                    source,
                })?;
        let host = config
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let addr = format!("{}:{}", host, config.port);
        let listener = tokio::net::TcpListener::bind((host.as_str(), config.port))
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let adapters = adapters::Adapters::new(model.model.decoder.clone());
        for (name, dir) in &config.adapters {
            let a = adapters
                .load(name, dir)
                .map_err(|e| ServerError::Config(e.to_string()))?;
            tracing::info!(
                "adapter '{}' ({} projections) from {}",
                a.name,
                a.modules,
                dir.display()
            );
        }
        let metrics = metrics::Metrics::new();
        let (engine, worker) = engine::Engine::start(
            Arc::new(model),
            config.queue_size,
            config.max_batch,
            config.kv_budget_bytes,
            config.fault_injection,
            metrics.clone(),
        )?;
        let task = match config.task_model.clone() {
            Some(m) => Some(
                task_model::start(m, engine.clone(), config.queue_size)
                    .map_err(ServerError::Config)?,
            ),
            None => None,
        };
        let state = Arc::new(AppState {
            task,
            prep: prep::PrepPool::new(config.prep_workers, config.prep_queue),
            engine,
            config,
            metrics,
            feedback: Arc::new(feedback),
            started: unix_now(),
            embedder: embedder.map(Arc::new),
            adapters,
        });
        let limits = listen::ConnLimits {
            max_connections: state.config.max_connections,
            header_timeout: state.config.header_timeout,
        };
        let health = Arc::clone(&state.engine.health);
        Ok(Self {
            listener,
            router: routes::router(state),
            limits,
            worker,
            health,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves until `shutdown` resolves, then stops accepting connections,
    /// lets in-flight requests finish and stops the model worker. Ends with
    /// [`ServerError::WorkerDied`] when the model worker panicked too often to restart.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let Self {
            listener,
            router,
            limits,
            worker,
            health,
        } = self;
        tokio::select! {
            () = listen::serve(listener, router, limits, shutdown) => {}
            () = health.died.notified() => {
                return Err(ServerError::WorkerDied(
                    health.last_panic().unwrap_or_default(),
                ));
            }
        }
        // Every handle to the queue is gone with the router: the worker ends.
        let _ = tokio::task::spawn_blocking(move || worker.join()).await;
        Ok(())
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
