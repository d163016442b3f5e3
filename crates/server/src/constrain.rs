//! Grammar-constrained decoding for chat requests: `response_format` JSON and forced
//! tool calls (`tool_choice: "required"` or a named function) always parse and match
//! their schemas, because the tokens that would break them are never drawn.

use serde_json::{json, Value};
use tuneup_generate::{Grammar, GrammarCompiler, GrammarConstraint};

use crate::error::ApiError;
use crate::prompt::{ToolForce, ToolPlan};
use crate::types::ResponseFormat;

/// How the prompt asked the model to write tool calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolFormat {
    /// Qwen2.5 / Hermes: `<tool_call>\n{"name": …, "arguments": …}\n</tool_call>`.
    Tags,
    /// A bare JSON object `{"name": …, "arguments": …}` (templates without tags).
    Bare,
}

impl ToolFormat {
    /// The format a rendered chat template (or the Hermes instructions we added) asks for.
    pub fn of_prompt(template_or_instructions: &str) -> Self {
        if template_or_instructions.contains("<tool_call>") {
            ToolFormat::Tags
        } else {
            ToolFormat::Bare
        }
    }
}

/// The grammar a request needs, if any: forced tool calls win over a JSON response format.
pub fn request_grammar(
    plan: &ToolPlan,
    format: Option<&ResponseFormat>,
    tool_format: ToolFormat,
    parallel: bool,
) -> Option<Grammar> {
    match &plan.force {
        ToolForce::Any => {
            return Some(tool_call_grammar(
                &plan.tools,
                None,
                tool_format,
                parallel,
                true,
            ))
        }
        ToolForce::Named(name) => {
            return Some(tool_call_grammar(
                &plan.tools,
                Some(name),
                tool_format,
                false,
                true,
            ))
        }
        ToolForce::No => {}
    }
    match format? {
        ResponseFormat::Text => None,
        ResponseFormat::JsonObject => Some(Grammar::JsonSchema(json!({"type": "object"}))),
        ResponseFormat::JsonSchema { json_schema } => Some(Grammar::JsonSchema(
            json_schema.schema.clone().unwrap_or_else(|| json!({})),
        )),
    }
}

/// Compiles `grammar`; a bad `response_format` schema is the client's error (400),
/// while tool schemas llguidance cannot compile fall back to "any object" arguments.
pub fn compile(
    compiler: &GrammarCompiler,
    grammar: &Grammar,
    plan: &ToolPlan,
    tool_format: ToolFormat,
    parallel: bool,
) -> Result<GrammarConstraint, ApiError> {
    match compiler.compile(grammar) {
        Ok(c) => Ok(c),
        Err(e) if plan.force != ToolForce::No => {
            tracing::warn!(
                "tool parameter schemas do not compile ({e}); constraining the call shape only"
            );
            let (named, parallel) = match &plan.force {
                ToolForce::Named(n) => (Some(n), false),
                _ => (None, parallel),
            };
            let loose = tool_call_grammar(&plan.tools, named, tool_format, parallel, false);
            compiler
                .compile(&loose)
                .map_err(|e| ApiError::internal(format!("tool-call grammar: {e}")))
        }
        Err(e) => Err(ApiError::invalid_param(
            "response_format.json_schema.schema",
            format!("the JSON schema cannot be used for constrained decoding: {e}"),
        )),
    }
}

/// Calls of the declared tools (or of `only`), in `format`, one or (with `parallel`)
/// several. With `typed`, arguments must match each tool's parameter schema (unknown
/// keywords ignored); without, any object.
fn tool_call_grammar(
    tools: &[Value],
    only: Option<&String>,
    format: ToolFormat,
    parallel: bool,
    typed: bool,
) -> Grammar {
    let variants: Vec<Value> = tools
        .iter()
        .filter_map(|t| {
            let f = t.get("function")?;
            let name = f.get("name")?.as_str()?;
            if only.is_some_and(|o| o != name) {
                return None;
            }
            let params = match f.get("parameters") {
                Some(p) if typed && p.is_object() => lenient(p.clone()),
                _ => json!({"type": "object"}),
            };
            Some(json!({
                "type": "object",
                "properties": {"name": {"const": name}, "arguments": params},
                "required": ["name", "arguments"],
                "additionalProperties": false,
            }))
        })
        .collect();
    let call = lenient(json!({"anyOf": variants}));
    let rule = match format {
        ToolFormat::Tags => "call: \"<tool_call>\\n\" @call \"\\n</tool_call>\"",
        ToolFormat::Bare => "call: @call",
    };
    let start = if parallel {
        "start: call (\"\\n\" call)*"
    } else {
        "start: call"
    };
    Grammar::Lark {
        grammar: format!("{start}\n{rule}\n"),
        schemas: vec![("call".into(), call)],
    }
}

/// `schema` with llguidance's lenient mode (keywords it does not know are ignored
/// rather than refused: clients send schemas written for other tools) and compact JSON.
fn lenient(mut schema: Value) -> Value {
    if let Value::Object(map) = &mut schema {
        map.insert(
            "x-guidance".into(),
            json!({"lenient": true, "whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "}),
        );
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weather() -> Value {
        json!({"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})
    }

    #[test]
    fn forced_calls_win_over_a_response_format() {
        let plan = ToolPlan {
            tools: vec![weather()],
            force: ToolForce::Named("get_weather".into()),
            ..ToolPlan::default()
        };
        let g = request_grammar(
            &plan,
            Some(&ResponseFormat::JsonObject),
            ToolFormat::Tags,
            true,
        )
        .unwrap();
        let Grammar::Lark { grammar, schemas } = g else {
            panic!("{g:?}")
        };
        assert!(
            grammar.contains("start: call\n") && grammar.contains("<tool_call>"),
            "{grammar}"
        );
        assert_eq!(
            schemas[0].1["anyOf"][0]["properties"]["name"]["const"],
            "get_weather"
        );
    }

    #[test]
    fn no_grammar_for_auto_tools_and_text() {
        let plan = ToolPlan {
            tools: vec![weather()],
            ..ToolPlan::default()
        };
        assert!(request_grammar(&plan, None, ToolFormat::Tags, true).is_none());
        assert!(
            request_grammar(&plan, Some(&ResponseFormat::Text), ToolFormat::Bare, true).is_none()
        );
    }

    #[test]
    fn tool_format_follows_the_prompt() {
        assert_eq!(
            ToolFormat::of_prompt("... <tool_call></tool_call> ..."),
            ToolFormat::Tags
        );
        assert_eq!(
            ToolFormat::of_prompt("{{ tools | tojson }}"),
            ToolFormat::Bare
        );
    }
}
