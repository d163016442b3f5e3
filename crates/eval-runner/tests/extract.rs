//! Answer extraction: SQL, tool calls, text with chain of thought, JSON.

use tuneup_eval_runner::extract::{extract_sql, extract_text, extract_tool_calls};
use tuneup_eval_runner::{extract, Answer, OutputKind};

#[test]
fn sql_from_fences_and_bare_statements() {
    assert_eq!(
        extract_sql(
            "Here:\n```sql\nSELECT count(*) FROM singer;\n```\nDone",
            false
        )
        .as_deref(),
        Some("SELECT count(*) FROM singer")
    );
    // Unclosed fence (the stop string ate the closing one).
    assert_eq!(
        extract_sql("```sql\nSELECT a FROM t\n", false).as_deref(),
        Some("SELECT a FROM t")
    );
    assert_eq!(
        extract_sql(
            "The query is select name from singer where age > 3; it works",
            false
        )
        .as_deref(),
        Some("select name from singer where age > 3")
    );
    assert_eq!(
        extract_sql("```\nWITH x AS (SELECT 1) SELECT * FROM x\n```", false).as_deref(),
        Some("WITH x AS (SELECT 1) SELECT * FROM x")
    );
    // "selection" is not a keyword.
    assert_eq!(extract_sql("No selection possible.", false), None);
    let cot = "First ```sql\nSELECT 1\n``` then refine:\n```sql\nSELECT 2\n```";
    assert_eq!(extract_sql(cot, true).as_deref(), Some("SELECT 2"));
    assert_eq!(extract_sql(cot, false).as_deref(), Some("SELECT 1"));
    assert_eq!(
        extract("nothing here", OutputKind::Sql, false),
        Answer::None
    );
}

#[test]
fn tool_calls_in_qwen_and_bare_formats() {
    let qwen = "<tool_call>\n{\"name\": \"area\", \"arguments\": {\"base\": 10, \"unit\": \"cm\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"g\", \"arguments\": {}}\n</tool_call>";
    let calls = extract_tool_calls(qwen);
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].name, "area");
    assert_eq!(calls[0].arguments["base"], 10);
    // Unclosed last block, arguments as a JSON string (OpenAI style).
    let calls =
        extract_tool_calls("<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"x\\\": 1}\"}");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].arguments["x"], 1);
    let calls = extract_tool_calls("```json\n[{\"name\": \"a\", \"arguments\": {\"x\": 1}}, {\"function\": {\"name\": \"b\", \"arguments\": {}}}]\n```");
    assert_eq!(
        calls.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    let calls =
        extract_tool_calls("{\"tool_calls\": [{\"name\": \"z\", \"parameters\": {\"q\": \"s\"}}]}");
    assert_eq!(calls[0].name, "z");
    assert_eq!(calls[0].arguments["q"], "s");
    assert!(extract_tool_calls("I cannot help with that.").is_empty());
}

#[test]
fn text_and_json_answers() {
    assert_eq!(extract_text("  Paris. ", false), "Paris.");
    assert_eq!(
        extract_text("Step 1... Answer: 42\nAnswer: 43 ", true),
        "43"
    );
    assert_eq!(extract_text("no marker", true), "no marker");
    assert_eq!(
        extract("Sure: ```json\n{\"a\": 1}\n```", OutputKind::Json, false),
        Answer::Text("{\"a\": 1}".into())
    );
    assert_eq!(extract("not json", OutputKind::Json, false), Answer::None);
}
