//! Verification at inference time on a real SQLite database the test writes: candidates and the vote, repair
//! rounds, the summed cost, the `truncated` error type, and the schema renderings of `{{ schema }}`. The model is
//! a scripted backend (fixed replies by candidate seed and turn): a random model cannot be made to write
//! specific SQL. `tests/verify_model.rs` runs the same path with a tiny random model.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tuneup_eval_runner::backend::Completion;
use tuneup_eval_runner::task::Generation;
use tuneup_eval_runner::{
    load_examples, run_examples, Backend, Prompt, PromptBuilder, RunOptions, RunResult, Schemas,
    Task, Verdict,
};

const GOLD: &str = "SELECT name FROM singer WHERE age < 30";

fn write_db(dir: &Path) {
    if dir.join("concert.sqlite").exists() {
        return;
    }
    let conn = rusqlite::Connection::open(dir.join("concert.sqlite")).unwrap();
    let long = "x".repeat(100);
    conn.execute_batch(&format!(
        "CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT, country VARCHAR(20), age INTEGER);
         INSERT INTO singer VALUES (1, 'Joe', 'France', 25), (2, 'Ann', 'France', 41), (3, 'Li', 'China', 22),
                                   (4, 'Bo', 'Chile', 35), (5, '{long}', 'Peru', 50);
         CREATE TABLE concert (id INTEGER PRIMARY KEY, singer_id INTEGER REFERENCES singer(id), year INTEGER);
         INSERT INTO concert VALUES (1, 1, 2014);"
    ))
    .unwrap();
}

fn task(dir: &Path, extra: &str) -> Task {
    write_db(dir);
    let line = serde_json::json!({"question": "names of singers under 30", "query": GOLD, "db_id": "concert"});
    std::fs::write(dir.join("test.jsonl"), format!("{line}\n")).unwrap();
    let toml = format!(
        "metrics = [\"sql_execution\"]\n[dataset]\npath = \"test.jsonl\"\ninput = \"question\"\n\
         target = \"query\"\ndb_id = \"db_id\"\ndb_dir = \".\"\n[prompt]\noutput = \"sql\"\n\
         template = \"{{{{ schema }}}}\\n\\n{{{{ input }}}}\"\n{extra}"
    );
    Task::from_toml(&toml, dir, &dir.join("t.toml")).unwrap()
}

/// Replies by candidate seed; a user turn that reports a failed query gets `repair` (when set).
struct Scripted {
    by_seed: Vec<&'static str>,
    repair: Option<&'static str>,
    finish_reason: &'static str,
    calls: Vec<(Generation, Vec<Value>)>,
}

impl Scripted {
    fn new(by_seed: Vec<&'static str>) -> Self {
        Self {
            by_seed,
            repair: None,
            finish_reason: "stop",
            calls: Vec::new(),
        }
    }
}

impl Backend for Scripted {
    fn describe(&self) -> String {
        "scripted".into()
    }

    fn complete(&mut self, prompt: &Prompt, g: &Generation) -> Result<Completion, String> {
        self.calls.push((g.clone(), prompt.messages.clone()));
        let last = prompt.messages.last().unwrap()["content"].as_str().unwrap();
        let text = match self.repair {
            Some(r) if last.starts_with("That query failed on the database:") => r,
            _ => self.by_seed[g.seed as usize],
        };
        Ok(Completion {
            text: text.to_owned(),
            prompt_text: last.to_owned(),
            prompt_tokens: 100,
            completion_tokens: 11,
            ttft: Duration::from_millis(2),
            total: Duration::from_millis(12),
            finish_reason: self.finish_reason.into(),
        })
    }
}

fn run(task: &Task, backend: &mut Scripted) -> RunResult {
    let examples = load_examples(&task.dataset).unwrap();
    let builder = PromptBuilder::new(&task.prompt, Schemas::for_task(task).unwrap(), None).unwrap();
    run_examples(task, &examples, &builder, backend, &RunOptions::default()).unwrap()
}

#[test]
fn the_vote_picks_the_largest_result_group_over_the_greedy_answer() {
    let dir = tempfile::tempdir().unwrap();
    let t = task(dir.path(), "[verify]\ncandidates = 4\n");
    // Greedy answers with the wrong rows; two differently written queries agree on the right ones; the last
    // fails on the database and gets no vote.
    let mut b = Scripted::new(vec![
        "SELECT name FROM singer WHERE age > 30",
        "SELECT name FROM singer WHERE age < 30",
        "SELECT name FROM singer WHERE NOT age >= 30 ORDER BY id DESC",
        "SELECT nme FROM singer",
    ]);
    let r = run(&t, &mut b);
    let rec = &r.records[0];
    assert_eq!(rec.answer, Value::String(GOLD.into()));
    assert_eq!(rec.verdict, Verdict::Correct);
    assert_eq!((rec.candidates, rec.repairs), (4, 0));
    let temps: Vec<(f32, u64)> = b
        .calls
        .iter()
        .map(|(g, _)| (g.temperature, g.seed))
        .collect();
    assert_eq!(temps, vec![(0.0, 0), (0.7, 1), (0.7, 2), (0.7, 3)]);
    // Every request is paid for: 4 × 12 ms, 4 × 11 generated tokens.
    assert_eq!(rec.total_ms, Some(48.0));
    assert_eq!((rec.prompt_tokens, rec.completion_tokens), (400, 44));
    assert_eq!(rec.ttft_ms, Some(2.0));
    assert_eq!(r.summary.mean_candidates, 4.0);
}

