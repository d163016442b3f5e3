//! `--resume` with a damaged newest checkpoint (its adapter file cut short, as a crash on a disk that lost
//! unflushed data leaves it) falls back to the checkpoint before, says so, and trains on from there; the
//! adapter folder is published whole, with no temporary folders left beside it.

mod common;
use common::{records, Log};
use std::sync::atomic::AtomicBool;

use tuneup_models::{LoadOptions, ModelFiles};
use tuneup_test_utils::{write_tiny_gguf, TinySpec};
use tuneup_train::checkpoint::{checkpoints_dir, list, OPTIMIZER_FILE};
use tuneup_train::peft::WEIGHTS_FILE;
use tuneup_train::{Method, Precision, Session, TrainConfig};

fn config(out: &std::path::Path, max_steps: u64) -> TrainConfig {
    TrainConfig {
        model: "tiny".into(),
        train_file: "train.jsonl".into(),
        output_dir: out.to_path_buf(),
        method: Method::Lora,
        precision: Precision::F32,
        learning_rate: 1e-2,
        warmup_steps: 1,
        max_steps: Some(max_steps),
        batch_size: 2,
        max_seq_len: 64,
        eval_every: 0,
        save_every: 1,
        keep_checkpoints: 10,
        ..TrainConfig::default()
    }
}

#[test]
fn a_corrupt_newest_checkpoint_falls_back_to_the_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    let mut spec = TinySpec::llama();
    spec.hidden = 64;
    spec.intermediate = 128;
    write_tiny_gguf(&model, &spec).unwrap();
    let files = ModelFiles::Gguf(model);
    let out = dir.path().join("run");
    let run = |max_steps: u64, resume: bool| {
        let mut log = Log::default();
        let mut session = Session::prepare(
            config(&out, max_steps),
            &files,
            &LoadOptions::default(),
            &records(6, 0),
            &[],
        )
        .unwrap();
        let outcome = session.run(resume, &AtomicBool::new(false), &mut log);
        (outcome, log.0)
    };

    let (first, _) = run(3, false);
    assert_eq!(first.unwrap().steps, 3);
    let checkpoints = list(&out).unwrap();
    assert_eq!(
        checkpoints.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    // The adapter folder was published whole: no temporary or old folders beside it or the checkpoints.
    for folder in [out.clone(), checkpoints_dir(&out)] {
        let hidden: Vec<_> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(
            hidden.is_empty(),
            "left in {}: {hidden:?}",
            folder.display()
        );
    }
    assert!(out.join("adapter").join(WEIGHTS_FILE).is_file());

    // Damage the newest checkpoint's adapter for real: cut the file short.
    let newest = &checkpoints[2].1;
    let weights = newest.join(WEIGHTS_FILE);
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 3]).unwrap();

    let (resumed, log) = run(4, true);
    let resumed = resumed.unwrap_or_else(|e| panic!("resume failed: {e}\n{log:#?}"));
    let text = log.join("\n");
    assert!(
        text.contains("step-00000003")
            && text.contains("cannot be read")
            && text.contains("falling back"),
        "the damaged checkpoint is named: {text}"
    );
    assert!(
        text.contains("resumed from") && text.contains("step-00000002 (step 2)"),
        "it resumes from the one before: {text}"
    );
    assert_eq!(resumed.steps, 4);

    // With every checkpoint damaged, resuming is an error that says so.
    for (_, dir) in list(&out).unwrap() {
        std::fs::write(dir.join(OPTIMIZER_FILE), b"not safetensors").unwrap();
    }
    let (err, _) = run(5, true);
    let err = err.expect_err("nothing to resume from").to_string();
    assert!(
        err.contains("no checkpoint") && err.contains("can be read"),
        "{err}"
    );
}
