//! Task parsing, data loading and prompt building (few-shot selection).

use std::path::Path;

use tuneup_eval_runner::dataset::{load_mapped, Example};
use tuneup_eval_runner::fewshot::ShotPool;
use tuneup_eval_runner::task::{expand_env, Metric, OutputKind, Overrides, Selection, Task};
use tuneup_eval_runner::{load_examples, Error, PromptBuilder};

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn qa_lines(prefix: &str, n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"id\": \"{prefix}{i}\", \"question\": \"how many {} are there in table {i}\", \"answer\": \"A{i}\", \"db\": \"d{}\"}}\n",
                ["singers", "cars", "dogs"][i % 3],
                i % 2
            )
        })
        .collect()
}

const TASK: &str = r#"
metrics = ["exact_match", "latency"]
[dataset]
path = "test.jsonl"
input = "question"
target = "answer"
id = "id"
category = "db"
[prompt]
system = "You answer {{ db }} questions."
template = "Q: {{ input }}"
output = "text"
[prompt.few_shot]
k = 2
select = "similar"
path = "shots.jsonl"
seed = 7
[model]
name = "smollm2-135m"
[generation]
max_tokens = 32
stop = ["\n"]
[cost]
usd_per_gpu_hour = 2.0
"#;

fn setup() -> (tempfile::TempDir, Task) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "test.jsonl", &qa_lines("t", 5));
    // The shot pool holds a copy of test question 1 (different id): it must never be chosen for it.
    let mut shots = qa_lines("s", 12);
    shots.push_str("{\"id\": \"dup\", \"question\": \"How many  CARS are there in table 1\", \"answer\": \"x\", \"db\": \"d1\"}\n");
    write(dir.path(), "shots.jsonl", &shots);
    let path = write(dir.path(), "task.toml", TASK);
    let task = Task::load(&path).unwrap();
    (dir, task)
}

#[test]
fn parses_task_and_resolves_paths() {
    let (dir, task) = setup();
    assert_eq!(task.name, "task");
    assert_eq!(task.metrics, vec![Metric::ExactMatch, Metric::Latency]);
    assert_eq!(task.primary_metric(), Some(Metric::ExactMatch));
    assert_eq!(task.dataset.path, dir.path().join("test.jsonl"));
    assert_eq!(task.prompt.output, OutputKind::Text);
    assert_eq!(task.generation.stop, vec!["\n".to_string()]);
    assert_eq!(task.cost.usd_per_gpu_hour, Some(2.0));
    let fs = task.prompt.few_shot.as_ref().unwrap();
    assert_eq!((fs.k, fs.select), (2, Selection::Similar));
}

#[test]
fn adapter_path_is_relative_to_the_task_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "test.jsonl", &qa_lines("t", 2));
    write(dir.path(), "shots.jsonl", &qa_lines("s", 2));
    let text = TASK.replace(
        "name = \"smollm2-135m\"",
        "name = \"smollm2-135m\"\nadapter = \"runs/adapter\"",
    );
    let task = Task::load(&write(dir.path(), "task.toml", &text)).unwrap();
    assert_eq!(task.model.adapter, Some(dir.path().join("runs/adapter")));
}

#[test]
fn overrides_apply() {
    let (_dir, mut task) = setup();
    task.apply(&Overrides {
        limit: Some(3),
        model: Some("qwen2.5-coder-0.5b".into()),
        endpoint: Some("http://x".into()),
        shots: Some(0),
        gpu: true,
        ..Overrides::default()
    });
    assert_eq!(task.dataset.limit, Some(3));
    assert!(task.model.gpu, "--gpu turns the GPU on");
    assert_eq!(task.model.name.as_deref(), Some("qwen2.5-coder-0.5b"));
    assert_eq!(task.model.endpoint.as_deref(), Some("http://x"));
    assert!(task.prompt.few_shot.is_none());
    assert_eq!(load_examples(&task.dataset).unwrap().len(), 3);
}

#[test]
fn rejects_bad_tasks() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "test.jsonl", &qa_lines("t", 2));
    let same = TASK.replace("path = \"shots.jsonl\"", "path = \"./test.jsonl\"");
    let err = Task::load(&write(dir.path(), "a.toml", &same))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a.toml") && err.contains("test file itself"),
        "{err}"
    );
    let unknown = TASK.replace("max_tokens = 32", "max_tokenz = 32");
    let err = Task::load(&write(dir.path(), "b.toml", &unknown))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("b.toml") && err.contains("max_tokenz"),
        "{err}"
    );
    let no_target = TASK.replace("target = \"answer\"\n", "");
    let err = Task::load(&write(dir.path(), "c.toml", &no_target))
        .unwrap_err()
        .to_string();
    assert!(err.contains("dataset.target"), "{err}");
    let sql = "metrics = [\"sql_execution\"]\n[dataset]\npath = \"t.jsonl\"\ninput = \"q\"\ntarget = \"a\"\n";
    let err = Task::load(&write(dir.path(), "d.toml", sql))
        .unwrap_err()
        .to_string();
    assert!(err.contains("db_dir"), "{err}");
}

