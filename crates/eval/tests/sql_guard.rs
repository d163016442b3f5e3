//! The read-only guard, the timeout and the row cap on a database the test writes itself.

use std::time::{Duration, Instant};

use tuneup_eval::sql::{execution_match, SqlErrorType, SqlEvalError, SqlEvaluator, SqlLimits};

fn scratch_database() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scratch.sqlite");
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL);
             CREATE INDEX t_name ON t(name);
             INSERT INTO t(name, score) VALUES ('a', 1.0), ('b', 2.5), ('c', NULL), ('c', 3);",
        )
        .unwrap();
    (dir, path)
}

fn verdict_type(evaluator: &mut SqlEvaluator, predicted: &str) -> Option<SqlErrorType> {
    evaluator
        .evaluate(predicted, "SELECT name FROM t")
        .unwrap()
        .error_type
}

#[test]
fn writes_attach_and_pragma_writes_are_refused() {
    let (_dir, path) = scratch_database();
    let mut evaluator = SqlEvaluator::open(&path, SqlLimits::default()).unwrap();
    for sql in [
        "DELETE FROM t",
        "UPDATE t SET name = 'x'",
        "INSERT INTO t(name) VALUES ('x')",
        "DROP TABLE t",
        "CREATE TABLE u(a)",
        "CREATE TEMP TABLE u(a)",
        "ALTER TABLE t ADD COLUMN z",
        "ATTACH DATABASE ':memory:' AS other",
        "DETACH DATABASE main",
        "PRAGMA journal_mode = WAL",
        "PRAGMA user_version = 3",
        "SELECT 1; DELETE FROM t",
        "WITH x AS (SELECT 1) DELETE FROM t",
        "VACUUM",
        "VACUUM INTO '/tmp/tuneup_vacuum_probe.sqlite'",
        "REINDEX t",
        "ANALYZE",
        "CREATE VIRTUAL TABLE v USING fts5(a)",
        "SELECT load_extension('/tmp/nothing')",
    ] {
        assert_eq!(
            verdict_type(&mut evaluator, sql),
            Some(SqlErrorType::WriteRefused),
            "{sql}"
        );
    }
    // Nothing changed, and reads still work.
    let verdict = evaluator
        .evaluate("SELECT name FROM t ORDER BY id DESC", "SELECT name FROM t")
        .unwrap();
    assert!(verdict.correct, "{verdict:?}");
    assert_eq!(verdict.gold_rows, 4);
    // Schema-reading PRAGMAs and transactions are allowed (they just return other rows).
    assert_eq!(
        verdict_type(&mut evaluator, "PRAGMA table_info(t)"),
        Some(SqlErrorType::WrongResult)
    );
    assert_eq!(
        verdict_type(&mut evaluator, "BEGIN"),
        Some(SqlErrorType::EmptyResult)
    );
    assert_eq!(
        verdict_type(&mut evaluator, "ROLLBACK"),
        Some(SqlErrorType::EmptyResult)
    );
}

#[test]
fn values_compare_numerically_and_nulls_match() {
    let (_dir, path) = scratch_database();
    let mut evaluator = SqlEvaluator::open(&path, SqlLimits::default()).unwrap();
    let v = evaluator
        .evaluate("SELECT 1.0, 2, NULL, 'a'", "SELECT 1, 2.0, NULL, 'a'")
        .unwrap();
    assert!(v.correct, "{v:?}");
    let v = evaluator.evaluate("SELECT '1'", "SELECT 1").unwrap();
    assert_eq!(v.error_type, Some(SqlErrorType::WrongResult));
    let v = evaluator
        .evaluate("SELECT name FROM t WHERE 0", "SELECT name FROM t")
        .unwrap();
    assert_eq!(
        (v.error_type, v.predicted_rows),
        (Some(SqlErrorType::EmptyResult), Some(0))
    );
    let v = evaluator
        .evaluate("SELECT score FROM t WHERE 0", "SELECT score FROM t WHERE 0")
        .unwrap();
    assert!(v.correct);
}

#[test]
fn errors_are_classified() {
    let (_dir, path) = scratch_database();
    let mut evaluator = SqlEvaluator::open(&path, SqlLimits::default()).unwrap();
    let cases = [
        ("SELEC name FROM t", SqlErrorType::Syntax),
        ("SELECT name FROM", SqlErrorType::Syntax),
        ("SELECT 'unterminated", SqlErrorType::Syntax),
        ("   ", SqlErrorType::Syntax),
        ("SELECT name FROM missing", SqlErrorType::UnknownTable),
        ("SELECT nope FROM t", SqlErrorType::UnknownColumn),
        (
            "SELECT no_such_function(name) FROM t",
            SqlErrorType::Execution,
        ),
        ("SELECT 1; SELECT 2", SqlErrorType::Execution),
        (
            "SELECT name FROM t WHERE count(*) > 1",
            SqlErrorType::Execution,
        ),
    ];
    for (sql, expected) in cases {
        let verdict = evaluator.evaluate(sql, "SELECT name FROM t").unwrap();
        assert_eq!(verdict.error_type, Some(expected), "{sql}: {verdict:?}");
        assert!(!verdict.correct && verdict.message.as_deref().is_some_and(|m| !m.is_empty()));
    }
}

#[test]
fn timeout_and_row_cap() {
    let (_dir, path) = scratch_database();
    let limits = SqlLimits {
        timeout: Duration::from_millis(200),
        max_rows: 3,
    };
    let mut evaluator = SqlEvaluator::open(&path, limits).unwrap();
    let started = Instant::now();
    let endless =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
    let verdict = evaluator
        .evaluate(endless, "SELECT count(*) FROM t")
        .unwrap();
    assert_eq!(
        verdict.error_type,
        Some(SqlErrorType::Timeout),
        "{verdict:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // The connection stays usable after an interrupt.
    assert!(
        evaluator
            .evaluate("SELECT count(*) FROM t", "SELECT count(*) FROM t")
            .unwrap()
            .correct
    );
    let verdict = evaluator
        .evaluate("SELECT name FROM t", "SELECT 1")
        .unwrap();
    assert_eq!(verdict.error_type, Some(SqlErrorType::TooManyRows));
    // A gold query over the cap cannot be judged.
    assert!(matches!(
        evaluator.evaluate("SELECT 1", "SELECT name FROM t"),
        Err(SqlEvalError::GoldFailed { .. })
    ));
}

#[test]
fn missing_database_and_broken_gold_are_errors() {
    let err = execution_match(
        "/nonexistent/x.sqlite",
        "SELECT 1",
        "SELECT 1",
        SqlLimits::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/x.sqlite"), "{err}");
    let (_dir, path) = scratch_database();
    let err = execution_match(
        &path,
        "SELECT 1",
        "SELECT nope FROM t",
        SqlLimits::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            SqlEvalError::GoldFailed {
                error_type: SqlErrorType::UnknownColumn,
                ..
            }
        ),
        "{err}"
    );
}
