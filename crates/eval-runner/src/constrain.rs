//! Grammar-constrained JSON replies (`generation.constrained` with `prompt.json_schema`): the in-process
//! backend masks every token that would leave the schema ([`JsonConstraints`]); an endpoint is asked for the
//! same with OpenAI's `response_format` ([`response_format`]).

use serde_json::{json, Value};
use tuneup_generate::{ChatModel, Grammar, GrammarCompiler, GrammarConstraint};

/// The grammar compiler of one backend, built on the first constrained request (it indexes the vocabulary
/// once, for the whole task). Each generation needs its own [`GrammarConstraint`] (it holds the parser state),
/// so only that step runs per request.
#[derive(Debug, Default)]
pub struct JsonConstraints {
    compiler: Option<GrammarCompiler>,
}

impl JsonConstraints {
    /// Uses a compiler that already indexed the model's vocabulary (a server's).
    pub fn with_compiler(compiler: GrammarCompiler) -> Self {
        Self {
            compiler: Some(compiler),
        }
    }

    /// A fresh constraint for one reply that conforms to `schema`.
    pub fn constraint(
        &mut self,
        model: &ChatModel,
        schema: &Value,
    ) -> Result<GrammarConstraint, String> {
        let compiler =
            match &mut self.compiler {
                Some(c) => c,
                none => none.insert(GrammarCompiler::new(&model.tokenizer).map_err(|e| {
                    format!("indexing the vocabulary for constrained decoding: {e}")
                })?),
            };
        compiler
            .compile(&Grammar::JsonSchema(schema.clone()))
            .map_err(|e| format!("prompt.json_schema cannot be used for constrained decoding: {e}"))
    }
}

/// OpenAI's `response_format` asking for a reply that conforms to `schema` (`strict`).
pub fn response_format(schema: &Value) -> Value {
    json!({
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": true},
    })
}
