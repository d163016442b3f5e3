//! Grammar-constrained decoding on a tiny random-weight model: whatever the
//! (random) model prefers, the output parses and conforms to the JSON schema or
//! Lark grammar, and generation stops when the grammar is complete.

use serde_json::{json, Value};
use tuneup_generate::{
    ChatModel, Error, FinishReason, GenerateParams, Generator, Grammar, GrammarCompiler, NullSink,
    SamplingParams,
};
use tuneup_models::{LoadOptions, ModelFiles};
use tuneup_test_utils::{write_tiny_gguf, TinySpec};

fn tiny(dir: &std::path::Path) -> ChatModel {
    let path = dir.join("tiny.gguf");
    write_tiny_gguf(&path, &TinySpec::llama()).unwrap();
    ChatModel::load(&ModelFiles::Gguf(path), &LoadOptions::default()).unwrap()
}

fn person_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 6},
            "age": {"type": "integer", "minimum": 0, "maximum": 120},
            "color": {"enum": ["red", "green"]},
            "tags": {"type": "array", "items": {"type": "boolean"}, "maxItems": 3}
        },
        "required": ["name", "age", "color"],
        "additionalProperties": false
    })
}

fn sampled(seed: u64, grammar: &GrammarCompiler, g: &Grammar) -> GenerateParams {
    GenerateParams {
        max_tokens: 400,
        sampling: SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed,
            ..SamplingParams::default()
        },
        constraint: Some(grammar.compile(g).unwrap()),
        ..GenerateParams::default()
    }
}

fn check_person(v: &Value) {
    let o = v.as_object().expect("an object");
    assert!(
        o.keys()
            .all(|k| ["name", "age", "color", "tags"].contains(&k.as_str())),
        "{v}"
    );
    let name = o["name"].as_str().expect("name is a string");
    assert!(name.chars().count() <= 6, "{v}");
    let age = o["age"].as_i64().expect("age is an integer");
    assert!((0..=120).contains(&age), "{v}");
    assert!(
        ["red", "green"].contains(&o["color"].as_str().unwrap()),
        "{v}"
    );
    if let Some(tags) = o.get("tags") {
        let tags = tags.as_array().expect("tags is an array");
        assert!(tags.len() <= 3 && tags.iter().all(Value::is_boolean), "{v}");
    }
}

#[test]
fn random_model_output_always_matches_the_json_schema() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny(dir.path());
    let compiler = GrammarCompiler::new(&m.tokenizer).unwrap();
    let grammar = Grammar::JsonSchema(person_schema());
    let prompt = m.tokenizer.encode("a person:", false).unwrap();
    for seed in 0..12 {
        let mut params = sampled(seed, &compiler, &grammar);
        let out = Generator::new(&m.model.decoder, &m.tokenizer)
            .generate(&prompt, &mut params, &mut NullSink)
            .unwrap();
        assert_eq!(
            out.stats.finish_reason,
            FinishReason::Stop,
            "seed {seed}: {}",
            out.text
        );
        let v: Value = serde_json::from_str(&out.text)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}: {}", out.text));
        check_person(&v);
        // Written the way json.dumps writes it: ", " and ": ", no other whitespace.
        assert!(
            out.text.starts_with("{\"name\": \""),
            "seed {seed}: {}",
            out.text
        );
        assert!(
            out.text
                .contains(&format!(", \"age\": {}, \"color\": \"", v["age"])),
            "seed {seed}: {}",
            out.text
        );
    }
}

#[test]
fn greedy_output_matches_too_and_ends_without_an_eos_from_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny(dir.path());
    let compiler = GrammarCompiler::new(&m.tokenizer).unwrap();
    let mut params = GenerateParams {
        max_tokens: 400,
        sampling: SamplingParams::greedy(),
        constraint: Some(compiler.compile(&Grammar::JsonSchema(json!({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"], "additionalProperties": false}))).unwrap()),
        ..GenerateParams::default()
    };
    let prompt = m.tokenizer.encode("answer:", false).unwrap();
    let out = Generator::new(&m.model.decoder, &m.tokenizer)
        .generate(&prompt, &mut params, &mut NullSink)
        .unwrap();
    let v: Value = serde_json::from_str(&out.text).unwrap();
    assert!(v["ok"].is_boolean(), "{}", out.text);
    assert_eq!(out.stats.finish_reason, FinishReason::Stop);
}

#[test]
fn lark_grammar_with_a_json_schema_inside_tags() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny(dir.path());
    let compiler = GrammarCompiler::new(&m.tokenizer).unwrap();
    let grammar = Grammar::Lark {
        grammar: "start: call+\ncall: \"<tool_call>\\n\" @args \"\\n</tool_call>\"\n".into(),
        schemas: vec![(
            "args".into(),
            json!({"type": "object", "properties": {"name": {"const": "get_weather"}, "arguments": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 5}}, "required": ["city"], "additionalProperties": false}}, "required": ["name", "arguments"], "additionalProperties": false}),
        )],
    };
    let prompt = m.tokenizer.encode("call:", false).unwrap();
    for seed in 0..6 {
        let mut params = sampled(seed, &compiler, &grammar);
        let out = Generator::new(&m.model.decoder, &m.tokenizer)
            .generate(&prompt, &mut params, &mut NullSink)
            .unwrap();
        let mut rest = out.text.as_str();
        let mut calls = 0;
        while !rest.is_empty() {
            let body = rest
                .strip_prefix("<tool_call>\n")
                .unwrap_or_else(|| panic!("seed {seed}: {}", out.text));
            let Some(end) = body.find("\n</tool_call>") else {
                // Only the last call may be cut, and only by the token limit.
                assert_eq!(
                    out.stats.finish_reason,
                    FinishReason::Length,
                    "seed {seed}: {}",
                    out.text
                );
                break;
            };
            let v: Value = serde_json::from_str(&body[..end]).unwrap();
            assert_eq!(v["name"], "get_weather");
            assert!(v["arguments"]["city"].as_str().unwrap().chars().count() <= 5);
            rest = &body[end + "\n</tool_call>".len()..];
            calls += 1;
        }
        assert!(calls >= 1, "seed {seed}: {}", out.text);
    }
}

#[test]
fn a_bad_schema_or_grammar_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny(dir.path());
    let compiler = GrammarCompiler::new(&m.tokenizer).unwrap();
    for g in [
        Grammar::JsonSchema(json!({"type": "no-such-type"})),
        Grammar::JsonSchema(json!({"$ref": "#/definitions/missing"})),
        Grammar::Lark {
            grammar: "start: undefined_rule".into(),
            schemas: vec![],
        },
    ] {
        match compiler.compile(&g) {
            Err(Error::Grammar(msg)) => assert!(!msg.is_empty()),
            other => panic!("{g:?}: expected a grammar error, got {other:?}"),
        }
    }
}
