//! SQL execution accuracy on a real PostgreSQL server, checked against the SQLite evaluator on the same data.
//!
//! Start a server with `scripts/postgres.sh start DIR` and pass its URL in `TUNEUP_TEST_POSTGRES_URL`. Without it
//! the tests print a note and pass, unless `TUNEUP_REQUIRE_POSTGRES=1`. The Spider test also needs the shared
//! data (`TUNEUP_TEXT2SQL_DIR`, default `../shared/data/text2sql` next to the repository) and skips without it.
//! Every test loads into its own schema (`tuneup_test_*`, replaced on each run), so they run in parallel.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use tuneup_eval::sql::postgres::guard::reader_role_sql;
use tuneup_eval::sql::postgres::{
    copy_sqlite_to_postgres, url_with_user, LoadError, PgColumnType, PgEvaluator, RolePolicy,
};
use tuneup_eval::sql::{
    CellValue, QueryRunner, SqlErrorType, SqlEvalError, SqlEvaluator, SqlLimits,
};

use tuneup_test_utils::postgres_test_url as url;

fn client(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).expect("connect")
}

fn limits() -> SqlLimits {
    SqlLimits {
        timeout: Duration::from_millis(1500),
        max_rows: 1000,
        ..SqlLimits::default()
    }
}

/// An evaluator on the test server's role, a superuser: these tests opt in (`allow_privileged_role = true`);
/// [`model_sql_cannot_reach_the_servers_files`] runs on a reader role instead.
fn opted_in(url: &str, limits: SqlLimits) -> PgEvaluator {
    PgEvaluator::connect(url, limits, RolePolicy::AllowPrivileged).unwrap()
}

fn count(url: &str, sql: &str) -> i64 {
    client(url).query_one(sql, &[]).unwrap().get(0)
}

/// A prediction/gold pair and, when the dialects differ, the PostgreSQL error type (else it must equal SQLite's).
struct Case {
    predicted: &'static str,
    gold: &'static str,
    expected: Option<SqlErrorType>,
    postgres_only: Option<Option<SqlErrorType>>,
}

const fn case(predicted: &'static str, gold: &'static str, expected: Option<SqlErrorType>) -> Case {
    Case {
        predicted,
        gold,
        expected,
        postgres_only: None,
    }
}

const fn dialect(
    predicted: &'static str,
    gold: &'static str,
    sqlite: Option<SqlErrorType>,
    postgres: Option<SqlErrorType>,
) -> Case {
    Case {
        predicted,
        gold,
        expected: sqlite,
        postgres_only: Some(postgres),
    }
}

