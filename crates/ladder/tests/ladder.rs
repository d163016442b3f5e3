//! Every kind of rung end to end on a tiny random model and a tiny SQL task over a real SQLite database: the
//! rows, the outputs, reuse of finished rungs, a failing training rung, and Ctrl-C.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tuneup_ladder::{run_ladder, LadderConfig, LadderOptions, RungKind, Status};

fn options(out: &std::path::Path) -> LadderOptions {
    LadderOptions {
        out: out.to_path_buf(),
        progress: false,
        ..LadderOptions::default()
    }
}

#[test]
fn every_rung_runs_and_finished_rungs_are_not_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    // The forgetting check measures a general task (here the same tiny one) before and after training.
    let file = tuneup_test_utils::ladder::write_tiny_sql_ladder(
        dir.path(),
        "[forgetting]\ntask = \"task.toml\"\nlimit = 3\n",
    );
    let cfg = LadderConfig::load(&file).unwrap();
    let out = dir.path().join("run");
    let first = run_ladder(&cfg, &options(&out)).unwrap();
    let status: Vec<(RungKind, Status)> = first.rows.iter().map(|r| (r.rung, r.status)).collect();
    assert_eq!(
        status,
        vec![
            (RungKind::Reference, Status::Done),
            (RungKind::Baseline, Status::Done),
            (RungKind::Prompting, Status::Done),
            (RungKind::Retrieval, Status::Skipped),
            (RungKind::Verification, Status::Done),
            (RungKind::Lora, Status::Done),
            (RungKind::Full, Status::Done),
        ],
        "{:#?}",
        first.rows
    );
    for r in first.rows.iter().filter(|r| r.status == Status::Done) {
        assert_eq!(r.n, 4, "{:?}: the test slice", r.rung);
        assert!(r.metric.is_some() && r.ci.is_some(), "{r:?}");
        assert!(r.latency_p95_ms.is_some() && r.size_bytes > 0, "{r:?}");
        assert!(!r.recommendation.is_empty(), "{r:?}");
        let eval = out.join(r.eval_dir.as_ref().unwrap());
        assert!(eval.join("summary.json").is_file(), "{}", eval.display());
    }
    let lora = &first.rows[5];
    assert!(lora.variant.adapter.as_ref().unwrap().is_dir());
    assert_eq!(lora.train_steps, Some(2));
    assert!(!lora.curve.is_empty() && lora.train_tokens.unwrap() > 0);
    assert!(
        lora.curve.iter().any(|c| c.val_metric.is_some()),
        "{:?}",
        lora.curve
    );
    assert!(first.rows[6]
        .variant
        .model
        .as_ref()
        .unwrap()
        .join("config.json")
        .is_file());
    for trained in &first.rows[5..7] {
        let f = trained.forgetting.as_ref().expect("forgetting check");
        assert_eq!(
            (f.task.as_str(), f.metric_name.as_str()),
            ("tiny-sql", "sql_execution")
        );
        assert!(out
            .join(format!(
                "rungs/{}-{}/forgetting/after/summary.json",
                if trained.rung == RungKind::Lora { 6 } else { 7 },
                trained.rung
            ))
            .is_file());
    }
    assert!(first.rows[2].forgetting.is_none());
    // The prompting rung tries shots as question → SQL pairs: three shots, the schema once.
    let prompts = std::fs::read_dir(out.join("rungs/3-prompting/validation"))
        .unwrap()
        .map(|d| d.unwrap().path().join("examples.jsonl"))
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .filter_map(|s| {
            let first: serde_json::Value = serde_json::from_str(s.lines().next()?).ok()?;
            Some(first["prompt"].as_str()?.to_owned())
        })
        .collect::<Vec<_>>();
    assert!(
        prompts
            .iter()
            .any(|p| p.matches("Question:").count() == 4 && p.matches("Schema:").count() == 1),
        "no candidate with three question → SQL shots: {prompts:#?}"
    );
    // The baseline's significance against itself is not asked; later rungs are compared with it.
    assert!(first.rows[2].vs_baseline.is_some());
    // Outputs: every row in ladder.json, the report with its charts, the winner.
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("ladder.json")).unwrap()).unwrap();
    assert_eq!(doc["rows"].as_array().unwrap().len(), 7);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("<svg") && html.contains("report.html") && html.contains("Training: lora")
    );
    assert!(first.winner.is_some());
    let winner = tuneup_ladder::read_winner(&out).unwrap();
    assert_eq!(Some(winner.rung), first.winner);

    // Again: nothing is recomputed (the eval outputs keep their times), the rows are the same.
    let stamp = |r: &tuneup_ladder::Row| {
        std::fs::metadata(out.join(r.eval_dir.as_ref().unwrap()).join("summary.json"))
            .unwrap()
            .modified()
            .unwrap()
    };
    let before: Vec<_> = first
        .rows
        .iter()
        .filter(|r| r.status == Status::Done)
        .map(stamp)
        .collect();
    let second = run_ladder(&cfg, &options(&out)).unwrap();
    let after: Vec<_> = second
        .rows
        .iter()
        .filter(|r| r.status == Status::Done)
        .map(stamp)
        .collect();
    assert_eq!(before, after);
    assert_eq!(
        first.rows.iter().map(|r| r.metric).collect::<Vec<_>>(),
        second.rows.iter().map(|r| r.metric).collect::<Vec<_>>()
    );

    // --only re-runs the named rung alone.
    let third = run_ladder(
        &cfg,
        &LadderOptions {
            only: Some(vec![RungKind::Baseline]),
            ..options(&out)
        },
    )
    .unwrap();
    assert_ne!(stamp(&third.rows[1]), before[1]);
    assert_eq!(stamp(&third.rows[2]), before[2]);
}

