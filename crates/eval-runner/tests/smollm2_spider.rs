//! End to end on the real SmolLM2-135M model (`TUNEUP_SMOLLM2_GGUF`) over five Spider dev questions on their
//! real SQLite databases (`TUNEUP_DATA`, default `../shared/data` next to the repository). Skipped with a
//! message when the model is not set, unless `TUNEUP_REQUIRE_MODELS=1`.

use std::path::PathBuf;

use tuneup_eval_runner::{compare, load_run, run_task, RunOptions, Task, Verdict};

fn data_dir() -> PathBuf {
    std::env::var_os("TUNEUP_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
}

#[test]
fn spider_dev_five_questions_on_smollm2() {
    let Ok(model) = std::env::var("TUNEUP_SMOLLM2_GGUF") else {
        assert!(
            std::env::var("TUNEUP_REQUIRE_MODELS").is_err(),
            "TUNEUP_SMOLLM2_GGUF is not set but TUNEUP_REQUIRE_MODELS is"
        );
        eprintln!("skipping: TUNEUP_SMOLLM2_GGUF is not set");
        return;
    };
    let data = data_dir();
    assert!(
        data.join("text2sql/spider_dev.jsonl").exists(),
        "Spider data not found under {} (set TUNEUP_DATA)",
        data.display()
    );
    // The shipped task file, with the model and data swapped in.
    let task_file =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/eval/spider-dev-sql.toml");
    std::env::set_var("TUNEUP_DATA", &data);
    let mut task = Task::load(&task_file).unwrap();
    task.dataset.limit = Some(5);
    task.model.name = Some(model);
    task.model.threads = Some(2);
    task.generation.max_tokens = 32;
    let dir = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for shots in [0, 1] {
        if let Some(fs) = &mut task.prompt.few_shot {
            fs.k = shots;
        }
        let out = dir.path().join(format!("{shots}shot"));
        let r = run_task(
            &task,
            &RunOptions {
                out: Some(out.clone()),
                progress: false,
            },
        )
        .unwrap();
        for f in ["examples.jsonl", "summary.json", "report.html", "task.toml"] {
            assert!(out.join(f).exists(), "{f}");
        }
        let s = &r.summary;
        assert_eq!(s.examples, 5);
        assert_eq!(s.correct + s.wrong + s.errors + s.scored, 5);
        assert_eq!(s.scored, 0);
        let typed: usize = s.error_types.values().map(|e| e.count).sum();
        assert_eq!(
            typed,
            s.wrong + s.errors,
            "every failure has a type: {:?}",
            s.error_types
        );
        for rec in &r.records {
            assert!(rec.raw_output.is_some(), "{rec:?}");
            assert!(
                rec.prompt.contains("CREATE TABLE"),
                "schema DDL in the prompt"
            );
            assert!(rec.completion_tokens > 0 && rec.ttft_ms.is_some());
            match rec.verdict {
                Verdict::Correct => assert!(rec.error_type.is_none()),
                _ => assert!(rec.error_type.is_some(), "{rec:?}"),
            }
            assert_eq!(rec.shots.len(), shots);
        }
        assert!(s.latency.ttft_ms.is_some() && s.throughput.output_tokens_per_s > 0.0);
        runs.push(load_run(&out).unwrap());
    }
    let c = compare(runs);
    assert_eq!(c.tests[0].common, 5);
}
