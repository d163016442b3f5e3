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
        ";DELETE FROM t",
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
    // Schema-reading PRAGMAs are allowed (they just return other rows); transaction control is not a query.
    assert_eq!(
        verdict_type(&mut evaluator, "PRAGMA table_info(t)"),
        Some(SqlErrorType::WrongResult)
    );
    for sql in ["BEGIN", "ROLLBACK", ";;COMMIT", "/* x */ ; DELETE FROM t"] {
        assert_eq!(
            verdict_type(&mut evaluator, sql),
            Some(SqlErrorType::WriteRefused),
            "{sql}"
        );
    }
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
        ..SqlLimits::default()
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
fn huge_values_fail_cleanly() {
    let (_dir, path) = scratch_database();
    let mut evaluator = SqlEvaluator::open(&path, SqlLimits::default()).unwrap();
    assert!(tuneup_eval::sql::sqlite_heap_limit() > 0);
    assert!(tuneup_eval::sql::sqlite_heap_limit() <= tuneup_eval::sql::SQLITE_HEAP_LIMIT);
    // Nearly a gigabyte per value, several times: SQLITE_LIMIT_LENGTH stops it before any is built.
    let started = Instant::now();
    for sql in [
        "SELECT randomblob(999999999), randomblob(999999999), randomblob(999999999)",
        "SELECT zeroblob(999999999)",
        "SELECT length(printf('%.*c', 999999999, 'x'))",
        "WITH RECURSIVE c(s) AS (SELECT 'xxxxxxxx' UNION ALL SELECT s || s FROM c) SELECT length(s) FROM c",
    ] {
        let failure = evaluator.run(sql).unwrap_err();
        assert_eq!(failure.error_type, SqlErrorType::TooLarge, "{sql}: {failure:?}");
        assert!(failure.message.contains("SQLITE_LIMIT_LENGTH"), "{failure:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // Under the caps: one value, then a result, too big for small limits.
    let limits = SqlLimits {
        max_cell_bytes: 1000,
        max_result_bytes: 10_000,
        ..SqlLimits::default()
    };
    let mut small = SqlEvaluator::open(&path, limits).unwrap();
    assert_eq!(small.run("SELECT randomblob(1000)").unwrap().len(), 1);
    let failure = small.run("SELECT randomblob(1001)").unwrap_err();
    assert_eq!(failure.error_type, SqlErrorType::TooLarge, "{failure:?}");
    let failure = small
        .run("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100) SELECT randomblob(500) FROM c")
        .unwrap_err();
    assert_eq!(failure.error_type, SqlErrorType::TooLarge, "{failure:?}");
    assert!(failure.message.contains("10000 bytes"), "{failure:?}");
    // The connection is still usable.
    assert_eq!(small.run("SELECT count(*) FROM t").unwrap().len(), 1);
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
