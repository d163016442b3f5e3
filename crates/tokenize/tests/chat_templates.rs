//! Rendered chat templates must be byte-identical to Hugging Face `transformers`'
//! `apply_chat_template` (fixtures made with transformers).

mod common;

use common::{extra_fixture_dirs, gguf_tokenizer, read_fixture, QWEN_ENV, SMOLLM2_ENV};
use tuneup_tokenize::{ChatTemplate, Error};

fn check_fixture(model: &str) {
    let Some(fixture) = read_fixture(&format!("chat_templates/{model}.json")) else {
        return;
    };
    let failures = check_cases(&fixture, true);
    assert!(
        failures.is_empty(),
        "{model} cases differ:\n{}",
        failures.join("\n")
    );
}

/// Renders every case of a fixture; returns a description of each mismatch. With
/// `strict_errors`, rendering something transformers refused to render is a mismatch.
fn check_cases(fixture: &serde_json::Value, strict_errors: bool) -> Vec<String> {
    let s = |k: &str| fixture[k].as_str().unwrap_or_default().to_string();
    let mut template = match ChatTemplate::new(&s("template"), &s("bos_token"), &s("eos_token")) {
        Ok(t) => t,
        Err(e) => return vec![format!("template does not compile: {e}")],
    };
    if let Some(now) = fixture.get("now_unix").and_then(|v| v.as_i64()) {
        template = template.with_fixed_time(now);
    }
    for var in ["unk_token", "pad_token"] {
        if let Some(v) = fixture.get(var).filter(|v| !v.is_null()) {
            template = template.with_var(var, v.clone());
        }
    }
    let cases = fixture["cases"].as_array().expect("cases");
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap_or("?");
        let messages = case["messages"].as_array().expect("messages");
        let tools = case["tools"].as_array().map(Vec::as_slice);
        let agp = case["add_generation_prompt"].as_bool().unwrap_or(false);
        let got = template.render(messages, tools, agp);
        match (case["rendered"].as_str(), got) {
            (Some(want), Ok(got)) if got == want => {}
            (Some(want), Ok(got)) => failures.push(format!(
                "{name}: rendered text differs\n--- transformers ---\n{want}\n--- ours ---\n{got}\n---"
            )),
            (Some(_), Err(e)) => failures.push(format!("{name}: transformers rendered it, we failed: {e}")),
            (None, Ok(got)) if strict_errors => failures.push(format!(
                "{name}: transformers failed ({}), we rendered:\n{got}",
                case["error"]
            )),
            (None, Ok(_)) => eprintln!(
                "note: {name}: transformers failed ({}), we rendered (more lenient)",
                case["error"]
            ),
            (None, Err(_)) => {}
        }
    }
    failures
}

/// Popular templates (Llama 3.x, Mistral, Phi-3.5, Gemma 2, Qwen 2.5/3, DeepSeek R1,
/// SmolLM3, Hermes, gpt-oss, Granite, ...) rendered by transformers: every
/// `tests/data/chat_templates/*.json`, plus `chat_templates/*.json` under the extra
/// fixture roots (`TUNEUP_EXTRA_FIXTURES`).
#[test]
fn more_templates_match_transformers() {
    let mut report = Vec::new();
    let mut dirs = vec![
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/chat_templates")
    ];
    dirs.extend(
        extra_fixture_dirs()
            .into_iter()
            .map(|d| d.join("chat_templates")),
    );
    let mut checked = 0;
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
        {
            let text = std::fs::read_to_string(&path).expect("read fixture");
            let fixture: serde_json::Value = serde_json::from_str(&text).expect("JSON fixture");
            let failures = check_cases(&fixture, false);
            checked += 1;
            if !failures.is_empty() {
                report.push(format!("=== {}\n{}", path.display(), failures.join("\n")));
            }
        }
    }
    assert!(checked >= 10, "only {checked} template fixtures found");
    assert!(report.is_empty(), "{}", report.join("\n"));
}

#[test]
fn smollm2_templates_match_transformers() {
    check_fixture("smollm2-135m");
}

#[test]
fn qwen_templates_match_transformers() {
    check_fixture("qwen2.5-coder-0.5b");
}

/// The template stored in the GGUF is the one the fixtures were rendered with.
#[test]
fn gguf_templates_are_the_fixture_templates() {
    for (env, model) in [
        (SMOLLM2_ENV, "smollm2-135m"),
        (QWEN_ENV, "qwen2.5-coder-0.5b"),
    ] {
        let Some(tok) = gguf_tokenizer(env) else {
            continue;
        };
        let Some(fixture) = read_fixture(&format!("chat_templates/{model}.json")) else {
            continue;
        };
        assert_eq!(tok.chat_template(), fixture["template"].as_str(), "{model}");
        assert_eq!(
            tok.bos_token(),
            fixture["bos_token"].as_str(),
            "{model} bos"
        );
        assert_eq!(
            tok.eos_token(),
            fixture["eos_token"].as_str(),
            "{model} eos"
        );
    }
}

#[test]
fn raise_exception_is_reported() {
    let t = ChatTemplate::new(
        "{% if messages[0].role != 'user' %}{{ raise_exception('first message must be from the user') }}{% endif %}ok",
        "",
        "",
    )
    .unwrap();
    let err = t
        .render(
            &[serde_json::json!({"role": "system", "content": "x"})],
            None,
            false,
        )
        .unwrap_err();
    match err {
        Error::TemplateException(msg) => assert_eq!(msg, "first message must be from the user"),
        other => panic!("unexpected error {other}"),
    }
}
