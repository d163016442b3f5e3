//! Errors: [`ApiError`] is what a client sees (OpenAI's error JSON with the
//! right status); [`ServerError`] is what stops the server from starting.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answered to a client as `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable explanation.
    pub message: String,
    /// OpenAI error type (`invalid_request_error`, `server_error`, ...).
    pub kind: &'static str,
    /// The request field at fault, when one is.
    pub param: Option<String>,
    /// A machine-readable code (`model_not_found`, `context_length_exceeded`, ...).
    pub code: Option<String>,
}

/// The error type of a response, kept in its extensions for the metrics.
#[derive(Debug, Clone)]
pub struct ErrorTag(pub String);

impl ApiError {
    /// A 400 `invalid_request_error`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// A 400 about one request field.
    pub fn invalid_param(param: &str, message: impl Into<String>) -> Self {
        Self::invalid(message).with_param(param)
    }

    /// An error with a status, type and message.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
        }
    }

    /// Sets the field at fault.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Sets the machine-readable code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// A 500 `server_error`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    /// The error for a status that carried no explanation of ours (axum's
    /// own 404/405/413/415 answers).
    pub fn from_status(status: StatusCode, message: &str) -> Self {
        let (kind, code) = match status.as_u16() {
            401 => ("authentication_error", Some("invalid_api_key")),
            404 => ("invalid_request_error", Some("not_found")),
            405 => ("invalid_request_error", Some("method_not_allowed")),
            413 => ("invalid_request_error", Some("request_too_large")),
            415 => ("invalid_request_error", Some("unsupported_media_type")),
            429 => ("rate_limit_error", Some("rate_limit_exceeded")),
            400..=499 => ("invalid_request_error", None),
            _ => ("server_error", None),
        };
        let message = if message.trim().is_empty() {
            status
                .canonical_reason()
                .unwrap_or("request failed")
                .to_string()
        } else {
            message.trim().to_string()
        };
        let mut e = Self::new(status, kind, message);
        e.code = code.map(str::to_string);
        e
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }

    /// The label used for `tuneup_errors_total{type=...}`.
    pub fn tag(&self) -> String {
        self.code.clone().unwrap_or_else(|| self.kind.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let tag = ErrorTag(self.tag());
        let mut resp = (self.status, axum::Json(self.body())).into_response();
        resp.extensions_mut().insert(tag);
        resp
    }
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Listening beyond loopback needs an API key.
    #[error("refusing to listen on non-loopback host '{host}' without an API key; pass --api-key (or bind 127.0.0.1)")]
    NoApiKey {
        /// The host asked for.
        host: String,
    },
    /// The host/port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The feedback database could not be opened.
    #[error("feedback database {path}: {source}")]
    FeedbackDb {
        /// Its path.
        path: String,
        /// The cause.
        source: crate::feedback::FeedbackError,
    },
    /// A configuration value is unusable.
    #[error("invalid server configuration: {0}")]
    Config(String),
    /// The model worker panicked too often to be restarted.
    #[error("the model worker panicked repeatedly and was not restarted; last panic: {0}")]
    WorkerDied(String),
    /// Serving failed.
    #[error("server I/O error: {0}")]
    Io(#[from] std::io::Error),
}
