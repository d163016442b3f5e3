//! `POST /v1/embeddings`: sentence embeddings from the local embedding model given with `--embedder`.
//!
//! Accepts OpenAI's request shape: `input` as a string or an array of strings (token-id arrays are refused: they
//! would be ids of another tokenizer), `encoding_format` `float` (default) or `base64` (little-endian f32, as
//! OpenAI sends), and `dimensions` only when equal to the model's. Texts longer than the model's window are
//! truncated, as sentence-transformers does.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tuneup_retrieval::embed::Embedder;

use crate::error::ApiError;
use crate::extract::{parse_json, RawBody};
use crate::AppState;

/// Most inputs in one request (OpenAI's limit).
pub const MAX_INPUTS: usize = 2048;

/// A loaded embedding model and the id clients name it by.
pub struct EmbeddingModel {
    /// The id in requests and `/v1/models`.
    pub id: String,
    /// The model.
    pub embedder: Embedder,
}

impl std::fmt::Debug for EmbeddingModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddingModel")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Input {
    One(String),
    Many(Vec<Value>),
}

#[derive(Deserialize)]
struct EmbeddingRequest {
    model: String,
    input: Input,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<usize>,
    #[serde(default)]
    #[allow(dead_code)]
    user: Option<String>,
}

fn texts(input: Input) -> Result<Vec<String>, ApiError> {
    let texts = match input {
        Input::One(s) => vec![s],
        Input::Many(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s),
                _ => Err(ApiError::invalid_param(
                    "input",
                    format!(
                        "input[{i}] is not a string: token-id inputs are not supported, send text"
                    ),
                )),
            })
            .collect::<Result<_, _>>()?,
    };
    if texts.is_empty() {
        return Err(ApiError::invalid_param("input", "input is an empty array"));
    }
    if texts.len() > MAX_INPUTS {
        return Err(ApiError::invalid_param(
            "input",
            format!("{} inputs; at most {MAX_INPUTS} per request", texts.len()),
        ));
    }
    if let Some(i) = texts.iter().position(|t| t.is_empty()) {
        return Err(ApiError::invalid_param(
            "input",
            format!("input[{i}] is an empty string"),
        ));
    }
    Ok(texts)
}

fn base64(vector: &[f32]) -> String {
    use base64::Engine as _;
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The handler.
pub(crate) async fn handler(
    State(state): State<Arc<AppState>>,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    let req: EmbeddingRequest = parse_json(&body)?;
    let Some(model) = state.embedder.clone() else {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "invalid_request_error",
            "this server has no embedding model: start it with --embedder all-minilm-l6-v2",
        )
        .with_code("embeddings_not_enabled"));
    };
    if req.model != model.id {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!(
                "The model '{}' does not exist; the embedding model is '{}'",
                req.model, model.id
            ),
        )
        .with_param("model")
        .with_code("model_not_found"));
    }
    let base64_output = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid_param(
                "encoding_format",
                format!("encoding_format {other:?}: expected 'float' or 'base64'"),
            ))
        }
    };
    if let Some(d) = req.dimensions.filter(|&d| d != model.embedder.dim()) {
        return Err(ApiError::invalid_param(
            "dimensions",
            format!(
                "{} has {} dimensions; {d} is not supported",
                model.id,
                model.embedder.dim()
            ),
        ));
    }
    let texts = texts(req.input)?;
    let (vectors, tokens) = state
        .prep
        .run("embedding", move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let tokens: usize = refs
                .iter()
                .map(|t| (model.embedder.count_tokens(t) + 2).min(model.embedder.max_tokens()))
                .sum();
            model.embedder.embed(&refs).map(|v| (v, tokens))
        })
        .await?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64_output {
                json!(base64(v))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": state.embedder.as_ref().map(|m| m.id.as_str()).unwrap_or_default(),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        // 1.0f32 = 00 00 80 3F → "AACAPw=="
        assert_eq!(base64(&[1.0]), "AACAPw==");
        assert_eq!(base64(&[]), "");
    }

    #[test]
    fn inputs_are_checked() {
        assert!(texts(Input::Many(vec![])).is_err());
        assert!(texts(Input::Many(vec![json!([1, 2])])).is_err());
        assert!(texts(Input::One(String::new())).is_err());
        assert_eq!(
            texts(Input::Many(vec![json!("a"), json!("b")]))
                .unwrap()
                .len(),
            2
        );
    }
}
