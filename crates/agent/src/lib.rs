//! Tool-using agents on a local model: `tuneup agent agent.toml`.
//!
//! | module | what it does |
//! |---|---|
//! | [`config`] | the agent TOML: model, system prompt, memory window, step limit, generation, `[[tools]]` |
//! | [`tool`] | the [`Tool`] trait and the [`Toolbox`] that checks arguments against each JSON schema |
//! | [`tools`] | built-ins: `sql` (read-only SQLite/PostgreSQL), `http_get` (allow-listed hosts), `fixed`, `retrieve` |
//! | [`memory`] | the system message and a window of messages that never splits a tool call from its results |
//! | [`agent`] | the loop: model → tool calls → tool results → model, until an answer or `max_steps` |
//! | [`toolcall`] | finding tool calls in model output (Hermes tags, JSON fences, bare JSON); shared with the server |
//!
//! There is no shell tool.
//!
//! ```no_run
//! # fn run(model: &tuneup_generate::ChatModel) -> Result<(), tuneup_agent::AgentError> {
//! let config = tuneup_agent::AgentConfig::from_file("agent.toml".as_ref())?;
//! let tools = tuneup_agent::Toolbox::from_config(&config)?;
//! let mut agent = tuneup_agent::Agent::new(model, &config, tools)?;
//! let turn = agent.ask("서울 날씨 어때?", &mut |_| {})?;
//! println!("{}", turn.answer.unwrap_or_default());
//! # Ok(())
//! # }
//! ```

pub mod agent;
pub mod config;
pub mod error;
pub mod memory;
pub mod tool;
pub mod toolcall;
pub mod tools;

pub use agent::{Agent, Event, StopReason, Turn, Usage};
pub use config::AgentConfig;
pub use error::{AgentError, ToolError};
pub use memory::Memory;
pub use tool::{Tool, Toolbox};
