//! A task model: a model id whose chat requests are answered the way an eval task answers its examples — the
//! task's prompt (system prompt, template, schema rendering, few-shot examples from its pool, chain of thought),
//! generation settings and verification (candidates with a vote, SQL repair on the task's database). The last
//! user message is the task's input; `metadata.db_id` names the database of a task over several.
//! `tuneup serve --ladder RUN` serves the ladder's winning configuration this way, so a client gets what the
//! ladder measured.
//!
//! Generations go through the model worker's queue like every other request; the questions themselves are
//! answered one at a time by one thread (`queue_size` may wait, more get 429).

use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tuneup_eval_runner::task::{Generation, Task};
use tuneup_eval_runner::{
    completion_of, generate_params, render_prompt, with_answerer, Answered, Backend, Completion,
    JsonConstraints, Prompt, Question,
};
use tuneup_generate::GenerationStats;

use crate::engine::{Engine, Event, Job};
use crate::error::ApiError;
use crate::response::{self, Ident};
use crate::toolcall::random_alnum;
use crate::types::{ChatCompletionRequest, ChatMessage};
use crate::AppState;

/// A model id served through an eval task.
#[derive(Debug, Clone)]
pub struct TaskModel {
    /// The id clients ask for.
    pub id: String,
    /// The task whose prompt, generation and verification answer requests.
    pub task: Task,
}

struct TaskJob {
    question: Question,
    deadline: Option<Instant>,
    reply: oneshot::Sender<Result<Answered, String>>,
}

/// The thread that answers a task model's requests.
#[derive(Debug)]
pub(crate) struct TaskWorker {
    /// The served id.
    pub id: String,
    tx: std_mpsc::SyncSender<TaskJob>,
    capacity: usize,
}

/// Starts the thread for `model`: loads its few-shot pool, schemas and database first, so a broken task fails
/// here, at start-up.
pub(crate) fn start(
    model: TaskModel,
    engine: Engine,
    capacity: usize,
) -> Result<TaskWorker, String> {
    let capacity = capacity.max(1);
    let (tx, rx) = std_mpsc::sync_channel::<TaskJob>(capacity);
    let (ready_tx, ready_rx) = std_mpsc::channel::<Result<(), String>>();
    let TaskModel { id, task } = model;
    let name = id.clone();
    std::thread::Builder::new()
        .name("tuneup-task".into())
        .spawn(move || {
            let ready = ready_tx.clone();
            let result = with_answerer(&task, |answerer| {
                let _ = ready.send(Ok(()));
                // One backend for every question: its compiled JSON constraints are reused.
                let mut backend = EngineBackend {
                    engine: &engine,
                    constraints: engine
                        .grammar
                        .clone()
                        .map(JsonConstraints::with_compiler)
                        .unwrap_or_default(),
                    deadline: None,
                };
                for job in rx {
                    backend.deadline = job.deadline;
                    let answer = answerer.answer(&job.question, &mut backend);
                    let _ = job.reply.send(answer);
                }
                Ok(())
            });
            if let Err(e) = result {
                let _ = ready_tx.send(Err(format!("task model '{name}': {e}")));
            }
        })
        .map_err(|e| format!("starting the task thread: {e}"))?;
    ready_rx
        .recv()
        .map_err(|_| "the task thread stopped while loading".to_owned())??;
    Ok(TaskWorker { id, tx, capacity })
}

/// Generates through the model worker's queue.
struct EngineBackend<'e> {
    engine: &'e Engine,
    constraints: JsonConstraints,
    deadline: Option<Instant>,
}

impl Backend for EngineBackend<'_> {
    fn describe(&self) -> String {
        "tuneup serve".into()
    }

    fn complete(&mut self, prompt: &Prompt, g: &Generation) -> Result<Completion, String> {
        let model = &self.engine.model;
        let (prompt_text, ids) = render_prompt(model, prompt)?;
        let mut params = generate_params(g);
        if let (true, Some(schema)) = (g.constrained, &prompt.json_schema) {
            params.constraint = Some(self.constraints.constraint(model, schema)?);
        }
        let (events, mut rx) = mpsc::unbounded_channel();
        let start = Instant::now();
        let kv_bytes = self.engine.kv_bytes(ids.len(), params.max_tokens);
        self.engine
            .submit(Job {
                kv_bytes,
                adapter: None,
                prompt: ids,
                params,
                events,
                deadline: self.deadline,
                enqueued: start,
            })
            .map_err(|e| e.to_string())?;
        let mut first: Option<Duration> = None;
        loop {
            match rx.blocking_recv() {
                Some(Event::Text(_)) => {
                    first.get_or_insert_with(|| start.elapsed());
                }
                Some(Event::Done(f)) if f.timed_out => {
                    return Err("the request ran past its time limit".into())
                }
                Some(Event::Done(f)) => {
                    return Ok(completion_of(
                        prompt_text,
                        f.text,
                        &f.stats,
                        first,
                        start.elapsed(),
                    ))
                }
                Some(Event::Failed(msg)) => return Err(format!("generation failed: {msg}")),
                None => return Err("the model worker stopped".into()),
            }
        }
    }
}

