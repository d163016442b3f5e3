//! `POST /v1/completions`: a raw prompt, no chat template.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use crate::engine::Event;
use crate::error::ApiError;
use crate::extract::{parse_json, RawBody};
use crate::prompt::{self, SamplingFields};
use crate::response::{self, Ident};
use crate::stream::{self, SseSender};
use crate::toolcall::random_alnum;
use crate::types::{CompletionRequest, Prompt};
use crate::AppState;

/// OpenAI's default `max_tokens` for text completions.
const DEFAULT_MAX_TOKENS: u64 = 16;

/// The handler.
pub async fn handler(
    State(state): State<Arc<AppState>>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let req: CompletionRequest = parse_json(&body)?;
    let adapter = state.resolve_model(&req.model)?;
    let adapter_name = adapter.as_ref().map(|a| a.name.clone());
    if req.n.unwrap_or(1) != 1 {
        return Err(ApiError::invalid_param("n", "only n=1 is supported"));
    }
    if req.logprobs.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(ApiError::invalid_param(
            "logprobs",
            "logprobs are not supported yet",
        ));
    }
    let text = match req.prompt {
        Prompt::Text(t) => t,
        Prompt::Batch(mut v) if v.len() == 1 => v.remove(0),
        Prompt::Batch(_) => {
            return Err(ApiError::invalid_param(
                "prompt",
                "only one prompt per request is supported",
            ))
        }
    };
    if text.is_empty() {
        return Err(ApiError::invalid_param("prompt", "the prompt is empty"));
    }
    let sampling = prompt::sampling(SamplingFields {
        temperature: req.temperature,
        top_p: req.top_p,
        seed: req.seed,
        presence_penalty: req.presence_penalty,
        frequency_penalty: req.frequency_penalty,
        top_k: req.top_k,
        min_p: req.min_p,
        repetition_penalty: req.repetition_penalty,
    })?;
    let stop = prompt::stop_strings(req.stop)?;
    let model = Arc::clone(&state.engine.model);
    let prompt_text = text.clone();
    let ids = state
        .prep
        .run("tokenizing", move || {
            model.tokenizer.encode(&prompt_text, true)
        })
        .await?
        .map_err(|e| {
            ApiError::invalid_param("prompt", format!("cannot tokenize the prompt: {e}"))
        })?;
    let max = prompt::max_tokens(
        Some(req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)),
        "max_tokens",
        ids.len(),
        state.engine.context_length(),
        state.config.max_tokens_cap,
    )
    .map_err(|e| {
        if e.code.is_some() {
            e.with_param("prompt")
        } else {
            e
        }
    })?;
    let mut rx = state.submit(adapter, ids, prompt::params(sampling, max, stop))?;
    let ident = Ident {
        id: format!("cmpl-{}", random_alnum(29)),
        created: crate::unix_now(),
        model: state.served_id(adapter_name.as_deref()),
    };
    let echo = req.echo.unwrap_or(false).then_some(text);
    let request = crate::captured(&state.config, &body);
    if req.stream.unwrap_or(false) {
        let include_usage = req
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        let (client, resp) = stream::sse_channel();
        tokio::spawn(async move {
            if let Some(fin_text) = stream_text(&ident, &mut rx, &client, echo, include_usage).await
            {
                state
                    .metrics
                    .latency
                    .with_label_values(&["/v1/completions"])
                    .observe(started.elapsed().as_secs_f64());
                store(&state, &ident, request, fin_text);
            }
        });
        Ok(resp)
    } else {
        let fin = stream::collect(&mut rx).await?;
        let text = match echo {
            Some(p) => p + &fin.text,
            None => fin.text.clone(),
        };
        let body =
            response::text_completion(&ident, &text, Some(fin.finish_reason()), Some(&fin.stats));
        store(&state, &ident, request, text);
        Ok(axum::Json(body).into_response())
    }
}

/// Streams the completion; returns its text when it ran to the end.
async fn stream_text(
    ident: &Ident,
    events: &mut mpsc::UnboundedReceiver<Event>,
    client: &SseSender,
    echo: Option<String>,
    include_usage: bool,
) -> Option<String> {
    let mut all = String::new();
    if let Some(p) = echo {
        all.push_str(&p);
        if !client
            .json(&response::text_completion(ident, &p, None, None))
            .await
        {
            return None;
        }
    }
    loop {
        match stream::next_event(events, client).await? {
            Event::Text(t) => {
                all.push_str(&t);
                if !client
                    .json(&response::text_completion(ident, &t, None, None))
                    .await
                {
                    return None;
                }
            }
            Event::Done(f) if f.timed_out => {
                let _ = client.json(&stream::timeout_error().body()).await;
                let _ = client.done().await;
                return None;
            }
            Event::Done(f) => {
                let _ = client
                    .json(&response::text_completion(
                        ident,
                        "",
                        Some(f.finish_reason()),
                        None,
                    ))
                    .await;
                if include_usage {
                    let _ = client
                        .json(&response::usage_chunk(ident, "text_completion", &f.stats))
                        .await;
                }
                let _ = client.done().await;
                return Some(all);
            }
            Event::Failed(msg) => {
                let _ = client
                    .json(&ApiError::internal(format!("generation failed: {msg}")).body())
                    .await;
                let _ = client.done().await;
                return None;
            }
        }
    }
}

fn store(state: &Arc<AppState>, ident: &Ident, request: String, text: String) {
    let record = crate::feedback::StoredResponse {
        id: ident.id.clone(),
        model: ident.model.clone(),
        request,
        response: text,
    };
    let store = Arc::clone(&state.feedback);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = store.put_response(&record) {
            tracing::warn!("storing response {}: {e}", record.id);
        }
    });
}
