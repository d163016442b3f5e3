//! One row of `examples.jsonl`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The outcome of one example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The primary (pass/fail) metric passed.
    Correct,
    /// The primary metric failed; `error_type` says how.
    Wrong,
    /// The primary metric is a score (BLEU, ROUGE); see `primary_score`.
    Scored,
    /// No answer could be judged (generation failed, the gold query failed, ...); `error_type` says why.
    Error,
}

/// Everything recorded about one example.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExampleRecord {
    /// Example id.
    pub id: String,
    /// Position in the data file.
    pub index: usize,
    /// Which completion of the example this is (0-based; several with `generation.samples`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sample: usize,
    /// Report category.
    pub category: Option<String>,
    /// The input field.
    pub input: String,
    /// The reference answer.
    pub target: Option<Value>,
    /// The prompt as the model saw it.
    pub prompt: String,
    /// Ids of the few-shot examples in the prompt.
    #[serde(default)]
    pub shots: Vec<String>,
    /// Raw model output (absent when generation failed).
    pub raw_output: Option<String>,
    /// The extracted answer (`null` when none).
    pub answer: Value,
    /// The verdict.
    pub verdict: Verdict,
    /// The primary metric's value for this example (0/1 for pass/fail metrics).
    pub primary_score: f64,
    /// Why the example failed (`unknown_column`, `wrong_function`, `generation_error`, ...).
    pub error_type: Option<String>,
    /// Details of the failure.
    pub error_message: Option<String>,
    /// Every metric's per-example value.
    pub scores: BTreeMap<String, f64>,
    /// Time to first token (ms) of the example's first request.
    pub ttft_ms: Option<f64>,
    /// Mean time per generated token after each request's first (ms).
    pub per_token_ms: Option<f64>,
    /// All requests of the example together (ms): with `[verify]`, every candidate and repair round.
    pub total_ms: Option<f64>,
    /// Prompt tokens, all requests.
    pub prompt_tokens: usize,
    /// Generated tokens, all requests.
    pub completion_tokens: usize,
    /// How the chosen reply ended: `stop`, `length` (the token limit), ...
    pub finish_reason: Option<String>,
    /// Candidate answers generated (`verify.candidates`; 1 without `[verify]`, 0 when none was generated).
    #[serde(default)]
    pub candidates: usize,
    /// SQL repair rounds used (`verify.repair_rounds`), all candidates together.
    #[serde(default)]
    pub repairs: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl ExampleRecord {
    /// `true` for a correct verdict (pass/fail metrics).
    pub fn is_correct(&self) -> bool {
        self.verdict == Verdict::Correct
    }
}
