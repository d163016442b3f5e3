//! Hand-written function-call cases: normalization, each error type, irrelevance and malformed reference data.

use serde_json::{json, Map, Value};
use tuneup_eval::function_call::{
    check_function_calls, CallErrorType, CallVerdict, Category, FunctionCall,
};

fn docs() -> Vec<Value> {
    vec![
        json!({"name": "weather.get", "parameters": {"type": "dict", "properties": {
        "city": {"type": "string"}, "days": {"type": "integer"}, "units": {"type": "string"},
        "scale": {"type": "float"}, "tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["city"]}}),
    ]
}

fn call(arguments: Value) -> FunctionCall {
    FunctionCall {
        name: "weather.get".into(),
        arguments: arguments.as_object().unwrap().clone(),
    }
}

fn answer() -> Value {
    json!([{"weather.get": {"city": ["New York, NY", "NYC"], "days": [3], "units": ["", "metric"],
        "scale": [2.0], "tags": [["Rain", "wind"], ""]}}])
}

fn judge(arguments: Value) -> CallVerdict {
    check_function_calls(Category::Simple, &docs(), &[call(arguments)], &answer()).unwrap()
}

#[test]
fn accepts_normalized_strings_ints_for_floats_and_optional_absence() {
    assert!(judge(json!({"city": "new york ny", "days": 3, "scale": 2})).correct);
    assert!(judge(json!({"city": "NYC", "days": 3, "scale": 2.0, "units": "Metric", "tags": ["rain", "WIND"]})).correct);
}

#[test]
fn classifies_failures() {
    let kind = |args: Value| judge(args).error_type;
    assert_eq!(
        kind(json!({"days": 3, "scale": 2})),
        Some(CallErrorType::MissingArgument)
    );
    assert_eq!(
        kind(json!({"city": "NYC", "scale": 2})),
        Some(CallErrorType::MissingArgument)
    );
    assert_eq!(
        kind(json!({"city": "NYC", "days": 3, "scale": 2, "x": 1})),
        Some(CallErrorType::ExtraArgument)
    );
    assert_eq!(
        kind(json!({"city": "Boston", "days": 3, "scale": 2})),
        Some(CallErrorType::WrongValue)
    );
    assert_eq!(
        kind(json!({"city": "NYC", "days": "3", "scale": 2})),
        Some(CallErrorType::WrongType)
    );
    assert_eq!(
        kind(json!({"city": "NYC", "days": 3.0, "scale": 2})),
        Some(CallErrorType::WrongType)
    );
    let renamed = FunctionCall {
        name: "weather_get".into(),
        arguments: Map::new(),
    };
    let v = check_function_calls(Category::Simple, &docs(), &[renamed], &answer()).unwrap();
    assert_eq!(v.error_type, Some(CallErrorType::WrongFunction));
    let v = check_function_calls(Category::Simple, &docs(), &[], &answer()).unwrap();
    assert_eq!(v.error_type, Some(CallErrorType::NoCallWhenOneWanted));
    let two = [call(json!({"city": "NYC"})), call(json!({"city": "NYC"}))];
    let v = check_function_calls(Category::Simple, &docs(), &two, &answer()).unwrap();
    assert_eq!(v.error_type, Some(CallErrorType::WrongCount));
}

#[test]
fn irrelevance_wants_no_call() {
    assert!(
        check_function_calls(Category::Irrelevance, &docs(), &[], &Value::Null)
            .unwrap()
            .correct
    );
    let v = check_function_calls(
        Category::Irrelevance,
        &docs(),
        &[call(json!({}))],
        &Value::Null,
    )
    .unwrap();
    assert_eq!(v.error_type, Some(CallErrorType::CallWhenNoneWanted));
}

#[test]
fn malformed_reference_data_is_an_error_not_a_panic() {
    let c = [call(json!({"city": "NYC"}))];
    assert!(
        check_function_calls(Category::Simple, &docs(), &c, &json!({"not": "a list"})).is_err()
    );
    assert!(check_function_calls(Category::Simple, &[], &c, &answer()).is_err());
    let bad_type = vec![
        json!({"name": "weather.get", "parameters": {"properties": {"city": {"type": "object"}}, "required": []}}),
    ];
    let err = check_function_calls(
        Category::Simple,
        &bad_type,
        &c,
        &json!([{"weather.get": {"city": ["x"]}}]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("weather.get.city"), "{err}");
    let err =
        check_function_calls(Category::Multiple, &docs(), &c, &json!([{"other": {}}])).unwrap_err();
    assert!(err.to_string().contains("other"), "{err}");
}

#[test]
fn category_names_map_like_the_checker() {
    assert_eq!(Category::from_bfcl_name("simple_python"), Category::Simple);
    assert_eq!(
        Category::from_bfcl_name("live_multiple"),
        Category::Multiple
    );
    assert_eq!(
        Category::from_bfcl_name("parallel_multiple"),
        Category::ParallelMultiple
    );
    assert_eq!(
        Category::from_bfcl_name("live_irrelevance"),
        Category::Irrelevance
    );
}
