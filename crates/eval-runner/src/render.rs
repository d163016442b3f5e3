//! The prompts of a task's examples without generating anything: what a fine-tuning run learns from, rendered
//! exactly as the evaluation will show them to the model.

use crate::dataset::Example;
use crate::error::Result;
use crate::prompt::Prompt;
use crate::runner::with_prepared;
use crate::task::{OutputKind, Task};

/// Every example of `task` with the prompt the evaluation would build for it (the same preparation as
/// [`crate::run_task`]: schemas, few-shot pool, retrieval).
pub fn prompts(task: &Task) -> Result<Vec<(Example, Prompt)>> {
    with_prepared(task, |examples, builder| {
        examples
            .iter()
            .map(|e| Ok((e.clone(), builder.build(e)?)))
            .collect()
    })
}

/// The reply a model should give for `target` in the task's answer format: SQL in a ```sql fence, code in a
/// fence of its language, anything else as written (JSON values compactly).
pub fn gold_reply(task: &Task, target: &serde_json::Value) -> String {
    let text = match target {
        serde_json::Value::String(s) => s.trim().to_owned(),
        v => v.to_string(),
    };
    match task.prompt.output {
        OutputKind::Sql => format!("```sql\n{text}\n```"),
        OutputKind::Code => {
            let lang = task.code.as_ref().map_or("python".to_owned(), |c| {
                format!("{:?}", c.language).to_lowercase()
            });
            format!("```{lang}\n{text}\n```")
        }
        _ => text,
    }
}
