//! `retrieve`: searches a `tuneup rag` index (embedded SQLite by name under `$TUNEUP_HOME/rag`, a `.db` file,
//! or a `postgres://` store) and returns the best chunks with their sources.

use std::path::PathBuf;

use serde_json::Value;
use tuneup_retrieval::embed::Embedder;
use tuneup_retrieval::search::{format_context, Mode, Retriever};
use tuneup_retrieval::store;

use super::{string_arg, Builtin, Run, ToolSpec};
use crate::config::{AgentConfig, RetrieveConfig};
use crate::error::ToolError;

/// The index and embedder of one tool.
pub struct Retrieve {
    retriever: Retriever,
}

impl std::fmt::Debug for Retrieve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retrieve")
            .field("index", &self.retriever.store.location())
            .finish()
    }
}

/// A `retrieve` tool.
pub type RetrieveTool = Builtin<Retrieve>;

impl RetrieveTool {
    /// Opens the index of `config` and loads its embedder (pulling a built-in one when missing).
    pub fn open(
        mut spec: ToolSpec,
        config: &RetrieveConfig,
        agent: &AgentConfig,
    ) -> Result<Self, String> {
        let location = match &config.store {
            Some(s) if store::postgres::is_postgres_url(s) => PathBuf::from(s),
            Some(s) => agent.resolve_path(s),
            None => tuneup_hub::Cache::from_env()
                .map_err(|e| e.to_string())?
                .root()
                .join("rag"),
        };
        let mode: Mode = config.mode.parse().map_err(|e| format!("{e}"))?;
        let store = store::open_index(&location, &config.index).map_err(|e| e.to_string())?;
        let embedder = Embedder::from_spec(&config.embedder, &mut tuneup_hub::NoProgress)
            .map_err(|e| e.to_string())?;
        let retriever =
            Retriever::new(store, embedder, config.k, mode).map_err(|e| e.to_string())?;
        if spec.description.is_empty() {
            spec.description =
                "Search the document index and get the most relevant passages with their sources."
                    .into();
        }
        Ok(Builtin {
            spec,
            runner: Retrieve { retriever },
        })
    }
}

impl Run for Retrieve {
    fn run(&mut self, args: &Value) -> Result<String, ToolError> {
        let query = string_arg(args, "query")?;
        let hits = self
            .retriever
            .retrieve(query)
            .map_err(|e| ToolError::Failed(format!("search failed: {e}")))?;
        if hits.is_empty() {
            return Ok("no results".into());
        }
        Ok(format_context(&hits))
    }
}
