//! Where completions come from: the in-process runtime ([`InProcess`]) or an OpenAI-compatible endpoint
//! ([`crate::endpoint::Endpoint`]).

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use serde_json::Value;
use tuneup_generate::{
    ChatModel, FinishReason, GenerateParams, GenerationStats, Generator, SamplingParams,
};
use tuneup_models::ModelFiles;
use tuneup_runtime::{ModelRequest, NoProgress};

use crate::error::{Error, Result};
use crate::prompt::Prompt;
use crate::task::{Generation, ModelSpec};

/// One completion with its timings.
#[derive(Debug, Clone, Default)]
pub struct Completion {
    /// Generated text (tool calls from an endpoint are rendered as `<tool_call>` blocks).
    pub text: String,
    /// The prompt as the model saw it (rendered template, or the JSON request messages).
    pub prompt_text: String,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
    /// Time to the first generated token.
    pub ttft: Duration,
    /// Time for the whole request.
    pub total: Duration,
    /// `stop`, `length` or `cancelled`.
    pub finish_reason: String,
}

impl Completion {
    /// Mean time per generated token after the first (`None` with fewer than two tokens).
    pub fn per_token(&self) -> Option<Duration> {
        (self.completion_tokens > 1)
            .then(|| self.total.saturating_sub(self.ttft) / (self.completion_tokens as u32 - 1))
    }
}

/// Something that answers prompts.
pub trait Backend {
    /// A short description for reports (`in-process: smollm2-135m`).
    fn describe(&self) -> String;
    /// Generates one completion; an `Err` is recorded for the example and the run continues.
    fn complete(
        &mut self,
        prompt: &Prompt,
        generation: &Generation,
    ) -> std::result::Result<Completion, String>;
}

/// Resolves a model name (alias, path, `hf:`) to files, pulling a known alias when missing.
pub fn resolve_model(name: &str) -> Result<ModelFiles> {
    tuneup_runtime::resolve_files(name, &mut NoProgress).map_err(|e| model_error(name, e))
}

/// Loads a model for [`InProcess`] on the CPU (see [`open_model`] for the task's device and threads).
pub fn load_model(
    name: &str,
    ctx_size: Option<usize>,
    adapter: Option<&std::path::Path>,
) -> Result<ChatModel> {
    let req = ModelRequest {
        spec: name.to_owned(),
        ctx_size,
        adapters: adapter.map(ToOwned::to_owned).into_iter().collect(),
        ..ModelRequest::default()
    };
    tuneup_runtime::open(&req, &mut NoProgress).map_err(|e| model_error(name, e))
}

/// Opens model `name` as a task's `[model]` section asks: its threads, context cap, adapter and device.
pub fn open_model(name: &str, spec: &ModelSpec) -> Result<ChatModel> {
    let req = ModelRequest {
        spec: name.to_owned(),
        gpu: spec.gpu,
        ctx_size: spec.ctx_size,
        adapters: spec.adapter.iter().cloned().collect(),
        threads: spec.threads,
    };
    tuneup_runtime::open(&req, &mut NoProgress).map_err(|e| model_error(name, e))
}

/// A runtime error as the runner's model error (the runtime's message already names the spec or adapter).
fn model_error(name: &str, e: tuneup_runtime::Error) -> Error {
    Error::Model {
        name: name.to_owned(),
        message: e.to_string(),
    }
}

/// The in-process runtime: one loaded model, one generator whose prompt-prefix cache is reused across examples.
pub struct InProcess<'m> {
    name: String,
    model: &'m ChatModel,
    generator: Generator<'m>,
    constraints: crate::constrain::JsonConstraints,
}

impl<'m> InProcess<'m> {
    /// Wraps a loaded model.
    pub fn new(name: &str, model: &'m ChatModel) -> Self {
        Self {
            name: name.to_owned(),
            model,
            generator: Generator::new(&model.model.decoder, &model.tokenizer),
            constraints: Default::default(),
        }
    }
}

