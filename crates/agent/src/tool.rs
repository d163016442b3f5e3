//! The [`Tool`] trait and the [`Toolbox`] that checks arguments against each tool's JSON schema.

use serde_json::{json, Value};
use tuneup_eval::json_check::SchemaChecker;

use crate::config::{AgentConfig, ToolConfig, ToolKind};
use crate::error::{AgentError, Result, ToolError};
use crate::tools;

/// Something the model can call.
pub trait Tool {
    /// Function name.
    fn name(&self) -> &str;
    /// What it does, for the model.
    fn description(&self) -> &str;
    /// JSON schema of the arguments.
    fn parameters(&self) -> &Value;
    /// Runs the tool on arguments that passed the schema; the text goes back to the model.
    fn call(&mut self, args: &Value) -> Result<String, ToolError>;
}

/// The tools of one agent with their compiled parameter schemas.
pub struct Toolbox {
    tools: Vec<(Box<dyn Tool>, SchemaChecker)>,
}

impl std::fmt::Debug for Toolbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Toolbox {
    /// Tools built from their declarations (opens databases and indexes).
    pub fn from_config(config: &AgentConfig) -> Result<Self> {
        let mut tools = Vec::with_capacity(config.tools.len());
        for t in &config.tools {
            tools.push(build(config, t)?);
        }
        Self::new(tools)
    }

    /// A toolbox of ready tools; errors when a parameter schema is not a valid JSON schema.
    pub fn new(tools: Vec<Box<dyn Tool>>) -> Result<Self> {
        let tools = tools
            .into_iter()
            .map(|t| {
                let checker = SchemaChecker::new(t.parameters()).map_err(|e| AgentError::Tool {
                    tool: t.name().to_string(),
                    message: format!("parameters are not a valid JSON schema: {e}"),
                })?;
                Ok((t, checker))
            })
            .collect::<Result<_>>()?;
        Ok(Self { tools })
    }

    /// Whether there are no tools.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// The tool names, in declaration order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tools.iter().map(|(t, _)| t.name())
    }

    /// Whether a tool is called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.names().any(|n| n == name)
    }

    /// The tools in OpenAI's `tools` shape, for the chat template (or a server request).
    pub fn openai_tools(&self) -> Vec<Value> {
        self.tools
            .iter()
            .map(|(t, _)| {
                json!({"type": "function", "function": {
                    "name": t.name(), "description": t.description(), "parameters": t.parameters()}})
            })
            .collect()
    }

    /// Checks `arguments` (a JSON object as text) against the tool's schema and runs it.
    pub fn call(&mut self, name: &str, arguments: &str) -> Result<String, ToolError> {
        let available = self.names().collect::<Vec<_>>().join(", ");
        let Some((tool, checker)) = self.tools.iter_mut().find(|(t, _)| t.name() == name) else {
            return Err(ToolError::UnknownTool {
                name: name.to_string(),
                available,
            });
        };
        let invalid = |message: String| ToolError::InvalidArguments {
            tool: name.to_string(),
            message,
        };
        let args: Value = serde_json::from_str(arguments)
            .map_err(|e| invalid(format!("not JSON ({e}): {arguments}")))?;
        if !args.is_object() {
            return Err(invalid(format!("expected a JSON object, got {args}")));
        }
        let violations = checker.violations(&args);
        if !violations.is_empty() {
            let list: Vec<String> = violations
                .iter()
                .map(|v| match v.instance_path.as_str() {
                    "" => v.message.clone(),
                    at => format!("{at}: {}", v.message),
                })
                .collect();
            return Err(invalid(list.join("; ")));
        }
        tool.call(&args)
    }
}

fn build(config: &AgentConfig, t: &ToolConfig) -> Result<Box<dyn Tool>> {
    let spec = tools::ToolSpec {
        name: t.name.clone(),
        description: t.description.clone().unwrap_or_default(),
        parameters: t.parameter_schema(),
    };
    let failed = |message: String| AgentError::Tool {
        tool: t.name.clone(),
        message,
    };
    Ok(match &t.kind {
        ToolKind::Fixed(f) => Box::new(tools::fixed::FixedTool::new(spec, f.clone())),
        ToolKind::HttpGet(h) => {
            Box::new(tools::http::HttpGetTool::new(spec, h.clone()).map_err(failed)?)
        }
        ToolKind::Sql(s) => Box::new(tools::sql::SqlTool::open(spec, s, config).map_err(failed)?),
        ToolKind::Retrieve(r) => {
            Box::new(tools::retrieve::RetrieveTool::open(spec, r, config).map_err(failed)?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::ToolSpec;

    fn echo(spec: ToolSpec) -> Box<dyn Tool> {
        let run = |args: &Value| -> Result<String, ToolError> { Ok(args.to_string()) };
        Box::new(crate::tools::Builtin { spec, runner: run })
    }

    fn toolbox() -> Toolbox {
        let spec = ToolSpec {
            name: "echo".into(),
            description: "Echoes".into(),
            parameters: json!({"type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
                "required": ["city"]}),
        };
        Toolbox::new(vec![echo(spec)]).unwrap()
    }

    #[test]
    fn valid_arguments_reach_the_tool() {
        let mut t = toolbox();
        assert_eq!(
            t.call("echo", r#"{"city": "Seoul", "days": 2}"#).unwrap(),
            r#"{"city":"Seoul","days":2}"#
        );
    }

    #[test]
    fn schema_violations_are_explained() {
        let mut t = toolbox();
        let e = t.call("echo", r#"{"days": 2}"#).unwrap_err().to_string();
        assert!(
            e.contains("invalid arguments for 'echo'") && e.contains("city"),
            "{e}"
        );
        let e = t.call("echo", r#"{"city": 3}"#).unwrap_err().to_string();
        assert!(e.contains("/city") && e.contains("string"), "{e}");
        let e = t
            .call("echo", r#"{"city": "a", "days": 0}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/days"), "{e}");
        let e = t.call("echo", "[1]").unwrap_err().to_string();
        assert!(e.contains("JSON object"), "{e}");
        let e = t.call("echo", "{city").unwrap_err().to_string();
        assert!(e.contains("not JSON"), "{e}");
    }

    #[test]
    fn unknown_tools_list_the_known_ones() {
        let e = toolbox().call("weather", "{}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown tool 'weather'; available tools: echo"
        );
    }

    #[test]
    fn bad_schema_is_a_setup_error() {
        let spec = ToolSpec {
            name: "x".into(),
            description: String::new(),
            parameters: json!({"type": "object", "properties": {"a": {"type": "strin"}}}),
        };
        let e = Toolbox::new(vec![echo(spec)]).unwrap_err();
        assert!(e.to_string().contains("tool 'x'"), "{e}");
    }
}
