//! A chat template from a model file cannot run forever or size a string by an argument: an endless loop
//! stops with a clear error within about a second, and a real model's template with tools and hundreds
//! of messages still renders within the budget.

use std::time::{Duration, Instant};

use serde_json::json;
use tuneup_tokenize::{ChatTemplate, Error};

fn render(template: &str) -> Result<String, Error> {
    ChatTemplate::new(template, "<s>", "</s>")?.render(
        &[json!({"role": "user", "content": "hi"})],
        None,
        true,
    )
}

#[test]
fn a_loop_of_ten_billion_iterations_is_stopped() {
    // range() is capped at 100,000 items; nesting multiplies them.
    let template =
        "{% for i in range(100000) %}{% for j in range(100000) %}{{ '' }}{% endfor %}{% endfor %}";
    let started = Instant::now();
    let err = render(template).expect_err("the loop must be stopped");
    let elapsed = started.elapsed();
    let text = err.to_string();
    assert!(text.contains("ran past its limit"), "{text}");
    assert!(text.contains("instructions"), "{text}");
    assert!(
        elapsed < Duration::from_secs(20),
        "stopped only after {elapsed:?}"
    );
}

#[test]
fn endless_recursion_is_stopped() {
    let template = "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}";
    let err = render(template).expect_err("recursion must be stopped");
    assert!(matches!(err, Error::Template(_)), "{err}");
}

#[test]
fn indentation_widths_are_capped() {
    let err = render("{{ 'a\nb'|indent(10000000000000) }}").expect_err("huge indent");
    assert!(err.to_string().contains("indent width"), "{err}");
    let err = render("{{ 'a\nb'|indent(width=10000000000000) }}").expect_err("huge indent");
    assert!(err.to_string().contains("indent width"), "{err}");
    let err = render("{{ messages|tojson(indent=10000000000000) }}").expect_err("huge indent");
    assert!(err.to_string().contains("too large"), "{err}");
    // Ordinary widths keep working.
    assert_eq!(render("{{ 'a\nb'|indent(2) }}").unwrap(), "a\n  b");
    assert_eq!(
        render("{{ 'a\nb'|indent(width=2, first=true) }}").unwrap(),
        "  a\n  b"
    );
}

#[test]
fn a_real_template_with_tools_and_many_messages_fits_the_budget() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/chat_templates/qwen2.5-coder-0.5b.json"
    );
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let t = ChatTemplate::new(
        fixture["template"].as_str().unwrap(),
        "",
        fixture["eos_token"].as_str().unwrap_or_default(),
    )
    .unwrap();
    let tools: Vec<_> = (0..20)
        .map(|i| {
            json!({"type": "function", "function": {"name": format!("tool_{i}"), "description": "d",
                "parameters": {"type": "object", "properties": {"x": {"type": "string"}}}}})
        })
        .collect();
    let mut messages = Vec::new();
    for i in 0..500 {
        messages.push(json!({"role": "user", "content": format!("question {i}")}));
        messages.push(json!({"role": "assistant", "content": null, "tool_calls": [
            {"type": "function", "function": {"name": "tool_1", "arguments": {"x": "y"}}}]}));
        messages.push(json!({"role": "tool", "content": "result"}));
        messages.push(json!({"role": "assistant", "content": format!("answer {i}")}));
    }
    let out = t.render(&messages, Some(&tools), true).unwrap();
    assert!(out.contains("answer 499"));
}
