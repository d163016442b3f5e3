//! `POST /v1/chat/completions`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tuneup_generate::ChatModel;

use crate::constrain::{self, ToolFormat};
use crate::engine::{Event, Finished};
use crate::error::ApiError;
use crate::extract::{parse_json, RawBody};
use crate::holdback::HoldBack;
use crate::prompt::{self, SamplingFields, ToolPlan};
use crate::response::{self, Ident};
use crate::stream::{self, SseSender};
use crate::toolcall::{parse_tool_calls, random_alnum, ParsedOutput};
use crate::types::{ChatCompletionRequest, ResponseFormat};
use crate::AppState;

/// What a finished chat request needs to build its answer.
struct Reply {
    state: Arc<AppState>,
    ident: Ident,
    plan: ToolPlan,
    json_format: bool,
    include_usage: bool,
    request: String,
    started: Instant,
}

/// The handler.
pub async fn handler(
    State(state): State<Arc<AppState>>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let req: ChatCompletionRequest = parse_json(&body)?;
    if let Some(task) = state.task.as_ref().filter(|t| t.id == req.model) {
        return crate::task_model::chat(Arc::clone(&state), task, req).await;
    }
    let adapter = state.resolve_model(&req.model)?;
    let adapter_name = adapter.as_ref().map(|a| a.name.clone());
    if req.n.unwrap_or(1) != 1 {
        return Err(ApiError::invalid_param("n", "only n=1 is supported"));
    }
    if req.logprobs == Some(true) {
        return Err(ApiError::invalid_param(
            "logprobs",
            "logprobs are not supported yet",
        ));
    }
    let plan = prompt::tool_plan(req.tools.as_deref(), req.tool_choice.as_ref())?;
    let extra: Vec<String> = plan
        .instruction
        .iter()
        .cloned()
        .chain(prompt::format_instruction(req.response_format.as_ref()))
        .collect();
    let messages = prompt::template_messages(&req, &extra)?;
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
    let stop = prompt::stop_strings(req.stop.clone())?;
    let model = Arc::clone(&state.engine.model);
    let compiler = state.engine.grammar.clone();
    let (job_plan, format) = (plan.clone(), req.response_format.clone());
    let parallel = req.parallel_tool_calls.unwrap_or(true);
    let (ids, constraint) = state
        .prep
        .run("prompt rendering", move || {
            let (ids, tool_format) = render(&model, messages, &job_plan.tools)?;
            let grammar =
                constrain::request_grammar(&job_plan, format.as_ref(), tool_format, parallel);
            let constraint = match (grammar, compiler) {
                (Some(g), Some(c)) => Some(constrain::compile(
                    &c,
                    &g,
                    &job_plan,
                    tool_format,
                    parallel,
                )?),
                _ => None,
            };
            Ok::<_, ApiError>((ids, constraint))
        })
        .await??;
    let (param, requested) = match req.max_completion_tokens {
        Some(n) => ("max_completion_tokens", Some(n)),
        None => ("max_tokens", req.max_tokens),
    };
    let max = prompt::max_tokens(
        requested,
        param,
        ids.len(),
        state.engine.context_length(),
        state.config.max_tokens_cap,
    )?;
    let mut params = prompt::params(sampling, max, stop);
    params.constraint = constraint;
    let mut rx = state.submit(adapter, ids, params)?;
    let reply = Reply {
        ident: Ident {
            id: format!("chatcmpl-{}", random_alnum(29)),
            created: crate::unix_now(),
            model: state.served_id(adapter_name.as_deref()),
        },
        plan,
        json_format: matches!(
            req.response_format,
            Some(ResponseFormat::JsonObject | ResponseFormat::JsonSchema { .. })
        ),
        include_usage: req
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
        request: crate::captured(&state.config, &body),
        started,
        state,
    };
    if req.stream.unwrap_or(false) {
        let (client, resp) = stream::sse_channel();
        tokio::spawn(stream_reply(reply, rx, client));
        Ok(resp)
    } else {
        let fin = stream::collect(&mut rx).await?;
        let (parsed, finish) = reply.split(&fin.text, &fin);
        let body = response::chat_completion(
            &reply.ident,
            parsed.content.as_deref(),
            &parsed.calls,
            finish,
            &fin.stats,
        );
        reply.store(&body["choices"][0]["message"]);
        Ok(axum::Json(body).into_response())
    }
}

