//! A configuration the ladder measures: the task's own settings plus the knobs the rungs turn (few-shot, chain
//! of thought, schema rendering, constrained JSON, retrieval, verification, trained weights).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tuneup_eval_runner::task::{FewShot, OutputKind, SchemaStyle, Selection, Task, Verify};

use crate::config::LadderConfig;
use crate::split::Splits;

/// The settings a rung changes, on top of the task file's own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    /// A system (role) prompt replacing the task's (none: the task's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Few-shot examples from the train split (0 = zero-shot).
    #[serde(default)]
    pub shots: usize,
    /// How they are chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<Selection>,
    /// Shots as question → answer pairs without the task's template (so without a schema per shot, as
    /// DAIL-SQL's question-SQL pairs): the prompt carries the schema once, for the question asked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub compact_shots: bool,
    /// Step-by-step reasoning before the answer.
    #[serde(default)]
    pub chain_of_thought: bool,
    /// SQL schema rendering: `ddl`, `ddl_rows` or `ddl_values` (none: the task's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_style: Option<SchemaStyle>,
    /// Grammar-constrained JSON answers (`{"query": …, "explanation": …}` for SQL).
    #[serde(default)]
    pub constrained_json: bool,
    /// Context from the ladder's `[retrieval]` index.
    #[serde(default)]
    pub retrieval: bool,
    /// Candidates sampled and voted on (0 or 1 = one answer).
    #[serde(default)]
    pub candidates: usize,
    /// Execution-feedback repair rounds (SQL).
    #[serde(default)]
    pub repair_rounds: usize,
    /// A trained adapter (PEFT folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<PathBuf>,
    /// Trained weights replacing the base model (a full fine-tuning's model folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<PathBuf>,
}

/// The JSON shape of a constrained SQL answer, as the seed's example has it.
pub fn sql_json_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {"query": {"type": "string"}, "explanation": {"type": "string"}},
        "required": ["query", "explanation"],
        "additionalProperties": false
    })
}

/// The default role prompt per output kind, for tasks that have none.
pub fn default_role(output: OutputKind) -> &'static str {
    match output {
        OutputKind::Sql => {
            "You are an expert SQLite developer. Answer with one SQLite query in a ```sql code block and nothing else."
        }
        OutputKind::Code => {
            "You are an expert programmer. Answer with the complete function in one fenced code block."
        }
        OutputKind::ToolCalls => {
            "You are a precise assistant that calls functions. Call a function only when it answers the request, with exactly the arguments it needs."
        }
        OutputKind::Json => "You answer with one JSON value and nothing else.",
        OutputKind::Text => "You are a helpful, precise assistant. Answer briefly.",
    }
}

