//! The inference-time settings of a variant written into an eval task: schema rendering, grammar-constrained
//! JSON, and verification (candidates voted on, execution-feedback repair).

use tuneup_eval_runner::task::{OutputKind, Task, Verify};

use crate::variant::{sql_json_schema, Variant};

/// Temperature of the sampled candidates (candidate 0 stays greedy).
pub const CANDIDATE_TEMPERATURE: f32 = 0.7;

/// Writes the variant's schema style, constrained JSON and verification settings into `t`.
pub fn apply_inference_settings(v: &Variant, t: &mut Task) {
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