#[test]
fn verdicts_match_sqlite_on_spider_concert_singer() {
    use SqlErrorType::*;
    let Some(url) = url() else { return };
    let Some(dir) = common::text2sql_dir() else {
        return;
    };
    let sqlite = dir.join("databases/concert_singer/concert_singer.sqlite");
    let schema = "tuneup_test_concert_singer";
    let report = copy_sqlite_to_postgres(&sqlite, &mut client(&url), schema).unwrap();
    let names: Vec<&str> = report.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["stadium", "singer", "concert", "singer_in_concert"]);
    let singer = &report.tables[1];
    assert_eq!(singer.rows, 6);
    assert!(singer
        .columns
        .contains(&("age".to_string(), PgColumnType::Bigint)));
    assert!(singer
        .columns
        .contains(&("song_release_year".to_string(), PgColumnType::Text)));

    let mut lite = SqlEvaluator::open(&sqlite, limits()).unwrap();
    let mut pg = opted_in(&url, limits());
    pg.use_schema(Some(schema)).unwrap();
    let count_singers = "SELECT count(*) FROM singer";
    let cases = [
        case(count_singers, count_singers, None),
        case("SELECT count(singer_id) FROM singer", count_singers, None),
        case("SELECT count(*) FROM stadium", count_singers, Some(WrongResult)),
        case(
            "SELECT name FROM singer WHERE age > 1000",
            "SELECT name FROM singer WHERE age > 40",
            Some(EmptyResult),
        ),
        // The gold query orders its result: order counts.
        case(
            "SELECT name, country, age FROM singer ORDER BY age ASC",
            "SELECT name ,  country ,  age FROM singer ORDER BY age DESC",
            Some(WrongResult),
        ),
        // It does not: any order.
        case(
            "SELECT name FROM singer ORDER BY name DESC",
            "SELECT name FROM singer WHERE age > 0",
            None,
        ),
        case(
            "SELECT avg(age), min(age), max(age) FROM singer WHERE country = 'France'",
            "SELECT avg(age) ,  min(age) ,  max(age) FROM singer WHERE country  =  'France'",
            None,
        ),
        case(
            "SELECT T2.name, count(*) FROM concert AS T1 JOIN stadium AS T2 ON T1.stadium_id = T2.stadium_id GROUP BY T2.name",
            "SELECT T2.name ,  count(*) FROM concert AS T1 JOIN stadium AS T2 ON T1.stadium_id  =  T2.stadium_id GROUP BY T1.stadium_id, T2.name",
            None,
        ),
        case("SELEC name FROM singer", count_singers, Some(Syntax)),
        case("SELECT name FROM singers", count_singers, Some(UnknownTable)),
        case("SELECT nationality FROM singer", count_singers, Some(UnknownColumn)),
        case(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x FROM c) SELECT count(*) FROM c",
            count_singers,
            Some(Timeout),
        ),
        dialect("SELECT pg_sleep(30)", count_singers, Some(Execution), Some(Timeout)),
        case(
            "INSERT INTO singer (singer_id, name) VALUES (99, 'x')",
            count_singers,
            Some(WriteRefused),
        ),
        case("UPDATE singer SET age = 0", count_singers, Some(WriteRefused)),
        case("DELETE FROM singer_in_concert", count_singers, Some(WriteRefused)),
        case("DROP TABLE concert", count_singers, Some(WriteRefused)),
        case("CREATE TABLE extra (a int)", count_singers, Some(WriteRefused)),
        // Refused by the allow-list on both, before the database sees them.
        case(
            "WITH d AS (DELETE FROM singer RETURNING *) SELECT count(*) FROM d",
            count_singers,
            Some(WriteRefused),
        ),
        case("COMMIT", count_singers, Some(WriteRefused)),
        case("SET TRANSACTION READ WRITE", count_singers, Some(WriteRefused)),
        case(";COPY singer TO STDOUT", count_singers, Some(WriteRefused)),
        // The read-only mode cannot be switched off from inside a query either.
        dialect(
            "SELECT set_config('transaction_read_only', 'off', true)",
            count_singers,
            Some(Execution),
            Some(WriteRefused),
        ),
        case("SELECT 1; SELECT 2", count_singers, Some(Execution)),
        case(
            "SELECT count(*) FROM singer; DROP TABLE singer",
            count_singers,
            Some(WriteRefused),
        ),
        case("COMMIT; DROP TABLE singer", count_singers, Some(WriteRefused)),
    ];
    for c in &cases {
        let lv = lite.evaluate(c.predicted, c.gold).unwrap();
        let started = Instant::now();
        let pv = pg.evaluate(c.predicted, c.gold).unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}: took {:?}",
            c.predicted,
            started.elapsed()
        );
        assert_eq!(lv.error_type, c.expected, "SQLite: {}: {lv:?}", c.predicted);
        let expected_pg = c.postgres_only.unwrap_or(c.expected);
        assert_eq!(
            pv.error_type, expected_pg,
            "PostgreSQL: {}: {pv:?}",
            c.predicted
        );
        assert_eq!(pv.correct, lv.correct, "{}", c.predicted);
        assert_eq!(pv.correct, c.expected.is_none(), "{}", c.predicted);
        assert_eq!(pv.order_matters, lv.order_matters, "{}", c.predicted);
        assert_eq!(pv.gold_rows, lv.gold_rows, "{}", c.predicted);
        // Both back-ends return the same rows for the gold queries (numeric avg vs SQLite's float included).
        let from_pg = pg.run_query(c.gold).unwrap().unwrap();
        let from_sqlite = lite.run(c.gold).unwrap();
        assert_eq!(
            tuneup_eval::sql::difference(&from_pg, &from_sqlite, lv.order_matters),
            None,
            "{}",
            c.gold
        );
    }
    // The write attempts changed nothing.
    let other = format!("{schema}.");
    for (table, rows) in [
        ("singer", 6),
        ("concert", 6),
        ("singer_in_concert", 10),
        ("stadium", 9),
    ] {
        assert_eq!(
            count(&url, &format!("SELECT count(*) FROM {other}{table}")),
            rows,
            "{table}"
        );
    }
    assert_eq!(
        count(
            &url,
            &format!("SELECT count(*) FROM {other}singer WHERE age = 0")
        ),
        0
    );
    assert_eq!(
        count(
            &url,
            &format!("SELECT count(*) FROM pg_tables WHERE schemaname = '{schema}'")
        ),
        4
    );
    // The session is intact: reads still run in the schema, with the timeout.
    let v = pg
        .evaluate(
            "SELECT count(*) FROM stadium",
            "SELECT count(*) FROM stadium",
        )
        .unwrap();
    assert!(v.correct, "{v:?}");
}

