//! `tuneup train`, `--adapter` and `tuneup merge` end to end on SmolLM2-135M
//! (real weights; skipped without `TUNEUP_SMOLLM2_GGUF`, which
//! scripts/test.sh sets): the loss falls, a killed run resumes on the same
//! curve, Ctrl-C writes a checkpoint, bad input is a clear error. Selecting
//! checkpoints by an eval task's metric runs on a tiny random model.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{ok, tuneup};
use serde_json::{json, Value};
use tuneup_test_utils::{write_tiny_gguf, TinySpec};

fn model() -> Option<PathBuf> {
    tuneup_test_utils::env_model_path("TUNEUP_SMOLLM2_GGUF")
}

const TABLES: [&str; 10] = [
    "singer", "concert", "stadium", "student", "teacher", "course", "airport", "flight", "book",
    "author",
];

/// Short text-to-SQL conversations (two per table).
fn records(tables: &[&str]) -> String {
    let mut out = String::new();
    for t in tables {
        for (q, a) in [
            (
                format!("How many {t}s are there?"),
                format!("SELECT count(*) FROM {t}"),
            ),
            (
                format!("List the names of all {t}s."),
                format!("SELECT name FROM {t}"),
            ),
        ] {
            let r = json!({"messages": [
                {"role": "system", "content": "Answer with one SQLite query."},
                {"role": "user", "content": q},
                {"role": "assistant", "content": a}
            ]});
            out.push_str(&r.to_string());
            out.push('\n');
        }
    }
    out
}

fn write_data(dir: &Path) -> (PathBuf, PathBuf) {
    let train = dir.join("train.jsonl");
    let val = dir.join("validation.jsonl");
    std::fs::write(&train, records(&TABLES[..8])).unwrap();
    std::fs::write(&val, records(&TABLES[8..])).unwrap();
    (train, val)
}

fn train_args<'a>(model: &'a str, train: &'a str, out: &'a str, steps: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "-m",
        model,
        "--train",
        train,
        "-o",
        out,
        "--max-steps",
        steps,
        "--batch-size",
        "4",
        "--lr",
        "2e-3",
        "--max-seq-len",
        "128",
        "--rank",
        "8",
        "--warmup-steps",
        "1",
        "--threads",
        "2",
    ]
}

/// `tuneup chat` (greedy, 16 tokens) asked the test question about the
/// `book` table, with `model` the model arguments.
fn ask_books(home: &Path, model: &[&str]) -> String {
    let mut args = vec!["chat"];
    args.extend_from_slice(model);
    args.extend_from_slice(&[
        "-p",
        "How many books are there?",
        "--system",
        "Answer with one SQLite query.",
        "--temperature",
        "0",
        "-n",
        "16",
    ]);
    ok(&tuneup(home, &args))
}

fn losses(out: &Path) -> Vec<f64> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["loss"]
                .as_f64()
                .unwrap()
        })
        .collect()
}

