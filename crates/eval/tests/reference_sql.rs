//! SQL execution match on real Spider dev databases against `fixtures/eval/sql.json`
//! (Python sqlite3 verdicts made by `scripts/fixtures/make_eval_sql_fixtures.py`).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::{load_fixture, text2sql_dir};
use tuneup_eval::sql::guard::{check_query, Dialect};
use tuneup_eval::sql::{Comparison, SqlErrorType, SqlEvaluator, SqlLimits};

fn database(dir: &Path, db_id: &str) -> PathBuf {
    dir.join("databases")
        .join(db_id)
        .join(format!("{db_id}.sqlite"))
}

fn error_type_name(error_type: Option<SqlErrorType>) -> Option<String> {
    error_type.map(|t| {
        serde_json::to_value(t)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    })
}

#[test]
fn verdicts_and_error_types_match_python_reference() {
    let Some(dir) = text2sql_dir() else { return };
    let fixture = load_fixture("sql.json");
    let golds = fixture["golds"].as_array().unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 250);
    let mut evaluators: HashMap<String, SqlEvaluator> = HashMap::new();
    let mut official: HashMap<String, SqlEvaluator> = HashMap::new();
    let mut by_kind: HashMap<String, usize> = HashMap::new();
    let mut rules_disagree = 0;
    for case in cases {
        let gold = &golds[case["gold"].as_u64().unwrap() as usize];
        let db_id = gold["db_id"].as_str().unwrap();
        let evaluator = evaluators.entry(db_id.to_owned()).or_insert_with(|| {
            SqlEvaluator::open(database(&dir, db_id), SqlLimits::default()).unwrap()
        });
        let (pred, gold_sql) = (
            case["pred"].as_str().unwrap(),
            gold["query"].as_str().unwrap(),
        );
        let verdict = evaluator.evaluate(pred, gold_sql).unwrap();
        let kind = case["kind"].as_str().unwrap();
        assert_eq!(
            verdict.correct,
            case["correct"].as_bool().unwrap(),
            "{kind}: {pred} vs gold {gold_sql}: {verdict:?}"
        );
        // A statement outside the allow-list is refused before SQLite sees it (the Python reference ran it
        // read-only and reported what SQLite said first, e.g. an unknown column of an UPDATE).
        let expected = match check_query(pred, Dialect::Sqlite) {
            Err(refused) => error_type_name(Some(refused.error_type)),
            Ok(()) => case["error_type"].as_str().map(str::to_owned),
        };
        assert_eq!(
            error_type_name(verdict.error_type),
            expected,
            "{kind}: {pred}: {verdict:?} vs reference message {}",
            case["message"]
        );
        let spider = official.entry(db_id.to_owned()).or_insert_with(|| {
            SqlEvaluator::open(database(&dir, db_id), SqlLimits::default())
                .unwrap()
                .with_comparison(Comparison::SpiderOfficial {
                    keep_distinct: false,
                })
        });
        let official_verdict = spider.evaluate(pred, gold_sql).unwrap();
        assert_eq!(
            official_verdict.correct,
            case["official_like"].as_bool().unwrap(),
            "official rules, {kind}: {pred} vs gold {gold_sql}: {official_verdict:?}"
        );
        rules_disagree += usize::from(official_verdict.correct != verdict.correct);
        *by_kind.entry(kind.to_owned()).or_default() += 1;
    }
    eprintln!(
        "checked {} cases ({} gold queries); strict and official rules disagree on {rules_disagree}: {by_kind:?}",
        cases.len(),
        golds.len()
    );
    assert_eq!(by_kind["gold"], golds.len());
    assert!(by_kind.len() >= 15, "perturbation kinds: {by_kind:?}");
}

#[test]
fn every_spider_dev_gold_query_matches_itself() {
    let Some(dir) = text2sql_dir() else { return };
    let text = std::fs::read_to_string(dir.join("spider_dev.jsonl")).unwrap();
    let mut evaluators: HashMap<String, SqlEvaluator> = HashMap::new();
    let mut count = 0;
    for line in text.lines() {
        let example: serde_json::Value = serde_json::from_str(line).unwrap();
        let db_id = example["db_id"].as_str().unwrap();
        let query = example["query"].as_str().unwrap();
        let evaluator = evaluators.entry(db_id.to_owned()).or_insert_with(|| {
            SqlEvaluator::open(database(&dir, db_id), SqlLimits::default()).unwrap()
        });
        let verdict = evaluator.evaluate(query, query).unwrap();
        assert!(verdict.correct, "{db_id}: {query}: {verdict:?}");
        count += 1;
    }
    assert_eq!(count, 1034);
}