#[test]
fn value_types_read_like_sqlite_values() {
    let Some(url) = url() else { return };
    let mut pg = opted_in(&url, limits());
    let rows = pg
        .run(
            "SELECT 1::int2, 2::int4, 3::int8, 1.5::float4, 0.1::float4, 2.5::float8, 7.00::numeric, \
             2.25::numeric, 'a'::varchar, 'b'::char(3), 'n'::name, true, false, DATE '2024-02-29', \
             TIMESTAMP '2024-01-02 03:04:05.25', TIMESTAMPTZ '2024-01-02 03:04:05+02', NULL::text, \
             '\\x01ff'::bytea, interval '1 day', ARRAY[1, 2], '{\"a\": 1}'::jsonb, 'x'::text",
        )
        .unwrap()
        .unwrap();
    let text = |s: &str| CellValue::Text(s.as_bytes().to_vec());
    assert_eq!(
        rows,
        vec![vec![
            CellValue::Integer(1),
            CellValue::Integer(2),
            CellValue::Integer(3),
            CellValue::from_real(1.5),
            CellValue::from_real(0.1),
            CellValue::from_real(2.5),
            CellValue::Integer(7),
            CellValue::from_real(2.25),
            text("a"),
            text("b  "),
            text("n"),
            CellValue::Integer(1),
            CellValue::Integer(0),
            text("2024-02-29"),
            text("2024-01-02 03:04:05.25"),
            text("2024-01-02 01:04:05+00"),
            CellValue::Null,
            CellValue::Blob(vec![1, 255]),
            text("1 day"),
            text("{1,2}"),
            text("{\"a\": 1}"),
            text("x"),
        ]]
    );
    // Columns read through the text cast keep the query's row order.
    let rows = pg
        .run("SELECT x, interval '1 hour' * x FROM generate_series(1, 4) AS x ORDER BY x DESC;")
        .unwrap()
        .unwrap();
    let first: Vec<_> = rows.iter().map(|r| r[0].clone()).collect();
    assert_eq!(
        first,
        (1..=4).rev().map(CellValue::Integer).collect::<Vec<_>>()
    );
    assert_eq!(rows[0][1], text("04:00:00"));
}

#[test]
fn huge_results_stop_at_the_row_cap_and_parameters_are_refused() {
    let Some(url) = url() else { return };
    let mut pg = opted_in(
        &url,
        SqlLimits {
            timeout: Duration::from_secs(30),
            max_rows: 10,
            ..SqlLimits::default()
        },
    );
    let started = Instant::now();
    let failure = pg
        .run("SELECT generate_series(1, 1000000000) AS x")
        .unwrap()
        .unwrap_err();
    assert_eq!(failure.error_type, SqlErrorType::TooManyRows);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the portal should stop after 11 rows, took {:?}",
        started.elapsed()
    );
    let failure = pg.run("SELECT $1::int").unwrap().unwrap_err();
    assert_eq!(failure.error_type, SqlErrorType::Execution, "{failure:?}");
    assert_eq!(
        pg.run("  ").unwrap().unwrap_err().error_type,
        SqlErrorType::Syntax
    );
    // A gold query over the cap cannot be judged.
    assert!(matches!(
        pg.evaluate("SELECT 1", "SELECT generate_series(1, 20)"),
        Err(SqlEvalError::GoldFailed {
            error_type: SqlErrorType::TooManyRows,
            ..
        })
    ));
}

