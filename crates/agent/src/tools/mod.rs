//! The built-in tools: `fixed`, `http_get`, `sql` and `retrieve`. Each is a [`Run`] wrapped in a
//! [`Builtin`] that carries its name, description and parameter schema.

pub mod fixed;
pub mod http;
pub mod retrieve;
pub mod sql;

use serde_json::Value;

use crate::error::ToolError;
use crate::tool::Tool;

/// What the model sees of a tool.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    /// Function name.
    pub name: String,
    /// Description.
    pub description: String,
    /// JSON schema of the arguments.
    pub parameters: Value,
}

/// The work of a tool, given arguments that passed its schema.
pub trait Run {
    /// Runs on `args`; the text goes back to the model.
    fn run(&mut self, args: &Value) -> Result<String, ToolError>;
}

impl<F: FnMut(&Value) -> Result<String, ToolError>> Run for F {
    fn run(&mut self, args: &Value) -> Result<String, ToolError> {
        self(args)
    }
}

/// A [`Tool`] made of a [`ToolSpec`] and a [`Run`].
#[derive(Debug)]
pub struct Builtin<R> {
    /// Name, description, parameters.
    pub spec: ToolSpec,
    /// The work.
    pub runner: R,
}

impl<R: Run> Tool for Builtin<R> {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn description(&self) -> &str {
        &self.spec.description
    }

    fn parameters(&self) -> &Value {
        &self.spec.parameters
    }

    fn call(&mut self, args: &Value) -> Result<String, ToolError> {
        self.runner.run(args)
    }
}

/// An argument as text: strings as they are, other values as JSON.
pub fn arg_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The string argument `name`, or an error naming it.
pub fn string_arg<'a>(args: &'a Value, name: &str) -> Result<&'a str, ToolError> {
    args.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| ToolError::Failed(format!("missing string argument '{name}'")))
}
