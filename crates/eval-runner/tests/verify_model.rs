//! The in-process backend with a tiny random model the test writes: grammar-constrained JSON replies always parse
//! and conform to `prompt.json_schema` (a random model writes garbage otherwise), and a `[verify]` run with
//! candidates and repair rounds goes through the whole runner on a real SQLite database.

use std::path::Path;

use serde_json::Value;
use tuneup_eval_runner::{
    load_examples, run_examples, InProcess, PromptBuilder, RunOptions, RunResult, Schemas, Task,
    Verdict,
};
use tuneup_generate::ChatModel;
use tuneup_models::{LoadOptions, ModelFiles};
use tuneup_test_utils::{write_tiny_gguf, TinySpec};

fn tiny(dir: &Path) -> ChatModel {
    let path = dir.join("tiny.gguf");
    write_tiny_gguf(&path, &TinySpec::llama()).unwrap();
    ChatModel::load(&ModelFiles::Gguf(path), &LoadOptions::default()).unwrap()
}

fn sql_task(dir: &Path, extra: &str) -> Task {
    let conn = rusqlite::Connection::open(dir.join("shop.sqlite")).unwrap();
    conn.execute_batch(
        "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO item VALUES (1, 'pen'), (2, 'ink');",
    )
    .unwrap();
    let lines: String = (0..3)
        .map(|i| {
            format!(
                "{}\n",
                serde_json::json!({"id": format!("q{i}"), "question": format!("item {i}?"),
                                   "query": "SELECT name FROM item", "db_id": "shop"})
            )
        })
        .collect();
    std::fs::write(dir.join("test.jsonl"), lines).unwrap();
    let toml = format!(
        r#"metrics = ["sql_execution", "json_schema"]
[dataset]
path = "test.jsonl"
input = "question"
target = "query"
id = "id"
db_id = "db_id"
db_dir = "."
[prompt]
output = "sql"
template = "{{{{ schema }}}}\n{{{{ input }}}}"
answer_field = "query"
json_schema = {{type = "object", properties = {{query = {{type = "string", maxLength = 24}}, explanation = {{type = "string", maxLength = 12}}}}, required = ["query", "explanation"], additionalProperties = false}}
[generation]
max_tokens = 200
constrained = true
{extra}"#
    );
    Task::from_toml(&toml, dir, &dir.join("t.toml")).unwrap()
}

fn run(task: &Task, model: &ChatModel) -> RunResult {
    let examples = load_examples(&task.dataset).unwrap();
    let builder = PromptBuilder::new(&task.prompt, Schemas::for_task(task).unwrap(), None).unwrap();
    let mut backend = InProcess::new("tiny", model);
    run_examples(
        task,
        &examples,
        &builder,
        &mut backend,
        &RunOptions::default(),
    )
    .unwrap()
}

fn check_reply(raw: &str) {
    let v: Value = serde_json::from_str(raw).unwrap_or_else(|e| panic!("{e}: {raw:?}"));
    let o = v.as_object().expect("an object");
    assert_eq!(o.len(), 2, "{raw}");
    assert!(o["query"].as_str().unwrap().chars().count() <= 24, "{raw}");
    assert!(
        o["explanation"].as_str().unwrap().chars().count() <= 12,
        "{raw}"
    );
}

#[test]
fn constrained_replies_of_a_random_model_conform_to_the_schema_with_verification() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny(dir.path());
    let task = sql_task(
        dir.path(),
        "[verify]\ncandidates = 3\ntemperature = 1.0\nrepair_rounds = 1\n",
    );
    let r = run(&task, &model);
    assert_eq!(r.records.len(), 3);
    for rec in &r.records {
        assert_ne!(rec.verdict, Verdict::Error, "{rec:?}");
        check_reply(rec.raw_output.as_deref().unwrap());
        assert_eq!(rec.finish_reason.as_deref(), Some("stop"), "{rec:?}");
        assert_eq!(rec.scores["json_schema"], 1.0, "{rec:?}");
        assert_eq!(rec.candidates, 3);
        // Random queries fail on the database: each of the 3 candidates may have used its one repair round.
        assert!(rec.repairs <= 3);
        // Tokens and time cover all requests: at least one prompt per candidate.
        assert!(rec.completion_tokens >= 3, "{rec:?}");
        assert!(
            rec.prompt_tokens >= 3 * 5 && rec.total_ms.unwrap() > 0.0,
            "{rec:?}"
        );
    }
    assert_eq!(r.summary.mean_candidates, 3.0);
}

#[test]
fn unconstrained_random_replies_are_not_json() {
    // The control: the same model without the grammar writes no valid reply in the same budget.
    let dir = tempfile::tempdir().unwrap();
    let model = tiny(dir.path());
    let mut task = sql_task(dir.path(), "");
    task.generation.constrained = false;
    task.generation.max_tokens = 40;
    let r = run(&task, &model);
    assert!(r.records.iter().all(|rec| rec.scores["json_schema"] == 0.0));
}
