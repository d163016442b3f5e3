//! Function-call verdicts against the official BFCL AST checker, on `fixtures/eval/bfcl.json`
//! (made by `scripts/fixtures/make_eval_bfcl_fixtures.py` from the `bfcl-eval` wheel).

mod common;

use std::collections::BTreeMap;

use common::load_fixture;
use serde_json::Value;
use tuneup_eval::function_call::{check_function_calls, CallErrorType, Category, FunctionCall};

/// Applies a fixture patch (`set`, `drop`, `rename`, `order`) to the calls built from the possible answer.
fn apply_patch(calls: &[FunctionCall], patch: &Value) -> Vec<FunctionCall> {
    if patch.is_null() {
        return calls.to_vec();
    }
    let op = patch["op"].as_str().unwrap();
    if op == "order" {
        return patch["order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| calls[i.as_u64().unwrap() as usize].clone())
            .collect();
    }
    let mut out = calls.to_vec();
    let call = &mut out[patch["call"].as_u64().unwrap() as usize];
    match op {
        "set" => {
            call.arguments.insert(
                patch["param"].as_str().unwrap().to_owned(),
                patch["value"].clone(),
            );
        }
        "drop" => {
            call.arguments
                .shift_remove(patch["param"].as_str().unwrap());
        }
        "rename" => call.name = patch["name"].as_str().unwrap().to_owned(),
        other => panic!("unknown patch op {other}"),
    }
    out
}

#[test]
fn verdicts_match_the_official_ast_checker() {
    let fixture = load_fixture("bfcl.json");
    let mut per_category: BTreeMap<String, usize> = BTreeMap::new();
    let mut invalid_kinds: BTreeMap<String, usize> = BTreeMap::new();
    for entry in fixture["entries"].as_array().unwrap() {
        let category_name = entry["category"].as_str().unwrap();
        let category = Category::from_bfcl_name(category_name);
        let functions = entry["function"].as_array().unwrap();
        let base: Vec<FunctionCall> =
            serde_json::from_value(entry["answer_calls"].clone()).unwrap();
        let answer = entry.get("possible_answer").cloned().unwrap_or(Value::Null);
        for case in entry["cases"].as_array().unwrap() {
            let calls = apply_patch(&base, &case["patch"]);
            let verdict = check_function_calls(category, functions, &calls, &answer).unwrap();
            let what = format!("{} {}: {:?}", entry["id"], case["kind"], verdict);
            assert_eq!(verdict.correct, case["valid"].as_bool().unwrap(), "{what}");
            assert_eq!(
                verdict.bfcl_error_type.as_deref(),
                case["error_type"].as_str(),
                "{what}"
            );
            if calls.is_empty() && !verdict.correct && category != Category::Irrelevance {
                assert_eq!(
                    verdict.error_type,
                    Some(CallErrorType::NoCallWhenOneWanted),
                    "{what}"
                );
            }
            if !verdict.correct {
                *invalid_kinds
                    .entry(format!("{:?}", verdict.error_type.unwrap()))
                    .or_default() += 1;
            }
            *per_category.entry(category_name.to_owned()).or_default() += 1;
        }
    }
    let total: usize = per_category.values().sum();
    eprintln!("checked {total} cases: {per_category:?}; invalid by type: {invalid_kinds:?}");
    assert!(total >= 400, "{per_category:?}");
    for category in [
        "simple_python",
        "multiple",
        "parallel",
        "parallel_multiple",
        "irrelevance",
    ] {
        assert!(
            per_category.get(category).copied().unwrap_or(0) >= 10,
            "{category}: {per_category:?}"
        );
    }
    // Every error category shows up in the fixture.
    for kind in [
        "WrongFunction",
        "MissingArgument",
        "ExtraArgument",
        "WrongValue",
        "WrongType",
        "WrongCount",
        "CallWhenNoneWanted",
        "NoCallWhenOneWanted",
    ] {
        assert!(
            invalid_kinds.contains_key(kind),
            "{kind} never produced: {invalid_kinds:?}"
        );
    }
}
