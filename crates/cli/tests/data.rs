//! `tuneup data prepare` driven as a user would: malformed records of every format reported with file and line,
//! the real shared data sets (glaive ShareGPT tool calls, the alpaca demo, Spider text-to-SQL with tables.json
//! and with live SQLite databases; skipped with a message when `../shared/data` is absent), determinism, seeds,
//! near duplicates, and token counting with a model's tokenizer and chat template.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{json, Value};
use tuneup_test_utils::{write_tiny_gguf, TinySpec};

mod common;
use common::{ok, tuneup};

fn prepare(home: &Path, inputs: &[&Path], out: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<&str> = vec!["data", "prepare"];
    args.extend(inputs.iter().map(|p| p.to_str().unwrap()));
    args.extend(["--out", out.to_str().unwrap()]);
    args.extend_from_slice(extra);
    tuneup(home, &args)
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn stats(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("stats.json")).unwrap()).unwrap()
}

/// Train, validation and test records together.
fn all_records(out: &Path) -> Vec<Value> {
    ["train", "validation", "test"]
        .iter()
        .flat_map(|s| jsonl(&out.join(format!("{s}.jsonl"))))
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// `(file name, line, kind, reason)` of rejected.jsonl.
fn rejected(out: &Path) -> Vec<(String, u64, String, String)> {
    jsonl(&out.join("rejected.jsonl"))
        .iter()
        .map(|r| {
            (
                Path::new(r["file"].as_str().unwrap())
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                r["line"].as_u64().unwrap(),
                r["kind"].as_str().unwrap().to_owned(),
                r["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn malformed_records_of_every_format_are_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let chat = dir.path().join("chat.jsonl");
    write_lines(
        &chat,
        &[
            json!({"messages": [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris."}]}).to_string(),
            "{\"messages\": [".into(),
            json!({"messages": [{"role": "narrator", "content": "x"}, {"role": "assistant", "content": "y"}]}).to_string(),
            String::new(),
            json!({"messages": [{"role": "user", "content": "Only a question"}]}).to_string(),
            json!({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]}).to_string(),
        ],
    );
    let alpaca = dir.path().join("alpaca.jsonl");
    write_lines(
        &alpaca,
        &[
            json!({"instruction": "Add 2 and 3.", "input": "", "output": "5"}).to_string(),
            json!({"instruction": "Name a color."}).to_string(),
            json!({"instruction": "Name a fruit.", "output": 7}).to_string(),
            json!({"instruction": "Long one.", "output": "word ".repeat(100)}).to_string(),
        ],
    );
    let sharegpt = dir.path().join("sharegpt.json");
    std::fs::write(
        &sharegpt,
        serde_json::to_string_pretty(&json!([
            {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]},
            {"conversations": [{"from": "human", "value": "Hi"}, {"from": "function_call", "value": "get_time()"}]},
            {"conversations": [{"from": "human"}, {"from": "gpt", "value": "?"}]},
            {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hey"}], "tools": "{oops"}
        ]))
        .unwrap(),
    )
    .unwrap();

    let out = dir.path().join("out");
    let run = prepare(
        dir.path(),
        &[&chat, &alpaca, &sharegpt],
        &out,
        &["--max-tokens", "60"],
    );
    let stdout = ok(&run);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let got = rejected(&out);
    // `FILE:LINE KIND | part of the reason`.
    let expect = [
        "chat.jsonl:2 malformed | invalid JSON",
        "chat.jsonl:3 malformed | message 1: unknown role `narrator`",
        "chat.jsonl:5 malformed | no assistant turn",
        "chat.jsonl:6 empty | message 2 (assistant) has empty content",
        "alpaca.jsonl:2 malformed | missing field `output`",
        "alpaca.jsonl:3 malformed | `output` is not a string",
        "alpaca.jsonl:4 too_long | tokens > max 60",
        "sharegpt.json:2 malformed | message 2 (function_call): not JSON",
        "sharegpt.json:3 malformed | message 1 has no `value`",
        "sharegpt.json:4 malformed | `tools` is not JSON",
    ];
    assert_eq!(got.len(), expect.len(), "{got:#?}");
    for ((file, line, kind, reason), want) in got.iter().zip(expect) {
        let (place, part) = want.split_once(" | ").unwrap();
        assert_eq!(format!("{file}:{line} {kind}"), place, "{reason}");
        assert!(reason.contains(part), "{place}: {reason} lacks {part}");
    }
    // The terminal names the same places: `file:line` for JSONL, `file: record N` for a JSON array.
    assert!(
        stderr.contains(&format!("{}:3: message 1: unknown role", chat.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{}: record 3: message 1 has no `value`",
            sharegpt.display()
        )),
        "{stderr}"
    );
    let units: Vec<String> = jsonl(&out.join("rejected.jsonl"))
        .iter()
        .map(|r| r["unit"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(units.iter().filter(|u| *u == "record").count(), 3);

    assert_eq!(all_records(&out).len(), 3);
    let s = stats(&out);
    assert_eq!(s["read"], 13);
    assert_eq!(s["kept"], 3);
    assert_eq!(s["rejected"]["malformed"], 8);
    assert_eq!(s["inputs"][2]["format"], "sharegpt");
    assert!(s["tokens"]["counter"]
        .as_str()
        .unwrap()
        .contains("estimate"));
    assert!(stdout.contains("read 13, rejected 10"), "{stdout}");

    // A file whose format cannot be told is an error naming it.
    let odd = dir.path().join("odd.jsonl");
    write_lines(
        &odd,
        &[json!({"prompt": "a", "completion": "b"}).to_string()],
    );
    let run = prepare(dir.path(), &[&odd], &out, &[]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("odd.jsonl:1: cannot tell the format"),
        "{stderr}"
    );
}

fn numbered_alpaca(dir: &Path, n: usize) -> PathBuf {
    let p = dir.join("numbers.jsonl");
    let lines: Vec<String> = (0..n)
        .map(|i| {
            json!({"instruction": format!("What is {i} plus {i}?"), "output": format!("{}", 2 * i)})
                .to_string()
        })
        .collect();
    write_lines(&p, &lines);
    p
}

#[test]
fn same_seed_same_files_other_seed_other_split() {
    let dir = tempfile::tempdir().unwrap();
    let input = numbered_alpaca(dir.path(), 300);
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    ok(&prepare(dir.path(), &[&input], &a, &[]));
    ok(&prepare(dir.path(), &[&input], &b, &["--seed", "42"]));
    ok(&prepare(dir.path(), &[&input], &c, &["--seed", "7"]));
    for f in [
        "train.jsonl",
        "validation.jsonl",
        "test.jsonl",
        "rejected.jsonl",
        "stats.json",
    ] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f} differs between two runs"
        );
        assert!(!a.join(format!("{f}.tmp")).exists());
    }
    assert_ne!(
        std::fs::read(a.join("test.jsonl")).unwrap(),
        std::fs::read(c.join("test.jsonl")).unwrap()
    );
    let s = stats(&a);
    let split = |s: &Value, name: &str| s["splits"][name]["records"].as_u64().unwrap();
    assert_eq!(
        split(&s, "train") + split(&s, "validation") + split(&s, "test"),
        300
    );
    assert!(split(&s, "validation") > 0 && split(&s, "test") > 0, "{s}");
    assert_eq!(
        split(&stats(&c), "train") + split(&stats(&c), "test") + split(&stats(&c), "validation"),
        300
    );

    // `--split` and `--json`.
    let run = prepare(dir.path(), &[&input], &c, &["--split", "50,50,0", "--json"]);
    let printed: Value = serde_json::from_str(&ok(&run)).unwrap();
    assert_eq!(printed["splits"]["test"]["records"], 0);
    assert!(printed["splits"]["validation"]["records"].as_u64().unwrap() > 100);
    let bad = prepare(dir.path(), &[&input], &c, &["--split", "0.9,0.1"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected three numbers"));
}

#[test]
fn near_duplicates_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let text = |change: &str| -> String {
        let mut words: Vec<String> = (0..160).map(|i| format!("token{}", i * 31 % 97)).collect();
        words[80] = change.into();
        words.join(" ")
    };
    let input = dir.path().join("near.jsonl");
    write_lines(
        &input,
        &[
            json!({"instruction": "Summarise the report.", "input": text("alpha"), "output": "A summary."}).to_string(),
            json!({"instruction": "Summarise the report.", "input": text("beta"), "output": "A summary."}).to_string(),
            json!({"instruction": "summarise  the report.", "input": text("alpha"), "output": "a summary."}).to_string(),
            json!({"instruction": "Something else entirely.", "output": "Yes."}).to_string(),
        ],
    );
    let out = dir.path().join("out");
    ok(&prepare(dir.path(), &[&input], &out, &[]));
    let got = rejected(&out);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!((got[0].1, got[0].2.as_str()), (2, "near_duplicate"));
    assert!(got[0].3.ends_with("near.jsonl:1"), "{got:?}");
    assert_eq!((got[1].1, got[1].2.as_str()), (3, "exact_duplicate"));
    assert_eq!(all_records(&out).len(), 2);
    // A threshold of 1 keeps the near duplicate.
    ok(&prepare(
        dir.path(),
        &[&input],
        &out,
        &["--near-dup-threshold", "1"],
    ));
    assert_eq!(all_records(&out).len(), 3);
}

#[test]
fn counts_tokens_with_a_models_template() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    write_tiny_gguf(&model, &TinySpec::llama()).unwrap();
    let input = dir.path().join("one.jsonl");
    write_lines(
        &input,
        &[json!({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}).to_string()],
    );
    let out = dir.path().join("out");
    ok(&prepare(
        dir.path(),
        &[&input],
        &out,
        &["--model", model.to_str().unwrap(), "--split", "1,0,0"],
    ));
    let s = stats(&out);
    // ChatML, one token a byte (the tiny vocabulary has no merges) and one a marker:
    // <|im_start|> "user\nhi" <|im_end|> "\n" <|im_start|> "assistant\nyo" <|im_end|> "\n".
    assert_eq!(s["tokens"]["total"], 25, "{s}");
    assert!(
        s["tokens"]["counter"]
            .as_str()
            .unwrap()
            .contains("chat template"),
        "{s}"
    );
}

fn shared_data() -> Option<PathBuf> {
    let dir = match std::env::var_os("TUNEUP_DATA") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    };
    if dir.is_dir() {
        Some(dir)
    } else {
        println!(
            "skipped: no shared data at {} (set TUNEUP_DATA)",
            dir.display()
        );
        None
    }
}

#[test]
fn glaive_sharegpt_tool_calls() {
    let Some(data) = shared_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let input = data.join("tools/glaive_toolcall_en_demo.json");
    let stdout = ok(&prepare(
        dir.path(),
        &[&input],
        &out,
        &["--system", "You are a helpful assistant."],
    ));
    let s = stats(&out);
    assert_eq!(s["read"], 300, "{stdout}");
    assert_eq!(s["inputs"][0]["format"], "sharegpt");
    assert_eq!(s["rejected"]["malformed"], 0, "{stdout}");
    assert!(s["kept"].as_u64().unwrap() > 250, "{stdout}");
    let records = all_records(&out);
    let calls: Vec<&Value> = records
        .iter()
        .flat_map(|r| r["messages"].as_array().unwrap())
        .filter(|m| m.get("tool_calls").is_some())
        .collect();
    assert!(calls.len() > 100, "{}", calls.len());
    for m in &calls {
        assert_eq!(m["role"], "assistant");
        let f = &m["tool_calls"][0]["function"];
        assert!(f["name"].is_string() && f["arguments"].is_object(), "{m}");
        assert_eq!(m["tool_calls"][0]["type"], "function");
    }
    let with_tool_reply = records.iter().find(|r| {
        r["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["role"] == "tool")
    });
    let r = with_tool_reply.expect("observations become tool messages");
    assert_eq!(r["messages"][0]["role"], "system");
    assert_eq!(r["tools"][0]["type"], "function");
    assert!(r["tools"][0]["function"]["parameters"].is_object(), "{r}");
    assert!(stdout.contains("tokens (estimate"), "{stdout}");
}

#[test]
fn alpaca_demo_array() {
    let Some(data) = shared_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let stdout = ok(&prepare(
        dir.path(),
        &[&data.join("instruct/alpaca_en_demo.json")],
        &out,
        &[],
    ));
    let s = stats(&out);
    assert_eq!(s["read"], 999);
    assert_eq!(s["inputs"][0]["format"], "alpaca");
    let kept = s["kept"].as_u64().unwrap();
    assert!(kept > 900, "{stdout}");
    assert_eq!(all_records(&out).len() as u64, kept);
    // Every rejection names a record of the array.
    for r in jsonl(&out.join("rejected.jsonl")) {
        assert_eq!(r["unit"], "record", "{r}");
        assert!((1..=999).contains(&r["line"].as_u64().unwrap()), "{r}");
    }
    let hist = s["histogram"].as_array().unwrap();
    assert_eq!(
        hist.iter()
            .map(|b| b["records"].as_u64().unwrap())
            .sum::<u64>(),
        kept
    );
    assert!(stdout.contains(" | #"), "{stdout}");
}

#[test]
fn spider_text_to_sql() {
    let Some(data) = shared_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let text2sql = data.join("text2sql");
    // The first 300 questions (a few databases) keep the test quick.
    let lines: Vec<String> = std::fs::read_to_string(text2sql.join("spider_train.jsonl"))
        .unwrap()
        .lines()
        .take(300)
        .map(str::to_owned)
        .collect();
    let input = dir.path().join("spider300.jsonl");
    write_lines(&input, &lines);
    let first: Value = serde_json::from_str(&lines[0]).unwrap();

    let out = dir.path().join("tables");
    let tables = text2sql.join("tables.json");
    let stdout = ok(&prepare(
        dir.path(),
        &[&input],
        &out,
        &["--tables", tables.to_str().unwrap()],
    ));
    let s = stats(&out);
    assert_eq!(s["read"], 300, "{stdout}");
    assert_eq!(s["inputs"][0]["format"], "text2sql");
    assert_eq!(s["rejected"]["malformed"], 0, "{stdout}");
    let records = all_records(&out);
    assert!(records.len() > 250, "{stdout}");
    let r = records
        .iter()
        .find(|r| r["messages"][1]["content"] == first["question"].as_str().unwrap().trim())
        .expect("the first question is kept");
    let system = r["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("CREATE TABLE department ("), "{system}");
    assert!(system.contains("FOREIGN KEY"), "{system}");
    assert_eq!(r["messages"][2]["content"], first["query"]);

    // Live SQLite databases instead, one database per split.
    let out = dir.path().join("sqlite");
    let db_dir = text2sql.join("databases");
    ok(&prepare(
        dir.path(),
        &[&input],
        &out,
        &[
            "--db-dir",
            db_dir.to_str().unwrap(),
            "--group-by",
            "db_id",
            "--system",
            "SQLite schema:\n{schema}\nAnswer with SQL.",
        ],
    ));
    let mut db_split: std::collections::HashMap<String, &str> = Default::default();
    for split in ["train", "validation", "test"] {
        for r in jsonl(&out.join(format!("{split}.jsonl"))) {
            let system = r["messages"][0]["content"].as_str().unwrap().to_owned();
            assert!(
                system.starts_with("SQLite schema:\nCREATE TABLE"),
                "{system}"
            );
            assert!(system.ends_with("\nAnswer with SQL."), "{system}");
            let prev = db_split.insert(system, split);
            assert!(prev.is_none_or(|p| p == split), "a database in two splits");
        }
    }
    assert!(db_split.len() > 1);
    assert_eq!(stats(&out)["settings"]["group_by_db"], true);

    // Without a schema source, text-to-SQL is an error that says what to pass.
    let run = prepare(dir.path(), &[&input], &out, &[]);
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("--tables"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}
