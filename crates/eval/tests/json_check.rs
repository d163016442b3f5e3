//! JSON extraction and schema checks.

use serde_json::json;
use tuneup_eval::json_check::{
    check_output, extract_json, FormatErrorType, JsonCheckError, SchemaChecker,
};

#[test]
fn extracts_from_fences_whole_output_and_embedded_text() {
    let fenced = "Sure!\n```json\n{\"a\": 1}\n```\nand more ```{\"b\": 2}```";
    let found = extract_json(fenced).unwrap();
    assert_eq!(found.value, json!({"a": 1}));
    assert!(found.from_fence);
    assert_eq!(&fenced[found.span.clone()], "{\"a\": 1}");

    // A `json` fence wins over an earlier unlabelled one; an unlabelled fence is used when no `json` one exists.
    let two = "```\nnot json\n```\n```JSON\n[1, 2]\n```";
    assert_eq!(extract_json(two).unwrap().value, json!([1, 2]));
    assert_eq!(
        extract_json("```\n{\"x\": null}\n```").unwrap().value,
        json!({"x": null})
    );

    assert_eq!(extract_json("  42 ").unwrap().value, json!(42));
    assert_eq!(extract_json("\"text\"").unwrap().value, json!("text"));

    let embedded =
        "The answer is {\"name\": \"Ada\", \"tags\": [\"x\"]} as requested. {\"second\": 1}";
    let found = extract_json(embedded).unwrap();
    assert_eq!(found.value, json!({"name": "Ada", "tags": ["x"]}));
    assert!(!found.from_fence);
    assert_eq!(
        &embedded[found.span],
        "{\"name\": \"Ada\", \"tags\": [\"x\"]}"
    );

    // A broken first candidate is skipped in favour of a later complete one.
    assert_eq!(
        extract_json("{oops} then [true]").unwrap().value,
        json!([true])
    );
}

#[test]
fn reports_why_there_is_no_json() {
    let err = extract_json("I cannot answer that.").unwrap_err();
    assert!(
        matches!(err, JsonCheckError::NoJson { len: 21, .. }),
        "{err}"
    );
    let err = extract_json("```json\n{\"a\": 1,\n```").unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("line") && message.contains("column"),
        "{message}"
    );
    assert!(extract_json("").is_err());
    assert!(extract_json("```json").is_err());
}

#[test]
fn schema_conformance_lists_violations_with_paths() {
    let schema = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer", "minimum": 0},
            "tags": {"type": "array", "items": {"enum": ["a", "b"]}}
        },
        "required": ["name", "age"],
        "additionalProperties": false
    });
    let checker = SchemaChecker::new(&schema).unwrap();
    let ok = check_output(
        "```json\n{\"name\": \"Ada\", \"age\": 36, \"tags\": [\"a\"]}\n```",
        Some(&checker),
    );
    assert!(ok.correct && ok.error_type.is_none(), "{ok:?}");

    let bad = check_output(
        "{\"name\": 7, \"age\": -1, \"tags\": [\"c\"], \"extra\": true}",
        Some(&checker),
    );
    assert_eq!(bad.error_type, Some(FormatErrorType::SchemaViolation));
    let paths: Vec<&str> = bad
        .violations
        .iter()
        .map(|v| v.instance_path.as_str())
        .collect();
    for expected in ["/name", "/age", "/tags/0", ""] {
        assert!(
            paths.contains(&expected),
            "missing violation at {expected:?}: {:?}",
            bad.violations
        );
    }
    let missing = check_output("{\"name\": \"Ada\"}", Some(&checker));
    assert!(
        missing.violations.iter().any(|v| v.message.contains("age")),
        "{missing:?}"
    );

    let not_json = check_output("no", Some(&checker));
    assert_eq!(not_json.error_type, Some(FormatErrorType::NotJson));
    assert!(not_json.message.is_some());
    // Without a schema any JSON value is correct.
    assert!(check_output("[1]", None).correct);
}

#[test]
fn invalid_schema_is_an_error() {
    let err = SchemaChecker::new(&json!({"type": "no-such-type"})).unwrap_err();
    assert!(matches!(err, JsonCheckError::InvalidSchema { .. }), "{err}");
    assert!(err.to_string().contains("invalid JSON schema"), "{err}");
}

#[test]
fn remote_references_are_not_fetched() {
    // The crate is built without HTTP resolution: a remote $ref must fail to compile, not hang or fetch.
    let schema = json!({"$ref": "https://example.invalid/schema.json"});
    assert!(SchemaChecker::new(&schema).is_err());
}

/// Verdicts and error locations against Python's `jsonschema`, on `fixtures/eval/json_schema.json`
/// (made by `scripts/fixtures/make_eval_json_fixtures.py` from real glaive tool schemas and calls).
#[test]
fn schema_verdicts_match_python_jsonschema() {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/eval/json_schema.json");
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let schemas: Vec<SchemaChecker> = fixture["schemas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| SchemaChecker::new(s).unwrap())
        .collect();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 150);
    for case in cases {
        let checker = &schemas[case["schema"].as_u64().unwrap() as usize];
        let instance = &case["instance"];
        let violations = checker.violations(instance);
        assert_eq!(
            violations.is_empty(),
            case["valid"].as_bool().unwrap(),
            "{} {instance}: {violations:?}",
            case["kind"]
        );
        let mut paths: Vec<&str> = violations
            .iter()
            .map(|v| v.instance_path.as_str())
            .collect();
        paths.sort();
        paths.dedup();
        let expected: Vec<&str> = case["error_paths"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        assert_eq!(paths, expected, "{} {instance}", case["kind"]);
    }
}