#[test]
fn a_connection_closed_by_the_server_is_reopened() {
    let Some(url) = url() else { return };
    let mut pg = opted_in(&url, limits());
    let pid = match pg.run("SELECT pg_backend_pid()").unwrap().unwrap()[0][0] {
        CellValue::Integer(pid) => pid,
        ref other => panic!("pid {other:?}"),
    };
    let killed: bool = client(&url)
        .query_one("SELECT pg_terminate_backend($1::int)", &[&(pid as i32)])
        .unwrap()
        .get(0);
    assert!(killed);
    let verdict = pg.evaluate("SELECT 2", "SELECT 1 + 1").unwrap();
    assert!(verdict.correct, "{verdict:?}");
    let new_pid = pg.run("SELECT pg_backend_pid()").unwrap().unwrap();
    assert_ne!(new_pid[0][0], CellValue::Integer(pid));
}

#[test]
fn missing_schema_and_unreachable_server_are_errors_without_the_password() {
    let err = PgEvaluator::connect(
        "postgres://bob:s3cret@127.0.0.1:1/nothing",
        limits(),
        RolePolicy::default(),
    )
    .err()
    .expect("nothing listens on port 1");
    let message = err.to_string();
    assert!(matches!(err, SqlEvalError::Connect { .. }), "{message}");
    assert!(
        message.contains("postgres://bob:***@127.0.0.1:1/nothing"),
        "{message}"
    );
    assert!(!message.contains("s3cret"), "{message}");
    assert!(
        message.contains("Connection refused") || message.contains("os error"),
        "{message}"
    );
    let err = PgEvaluator::connect("postgres://host:port/db", limits(), RolePolicy::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("malformed URL"), "{err}");

    let Some(url) = url() else { return };
    let mut pg = opted_in(&url, limits());
    let err = pg
        .use_schema(Some("tuneup_test_no_such_schema"))
        .unwrap_err();
    assert!(matches!(err, SqlEvalError::MissingSchema { .. }), "{err}");
    assert!(
        err.to_string().contains("tuneup eval load-postgres"),
        "{err}"
    );
}

/// A SQLite file with mixed-type columns, upper-case names, a view, and awkward text.
fn awkward_sqlite(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("awkward.sqlite");
    let db = rusqlite::Connection::open(&path).unwrap();
    db.execute_batch(
        "CREATE TABLE Things(ID INTEGER, Score REAL, Mixed INT, Ratio INT, Note VARCHAR(10), Raw BLOB, \"Odd Name\" TEXT);
         INSERT INTO Things VALUES (1, 1.5, 7, 2, 'tab\there', x'00ff', 'a');
         INSERT INTO Things VALUES (2, 3, '', 2.5, 'back\\slash' || char(0) || 'nul', NULL, NULL);
         INSERT INTO Things VALUES (3, NULL, 'n/a', NULL, 'line' || char(10) || 'break', x'01', 'c');
         CREATE TABLE Empty(a TEXT);
         CREATE VIEW v AS SELECT ID FROM Things;",
    )
    .unwrap();
    path
}