#[test]
fn loss_falls_and_the_adapter_serves_and_merges() {
    let Some(model) = model() else { return };
    let home = tempfile::tempdir().unwrap();
    let (train, val) = write_data(home.path());
    let out = home.path().join("run");
    let m = model.to_str().unwrap();
    let mut args = train_args(m, train.to_str().unwrap(), out.to_str().unwrap(), "6");
    args.extend([
        "--validation",
        val.to_str().unwrap(),
        "--eval-every",
        "3",
        "--save-every",
        "3",
        "--json",
    ]);
    let stdout = ok(&tuneup(home.path(), &args));
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["steps"], 6);
    let l = losses(&out);
    assert_eq!(l.len(), 6);
    let first = (l[0] + l[1]) / 2.0;
    let last = (l[4] + l[5]) / 2.0;
    assert!(last < 0.6 * first, "training loss should fall: {l:?}");
    let (v0, vb) = (
        summary["initial_val_loss"].as_f64().unwrap(),
        summary["best_val_loss"].as_f64().unwrap(),
    );
    assert!(
        vb < v0,
        "validation loss should fall on unseen tables: {v0} → {vb}"
    );
    // PEFT files, the chart, checkpoints (the newest two).
    let cfg: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("adapter/adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["r"], 8);
    assert_eq!(cfg["peft_type"], "LORA");
    assert!(out.join("adapter/adapter_model.safetensors").is_file());
    assert!(std::fs::read_to_string(out.join("loss.svg"))
        .unwrap()
        .contains("<polyline"));
    assert!(out
        .join("checkpoints/step-00000006/optimizer.safetensors")
        .is_file());

    // The adapter is used by chat: it answers in the trained form.
    let adapter = out.join("adapter");
    let answer = ask_books(
        home.path(),
        &["-m", m, "--adapter", adapter.to_str().unwrap()],
    );
    assert!(
        answer.contains("SELECT count(*) FROM book"),
        "adapter answer: {answer}"
    );

    // Merged into a GGUF, it predicts what base + adapter predicts.
    let merged = home.path().join("merged.gguf");
    let merge = |out: &Path, format: &[&str]| {
        let mut args = vec![
            "merge",
            "-m",
            m,
            "--adapter",
            adapter.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(format);
        ok(&tuneup(home.path(), &args))
    };
    let report = merge(&merged, &["--type", "f16"]);
    assert!(report.contains("210 merged"), "{report}");
    assert!(report.contains("next-token agreement"), "{report}");

    // Merged into an HF folder: the same check runs, and chat loads it.
    let folder = home.path().join("merged-hf");
    let report = merge(&folder, &["--format", "safetensors"]);
    assert!(report.contains("210 modules merged"), "{report}");
    assert!(report.contains("next-token agreement"), "{report}");
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(folder.join(f).is_file(), "{f} missing: {report}");
    }
    let answer = ask_books(home.path(), &["-m", folder.to_str().unwrap()]);
    assert!(
        answer.contains("SELECT count(*) FROM book"),
        "merged folder answer: {answer}"
    );
}

#[test]
fn full_fine_tuning_loss_falls_and_the_model_folder_chats() {
    let Some(model) = model() else { return };
    let home = tempfile::tempdir().unwrap();
    let (train, val) = write_data(home.path());
    let out = home.path().join("full");
    let m = model.to_str().unwrap();
    let args = [
        "train",
        "-m",
        m,
        "--method",
        "full",
        "--train",
        train.to_str().unwrap(),
        "--validation",
        val.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--max-steps",
        "5",
        "--batch-size",
        "4",
        "--lr",
        "1e-4",
        "--max-seq-len",
        "128",
        "--warmup-steps",
        "1",
        "--eval-every",
        "5",
        "--threads",
        "2",
        "--json",
    ];
    let stdout = ok(&tuneup(home.path(), &args));
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["steps"], 5);
    assert!(summary["model"].as_str().unwrap().ends_with("model"));
    let l = losses(&out);
    assert_eq!(l.len(), 5);
    let first = (l[0] + l[1]) / 2.0;
    let last = (l[3] + l[4]) / 2.0;
    assert!(last < 0.7 * first, "training loss should fall: {l:?}");
    let (v0, vb) = (
        summary["initial_val_loss"].as_f64().unwrap(),
        summary["best_val_loss"].as_f64().unwrap(),
    );
    assert!(vb < v0, "validation loss should fall: {v0} → {vb}");
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(out.join("model").join(f).is_file(), "model/{f} missing");
        assert!(
            out.join("model-best").join(f).is_file(),
            "model-best/{f} missing"
        );
    }
    assert!(out
        .join("checkpoints/step-00000005/weights.safetensors")
        .is_file());
    let answer = ask_books(home.path(), &["-m", out.join("model").to_str().unwrap()]);
    assert!(
        answer.contains("SELECT"),
        "full fine-tuned answer: {answer}"
    );
}

