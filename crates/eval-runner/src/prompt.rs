//! Prompt building: system prompt, few-shot turns and the user turn from minijinja templates.

use minijinja::Environment;
use serde_json::{json, Map, Value};

use crate::dataset::{as_text, Example};
use crate::error::{Error, Result};
use crate::fewshot::ShotPool;
use crate::schema::Schemas;
use crate::task::{OutputKind, PromptSpec};
use tuneup_retrieval::search::{format_context, Retriever};

/// The chat messages and tools for one example.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// OpenAI-style messages (`{"role", "content"}`).
    pub messages: Vec<Value>,
    /// Tools in OpenAI format, when the example offers functions.
    pub tools: Option<Vec<Value>>,
    /// Ids of the few-shot examples used.
    pub shot_ids: Vec<String>,
    /// The JSON schema replies must follow when `generation.constrained` (`prompt.json_schema`).
    pub json_schema: Option<Value>,
}

/// The chain-of-thought instruction appended to the user turn for each output kind.
pub fn cot_instruction(output: OutputKind) -> &'static str {
    match output {
        OutputKind::Sql => "Think step by step about which tables, columns and joins are needed, then write the final SQL query in a ```sql code block at the end.",
        OutputKind::Json => "Think step by step, then write the final JSON in a ```json code block at the end.",
        OutputKind::ToolCalls => "Think step by step about which function to call and with which arguments, then make the call.",
        OutputKind::Code => "Think step by step about the algorithm and the edge cases in a few sentences, then write the complete function in one fenced code block at the end.",
        OutputKind::Text => "Think step by step, then give the final answer on the last line, starting with `Answer:`.",
    }
}

const DEFAULT_TEMPLATE: &str = "{{ input }}";

/// Builds prompts for a task.
pub struct PromptBuilder<'p> {
    env: Environment<'static>,
    spec: PromptSpec,
    schemas: Option<Schemas>,
    pool: Option<&'p ShotPool>,
    retriever: Option<&'p Retriever>,
}

fn template_err(which: &'static str) -> impl Fn(minijinja::Error) -> Error {
    move |e| Error::Template {
        which,
        message: format!("{e:#}"),
    }
}

impl<'p> PromptBuilder<'p> {
    /// Compiles the templates of `spec`; `schemas` fills `{{ schema }}`, `pool` supplies few-shot examples.
    pub fn new(
        spec: &PromptSpec,
        schemas: Option<Schemas>,
        pool: Option<&'p ShotPool>,
    ) -> Result<Self> {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(false);
        let template = spec
            .template
            .clone()
            .unwrap_or_else(|| DEFAULT_TEMPLATE.into());
        env.add_template_owned("template", template)
            .map_err(template_err("template"))?;
        if let Some(s) = &spec.system {
            env.add_template_owned("system", s.clone())
                .map_err(template_err("system"))?;
        }
        if let Some(t) = spec.few_shot.as_ref().and_then(|f| f.template.clone()) {
            env.add_template_owned("shot", t)
                .map_err(template_err("few_shot.template"))?;
        }
        Ok(Self {
            env,
            spec: spec.clone(),
            schemas,
            pool,
            retriever: None,
        })
    }

    /// Adds retrieved context: `{{ context }}` in templates, prepended to the user turn when no template uses it.
    pub fn with_retriever(mut self, retriever: &'p Retriever) -> Self {
        self.retriever = Some(retriever);
        self
    }

    fn context(&self, e: &Example, retrieved: Option<&str>) -> Result<Value> {
        let mut ctx: Map<String, Value> = e.record.clone();
        if let Some(text) = retrieved {
            ctx.insert("context".into(), Value::String(text.to_owned()));
        }
        ctx.insert("input".into(), Value::String(e.input.clone()));
        ctx.insert("id".into(), Value::String(e.id.clone()));
        if let (Some(s), Some(db)) = (&self.schemas, &e.db_id) {
            let schema = s.get(db).map_err(|err| Error::Template {
                which: "schema",
                message: format!("example {}: {err}", e.id),
            })?;
            ctx.insert("schema".into(), Value::String(schema.unwrap_or_default()));
        }
        if let Some(t) = &e.tools {
            ctx.insert(
                "tools_json".into(),
                Value::String(serde_json::to_string_pretty(t).unwrap_or_default()),
            );
        }
        Ok(Value::Object(ctx))
    }

