//! The agent loop: model → tool calls → tool results → model, until an answer without calls or the step
//! limit. One [`Generator`] is kept across steps and turns, so each prompt only computes what is new after
//! the longest shared prefix.

use std::time::Instant;

use serde_json::{json, Value};
use tuneup_generate::{ChatModel, GenerateParams, Generator, NullSink, SamplingParams};

use crate::config::{AgentConfig, GenerationConfig};
use crate::error::Result;
use crate::memory::Memory;
use crate::tool::Toolbox;
use crate::toolcall::{
    hermes_tool_prompt, new_call_id, parse_tool_calls_where, ParsedCall, ParsedOutput,
};

/// Why a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The model answered without calling a tool.
    Answer,
    /// The model was still calling tools after `max_steps` model calls.
    StepLimit,
}

impl StopReason {
    /// `answer` or `step_limit`.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Answer => "answer",
            StopReason::StepLimit => "step_limit",
        }
    }
}

/// What happens during a turn, as it happens.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// The model's raw output of one step.
    ModelOutput {
        /// 1-based step.
        step: usize,
        /// The text generated.
        text: &'a str,
    },
    /// The model called a tool.
    ToolCall {
        /// Call id.
        id: &'a str,
        /// Tool name.
        name: &'a str,
        /// Arguments as JSON text.
        arguments: &'a str,
    },
    /// A tool answered (or failed; the error text goes back to the model).
    ToolResult {
        /// Call id.
        id: &'a str,
        /// Tool name.
        name: &'a str,
        /// The text returned to the model.
        content: &'a str,
        /// Whether the tool succeeded.
        ok: bool,
    },
}

/// Token counts of a turn, over all its steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Of which reused from the cache.
    pub cached_prompt_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
}

/// One question and what the agent did with it.
#[derive(Debug, Clone)]
pub struct Turn {
    /// The answer (`None` when the step limit was reached).
    pub answer: Option<String>,
    /// Why the turn ended.
    pub stop: StopReason,
    /// Model calls made.
    pub steps: usize,
    /// The turn's messages (user, assistant with `tool_calls`, tool results, final assistant), OpenAI-shaped.
    pub messages: Vec<Value>,
    /// Token counts.
    pub usage: Usage,
    /// Seconds taken.
    pub seconds: f64,
}

impl Turn {
    /// The tool calls made, as `{"id", "name", "arguments"}` objects in order.
    pub fn tool_calls(&self) -> Vec<Value> {
        self.messages
            .iter()
            .filter_map(|m| m["tool_calls"].as_array())
            .flatten()
            .map(|c| json!({"id": c["id"], "name": c["function"]["name"], "arguments": c["function"]["arguments"]}))
            .collect()
    }

    /// The transcript as JSON: answer, stop reason, steps, tool calls, messages, usage.
    pub fn to_json(&self) -> Value {
        json!({
            "answer": self.answer,
            "stop": self.stop.as_str(),
            "steps": self.steps,
            "tool_calls": self.tool_calls(),
            "messages": self.messages,
            "usage": {
                "prompt_tokens": self.usage.prompt_tokens,
                "cached_prompt_tokens": self.usage.cached_prompt_tokens,
                "completion_tokens": self.usage.completion_tokens,
            },
            "seconds": self.seconds,
        })
    }
}

/// A model with tools, memory and a step limit.
#[derive(Debug)]
pub struct Agent<'m> {
    model: &'m ChatModel,
    generator: Generator<'m>,
    tools: Toolbox,
    tool_json: Vec<Value>,
    /// Tool instructions for the system message when the template ignores `tools`.
    tool_instructions: Option<String>,
    memory: Memory,
    max_steps: usize,
    generation: GenerationConfig,
}