impl Variant {
    /// A short human description (`3-shot similar + CoT + repair×2 + LoRA`).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.system.is_some() {
            parts.push("role prompt".to_owned());
        }
        if self.shots > 0 {
            let how = match self.select.unwrap_or_default() {
                Selection::Fixed => "fixed",
                Selection::Random => "random",
                Selection::Similar => "similar",
                Selection::Embedding => "embedding",
            };
            let pairs = if self.compact_shots {
                " (Q→A pairs)"
            } else {
                ""
            };
            parts.push(format!("{}-shot {how}{pairs}", self.shots));
        }
        if self.chain_of_thought {
            parts.push("CoT".into());
        }
        if let Some(s) = self.schema_style {
            parts.push(
                match s {
                    SchemaStyle::Ddl => "schema DDL",
                    SchemaStyle::DdlRows => "schema + sample rows",
                    SchemaStyle::DdlValues => "schema + column values",
                }
                .into(),
            );
        }
        if self.constrained_json {
            parts.push("JSON (constrained)".into());
        }
        if self.retrieval {
            parts.push("retrieval".into());
        }
        if self.candidates > 1 {
            parts.push(format!("vote of {}", self.candidates));
        }
        if self.repair_rounds > 0 {
            parts.push(format!("repair×{}", self.repair_rounds));
        }
        if self.adapter.is_some() {
            parts.push("LoRA".into());
        }
        if self.model.is_some() {
            parts.push("full fine-tune".into());
        }
        if parts.is_empty() {
            "zero-shot".into()
        } else {
            parts.join(" + ")
        }
    }

    /// The prompt-side settings alone (what training data is rendered with): no shots, no chain of thought,
    /// no constrained JSON, no verification, no weights.
    pub fn training_prompt(&self) -> Variant {
        Variant {
            system: self.system.clone(),
            schema_style: self.schema_style,
            retrieval: self.retrieval,
            ..Variant::default()
        }
    }

    /// The model spec this variant runs (the trained folder, or the ladder's model).
    pub fn model_spec(&self, base: &str) -> String {
        self.model
            .as_ref()
            .map_or_else(|| base.to_owned(), |p| p.display().to_string())
    }

    /// The eval task for this variant on the examples of `data` (a split file), at most `limit` of them.
    pub fn task(
        &self,
        base: &Task,
        ladder: &LadderConfig,
        splits: &Splits,
        data: &std::path::Path,
        limit: Option<usize>,
    ) -> Task {
        let mut t = base.clone();
        t.dataset.path = data.to_path_buf();
        t.dataset.join = None;
        t.dataset.limit = limit;
        t.dataset.seed = None;
        if let Some(s) = &self.system {
            t.prompt.system = Some(s.clone());
        }
        t.prompt.few_shot = (self.shots > 0).then(|| FewShot {
            k: self.shots,
            select: self.select.unwrap_or_default(),
            path: splits.train.clone(),
            seed: 0,
            template: self.compact_shots.then(|| COMPACT_SHOT_TEMPLATE.to_owned()),
            embedder: None,
        });
        t.prompt.chain_of_thought = self.chain_of_thought;
        t.prompt.retrieval = if self.retrieval {
            ladder.retrieval.clone()
        } else {
            None
        };
        t.model.adapter = self.adapter.clone();
        apply_inference_settings(self, &mut t);
        t
    }
}

/// The user turn of a compact shot: the question alone.
pub const COMPACT_SHOT_TEMPLATE: &str = "Question: {{ input }}";

/// Temperature of the sampled candidates (candidate 0 stays greedy).
pub const CANDIDATE_TEMPERATURE: f32 = 0.7;

/// Writes the variant's inference-time settings (schema style, constrained JSON, verification) into `t`.
fn apply_inference_settings(v: &Variant, t: &mut Task) {
    if let Some(s) = v.schema_style {
        t.prompt.schema_style = s;
    }
    if v.constrained_json && t.prompt.output == OutputKind::Sql {
        t.prompt.json_schema = Some(sql_json_schema());
        t.prompt.answer_field = Some("query".into());
        t.generation.constrained = true;
        let system = t.prompt.system.clone().unwrap_or_default();
        t.prompt.system = Some(format!(
            "{}\nAnswer with a JSON object and nothing else: {{\"query\": \"<one SQLite query>\", \"explanation\": \"<one short sentence>\"}}",
            system.replace("in a ```sql code block", "").trim_end()
        ));
        t.generation.stop.retain(|s| !s.contains("```"));
    }
    t.verify = (v.candidates > 1 || v.repair_rounds > 0).then(|| Verify {
        candidates: v.candidates.max(1),
        temperature: CANDIDATE_TEMPERATURE,
        repair_rounds: v.repair_rounds,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_name_every_knob() {
        assert_eq!(Variant::default().describe(), "zero-shot");
        let v = Variant {
            shots: 3,
            select: Some(Selection::Similar),
            chain_of_thought: true,
            repair_rounds: 2,
            adapter: Some("a".into()),
            ..Variant::default()
        };
        assert_eq!(v.describe(), "3-shot similar + CoT + repair×2 + LoRA");
        let compact = Variant {
            compact_shots: true,
            ..v.clone()
        };
        assert!(compact
            .describe()
            .starts_with("3-shot similar (Q→A pairs) + CoT"));
        let t = v.training_prompt();
        assert_eq!(t.shots, 0);
        assert!(!t.chain_of_thought && t.adapter.is_none() && t.repair_rounds == 0);
    }
}