#[test]
fn env_expansion() {
    std::env::set_var("TUNEUP_TEST_EVAL_DIR", "/data/x");
    assert_eq!(
        expand_env("${TUNEUP_TEST_EVAL_DIR}/a.jsonl").unwrap(),
        "/data/x/a.jsonl"
    );
    assert_eq!(
        expand_env("${TUNEUP_TEST_EVAL_UNSET:-../d}/a").unwrap(),
        "../d/a"
    );
    assert!(expand_env("${TUNEUP_TEST_EVAL_UNSET}/a")
        .unwrap_err()
        .contains("TUNEUP_TEST_EVAL_UNSET"));
}

#[test]
fn bad_jsonl_line_names_file_and_line() {
    let (dir, task) = setup();
    write(
        dir.path(),
        "test.jsonl",
        "{\"id\": \"a\", \"question\": \"q\", \"answer\": \"a\", \"db\": 1}\n\n{not json\n",
    );
    let err = load_examples(&task.dataset).unwrap_err();
    assert!(matches!(err, Error::Data { line: 3, .. }), "{err}");
    assert!(err.to_string().contains("test.jsonl:3"), "{err}");
    write(
        dir.path(),
        "test.jsonl",
        "{\"id\": \"a\", \"answer\": \"a\", \"db\": 1}\n",
    );
    let err = load_examples(&task.dataset).unwrap_err().to_string();
    assert!(
        err.contains("test.jsonl:1") && err.contains("question"),
        "{err}"
    );
}

fn pool(task: &Task) -> ShotPool {
    let fs = task.prompt.few_shot.as_ref().unwrap();
    ShotPool::new(load_mapped(&task.dataset, &fs.path).unwrap())
}

#[test]
fn prompt_with_similar_shots() {
    let (_dir, task) = setup();
    let pool = pool(&task);
    let builder = PromptBuilder::new(&task.prompt, None, Some(&pool)).unwrap();
    let examples = load_examples(&task.dataset).unwrap();
    let p = builder.build(&examples[1]).unwrap();
    // system + 2 × (user, assistant) + user
    assert_eq!(p.messages.len(), 6);
    assert_eq!(p.messages[0]["content"], "You answer d1 questions.");
    assert_eq!(
        p.messages[5]["content"],
        "Q: how many cars are there in table 1"
    );
    assert_eq!(p.messages[5]["role"], "user");
    assert!(!p.shot_ids.contains(&"dup".to_string()), "{:?}", p.shot_ids);
    // The most similar shots ask about cars, like the test question.
    for id in &p.shot_ids {
        let n: usize = id[1..].parse().unwrap();
        assert_eq!(n % 3, 1, "{:?}", p.shot_ids);
    }
    assert_eq!(p.messages[2]["role"], "assistant");
    assert!(p.tools.is_none());
}

#[test]
fn selection_is_deterministic_and_never_the_test_example() {
    let (_dir, task) = setup();
    let pool = pool(&task);
    let examples = load_examples(&task.dataset).unwrap();
    for how in [Selection::Fixed, Selection::Random, Selection::Similar] {
        for e in &examples {
            let a: Vec<String> = pool
                .select(e, 12, how, 3)
                .unwrap()
                .iter()
                .map(|s| s.id.clone())
                .collect();
            let b: Vec<String> = pool
                .select(e, 12, how, 3)
                .unwrap()
                .iter()
                .map(|s| s.id.clone())
                .collect();
            assert_eq!(a, b, "{how:?}");
            assert!(
                !a.iter().any(|id| id == "dup" && e.id == "t1"),
                "{how:?} picked the test question"
            );
            assert!(a.iter().all(|id| !id.starts_with('t')));
        }
    }
    let fixed: Vec<String> = pool
        .select(&examples[0], 3, Selection::Fixed, 0)
        .unwrap()
        .iter()
        .map(|s| s.id.clone())
        .collect();
    // s0 asks exactly what t0 asks, so the first three allowed shots are s1..s3.
    assert_eq!(fixed, ["s1", "s2", "s3"]);
    let r1: Vec<String> = pool
        .select(&examples[0], 5, Selection::Random, 1)
        .unwrap()
        .iter()
        .map(|s| s.id.clone())
        .collect();
    let r2: Vec<String> = pool
        .select(&examples[0], 5, Selection::Random, 2)
        .unwrap()
        .iter()
        .map(|s| s.id.clone())
        .collect();
    assert_ne!(r1, r2, "different seeds draw different shots");
}

