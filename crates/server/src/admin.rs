//! Admin endpoints (`Authorization: Bearer ADMIN_KEY`; off without `--admin-key`):
//! `GET /admin/adapters`, `POST /admin/adapters {"name", "path"}` loads a PEFT
//! LoRA adapter from a folder under the adapter root (`--adapter-root`; off without
//! one), `DELETE /admin/adapters/{name}` unloads it.

use std::path::{Path as FsPath, PathBuf};
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

/// The adapter folder `given` resolves to: relative paths are taken under `root`; the
/// canonical folder (`..` and symlinks resolved) must lie under the canonical root, and
/// its files together must not exceed `max_bytes`.
fn resolve_under_root(root: &FsPath, given: &FsPath, max_bytes: u64) -> Result<PathBuf, ApiError> {
    let bad = |msg: String| ApiError::invalid_param("path", msg);
    let root = root
        .canonicalize()
        .map_err(|e| ApiError::internal(format!("the adapter root {}: {e}", root.display())))?;
    let joined = root.join(given);
    let dir = joined
        .canonicalize()
        .map_err(|e| bad(format!("adapter folder {}: {e}", given.display())))?;
    if !dir.starts_with(&root) {
        return Err(bad(format!(
            "adapter folder {} is outside the adapter root {} (after resolving '..' and symlinks)",
            given.display(),
            root.display()
        )));
    }
    if !dir.is_dir() {
        return Err(bad(format!("{} is not a folder", given.display())));
    }
    let mut total = 0u64;
    for entry in std::fs::read_dir(&dir).map_err(|e| bad(format!("{}: {e}", given.display())))? {
        let entry = entry.map_err(|e| bad(format!("{}: {e}", given.display())))?;
        // Metadata of the entry itself: a symlink inside is counted as the file it names.
        let meta = std::fs::metadata(entry.path())
            .map_err(|e| bad(format!("{}: {e}", entry.path().display())))?;
        if meta.is_file() {
            total = total.saturating_add(meta.len());
        }
    }
    if total > max_bytes {
        return Err(bad(format!(
            "adapter folder {} holds {} MiB; the server loads at most {} MiB (--adapter-max-mb)",
            given.display(),
            total.div_ceil(1 << 20),
            max_bytes >> 20
        )));
    }
    Ok(dir)
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
    let Some(root) = state.config.adapter_root.clone() else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            "loading adapters at run time is off: start the server with --adapter-root DIR",
        )
        .with_code("adapter_root_not_set"));
    };
    let max_bytes = state.config.adapter_max_bytes;
    let st = Arc::clone(&state);
    let loaded = tokio::task::spawn_blocking(move || {
        let dir = resolve_under_root(&root, &req.path, max_bytes)?;
        Ok::<_, ApiError>(st.adapters.load(&req.name, &dir))
    })
    .await
    .map_err(|e| ApiError::internal(format!("adapter loading panicked: {e}")))??;
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
