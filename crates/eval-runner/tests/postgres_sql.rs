//! `sql_execution` with `dataset.db_url`: a task file scored through the real [`Scorer`] on a real PostgreSQL
//! server, with the databases loaded by `load_postgres` (what `tuneup eval load-postgres` runs). No model: the
//! predictions come from the data file.
//!
//! Start a server with `scripts/postgres.sh start DIR` and pass its URL in `TUNEUP_TEST_POSTGRES_URL`. Without it
//! the server tests print a note and pass, unless `TUNEUP_REQUIRE_POSTGRES=1`.

use std::path::Path;

use tuneup_eval_runner::pg_load::{create_reader_role, load_postgres};
use tuneup_eval_runner::{extract, load_examples, OutputKind, Scorer, Task};

use tuneup_test_utils::postgres_test_url as url;

const SHOP: &str = "tuneup_test_runner_shop";

/// `{dir}/dbs/{SHOP}/{SHOP}.sqlite` with a three-row table; returns the `dbs` folder.
fn shop_databases(dir: &Path) -> std::path::PathBuf {
    let db_dir = dir.join("dbs");
    std::fs::create_dir_all(db_dir.join(SHOP)).unwrap();
    let db = rusqlite::Connection::open(db_dir.join(SHOP).join(format!("{SHOP}.sqlite"))).unwrap();
    db.execute_batch(
        "CREATE TABLE Items(id INTEGER, name TEXT, price REAL);
         INSERT INTO Items VALUES (1, 'pen', 1.5), (2, 'book', 12), (3, 'lamp', 30.25);",
    )
    .unwrap();
    db_dir
}

/// A task over `examples.jsonl` in `dir` (predictions in the `pred` field) judged on `db_url`.
fn task(dir: &Path, db_url: &str, examples: &[serde_json::Value]) -> Task {
    task_with(dir, db_url, "", examples)
}

/// [`task`] with `extra` lines in its `[dataset]` section.
fn task_with(dir: &Path, db_url: &str, extra: &str, examples: &[serde_json::Value]) -> Task {
    let lines: Vec<String> = examples.iter().map(|e| e.to_string()).collect();
    std::fs::write(dir.join("examples.jsonl"), lines.join("\n")).unwrap();
    let toml = format!(
        r#"
metrics = ["sql_execution"]
sql_timeout_s = 2.0
[dataset]
path = "examples.jsonl"
input = "pred"
target = "query"
id = "id"
db_id = "db_id"
db_url = "{db_url}"
{extra}
[prompt]
output = "sql"
"#
    );
    Task::from_toml(&toml, dir, &dir.join("task.toml")).unwrap()
}

