//! Request bodies: read as bytes (the size limit applies) and parsed with
//! errors that name the field at fault, as OpenAI-style 400s.

use std::sync::Arc;

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::AppState;

/// The raw body of a request (JSON is parsed by the handler), read within the
/// server's body timeout (then 408).
#[derive(Debug)]
pub struct RawBody(pub Bytes);

impl FromRequest<Arc<AppState>> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let limit = state.config.body_timeout;
        let read = tokio::time::timeout(limit, Bytes::from_request(req, state)).await;
        let Ok(read) = read else {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request_error",
                format!(
                    "the request body did not arrive within {} s",
                    limit.as_secs_f64()
                ),
            )
            .with_code("request_timeout"));
        };
        match read {
            Ok(b) => Ok(RawBody(b)),
            Err(rej) => {
                let status = rej.status();
                let mut e = ApiError::from_status(status, &rej.body_text());
                if status.as_u16() == 413 {
                    e.message = "the request body is larger than the server accepts".into();
                }
                Err(e)
            }
        }
    }
}

/// Parses a JSON body into `T`; a 400 naming the field when it does not fit.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid(
            "the request body is empty; send a JSON object",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Ok(v),
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            let syntax = inner.is_syntax() || inner.is_eof();
            let at_root = path == "." || path.is_empty();
            let what = if syntax {
                "invalid JSON in the request body"
            } else {
                "invalid request body"
            };
            let mut e = ApiError::invalid(if at_root {
                format!("{what}: {inner}")
            } else {
                format!("{what}: {path}: {inner}")
            });
            if !(at_root || syntax) {
                e.param = Some(path);
            }
            Err(e)
        }
    }
}