/// Renders the template (adding Hermes tool instructions when the template
/// ignores `tools`) and tokenizes; says how the prompt asks for tool calls.
fn render(
    model: &ChatModel,
    mut messages: Vec<Value>,
    tools: &[Value],
) -> Result<(Vec<u32>, ToolFormat), ApiError> {
    let bad = |e: tuneup_generate::Error| {
        ApiError::invalid_param(
            "messages",
            format!("cannot apply the model's chat template: {e}"),
        )
    };
    if tools.is_empty() {
        let ids = model.chat_prompt(&messages, None).map_err(bad)?.1;
        return Ok((ids, ToolFormat::Bare));
    }
    if model.template_renders_tools(tools).map_err(bad)? {
        let (text, ids) = model.chat_prompt(&messages, Some(tools)).map_err(bad)?;
        return Ok((ids, ToolFormat::of_prompt(&text)));
    }
    let add = prompt::hermes_tool_prompt(tools);
    match messages.first_mut() {
        Some(first) if first["role"] == "system" => {
            let old = first["content"].as_str().unwrap_or_default().to_string();
            first["content"] = Value::String(format!("{old}\n\n{add}"));
        }
        _ => messages.insert(0, json!({"role": "system", "content": add})),
    }
    Ok((
        model.chat_prompt(&messages, None).map_err(bad)?.1,
        ToolFormat::Tags,
    ))
}

impl Reply {
    /// Content and tool calls of `text`, and the finish reason.
    fn split(&self, text: &str, fin: &Finished) -> (ParsedOutput, &'static str) {
        let mut parsed = if self.plan.active() {
            parse_tool_calls(text, &self.plan.names)
        } else {
            ParsedOutput {
                content: (!text.is_empty()).then(|| text.to_string()),
                calls: Vec::new(),
            }
        };
        if self.json_format && parsed.calls.is_empty() {
            if let Some(c) = &parsed.content {
                match tuneup_eval::json_check::extract_json(c) {
                    Ok(found) => parsed.content = Some(c[found.span].to_string()),
                    Err(_) => self.state.metrics.error("invalid_json_output"),
                }
            }
        }
        let finish = if parsed.calls.is_empty() {
            // Content is null only next to tool calls.
            parsed.content.get_or_insert_with(String::new);
            fin.finish_reason()
        } else {
            "tool_calls"
        };
        (parsed, finish)
    }

    /// Keeps the answer for `/v1/feedback` (off the async runtime).
    fn store(&self, message: &Value) {
        let record = crate::feedback::StoredResponse {
            id: self.ident.id.clone(),
            model: self.ident.model.clone(),
            request: self.request.clone(),
            response: message.to_string(),
        };
        let store = Arc::clone(&self.state.feedback);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = store.put_response(&record) {
                tracing::warn!("storing response {}: {e}", record.id);
            }
        });
    }
}

async fn stream_reply(reply: Reply, mut events: mpsc::UnboundedReceiver<Event>, client: SseSender) {
    let ident = &reply.ident;
    if !client
        .json(&response::chat_chunk(
            ident,
            json!({"role": "assistant", "content": ""}),
            None,
        ))
        .await
    {
        return;
    }
    let mut hold = HoldBack::new(reply.plan.active() || reply.json_format);
    let mut streamed = String::new();
    let fin = loop {
        match stream::next_event(&mut events, &client).await {
            None => return,
            Some(Event::Text(t)) => {
                let out = hold.push(&t);
                if !out.is_empty() {
                    streamed.push_str(&out);
                    if !client
                        .json(&response::chat_chunk(ident, json!({"content": out}), None))
                        .await
                    {
                        return;
                    }
                }
            }
            Some(Event::Done(f)) if f.timed_out => {
                let _ = client.json(&stream::timeout_error().body()).await;
                let _ = client.done().await;
                return;
            }
            Some(Event::Done(f)) => break f,
            Some(Event::Failed(msg)) => {
                let _ = client
                    .json(&ApiError::internal(format!("generation failed: {msg}")).body())
                    .await;
                let _ = client.done().await;
                return;
            }
        }
    };
    let rest = hold.finish();
    let (parsed, finish) = reply.split(&rest, &fin);
    if let Some(c) = parsed.content.as_ref().filter(|c| !c.is_empty()) {
        streamed.push_str(c);
        let _ = client
            .json(&response::chat_chunk(ident, json!({"content": c}), None))
            .await;
    }
    let mut message = json!({"role": "assistant", "content": streamed});
    if !parsed.calls.is_empty() {
        let calls = response::tool_calls(&parsed.calls, true);
        message["tool_calls"] = Value::Array(calls.clone());
        let _ = client
            .json(&response::chat_chunk(
                ident,
                json!({"tool_calls": calls}),
                None,
            ))
            .await;
    }
    let _ = client
        .json(&response::chat_chunk(ident, json!({}), Some(finish)))
        .await;
    if reply.include_usage {
        let _ = client
            .json(&response::usage_chunk(
                ident,
                "chat.completion.chunk",
                &fin.stats,
            ))
            .await;
    }
    let _ = client.done().await;
    reply
        .state
        .metrics
        .latency
        .with_label_values(&["/v1/chat/completions"])
        .observe(reply.started.elapsed().as_secs_f64());
    reply.store(&message);
}