#[test]
fn sqlite_copies_keep_values_and_fall_back_to_text() {
    let Some(url) = url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = awkward_sqlite(dir.path());
    let schema = "tuneup_test_awkward";
    let mut c = client(&url);
    let report = copy_sqlite_to_postgres(&path, &mut c, schema).unwrap();
    assert_eq!(report.skipped, ["view v"]);
    let things = &report.tables[0];
    assert_eq!(things.name, "things");
    assert_eq!(things.rows, 3);
    assert_eq!(
        things.columns,
        [
            ("id".to_string(), PgColumnType::Bigint),
            ("score".to_string(), PgColumnType::DoublePrecision),
            ("mixed".to_string(), PgColumnType::Text),
            ("ratio".to_string(), PgColumnType::DoublePrecision),
            ("note".to_string(), PgColumnType::Text),
            ("raw".to_string(), PgColumnType::Bytea),
            ("odd name".to_string(), PgColumnType::Text),
        ]
    );
    assert_eq!(things.fallbacks, ["mixed", "ratio"]);
    assert_eq!(report.tables[1].rows, 0);
    // Loading again replaces the schema.
    copy_sqlite_to_postgres(&path, &mut c, schema).unwrap();

    // Every row reads back as SQLite returns it (the text column holds SQLite's text of the integer 7).
    let mut lite = SqlEvaluator::open(&path, limits()).unwrap();
    let mut pg = opted_in(&url, limits());
    pg.use_schema(Some(schema)).unwrap();
    let query = "SELECT id, score, ratio, note, raw, \"odd name\" FROM things ORDER BY id";
    let from_pg = pg.run(query).unwrap().unwrap();
    let mut from_sqlite = lite.run(query).unwrap();
    // PostgreSQL text cannot hold NUL: it was dropped.
    from_sqlite[1][3] = CellValue::Text(b"back\\slashnul".to_vec());
    assert_eq!(from_pg, from_sqlite);
    let mixed = pg
        .run("SELECT mixed FROM things ORDER BY id")
        .unwrap()
        .unwrap();
    let texts: Vec<CellValue> = ["7", "", "n/a"]
        .iter()
        .map(|s| CellValue::Text(s.as_bytes().to_vec()))
        .collect();
    assert_eq!(mixed.into_iter().flatten().collect::<Vec<_>>(), texts);
}

#[test]
fn a_missing_sqlite_file_is_named() {
    let Some(url) = url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let err = copy_sqlite_to_postgres(
        &dir.path().join("missing.sqlite"),
        &mut client(&url),
        "tuneup_test_missing",
    )
    .unwrap_err();
    assert!(matches!(err, LoadError::Sqlite { .. }), "{err}");
    assert!(err.to_string().contains("missing.sqlite"), "{err}");
}

/// The measurement behind docs/evaluation.md ("SQL on PostgreSQL"): copies every Spider dev database into a
/// schema named by its `db_id` (replacing it) and runs each dev gold query there and on SQLite. Prints how many
/// gold queries fail on PostgreSQL (by error type) and how many return SQLite's rows. Slow-ish and it replaces
/// schemas, hence ignored: `cargo test -p tuneup-eval --test postgres_sql -- --ignored --nocapture`.
#[test]
#[ignore]
fn spider_dev_gold_queries_on_postgres() {
    use std::collections::{BTreeMap, HashMap};
    let Some(url) = url() else { return };
    let Some(dir) = common::text2sql_dir() else {
        return;
    };
    let text = std::fs::read_to_string(dir.join("spider_dev.jsonl")).unwrap();
    let examples: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut c = client(&url);
    let mut pgs: HashMap<String, PgEvaluator> = HashMap::new();
    let mut lites: HashMap<String, SqlEvaluator> = HashMap::new();
    let (mut ran, mut same_rows, mut sqlite_failed) = (0, 0, 0);
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    let mut messages: BTreeMap<String, usize> = BTreeMap::new();
    for e in &examples {
        let db_id = e["db_id"].as_str().unwrap();
        let gold = e["query"].as_str().unwrap();
        let sqlite = dir.join(format!("databases/{db_id}/{db_id}.sqlite"));
        let pg = pgs.entry(db_id.to_owned()).or_insert_with(|| {
            copy_sqlite_to_postgres(&sqlite, &mut c, db_id).unwrap();
            let mut pg = opted_in(&url, SqlLimits::default());
            pg.use_schema(Some(db_id)).unwrap();
            pg
        });
        let lite = lites
            .entry(db_id.to_owned())
            .or_insert_with(|| SqlEvaluator::open(&sqlite, SqlLimits::default()).unwrap());
        let Ok(from_sqlite) = lite.run(gold) else {
            sqlite_failed += 1;
            continue;
        };
        match pg.run(gold).unwrap() {
            Ok(rows) => {
                ran += 1;
                let ordered = tuneup_eval::sql::has_top_level_order_by(gold);
                if tuneup_eval::sql::difference(&rows, &from_sqlite, ordered).is_none() {
                    same_rows += 1;
                }
            }
            Err(f) => {
                *failures.entry(format!("{:?}", f.error_type)).or_default() += 1;
                let head: String = f.message.chars().take(60).collect();
                *messages.entry(head).or_default() += 1;
            }
        }
    }
    let mut common: Vec<_> = messages.into_iter().collect();
    common.sort_by_key(|m| std::cmp::Reverse(m.1));
    println!(
        "{} dev gold queries: {ran} run on PostgreSQL ({same_rows} with SQLite's rows), {} fail {failures:?}, \
         {sqlite_failed} fail on SQLite too",
        examples.len(),
        examples.len() - ran - sqlite_failed
    );
    for (m, n) in common.iter().take(12) {
        println!("{n:5}  {m}");
    }
    assert!(ran > examples.len() / 2);
}