#[test]
fn failing_queries_get_no_vote_and_greedy_wins_ties() {
    let dir = tempfile::tempdir().unwrap();
    let t = task(dir.path(), "[verify]\ncandidates = 3\n");
    // Greedy fails; the other two disagree (one group each): the earliest working one wins.
    let mut b = Scripted::new(vec![
        "SELECT nme FROM singer",
        "SELECT name FROM singer WHERE age > 30",
        GOLD,
    ]);
    let rec = &run(&t, &mut b).records[0];
    assert_eq!(
        rec.answer,
        Value::String("SELECT name FROM singer WHERE age > 30".into())
    );
    // A tie between working answers goes to greedy.
    let mut b = Scripted::new(vec![GOLD, "SELECT name FROM singer WHERE age > 30"]);
    let t = task(dir.path(), "[verify]\ncandidates = 2\n");
    assert_eq!(
        run(&t, &mut b).records[0].answer,
        Value::String(GOLD.into())
    );
}

#[test]
fn repair_turns_a_failing_query_into_a_working_one() {
    let dir = tempfile::tempdir().unwrap();
    let t = task(dir.path(), "[verify]\nrepair_rounds = 2\n");
    let mut b = Scripted::new(vec!["SELECT nme FROM singer WHERE age < 30"]);
    b.repair = Some(GOLD);
    let r = run(&t, &mut b);
    let rec = &r.records[0];
    assert_eq!(rec.verdict, Verdict::Correct, "{rec:?}");
    assert_eq!((rec.candidates, rec.repairs), (1, 1));
    assert_eq!(b.calls.len(), 2);
    // The second request carries the first reply and the database's error.
    let msgs = &b.calls[1].1;
    assert_eq!(msgs[msgs.len() - 2]["role"], "assistant");
    let last = msgs.last().unwrap()["content"].as_str().unwrap();
    assert!(
        last.contains("no such column: nme") && last.ends_with("Write a corrected SQLite query."),
        "{last}"
    );
    assert_eq!(rec.total_ms, Some(24.0));
    assert_eq!(rec.completion_tokens, 22);
    assert_eq!(r.summary.mean_repairs, 1.0);
}

#[test]
fn repair_gives_up_after_its_rounds_and_empty_results_are_not_errors() {
    let dir = tempfile::tempdir().unwrap();
    let t = task(dir.path(), "[verify]\nrepair_rounds = 2\n");
    let mut b = Scripted::new(vec!["SELECT nme FROM singer"]);
    b.repair = Some("SELECT name FROM nowhere");
    let rec = run(&t, &mut b).records[0].clone();
    assert_eq!(b.calls.len(), 3);
    assert_eq!((rec.repairs, rec.verdict), (2, Verdict::Wrong));
    assert_eq!(rec.error_type.as_deref(), Some("unknown_table"));
    // A query that runs and returns no rows is left alone.
    let mut b = Scripted::new(vec!["SELECT name FROM singer WHERE age > 1000"]);
    b.repair = Some(GOLD);
    let rec = run(&t, &mut b).records[0].clone();
    assert_eq!((b.calls.len(), rec.repairs), (1, 0));
    assert_eq!(rec.error_type.as_deref(), Some("empty_result"));
}

#[test]
fn wrong_answers_cut_off_by_the_token_limit_are_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let t = task(dir.path(), "[generation]\nmax_tokens = 11\n");
    let mut b = Scripted::new(vec!["SELECT name FROM singer WHERE age > 30"]);
    b.finish_reason = "length";
    let r = run(&t, &mut b);
    let rec = &r.records[0];
    assert_eq!(rec.error_type.as_deref(), Some("truncated"));
    let msg = rec.error_message.as_deref().unwrap();
    assert!(
        msg.starts_with("truncated (would be wrong_result)"),
        "{msg}"
    );
    assert_eq!(r.summary.truncated, 1);
    assert_eq!(r.summary.error_types["truncated"].count, 1);
    assert_eq!(
        r.summary.warnings,
        vec!["1 of 1 answers hit max_tokens = 11; raise generation.max_tokens".to_string()]
    );
    let table = tuneup_eval_runner::terminal_table(&r.summary);
    assert!(
        table.contains("warning: 1 of 1 answers hit max_tokens"),
        "{table}"
    );
    let html = tuneup_eval_runner::run_report(&r.summary, &r.records);
    assert!(html.contains("warning: 1 of 1 answers hit max_tokens"));
    // A correct answer that hit the limit keeps its verdict.
    let mut b = Scripted::new(vec![GOLD]);
    b.finish_reason = "length";
    let r = run(&t, &mut b);
    assert_eq!(
        (r.records[0].verdict, r.records[0].error_type.clone()),
        (Verdict::Correct, None)
    );
    assert_eq!(r.summary.truncated, 1);
}