/// Starts a run, kills it with `signal` once `steps` steps are reported, and
/// returns its exit status.
fn interrupt_after(
    args: &[&str],
    home: &Path,
    steps: usize,
    signal: &str,
) -> std::process::ExitStatus {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tuneup"))
        .args(args)
        .env("TUNEUP_HOME", home)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = 0;
    let mut log = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.starts_with("step ") {
            seen += 1;
            if seen == steps {
                let pid = child.id().to_string();
                Command::new("kill").args([signal, &pid]).status().unwrap();
            }
        }
    }
    let status = child.wait().unwrap();
    eprintln!("{log}");
    status
}

#[test]
fn killed_run_resumes_on_the_same_curve_and_ctrl_c_checkpoints() {
    let Some(model) = model() else { return };
    let home = tempfile::tempdir().unwrap();
    let (train, _) = write_data(home.path());
    let m = model.to_str().unwrap();
    let t = train.to_str().unwrap();
    let full = home.path().join("full");
    let mut args = train_args(m, t, full.to_str().unwrap(), "4");
    args.extend(["--save-every", "1", "--dropout", "0.1"]);
    ok(&tuneup(home.path(), &args));
    let reference = losses(&full);

    // kill -9 after three steps: at most one interval lost, then --resume.
    let killed = home.path().join("killed");
    let mut args = train_args(m, t, killed.to_str().unwrap(), "4");
    args.extend(["--save-every", "1", "--dropout", "0.1"]);
    let status = interrupt_after(&args, home.path(), 2, "-KILL");
    assert!(!status.success());
    let err = String::from_utf8_lossy(&tuneup(home.path(), &args).stderr).into_owned();
    assert!(
        err.contains("--resume"),
        "rerun without --resume must refuse: {err}"
    );
    args.push("--resume");
    ok(&tuneup(home.path(), &args));
    let resumed = losses(&killed);
    assert_eq!(resumed.len(), reference.len());
    for (i, (a, b)) in reference.iter().zip(&resumed).enumerate() {
        assert!(
            (a - b).abs() < 1e-3 * a.abs().max(1.0),
            "step {}: {a} vs {b}",
            i + 1
        );
    }

    // Ctrl-C: a checkpoint at the current step, exit 0, --resume finishes.
    let stopped = home.path().join("stopped");
    let mut args = train_args(m, t, stopped.to_str().unwrap(), "3");
    args.extend(["--save-every", "100"]);
    let status = interrupt_after(&args, home.path(), 1, "-INT");
    assert!(status.success(), "Ctrl-C exits cleanly");
    let ckpts: Vec<String> = std::fs::read_dir(stopped.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(ckpts.len(), 1, "{ckpts:?}");
    args.push("--resume");
    ok(&tuneup(home.path(), &args));
    assert_eq!(losses(&stopped).len(), 3);
}

#[test]
fn bad_input_is_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    let train = home.path().join("bad.jsonl");
    std::fs::write(
        &train,
        format!("{}{{\"messages\": [\n", records(&TABLES[..1])),
    )
    .unwrap();
    let out = tuneup(
        home.path(),
        &[
            "train",
            "-m",
            "/nonexistent.gguf",
            "--train",
            train.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("bad.jsonl:3"), "the bad line is named: {err}");

    let cfg = home.path().join("train.toml");
    std::fs::write(
        &cfg,
        "model = \"m\"\ntrain_file = \"t.jsonl\"\nlearnin_rate = 1e-4\n",
    )
    .unwrap();
    let out = tuneup(home.path(), &["train", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("learnin_rate"),
        "the unknown key is named: {err}"
    );

    let out = tuneup(home.path(), &["train", "--train", train.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no model"));

    let Some(model) = model() else { return };
    if !cfg!(feature = "cuda") {
        let (good, _) = write_data(home.path());
        let out = tuneup(
            home.path(),
            &[
                "train",
                "-m",
                model.to_str().unwrap(),
                "--train",
                good.to_str().unwrap(),
                "--gpu",
            ],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            err.contains("opening CUDA device 0 (build with --features cuda)"),
            "--gpu without CUDA says so: {err}"
        );
    }
    let bogus = home.path().join("adapter");
    std::fs::create_dir_all(&bogus).unwrap();
    std::fs::write(
        bogus.join("adapter_config.json"),
        r#"{"peft_type":"LORA","r":2,"lora_alpha":4}"#,
    )
    .unwrap();
    let out = tuneup(
        home.path(),
        &[
            "chat",
            "-m",
            model.to_str().unwrap(),
            "--adapter",
            bogus.to_str().unwrap(),
            "-p",
            "hi",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("adapter_model.safetensors"), "{err}");
}

#[test]
fn an_eval_task_selects_the_checkpoint_and_each_evaluation_is_kept() {
    let home = tempfile::tempdir().unwrap();
    let model = home.path().join("tiny.gguf");
    write_tiny_gguf(&model, &TinySpec::llama()).unwrap();
    let (train, val) = write_data(home.path());
    tuneup_test_utils::ladder::write_tiny_sql_task(home.path());
    // `eval_task` in the file is relative to the file; the limit comes from the flag.
    let config = home.path().join("train.toml");
    std::fs::write(&config, "eval_task = \"task.toml\"\n").unwrap();
    let out = home.path().join("run");
    let mut args = train_args(
        model.to_str().unwrap(),
        train.to_str().unwrap(),
        out.to_str().unwrap(),
        "4",
    );
    args.insert(1, config.to_str().unwrap());
    args.extend([
        "--validation",
        val.to_str().unwrap(),
        "--eval-every",
        "2",
        "--eval-limit",
        "2",
        "--json",
    ]);
    let run = tuneup(home.path(), &args);
    let stdout = ok(&run);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["steps"], 4);
    assert_eq!(summary["selected_by"], "sql_execution");
    assert_eq!(summary["metric_errors"], 0, "{stderr}");
    // Evaluated before training, at step 2 and at the end, on two examples each.
    let mut scores = Vec::new();
    for step in [0, 2, 4] {
        let dir = out.join(format!("evals/step-{step}"));
        let s: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap())
                .unwrap();
        assert_eq!(s["examples"], 2, "step {step}");
        assert_eq!(s["primary_metric"], "sql_execution");
        let score = s["metrics"]["sql_execution"].as_f64().unwrap();
        scores.push(score);
        let examples = std::fs::read_to_string(dir.join("examples.jsonl")).unwrap();
        assert_eq!(examples.lines().count(), 2, "step {step}");
        assert!(
            stderr.contains(&format!("step {step}: sql_execution {score:.4}")),
            "step {step} is logged: {stderr}"
        );
    }
    assert!(
        stderr.contains("· validation loss "),
        "the validation loss is logged beside the metric: {stderr}"
    );
    // The first step with the highest score is the best (ties go to the earlier step).
    let best_score = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let best_step = [0u64, 2, 4][scores.iter().position(|&s| s == best_score).unwrap()];
    let best: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("best.json")).unwrap()).unwrap();
    assert_eq!(best["step"], best_step, "{scores:?}");
    assert_eq!(best["selected_by"], "sql_execution");
    assert_eq!(best["value"].as_f64().unwrap(), best_score);
    assert!(best["val_loss"].as_f64().is_some());
    assert_eq!(summary["best_step"], best_step);
    assert_eq!(summary["best_metric"].as_f64().unwrap(), best_score);
    assert_eq!(summary["initial_metric"].as_f64().unwrap(), scores[0]);
    assert!(stderr.contains(&format!(
        "step {best_step}: sql_execution {best_score:.4} (best)"
    )));
    assert!(out.join("adapter-best/adapter_model.safetensors").is_file());
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let scored: Vec<Value> = metrics
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|m| m.get("val_metric").is_some())
        .collect();
    assert_eq!(scored.len(), 2, "steps 2 and 4 carry the metric: {metrics}");

    // A task file that is not there is a clear error before training.
    let out2 = home.path().join("run2");
    let mut args = train_args(
        model.to_str().unwrap(),
        train.to_str().unwrap(),
        out2.to_str().unwrap(),
        "4",
    );
    args.extend(["--eval-task", "missing-task.toml"]);
    let failed = tuneup(home.path(), &args);
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success());
    assert!(err.contains("missing-task.toml"), "{err}");
}