    fn render(&self, name: &'static str, e: &Example, retrieved: Option<&str>) -> Result<String> {
        let t = self.env.get_template(name).map_err(template_err(name))?;
        let out = t
            .render(self.context(e, retrieved)?)
            .map_err(|err| Error::Template {
                which: name,
                message: format!("example {}: {err:#}", e.id),
            })?;
        Ok(out.trim().to_owned())
    }

    /// Whether the system prompt or the user template mentions `context`.
    fn uses_context(&self) -> bool {
        let mentions = |t: &Option<String>| t.as_deref().is_some_and(|t| t.contains("context"));
        mentions(&self.spec.template) || mentions(&self.spec.system)
    }

    /// The assistant turn of a shot: the target in the expected output format.
    fn shot_answer(&self, e: &Example) -> String {
        let target = e.target.as_ref().map(as_text).unwrap_or_default();
        match self.spec.output {
            OutputKind::Sql => format!("```sql\n{}\n```", target.trim()),
            OutputKind::Json => format!("```json\n{}\n```", target.trim()),
            _ => target,
        }
    }

    /// Builds the prompt of `e`.
    pub fn build(&self, e: &Example) -> Result<Prompt> {
        let retrieved = match self.retriever {
            Some(r) => Some(format_context(&r.retrieve(&e.input).map_err(|err| {
                Error::Template {
                    which: "retrieval",
                    message: format!("example {}: {err}", e.id),
                }
            })?)),
            None => None,
        };
        let retrieved = retrieved.as_deref();
        let mut messages = Vec::new();
        if self.spec.system.is_some() {
            messages
                .push(json!({"role": "system", "content": self.render("system", e, retrieved)?}));
        }
        let mut shot_ids = Vec::new();
        if let (Some(fs), Some(pool)) = (&self.spec.few_shot, self.pool) {
            let which = if fs.template.is_some() {
                "shot"
            } else {
                "template"
            };
            let shots =
                pool.select(e, fs.k, fs.select, fs.seed)
                    .map_err(|err| Error::Template {
                        which: "few_shot",
                        message: format!("example {}: {err}", e.id),
                    })?;
            for shot in shots {
                messages.push(json!({"role": "user", "content": self.render(which, shot, None)?}));
                messages.push(json!({"role": "assistant", "content": self.shot_answer(shot)}));
                shot_ids.push(shot.id.clone());
            }
        }
        let mut user = self.render("template", e, retrieved)?;
        if let Some(text) = retrieved.filter(|_| !self.uses_context()) {
            user = format!("Use this context if it helps:\n{text}\n\n{user}");
        }
        if self.spec.chain_of_thought {
            user.push_str("\n\n");
            user.push_str(cot_instruction(self.spec.output));
        }
        messages.push(json!({"role": "user", "content": user}));
        Ok(Prompt {
            messages,
            tools: e
                .tools
                .as_ref()
                .map(|t| t.iter().map(openai_tool).collect()),
            shot_ids,
            json_schema: self.spec.json_schema.clone(),
        })
    }
}

/// A BFCL function doc as an OpenAI tool: wrapped in `{"type": "function", "function": ...}`, with BFCL's
/// Python type names (`dict`, `float`, `tuple`, `any`) mapped to JSON-schema ones.
pub fn openai_tool(doc: &Value) -> Value {
    if doc.get("type").and_then(Value::as_str) == Some("function") && doc.get("function").is_some()
    {
        return doc.clone();
    }
    let mut f = doc.clone();
    if let Some(p) = f.get_mut("parameters") {
        fix_types(p);
    }
    json!({"type": "function", "function": f})
}

fn fix_types(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(t)) = m.get_mut("type") {
                let fixed = match t.as_str() {
                    "dict" => "object",
                    "float" => "number",
                    "tuple" => "array",
                    "any" => "string",
                    _ => return fix_children(m),
                };
                *t = fixed.to_owned();
            }
            fix_children(m);
        }
        Value::Array(a) => a.iter_mut().for_each(fix_types),
        _ => {}
    }
}

fn fix_children(m: &mut Map<String, Value>) {
    // A string child (the `type` itself, a description) is left alone by `fix_types`.
    m.values_mut().for_each(fix_types);
}