#[test]
fn tool_calls_vote_by_their_canonical_call_list() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("test.jsonl"),
        "{\"q\": \"call g\", \"a\": \"x\"}\n",
    )
    .unwrap();
    let toml = "metrics = [\"exact_match\"]\n[dataset]\npath = \"test.jsonl\"\ninput = \"q\"\ntarget = \"a\"\n\
                [prompt]\noutput = \"tool_calls\"\n[verify]\ncandidates = 3\n";
    let t = Task::from_toml(toml, dir.path(), &dir.path().join("t.toml")).unwrap();
    // The two sampled calls are the same call with their arguments in another order.
    let mut b = Scripted::new(vec![
        r#"<tool_call>{"name": "f", "arguments": {"a": 1}}</tool_call>"#,
        r#"<tool_call>{"name": "g", "arguments": {"x": 1, "y": {"p": 2, "q": 3}}}</tool_call>"#,
        r#"<tool_call>{"arguments": {"y": {"q": 3, "p": 2}, "x": 1}, "name": "g"}</tool_call>"#,
    ]);
    let rec = &run(&t, &mut b).records[0];
    assert_eq!(rec.answer[0]["name"], "g", "{rec:?}");
    assert_eq!(rec.raw_output.as_deref(), Some(b.by_seed[1]));
}

fn schema_of(t: &Task) -> String {
    let examples = load_examples(&t.dataset).unwrap();
    let builder = PromptBuilder::new(&t.prompt, Schemas::for_task(t).unwrap(), None).unwrap();
    let p = builder.build(&examples[0]).unwrap();
    let user = p.messages[0]["content"].as_str().unwrap();
    // The template is `{{ schema }}`, a blank line, the question.
    user.rsplit_once("\n\n").unwrap().0.to_owned()
}

#[test]
fn schema_styles_read_the_sqlite_file_without_tables_json() {
    let dir = tempfile::tempdir().unwrap();
    let ddl = schema_of(&task(dir.path(), ""));
    assert!(ddl.starts_with("CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT, country VARCHAR(20), age INTEGER);"), "{ddl}");
    assert!(ddl.contains("CREATE TABLE concert"), "{ddl}");
    assert!(!ddl.contains("--"), "{ddl}");

    let rows = schema_of(&task(dir.path(), "schema_style = \"ddl_rows\"\n"));
    assert!(rows.starts_with(&ddl), "{rows}");
    assert!(rows.contains("-- rows of singer (first 3):\n-- id | name | country | age\n-- 1 | 'Joe' | 'France' | 25\n-- 2 | 'Ann' | 'France' | 41\n-- 3 | 'Li' | 'China' | 22\n-- rows of concert"), "{rows}");
    assert!(!rows.contains("'Bo'"), "{rows}");

    let values = schema_of(&task(dir.path(), "schema_style = \"ddl_values\"\n"));
    assert!(
        values.contains("-- singer.country: 'France', 'China', 'Chile', 'Peru'"),
        "{values}"
    );
    let cut = format!("'{}…'", "x".repeat(60));
    assert!(values.contains(&cut), "{values}");
    // Integer columns get no value list.
    assert!(!values.contains("singer.age"), "{values}");
}

#[test]
fn bad_verify_settings_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    write_db(dir.path());
    std::fs::write(dir.path().join("test.jsonl"), "{}\n").unwrap();
    let base = "metrics = [\"exact_match\"]\n[dataset]\npath = \"test.jsonl\"\ninput = \"q\"\ntarget = \"a\"\n";
    let err = |extra: &str| {
        Task::from_toml(&format!("{base}{extra}"), dir.path(), Path::new("t.toml"))
            .unwrap_err()
            .to_string()
    };
    assert!(err("[verify]\nrepair_rounds = 1\n").contains("needs `prompt.output = \"sql\"`"));
    assert!(err("[verify]\ncandidates = 0\n").contains("at least 1"));
    assert!(err("[generation]\nconstrained = true\n").contains("needs `prompt.json_schema`"));
    assert!(err("[prompt]\nschema_style = \"ddl_rows\"\n").contains("set `dataset.db_dir`"));
    assert!(
        err("[prompt]\noutput = \"sql\"\n[verify]\ncandidates = 2\n").contains("runs the queries")
    );
}