#[test]
fn chain_of_thought_and_template_errors() {
    let (_dir, mut task) = setup();
    task.prompt.few_shot = None;
    task.prompt.chain_of_thought = true;
    let builder = PromptBuilder::new(&task.prompt, None, None).unwrap();
    let e = &load_examples(&task.dataset).unwrap()[0];
    let p = builder.build(e).unwrap();
    let user = p.messages.last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        user.starts_with("Q: how many singers") && user.contains("Answer:"),
        "{user}"
    );
    task.prompt.template = Some("{{ missing_field }}".into());
    let builder = PromptBuilder::new(&task.prompt, None, None).unwrap();
    let err = builder.build(e).unwrap_err().to_string();
    assert!(
        err.contains("missing_field") || err.contains("undefined"),
        "{err}"
    );
    task.prompt.template = Some("{% if %}".into());
    assert!(PromptBuilder::new(&task.prompt, None, None).is_err());
}

#[test]
fn bfcl_tools_become_openai_tools() {
    let doc = serde_json::json!({"name": "f", "description": "d", "parameters": {"type": "dict",
        "properties": {"x": {"type": "float"}, "type": {"type": "tuple", "items": {"type": "integer"}}}, "required": ["x"]}});
    let t = tuneup_eval_runner::prompt::openai_tool(&doc);
    assert_eq!(t["type"], "function");
    assert_eq!(t["function"]["parameters"]["type"], "object");
    assert_eq!(
        t["function"]["parameters"]["properties"]["x"]["type"],
        "number"
    );
    assert_eq!(
        t["function"]["parameters"]["properties"]["type"]["type"],
        "array"
    );
    assert_eq!(
        t["function"]["parameters"]["properties"]["type"]["items"]["type"],
        "integer"
    );
}

/// `select = "embedding"` finds a paraphrase that shares no word with the question (BM25 cannot), with the real
/// all-MiniLM-L6-v2 (`TUNEUP_MINILM_DIR`; skipped without it).
#[test]
fn embedding_selection_finds_paraphrases() {
    let Some(dir) = tuneup_test_utils::minilm_dir() else {
        return;
    };
    let example = |i: usize, input: &str| Example {
        id: format!("e{i}"),
        index: i,
        input: input.into(),
        target: None,
        category: None,
        db_id: None,
        tools: None,
        record: Default::default(),
    };
    let pool = ShotPool::new(vec![
        example(0, "List the names of all stadiums"),
        example(1, "Count the vocalists in the band"),
        example(2, "What is the weather in Paris?"),
        example(3, "Show every concert held in 2014"),
    ]);
    let test = example(9, "How many singers do we have?");
    assert!(
        pool.select(&test, 1, Selection::Embedding, 0).is_err(),
        "needs embed_with first"
    );
    let embedder = tuneup_retrieval::embed::Embedder::load(&dir, "all-minilm-l6-v2").unwrap();
    let pool = pool.embed_with(embedder).unwrap();
    let chosen = pool.select(&test, 2, Selection::Embedding, 0).unwrap();
    // Most similar last, nearest to the question.
    assert_eq!(
        chosen.last().unwrap().id,
        "e1",
        "{:?}",
        chosen.iter().map(|e| &e.id).collect::<Vec<_>>()
    );
}

/// `[prompt.retrieval]`: the retrieved chunks reach the prompt as `{{ context }}` (real embedder and index).
#[test]
fn retrieved_context_reaches_the_prompt() {
    let Some(model) = tuneup_test_utils::minilm_dir() else {
        return;
    };
    use tuneup_retrieval::{embed::Embedder, ingest, search, store};
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("hr.md"),
        "# Leave\n\nEmployees get 27 days of paid leave per year.\n",
    )
    .unwrap();
    std::fs::write(
        docs.join("it.md"),
        "# Laptops\n\nLaptops are replaced every three years.\n",
    )
    .unwrap();
    let mut index = store::open_index(&dir.path().join("idx"), "hr").unwrap();
    let embedder = Embedder::load(&model, "all-minilm-l6-v2").unwrap();
    ingest::ingest(
        &[docs],
        index.as_mut(),
        &embedder,
        &Default::default(),
        &mut ingest::NoProgress,
    )
    .unwrap();
    let retriever = search::Retriever::new(index, embedder, 1, search::Mode::Hybrid).unwrap();
    let spec: tuneup_eval_runner::task::PromptSpec =
        toml::from_str("template = \"Context:\\n{{ context }}\\n\\nQuestion: {{ input }}\"")
            .unwrap();
    let builder = PromptBuilder::new(&spec, None, None)
        .unwrap()
        .with_retriever(&retriever);
    let test = Example {
        id: "q".into(),
        index: 0,
        input: "How many vacation days do I get?".into(),
        target: None,
        category: None,
        db_id: None,
        tools: None,
        record: Default::default(),
    };
    let prompt = builder.build(&test).unwrap();
    let user = prompt.messages.last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(user.contains("27 days of paid leave"), "{user}");
    assert!(!user.contains("Laptops"), "k = 1: {user}");
    assert!(
        user.ends_with("Question: How many vacation days do I get?"),
        "{user}"
    );
}
