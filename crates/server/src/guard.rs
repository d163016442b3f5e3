//! Browser attacks on a server without an API key: a web page the user visits can
//! send requests to `127.0.0.1` (with `Content-Type: text/plain`, a "simple" request
//! that needs no CORS preflight), or rebind its own DNS name to `127.0.0.1` and read
//! the answers. Without a key, the server therefore answers only requests whose
//! `Host` names this server (loopback names, the bound host, `--allow-host`), whose
//! `Origin` (when present) is such a host or in `--allow-origin`, and whose bodies
//! are declared JSON. With a key, a browser cannot send it without a preflight, so
//! these checks are off.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::AppState;

/// The host part of a `Host` header value or of an origin's authority (port removed,
/// IPv6 brackets kept off), lower-cased.
fn host_part(authority: &str) -> String {
    let a = authority.trim();
    let host = if let Some(rest) = a.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        a.rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(a, |(h, _)| h)
    };
    host.to_ascii_lowercase()
}

/// Whether `host` (no port) names this server.
fn host_allowed(state: &AppState, host: &str) -> bool {
    let c = &state.config;
    let bound = c
        .host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    ["localhost", "127.0.0.1", "::1"].contains(&host)
        || host == bound
        || c.allow_hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
}

fn origin_allowed(state: &AppState, origin: &str) -> bool {
    let c = &state.config;
    if c.allow_origins
        .iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    match origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    {
        Some(authority) if !authority.contains('/') => host_allowed(state, &host_part(authority)),
        _ => false,
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .is_some_and(|m| m == "application/json" || m.ends_with("+json"))
}

fn forbidden(code: &str, message: String) -> Response {
    ApiError::new(StatusCode::FORBIDDEN, "invalid_request_error", message)
        .with_code(code)
        .into_response()
}

/// The middleware.
pub(crate) async fn browser_guard(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    if state.config.api_key.is_some() {
        return next.run(req).await;
    }
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(host_part)
        .or_else(|| req.uri().host().map(host_part));
    if let Some(h) = host.filter(|h| !host_allowed(&state, h)) {
        return forbidden(
            "host_not_allowed",
            format!("requests for host '{h}' are refused: this server has no API key and answers only its own host names; start it with --allow-host {h} (or --api-key)"),
        );
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("null");
        if !origin_allowed(&state, origin) {
            return forbidden(
                "origin_not_allowed",
                format!("requests from origin '{origin}' are refused: this server has no API key; start it with --allow-origin {origin} (or --api-key)"),
            );
        }
    }
    if req.method() == Method::POST && !is_json(headers) {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request_error",
            "send the body as JSON with 'Content-Type: application/json'",
        )
        .with_code("unsupported_media_type")
        .into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::host_part;

    #[test]
    fn host_parts() {
        assert_eq!(host_part("127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(host_part("[::1]:80"), "::1");
        assert_eq!(host_part("Evil.Example"), "evil.example");
        assert_eq!(host_part("localhost"), "localhost");
    }
}
