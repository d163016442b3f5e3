//! A tiny text-to-SQL task for tests — a real SQLite database, 40 questions and an eval task file — and a ladder
//! over it on a tiny random model, all written into a folder.

use std::path::{Path, PathBuf};

use crate::{write_tiny_gguf, TinySpec};

/// Writes the database (`databases/shop/shop.sqlite`), the questions (`questions.jsonl`) and the eval task
/// (`task.toml`, named `tiny-sql`, metric `sql_execution`) into `dir`; returns the task file.
pub fn write_tiny_sql_task(dir: &Path) -> PathBuf {
    let db_dir = dir.join("databases/shop");
    std::fs::create_dir_all(&db_dir).unwrap();
    let db = rusqlite::Connection::open(db_dir.join("shop.sqlite")).unwrap();
    db.execute_batch(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, city TEXT);
         INSERT INTO users VALUES (1, 'Kim', 'Seoul'), (2, 'Lee', 'Busan'), (3, 'Park', 'Seoul');
         CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER, amount REAL);
         INSERT INTO orders VALUES (1, 1, 10.0), (2, 1, 5.5), (3, 3, 7.0);",
    )
    .unwrap();
    drop(db);
    let mut lines = String::new();
    for i in 0..40 {
        let (q, sql) = match i % 4 {
            0 => (
                format!("How many users live in city number {i}?"),
                "SELECT count(*) FROM users",
            ),
            1 => (
                format!("List user names, variant {i}."),
                "SELECT name FROM users",
            ),
            2 => (
                format!("Total order amount, question {i}?"),
                "SELECT sum(amount) FROM orders",
            ),
            _ => (
                format!("서울 사용자 이름 {i}"),
                "SELECT name FROM users WHERE city = 'Seoul'",
            ),
        };
        lines.push_str(
            &serde_json::json!({"id": format!("q{i}"), "db_id": "shop", "question": q, "query": sql})
                .to_string(),
        );
        lines.push('\n');
    }
    std::fs::write(dir.join("questions.jsonl"), lines).unwrap();
    let task = dir.join("task.toml");
    std::fs::write(
        &task,
        r#"name = "tiny-sql"
metrics = ["sql_execution", "latency"]
[dataset]
path = "questions.jsonl"
input = "question"
target = "query"
id = "id"
db_id = "db_id"
db_dir = "databases"
[prompt]
output = "sql"
template = "Schema:\n{{ schema }}\n\nQuestion: {{ input }}"
[generation]
max_tokens = 6
temperature = 0.0
"#,
    )
    .unwrap();
    task
}

/// Writes the tiny model (`tiny.gguf`), the task of [`write_tiny_sql_task`] and a ladder file with every rung into
/// `dir`; returns the ladder file. `extra` is appended to the ladder file.
pub fn write_tiny_sql_ladder(dir: &Path, extra: &str) -> PathBuf {
    write_tiny_gguf(&dir.join("tiny.gguf"), &TinySpec::llama()).unwrap();
    write_tiny_sql_task(dir);
    let ladder = dir.join("ladder.toml");
    std::fs::write(
        &ladder,
        format!(
            r#"name = "tiny"
task = "task.toml"
model = "tiny.gguf"
rungs = ["reference", "baseline", "prompting", "retrieval", "verification", "lora", "full"]
[reference]
model = "tiny.gguf"
[target]
metric = 0.9
[budget]
preset = "full"
validation_limit = 3
test_limit = 4
[train]
max_steps = 2
eval_every = 1
max_seq_len = 512
rank = 4
batch_size = 2
{extra}"#
        ),
    )
    .unwrap();
    ladder
}