/// The question a chat request asks: its last user message, and `metadata.db_id`.
fn question_of(req: &ChatCompletionRequest) -> Result<Question, ApiError> {
    let last = req.messages.iter().rev().find_map(|m| match m {
        ChatMessage::User { content } => Some(content),
        _ => None,
    });
    let Some(content) = last else {
        return Err(ApiError::invalid_param(
            "messages",
            "a task model answers the last user message: there is none",
        ));
    };
    let input = crate::prompt::content_text(content, "messages")?;
    if input.trim().is_empty() {
        return Err(ApiError::invalid_param(
            "messages",
            "the last user message is empty",
        ));
    }
    let db_id = match req.metadata.as_ref().and_then(|m| m.get("db_id")) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(ApiError::invalid_param(
                "metadata.db_id",
                "must be a string",
            ))
        }
    };
    let tools = req.tools.as_ref().map(|t| {
        t.iter()
            .filter_map(|tool| serde_json::to_value(tool).ok())
            .collect()
    });
    Ok(Question {
        input,
        db_id,
        tools,
    })
}

/// Answers a chat request for the task model (streamed as one content chunk: the vote needs whole answers).
pub(crate) async fn chat(
    state: Arc<AppState>,
    worker: &TaskWorker,
    req: ChatCompletionRequest,
) -> Result<Response, ApiError> {
    let question = question_of(&req)?;
    let (reply, rx) = oneshot::channel();
    worker
        .tx
        .try_send(TaskJob {
            question,
            deadline: state.deadline(),
            reply,
        })
        .map_err(|e| match e {
            std_mpsc::TrySendError::Full(_) => {
                crate::routes::submit_error(crate::engine::SubmitError::QueueFull(worker.capacity))
            }
            std_mpsc::TrySendError::Disconnected(_) => {
                crate::routes::submit_error(crate::engine::SubmitError::Stopped)
            }
        })?;
    let answered = rx
        .await
        .map_err(|_| ApiError::internal("the task thread stopped"))?
        .map_err(|msg| ApiError::internal(format!("answering with the task: {msg}")))?;
    let ident = Ident {
        id: format!("chatcmpl-{}", random_alnum(29)),
        created: crate::unix_now(),
        model: worker.id.clone(),
    };
    let stats = GenerationStats {
        completion_tokens: answered.usage.completion_tokens,
        ..GenerationStats::after_prefill(answered.usage.prompt_tokens, 0, Duration::ZERO)
    };
    let finish = if answered.finish_reason == "stop" {
        "stop"
    } else {
        "length"
    };
    let details = json!({
        "answer": answered.answer,
        "candidates": answered.candidates,
        "repairs": answered.repairs,
        "generations": answered.usage.generations,
    });
    if req.stream.unwrap_or(false) {
        let (client, resp) = crate::stream::sse_channel();
        let include_usage = req
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        tokio::spawn(async move {
            let chunks = [
                response::chat_chunk(
                    &ident,
                    json!({"role": "assistant", "content": answered.text}),
                    None,
                ),
                response::chat_chunk(&ident, json!({}), Some(finish)),
            ];
            for c in &chunks {
                if !client.json(c).await {
                    return;
                }
            }
            if include_usage {
                let _ = client
                    .json(&response::usage_chunk(
                        &ident,
                        "chat.completion.chunk",
                        &stats,
                    ))
                    .await;
            }
            let _ = client.done().await;
        });
        return Ok(resp);
    }
    let mut body = response::chat_completion(&ident, Some(&answered.text), &[], finish, &stats);
    body["tuneup"] = details;
    Ok(axum::Json(body).into_response())
}