/// Scores every example with its `pred` field as the model output: `(id, error_type, unjudgeable, message)`.
fn score(task: &Task) -> Vec<(String, Option<String>, bool, String)> {
    let mut scorer = Scorer::new(task).unwrap();
    load_examples(&task.dataset)
        .unwrap()
        .iter()
        .map(|e| {
            let raw = format!("```sql\n{}\n```", e.input);
            let s = scorer.score(e, &raw, &extract(&raw, OutputKind::Sql, false));
            (
                e.id.clone(),
                s.error_type,
                s.unjudgeable,
                s.message.unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn a_task_with_db_url_is_judged_per_schema() {
    let Some(url) = url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db_dir = shop_databases(dir.path());
    let mut loaded = Vec::new();
    let reports = load_postgres(&db_dir, &[SHOP.to_string()], &url, |r| {
        loaded.push(r.schema.clone())
    })
    .unwrap();
    assert_eq!(loaded, [SHOP]);
    assert_eq!(reports[0].tables[0].rows, 3);
    let missing = load_postgres(&db_dir, &["nope".to_string()], &url, |_| {}).unwrap_err();
    assert!(
        missing.to_string().contains("no database nope"),
        "{missing}"
    );

    let gold = "SELECT name FROM items WHERE price > 10";
    let examples = [
        serde_json::json!({"id": "right", "db_id": SHOP, "pred": "SELECT name FROM Items WHERE price >= 12", "query": gold}),
        serde_json::json!({"id": "write", "db_id": SHOP, "pred": "DELETE FROM items", "query": gold}),
        serde_json::json!({"id": "broken-gold", "db_id": SHOP, "pred": "SELECT 1", "query": "SELECT nope FROM items"}),
        serde_json::json!({"id": "no-schema", "db_id": "tuneup_test_runner_absent", "pred": "SELECT 1", "query": "SELECT 1"}),
    ];
    // The test server's role is a superuser: every example is unjudgeable, and the message says what to do.
    // `${VAR}` expansion, as for paths.
    let t = task(dir.path(), "${TUNEUP_TEST_POSTGRES_URL}", &examples);
    assert_eq!(
        t.dataset.db_url.as_deref(),
        Some("${TUNEUP_TEST_POSTGRES_URL}")
    );
    for (id, error_type, unjudgeable, message) in score(&t) {
        assert_eq!(
            error_type.as_deref(),
            Some("database_error"),
            "{id}: {message}"
        );
        assert!(
            unjudgeable && message.contains("superuser") && message.contains("CREATE ROLE"),
            "{message}"
        );
    }
    // A reader role (what `tuneup eval load-postgres --reader-role` makes) judges them.
    let reader_url = create_reader_role(
        &url,
        "tuneup_test_runner_reader",
        "pw",
        "pw",
        &[SHOP.to_string()],
    )
    .unwrap();
    assert!(
        reader_url.contains("tuneup_test_runner_reader:pw@"),
        "{reader_url}"
    );
    let mut examples = examples.to_vec();
    examples.push(serde_json::json!({"id": "read-file", "db_id": SHOP, "pred": "SELECT pg_read_file('/etc/hostname')", "query": gold}));
    let t = task(dir.path(), &reader_url, &examples);
    let scored = score(&t);
    assert_eq!(scored[0].1, None, "{:?}", scored[0]);
    assert_eq!(
        scored[1].1.as_deref(),
        Some("write_refused"),
        "{:?}",
        scored[1]
    );
    assert!(!scored[1].2);
    assert_eq!(
        scored[2].1.as_deref(),
        Some("gold_failed"),
        "{:?}",
        scored[2]
    );
    assert!(scored[2].2 && scored[2].3.contains(&format!("schema {SHOP}")));
    assert_eq!(
        scored[3].1.as_deref(),
        Some("database_error"),
        "{:?}",
        scored[3]
    );
    assert!(scored[3].2 && scored[3].3.contains("tuneup_test_runner_absent"));
    assert_eq!(
        scored[4].1.as_deref(),
        Some("write_refused"),
        "{:?}",
        scored[4]
    );
    assert!(scored[4].3.contains("permission denied"), "{:?}", scored[4]);
    // The DELETE changed nothing.
    let again = score(&t);
    assert_eq!(again[0].1, None, "{:?}", again[0]);

    // `{db_id}` in the URL names a database instead (here the test database itself, default search_path).
    let (base, rest) = url.rsplit_once('/').unwrap();
    let (database, params) = rest.split_once('?').map_or((rest, ""), |(d, p)| (d, p));
    let per_db = format!(
        "{base}/{{db_id}}{}",
        if params.is_empty() {
            String::new()
        } else {
            format!("?{params}")
        }
    );
    // (on the superuser, opted in).
    let t = task_with(
        dir.path(),
        &per_db,
        "allow_privileged_role = true",
        &[
            serde_json::json!({"id": "db", "db_id": database, "pred": "SELECT current_database()", "query": format!("SELECT '{database}'")}),
        ],
    );
    let scored = score(&t);
    assert_eq!(scored[0].1, None, "{:?}", scored[0]);
}

#[test]
fn an_unreachable_server_makes_examples_unjudgeable_without_leaking_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let examples = [
        serde_json::json!({"id": "a", "db_id": "x", "pred": "SELECT 1", "query": "SELECT 1"}),
        serde_json::json!({"id": "b", "db_id": "x", "pred": "no sql here", "query": "SELECT 1"}),
    ];
    let t = task(
        dir.path(),
        "postgres://bob:s3cret@127.0.0.1:1/db",
        &examples,
    );
    for (id, error_type, unjudgeable, message) in score(&t) {
        assert_eq!(
            error_type.as_deref(),
            Some("database_error"),
            "{id}: {message}"
        );
        assert!(unjudgeable, "{id}");
        assert!(
            message.contains("postgres://bob:***@127.0.0.1:1/db"),
            "{message}"
        );
        assert!(!message.contains("s3cret"), "{message}");
    }
    // Both database sources at once are refused, as is a missing one.
    let both = "metrics = [\"sql_execution\"]\n[dataset]\npath = \"e.jsonl\"\ninput = \"q\"\ntarget = \"t\"\ndb_id = \"d\"\ndb_dir = \"dbs\"\ndb_url = \"postgres://h/x\"\n";
    let err = Task::from_toml(both, dir.path(), Path::new("t.toml")).unwrap_err();
    assert!(err.to_string().contains("not both"), "{err}");
    let none = "metrics = [\"sql_execution\"]\n[dataset]\npath = \"e.jsonl\"\ninput = \"q\"\ntarget = \"t\"\ndb_id = \"d\"\n";
    let err = Task::from_toml(none, dir.path(), Path::new("t.toml")).unwrap_err();
    assert!(err.to_string().contains("db_url"), "{err}");
}
