//! The router, authentication, metrics and the error-normalizing layer, and
//! the small endpoints (models, health, metrics, feedback).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::engine::SubmitError;
use crate::error::{ApiError, ErrorTag};
use crate::extract::{parse_json, RawBody};
use crate::types::FeedbackRequest;
use crate::AppState;

/// Builds the application.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(crate::chat::handler))
        .route("/v1/completions", post(crate::completions::handler))
        .route("/v1/embeddings", post(crate::embeddings::handler))
        .route("/v1/models", get(models))
        .route("/v1/models/{id}", get(model))
        .route("/v1/feedback", post(feedback))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route(
            "/admin/adapters",
            get(crate::admin::list).post(crate::admin::load),
        )
        .route("/admin/adapters/{name}", delete(crate::admin::unload))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), auth))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            crate::guard::browser_guard,
        ))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), observe))
        .with_state(state)
}

/// The 429/503 for a job the queue did not take.
pub fn submit_error(e: SubmitError) -> ApiError {
    match e {
        SubmitError::QueueFull(_) => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            e.to_string(),
        )
        .with_code("queue_full"),
        SubmitError::OverBudget { .. } => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            e.to_string(),
        )
        .with_param("max_tokens")
        .with_code("kv_budget_exceeded"),
        SubmitError::Stopped => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            e.to_string(),
        )
        .with_code("shutting_down"),
    }
}

const ROUTES: &[&str] = &[
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/models",
    "/v1/feedback",
    "/health",
    "/metrics",
];

/// The route label of a path (bounded cardinality).
fn route_label(path: &str) -> &'static str {
    if path.starts_with("/v1/models/") {
        return "/v1/models/{id}";
    }
    if path.starts_with("/admin/") {
        return "/admin";
    }
    ROUTES
        .iter()
        .find(|r| **r == path)
        .copied()
        .unwrap_or("other")
}

/// Counts requests and errors, times them, and turns any error response that
/// is not already OpenAI's JSON (axum's own 404/405/413/...) into it.
async fn observe(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = route_label(req.uri().path());
    let start = Instant::now();
    let mut resp = next.run(req).await;
    let status = resp.status();
    if (status.is_client_error() || status.is_server_error())
        && resp.extensions().get::<ErrorTag>().is_none()
    {
        resp = normalize(resp).await;
    }
    if let Some(tag) = resp.extensions().get::<ErrorTag>() {
        state.metrics.error(&tag.0);
    }
    state
        .metrics
        .requests
        .with_label_values(&[route, status.as_str()])
        .inc();
    let streaming = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    // Streams are timed by their producer, when the last event is sent.
    if !streaming {
        state
            .metrics
            .latency
            .with_label_values(&[route])
            .observe(start.elapsed().as_secs_f64());
    }
    resp
}

async fn normalize(resp: Response) -> Response {
    let status = resp.status();
    let allow = resp.headers().get(header::ALLOW).cloned();
    let text = match axum::body::to_bytes(resp.into_body(), 64 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => String::new(),
    };
    let mut out = ApiError::from_status(status, &text).into_response();
    if let Some(a) = allow {
        out.headers_mut().insert(header::ALLOW, a);
    }
    out
}

/// Requires `Authorization: Bearer KEY` on every route but `/health`, and the
/// admin key on `/admin/…` (which are off without one).
async fn auth(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let admin = req.uri().path().starts_with("/admin/");
    let key = if admin {
        match state.config.admin_key.as_deref() {
            Some(k) => k,
            None => {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    "invalid_request_error",
                    "the admin endpoints are off; start the server with --admin-key",
                )
                .with_code("admin_disabled")
                .into_response()
            }
        }
    } else {
        match state.config.api_key.as_deref() {
            Some(k) => k,
            None => return next.run(req).await,
        }
    };
    if req.uri().path() == "/health" {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match given {
        Some(g) if constant_time_eq(g.as_bytes(), key.as_bytes()) => next.run(req).await,
        Some(_) => unauthorized("Incorrect API key provided."),
        None => unauthorized("Missing API key: send 'Authorization: Bearer YOUR_KEY'."),
    }
}

