//! Admin endpoints (`Authorization: Bearer ADMIN_KEY`; off without `--admin-key`):
//! `GET /admin/adapters`, `POST /admin/adapters {"name", "path"}` loads a PEFT
//! LoRA adapter from the server's disk, `DELETE /admin/adapters/{name}` unloads it.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::adapters::{Adapter, AdapterError};
use crate::error::ApiError;
use crate::extract::{parse_json, RawBody};
use crate::AppState;

/// `POST /admin/adapters`.
#[derive(Debug, Deserialize)]
struct LoadRequest {
    name: String,
    path: PathBuf,
}

fn entry(state: &AppState, a: &Adapter) -> Value {
    json!({"id": state.served_id(Some(&a.name)), "name": a.name, "path": a.path, "modules": a.modules})
}

/// Lists the loaded adapters.
pub async fn list(State(state): State<Arc<AppState>>) -> Json<Value> {
    let data: Vec<Value> = state
        .adapters
        .list()
        .iter()
        .map(|a| entry(&state, a))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// Loads an adapter (201), or says why not (400 / 409).
pub async fn load(
    State(state): State<Arc<AppState>>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let req: LoadRequest = parse_json(&body)?;
    let st = Arc::clone(&state);
    let loaded = tokio::task::spawn_blocking(move || st.adapters.load(&req.name, &req.path))
        .await
        .map_err(|e| ApiError::internal(format!("adapter loading panicked: {e}")))?;
    match loaded {
        Ok(a) => {
            tracing::info!(
                "admin: loaded adapter '{}' from {}",
                a.name,
                a.path.display()
            );
            Ok((StatusCode::CREATED, Json(entry(&state, &a))).into_response())
        }
        Err(e @ AdapterError::Exists(_)) => {
            Err(
                ApiError::new(StatusCode::CONFLICT, "invalid_request_error", e.to_string())
                    .with_param("name")
                    .with_code("adapter_exists"),
            )
        }
        Err(e @ AdapterError::BadName(_)) => Err(ApiError::invalid_param("name", e.to_string())),
        Err(e @ AdapterError::Load { .. }) => Err(ApiError::invalid_param("path", e.to_string())),
    }
}

/// Unloads an adapter; generations already running with it finish.
pub async fn unload(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if state.adapters.unload(&name) {
        tracing::info!("admin: unloaded adapter '{name}'");
        Ok(Json(json!({"name": name, "deleted": true})))
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("no adapter named '{name}' is loaded"),
        )
        .with_code("adapter_not_found"))
    }
}