/// Whether the session of `client` is encrypted (pg_stat_ssl).
fn encrypted(client: &mut postgres::Client) -> bool {
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0)
}

#[test]
fn sslmode_encrypts_and_verifies_like_libpq() {
    use tuneup_eval::sql::postgres::PgTarget;
    let Some((url, root)) = tuneup_test_utils::postgres_tls_test_server() else {
        return;
    };
    let with = |params: &str| format!("{url}?{params}");
    let connect = |params: &str| PgTarget::parse(&with(params)).unwrap().connect();

    assert!(!encrypted(&mut connect("sslmode=disable").unwrap()));
    // libpq's default (prefer) and require encrypt without checking the certificate.
    assert!(encrypted(
        &mut PgTarget::parse(&url).unwrap().connect().unwrap()
    ));
    assert!(encrypted(&mut connect("sslmode=require").unwrap()));
    // The server's certificate is for localhost and 127.0.0.1, signed by the test CA.
    let verified = format!("sslmode=verify-full&sslrootcert={root}");
    assert!(encrypted(&mut connect(&verified).unwrap()));
    assert!(encrypted(
        &mut connect(&format!("sslmode=verify-ca&sslrootcert={root}")).unwrap()
    ));
    let localhost = url.replace("127.0.0.1", "localhost");
    let by_name = PgTarget::parse(&format!("{localhost}?{verified}")).unwrap();
    assert!(encrypted(&mut by_name.connect().unwrap()));
    // Another CA (the public roots) does not vouch for it.
    let Err(err) = connect("sslmode=verify-full&sslrootcert=system") else {
        panic!("a certificate from an unknown issuer was accepted")
    };
    let message = tuneup_eval::sql::postgres::error_chain(&err);
    assert!(message.contains("certificate"), "{message}");

    // The evaluator takes the same URLs.
    let mut evaluator = opted_in(&with(&verified), limits());
    let rows = evaluator.run("SELECT 1").unwrap().unwrap();
    assert_eq!(rows.len(), 1);
}

/// Makes `role` (password `pw`) able to read `schema` only and returns its URL on the server at `url`.
fn reader(url: &str, role: &str, schema: &str) -> String {
    let mut c = client(url);
    let exists = c
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
        .unwrap()
        .is_some();
    for sql in reader_role_sql(role, "pw", exists, &[schema.to_string()]) {
        c.batch_execute(&sql).unwrap();
    }
    url_with_user(url, role, "pw").unwrap()
}