fn unauthorized(msg: &str) -> Response {
    let mut resp = ApiError::new(StatusCode::UNAUTHORIZED, "invalid_request_error", msg)
        .with_code("invalid_api_key")
        .into_response();
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn model_entry(state: &AppState, adapter: Option<&str>) -> Value {
    let mut entry = json!({"id": state.served_id(adapter), "object": "model", "created": state.started,
           "owned_by": "tuneup", "context_length": state.engine.context_length()});
    if adapter.is_some() {
        entry["parent"] = json!(state.config.model_id);
    }
    entry
}

/// The entry of the task model (`tuneup serve --ladder`): the base model behind a task's prompt.
fn task_entry(state: &AppState, id: &str) -> Value {
    json!({"id": id, "object": "model", "created": state.started, "owned_by": "tuneup",
           "parent": state.config.model_id, "context_length": state.engine.context_length()})
}

async fn models(State(state): State<Arc<AppState>>) -> Json<Value> {
    let mut data = vec![model_entry(&state, None)];
    data.extend(
        state
            .adapters
            .list()
            .iter()
            .map(|a| model_entry(&state, Some(&a.name))),
    );
    if let Some(t) = &state.task {
        data.push(task_entry(&state, &t.id));
    }
    if let Some(e) = &state.embedder {
        data.push(json!({"id": e.id, "object": "model", "created": state.started, "owned_by": "tuneup",
                         "dimensions": e.embedder.dim(), "context_length": e.embedder.max_tokens()}));
    }
    Json(json!({"object": "list", "data": data}))
}

async fn model(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if state.task.as_ref().is_some_and(|t| t.id == id) {
        return Ok(Json(task_entry(&state, &id)));
    }
    let adapter = state.resolve_model(&id)?;
    Ok(Json(model_entry(
        &state,
        adapter.as_ref().map(|a| a.name.as_str()),
    )))
}

/// 200 while the model worker runs (with the panics it recovered from), 503 once it
/// has stopped for good.
async fn health(State(state): State<Arc<AppState>>) -> Response {
    let h = &state.engine.health;
    let dead = h.is_dead();
    let body = json!({
        "status": if dead { "error" } else { "ok" },
        "model": state.config.model_id,
        "queue_depth": state.metrics.queue_depth.get(),
        "worker": if dead { "stopped" } else { "running" },
        "worker_restarts": h.restarts(),
        "last_panic": h.last_panic(),
    });
    let status = if dead {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let mut resp = (status, Json(body)).into_response();
    if dead {
        // Not an API error to normalise: the body says what is wrong.
        resp.extensions_mut()
            .insert(ErrorTag("worker_stopped".into()));
    }
    resp
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn feedback(
    State(state): State<Arc<AppState>>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let req: FeedbackRequest = parse_json(&body)?;
    let scale = crate::feedback::Scale::of(req.rating, req.scale.as_deref())
        .map_err(|msg| ApiError::invalid_param("rating", msg))?;
    if req.comment.as_ref().is_some_and(|c| c.len() > 16 * 1024) {
        return Err(ApiError::invalid_param(
            "comment",
            "comment is longer than 16 KiB",
        ));
    }
    let store = Arc::clone(&state.feedback);
    let rid = req.response_id.clone();
    let id = tokio::task::spawn_blocking(move || {
        store.add_feedback(&req.response_id, req.rating, scale, req.comment.as_deref())
    })
    .await
    .map_err(|e| ApiError::internal(format!("feedback store panicked: {e}")))?
    .map_err(|e| ApiError::internal(format!("feedback store: {e}")))?;
    match id {
        Some(id) => Ok((
            StatusCode::CREATED,
            Json(json!({"id": id, "object": "feedback", "response_id": rid})),
        )
            .into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("no response with id '{rid}' is stored (unknown, or too old)"),
        )
        .with_param("response_id")
        .with_code("response_not_found")),
    }
}

async fn not_found(req: Request<Body>) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("Unknown request URL: {} {}", req.method(), req.uri().path()),
    )
    .with_code("unknown_url")
}