/// For templates without tool support: the functions and the Hermes/Qwen call format are described in the
/// system message instead.
pub fn tools_in_system(messages: &[Value], tools: &[Value]) -> Vec<Value> {
    let list: Vec<String> = tools.iter().map(Value::to_string).collect();
    let text = format!(
        "You may call one or more functions to assist with the user query.\n\nYou are provided with function \
         signatures within <tools></tools> XML tags:\n<tools>\n{}\n</tools>\n\nFor each function call, return a \
         json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n\
         {{\"name\": <function-name>, \"arguments\": <args-json-object>}}\n</tool_call>",
        list.join("\n")
    );
    let mut out = messages.to_vec();
    match out.first_mut() {
        Some(first) if first["role"] == "system" => {
            let old = first["content"].as_str().unwrap_or("").to_owned();
            first["content"] = Value::String(format!("{old}\n\n{text}"));
        }
        _ => out.insert(0, serde_json::json!({"role": "system", "content": text})),
    }
    out
}

/// The prompt rendered by `model`'s chat template, as text and token ids; tools go into the system message when
/// the template cannot render them.
pub fn render_prompt(
    model: &ChatModel,
    prompt: &Prompt,
) -> std::result::Result<(String, Vec<u32>), String> {
    let template_has_tools = model
        .tokenizer
        .chat_template()
        .is_some_and(|t| t.contains("tools"));
    let fallback;
    let (messages, tools) = match &prompt.tools {
        Some(t) if !template_has_tools => {
            fallback = tools_in_system(&prompt.messages, t);
            (&fallback, None)
        }
        _ => (&prompt.messages, prompt.tools.as_deref()),
    };
    model
        .chat_prompt(messages, tools)
        .map_err(|e| format!("rendering the chat template: {e}"))
}

/// The runtime's generation parameters for a task's `[generation]` (no constraint yet).
pub fn generate_params(g: &Generation) -> GenerateParams {
    GenerateParams {
        max_tokens: g.max_tokens,
        sampling: if g.temperature <= 0.0 {
            SamplingParams {
                seed: g.seed,
                ..SamplingParams::greedy()
            }
        } else {
            SamplingParams {
                temperature: g.temperature,
                seed: g.seed,
                ..SamplingParams::default()
            }
        },
        stop: g.stop.clone(),
        ..GenerateParams::default()
    }
}

/// A [`Completion`] from the runtime's statistics; `first` is when the sink saw the first piece of text and
/// `total` the request's whole time.
pub fn completion_of(
    prompt_text: String,
    text: String,
    s: &GenerationStats,
    first: Option<Duration>,
    total: Duration,
) -> Completion {
    Completion {
        text,
        prompt_text,
        prompt_tokens: s.prompt_tokens,
        completion_tokens: s.completion_tokens,
        ttft: if s.completion_tokens > 0 {
            s.time_to_first_token
        } else {
            first.unwrap_or(total)
        },
        total,
        finish_reason: match s.finish_reason {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
        .into(),
    }
}

impl Backend for InProcess<'_> {
    fn describe(&self) -> String {
        format!("in-process: {}", self.name)
    }

    fn complete(
        &mut self,
        prompt: &Prompt,
        g: &Generation,
    ) -> std::result::Result<Completion, String> {
        let (prompt_text, ids) = render_prompt(self.model, prompt)?;
        let mut params = generate_params(g);
        if let (true, Some(schema)) = (g.constrained, &prompt.json_schema) {
            params.constraint = Some(self.constraints.constraint(self.model, schema)?);
        }
        let start = Instant::now();
        let mut first: Option<Duration> = None;
        let mut sink = |_id: u32, _text: &str| {
            first.get_or_insert_with(|| start.elapsed());
            ControlFlow::Continue(())
        };
        let out = self
            .generator
            .generate(&ids, &mut params, &mut sink)
            .map_err(|e| format!("generation failed: {e}"))?;
        Ok(completion_of(
            prompt_text,
            out.text,
            &out.stats,
            first,
            start.elapsed(),
        ))
    }
}