#[test]
fn model_sql_cannot_reach_the_servers_files() {
    let Some(url) = url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let lite = dir.path().join("files.sqlite");
    rusqlite::Connection::open(&lite)
        .unwrap()
        .execute_batch(
            "CREATE TABLE t(a INTEGER, b TEXT); INSERT INTO t VALUES (1, 'x'), (2, 'y');",
        )
        .unwrap();
    let schema = "tuneup_test_reader_files";
    copy_sqlite_to_postgres(&lite, &mut client(&url), schema).unwrap();

    // The test server's role is a superuser: refused unless opted in, with how to make a reader role.
    let Err(err) = PgEvaluator::connect(&url, limits(), RolePolicy::default()) else {
        panic!("a superuser was accepted for model SQL")
    };
    let message = err.to_string();
    assert!(
        matches!(err, SqlEvalError::PrivilegedRole { .. }),
        "{message}"
    );
    for part in [
        "superuser",
        "CREATE ROLE",
        "GRANT SELECT ON ALL TABLES",
        "allow_privileged_role",
    ] {
        assert!(message.contains(part), "{part}: {message}");
    }

    // Opted in, the allow-list still stops statements hidden behind an empty one, which PostgreSQL drops.
    let mut su = opted_in(&url, limits());
    let marker = std::env::temp_dir().join(format!("tuneup-copy-program-{}", std::process::id()));
    let attacks = [
        format!(";COPY (SELECT 1) TO PROGRAM 'touch {}'", marker.display()),
        format!("/* x */ ; COPY (SELECT 1) TO '{}'", marker.display()),
        format!(
            "WITH w AS (SELECT 1) SELECT 1; COPY (SELECT 1) TO PROGRAM 'touch {}'",
            marker.display()
        ),
        format!("SELECT 1 INTO {schema}.stolen"),
        format!("WITH d AS (DELETE FROM {schema}.t RETURNING *) SELECT * FROM d"),
    ];
    for sql in &attacks {
        let failure = su.run(sql).unwrap().unwrap_err();
        assert_eq!(
            failure.error_type,
            SqlErrorType::WriteRefused,
            "{sql}: {failure:?}"
        );
    }
    assert!(!marker.exists(), "COPY TO PROGRAM ran");
    assert_eq!(count(&url, &format!("SELECT count(*) FROM {schema}.t")), 2);

    // A reader role runs queries but cannot read the server's files.
    let reader_url = reader(&url, "tuneup_test_reader_files", schema);
    let mut pg = PgEvaluator::connect(&reader_url, limits(), RolePolicy::default()).unwrap();
    pg.use_schema(Some(schema)).unwrap();
    let v = pg
        .evaluate("SELECT b FROM t WHERE a = 2", "SELECT 'y'")
        .unwrap();
    assert!(v.correct, "{v:?}");
    let failure = pg
        .run("SELECT pg_read_file('/etc/hostname')")
        .unwrap()
        .unwrap_err();
    assert_eq!(
        failure.error_type,
        SqlErrorType::WriteRefused,
        "{failure:?}"
    );
    assert!(failure.message.contains("42501"), "{failure:?}");

    // A member of pg_read_server_files is refused like a superuser.
    let member_url = reader(&url, "tuneup_test_reader_files_member", schema);
    client(&url)
        .batch_execute("GRANT pg_read_server_files TO tuneup_test_reader_files_member")
        .unwrap();
    let Err(err) = PgEvaluator::connect(&member_url, limits(), RolePolicy::default()) else {
        panic!("a member of pg_read_server_files was accepted")
    };
    assert!(
        err.to_string().contains("a member of pg_read_server_files"),
        "{err}"
    );
}

#[test]
fn values_and_results_over_the_size_caps_are_too_large() {
    let Some(url) = url() else { return };
    let mut pg = opted_in(
        &url,
        SqlLimits {
            max_cell_bytes: 1000,
            max_result_bytes: 10_000,
            ..limits()
        },
    );
    assert_eq!(
        pg.run("SELECT repeat('x', 1000)").unwrap().unwrap().len(),
        1
    );
    let failure = pg.run("SELECT repeat('x', 1001)").unwrap().unwrap_err();
    assert_eq!(failure.error_type, SqlErrorType::TooLarge, "{failure:?}");
    let failure = pg
        .run("SELECT repeat('x', 500) FROM generate_series(1, 100)")
        .unwrap()
        .unwrap_err();
    assert_eq!(failure.error_type, SqlErrorType::TooLarge, "{failure:?}");
    // The server's own limit (a value over 1 GB) is the same type.
    let failure = pg
        .run("SELECT repeat(repeat('x', 1000000), 1100)")
        .unwrap()
        .unwrap_err();
    assert_eq!(failure.error_type, SqlErrorType::TooLarge, "{failure:?}");
}