#[test]
fn a_failing_training_rung_is_reported_and_the_ladder_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let file = tuneup_test_utils::ladder::write_tiny_sql_ladder(dir.path(), "");
    let mut cfg = LadderConfig::load(&file).unwrap();
    // No record fits in 4 tokens: training cannot start.
    cfg.train.max_seq_len = Some(4);
    cfg.rungs = Some(vec![RungKind::Baseline, RungKind::Lora, RungKind::Full]);
    let out = dir.path().join("run");
    let outcome = run_ladder(&cfg, &options(&out)).unwrap();
    let lora = outcome
        .rows
        .iter()
        .find(|r| r.rung == RungKind::Lora)
        .unwrap();
    assert_eq!(lora.status, Status::Failed);
    assert!(lora.note.contains("max_seq_len"), "{}", lora.note);
    let full = outcome
        .rows
        .iter()
        .find(|r| r.rung == RungKind::Full)
        .unwrap();
    assert_eq!(full.status, Status::Failed);
    assert_eq!(outcome.winner, Some(RungKind::Baseline));
    // A failed rung is not stored as finished: the next run tries it again.
    assert!(!out.join("rungs/2-lora/result.json").exists());
}

#[test]
fn ctrl_c_stops_the_ladder_and_keeps_finished_rungs() {
    let dir = tempfile::tempdir().unwrap();
    let file = tuneup_test_utils::ladder::write_tiny_sql_ladder(dir.path(), "");
    let mut cfg = LadderConfig::load(&file).unwrap();
    cfg.rungs = Some(vec![RungKind::Baseline, RungKind::Prompting]);
    let out = dir.path().join("run");
    let stop = Arc::new(AtomicBool::new(true));
    let err = run_ladder(
        &cfg,
        &LadderOptions {
            stop,
            ..options(&out)
        },
    )
    .unwrap_err();
    assert!(matches!(err, tuneup_ladder::Error::Interrupted), "{err}");
    assert!(err.to_string().contains("resume"));
}

#[test]
fn bad_ladder_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = tuneup_test_utils::ladder::write_tiny_sql_ladder(dir.path(), "");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace("[reference]\nmodel = \"tiny.gguf\"", "[reference]"),
    )
    .unwrap();
    let err = LadderConfig::load(&file).unwrap_err().to_string();
    assert!(
        err.contains("ladder.toml") && err.contains("exactly one of"),
        "{err}"
    );
    std::fs::write(&file, "task = \"t.toml\"\nrungs = [\"lorra\"]\n").unwrap();
    let err = LadderConfig::load(&file).unwrap_err().to_string();
    assert!(
        err.contains("ladder.toml") && err.contains("lorra"),
        "{err}"
    );
}
