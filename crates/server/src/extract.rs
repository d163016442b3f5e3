//! Request bodies: read as bytes (the size limit applies) and parsed with
//! errors that name the field at fault, as OpenAI-style 400s.

use axum::extract::{FromRequest, Request};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The raw body of a request (any content type; JSON is parsed by the handler).
#[derive(Debug)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
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