impl<'m> Agent<'m> {
    /// An agent running `model` with `tools`, configured by `config`.
    pub fn new(model: &'m ChatModel, config: &AgentConfig, tools: Toolbox) -> Result<Self> {
        let tool_json = tools.openai_tools();
        let tool_instructions =
            if tool_json.is_empty() || model.template_renders_tools(&tool_json)? {
                None
            } else {
                Some(hermes_tool_prompt(&tool_json))
            };
        Ok(Self {
            model,
            generator: Generator::new(&model.model.decoder, &model.tokenizer),
            tools,
            tool_json,
            tool_instructions,
            memory: Memory::new(config.system.clone(), config.memory),
            max_steps: config.max_steps,
            generation: config.generation.clone(),
        })
    }

    /// The tools, in OpenAI's `tools` shape.
    pub fn tools(&self) -> &[Value] {
        &self.tool_json
    }

    /// The conversation kept so far (without the system message).
    pub fn history(&self) -> &[Value] {
        self.memory.messages()
    }

    /// Forgets the conversation.
    pub fn reset(&mut self) {
        self.memory.clear();
        self.generator.reset();
    }

    /// Answers `question`, calling tools as the model asks; `on_event` sees calls and results as they
    /// happen. On error the turn is forgotten.
    pub fn ask(&mut self, question: &str, on_event: &mut dyn FnMut(Event<'_>)) -> Result<Turn> {
        let started = Instant::now();
        let start = self.memory.begin_turn(question);
        match self.run_turn(start, on_event) {
            Ok((answer, stop, steps, usage)) => {
                let turn = Turn {
                    answer,
                    stop,
                    steps,
                    messages: self.memory.messages()[start..].to_vec(),
                    usage,
                    seconds: started.elapsed().as_secs_f64(),
                };
                self.memory.end_turn();
                Ok(turn)
            }
            Err(e) => {
                self.memory.truncate(start);
                Err(e)
            }
        }
    }

    fn params(&self) -> GenerateParams {
        let g = &self.generation;
        GenerateParams {
            max_tokens: g.max_tokens,
            sampling: SamplingParams {
                temperature: g.temperature,
                top_k: g.top_k,
                top_p: g.top_p,
                min_p: g.min_p,
                repeat_penalty: g.repeat_penalty,
                seed: g.seed,
                ..SamplingParams::default()
            },
            ..GenerateParams::default()
        }
    }

    fn parse(&self, text: &str) -> ParsedOutput {
        let declared = parse_tool_calls_where(text, &|n| self.tools.contains(n));
        // A call of an undeclared tool gets an error result rather than being taken for the answer.
        if declared.calls.is_empty()
            && (text.contains("<tool_call>") || text.contains("\"arguments\""))
        {
            let any = parse_tool_calls_where(text, &|_| true);
            if !any.calls.is_empty() {
                return any;
            }
        }
        declared
    }

    /// Generates from `messages` (with the tools when given), adding to `usage`.
    fn generate(
        &mut self,
        messages: &[Value],
        tools: Option<&[Value]>,
        usage: &mut Usage,
    ) -> Result<String> {
        let (_, ids) = self.model.chat_prompt(messages, tools)?;
        let mut params = self.params();
        let out = self.generator.generate(&ids, &mut params, &mut NullSink)?;
        usage.prompt_tokens += out.stats.prompt_tokens;
        usage.cached_prompt_tokens += out.stats.cached_prompt_tokens;
        usage.completion_tokens += out.stats.completion_tokens;
        Ok(out.text)
    }

    /// Whether `text` repeats a call already made this turn: as a whole, or on one of its lines (small models
    /// echo the call and its result instead of answering).
    fn repeats(&self, text: &str, parsed: &ParsedOutput, made: &[CallKey]) -> bool {
        if !parsed.calls.is_empty() {
            return parsed.calls.iter().all(|c| made.contains(&call_key(c)));
        }
        text.lines().any(|line| {
            parse_tool_calls_where(line.trim(), &|n| self.tools.contains(n))
                .calls
                .iter()
                .any(|c| made.contains(&call_key(c)))
        })
    }

    /// The prompt for answering from the results gathered in the turn that starts at `start`: the history
    /// before it, then the question with the tool results in one user message, and no tools.
    fn results_prompt(&self, start: usize) -> Vec<Value> {
        let mut messages = self.memory.prompt(None);
        let offset = messages.len() - self.memory.messages().len();
        let turn = messages.split_off(offset + start);
        let question = turn[0]["content"].as_str().unwrap_or_default();
        // "Question:" first and "do not repeat" last: with the question bare at the top, small models (Qwen2.5-Coder-0.5B)
        // tend to echo it instead of answering.
        let mut text = format!("Question: {question}\n\nTool results:");
        for m in turn.iter().filter(|m| m["role"] == "tool") {
            let call = turn
                .iter()
                .filter_map(|a| a["tool_calls"].as_array())
                .flatten()
                .find(|c| c["id"] == m["tool_call_id"]);
            let args = call
                .map(|c| c["function"]["arguments"].to_string())
                .unwrap_or_default();
            let content = m["content"].as_str().unwrap_or_default();
            text.push_str(&format!(
                "\n{}({args}) returned: {content}",
                m["name"].as_str().unwrap_or_default()
            ));
        }
        text.push_str("\n\nUsing these results, write the answer to the question (do not repeat the question).");
        messages.push(json!({"role": "user", "content": text}));
        messages
    }

    #[allow(clippy::type_complexity)]
    fn run_turn(
        &mut self,
        start: usize,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<(Option<String>, StopReason, usize, Usage)> {
        let mut usage = Usage::default();
        // Calls made this turn: a repeat means the model is looping on a result it already has.
        let mut made: Vec<CallKey> = Vec::new();
        let mut from_results = false;
        for step in 1..=self.max_steps {
            let text = if from_results {
                let messages = self.results_prompt(start);
                self.generate(&messages, None, &mut usage)?
            } else {
                let messages = self.memory.prompt(self.tool_instructions.as_deref());
                let tools = (self.tool_instructions.is_none() && !self.tool_json.is_empty())
                    .then(|| self.tool_json.clone());
                self.generate(&messages, tools.as_deref(), &mut usage)?
            };
            on_event(Event::ModelOutput { step, text: &text });
            let parsed = if from_results {
                ParsedOutput::default()
            } else {
                self.parse(&text)
            };
            if !from_results && !made.is_empty() && self.repeats(&text, &parsed, &made) {
                from_results = true;
                continue;
            }
            if parsed.calls.is_empty() {
                let answer = text.trim().to_string();
                self.memory
                    .push(json!({"role": "assistant", "content": answer}));
                return Ok((Some(answer), StopReason::Answer, step, usage));
            }
            made.extend(parsed.calls.iter().map(call_key));
            let calls: Vec<(String, _)> = parsed
                .calls
                .into_iter()
                .map(|c| (new_call_id(), c))
                .collect();
            let tool_calls: Vec<Value> = calls
                .iter()
                .map(|(id, c)| {
                    // Objects for the template, as the server's `template_messages` does.
                    let args = serde_json::from_str(&c.arguments)
                        .unwrap_or_else(|_| Value::String(c.arguments.clone()));
                    json!({"id": id, "type": "function", "function": {"name": c.name, "arguments": args}})
                })
                .collect();
            self.memory.push(json!({
                "role": "assistant",
                "content": parsed.content.unwrap_or_default(),
                "tool_calls": tool_calls,
            }));
            for (id, call) in &calls {
                on_event(Event::ToolCall {
                    id,
                    name: &call.name,
                    arguments: &call.arguments,
                });
                let (content, ok) = match self.tools.call(&call.name, &call.arguments) {
                    Ok(text) => (text, true),
                    Err(e) => (format!("error: {e}"), false),
                };
                on_event(Event::ToolResult {
                    id,
                    name: &call.name,
                    content: &content,
                    ok,
                });
                self.memory.push(json!({"role": "tool", "tool_call_id": id, "name": call.name, "content": content}));
            }
        }
        Ok((None, StopReason::StepLimit, self.max_steps, usage))
    }
}

/// A call's name and parsed arguments, to recognise repeats.
type CallKey = (String, Value);

fn call_key(c: &ParsedCall) -> CallKey {
    let args = serde_json::from_str(&c.arguments).unwrap_or(Value::Null);
    (c.name.clone(), args)
}
