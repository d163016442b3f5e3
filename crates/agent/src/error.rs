//! Errors of the agent: configuration, tool set-up and the model.

use std::path::PathBuf;

/// Why an agent could not be configured or run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The agent TOML could not be read.
    #[error("reading agent config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The agent TOML is malformed or a field has a wrong value.
    #[error("agent config {path}: {message}")]
    Config {
        /// The file (or `<string>` when parsed from text).
        path: PathBuf,
        /// What is wrong, naming the field.
        message: String,
    },
    /// A declared tool could not be set up (database missing, bad schema, ...).
    #[error("tool '{tool}': {message}")]
    Tool {
        /// The tool's name.
        tool: String,
        /// What went wrong.
        message: String,
    },
    /// Rendering the prompt or generating failed.
    #[error(transparent)]
    Model(#[from] tuneup_generate::Error),
}

/// Why one tool call failed; the message goes back to the model as the tool's result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// No tool of that name is declared.
    #[error("unknown tool '{name}'; available tools: {available}")]
    UnknownTool {
        /// The name the model used.
        name: String,
        /// The declared names, comma-separated.
        available: String,
    },
    /// The arguments are not JSON or do not match the tool's parameter schema.
    #[error("invalid arguments for '{tool}': {message}")]
    InvalidArguments {
        /// The tool.
        tool: String,
        /// What is wrong.
        message: String,
    },
    /// The call was refused by a guard (host not allow-listed, write statement, ...).
    #[error("refused: {0}")]
    Refused(String),
    /// The tool ran and failed (query error, HTTP error, ...).
    #[error("{0}")]
    Failed(String),
}

/// Result of agent operations.
pub type Result<T, E = AgentError> = std::result::Result<T, E>;
