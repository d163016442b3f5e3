//! The three splits the ladder works on: one data file split by a seeded hash of each example's input (through
//! `tuneup data`'s order-independent assignment, so adding examples never moves the others), or the user's own
//! train / validation / test files. The validation split chooses; the test split only reports.

use std::path::{Path, PathBuf};

use serde::Serialize;
use tuneup_data::split::{assign, Split, SplitRatios};
use tuneup_eval_runner::dataset::{as_text, field, read_records};
use tuneup_eval_runner::task::Task;

use crate::config::DataSpec;
use crate::error::{write_atomic, Error, Result};

/// The split files and their sizes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Splits {
    /// Examples to train on and to draw few-shot examples from.
    pub train: PathBuf,
    /// Examples that choose prompts, checkpoints and settings.
    pub validation: PathBuf,
    /// Examples that only report.
    pub test: PathBuf,
    /// (train, validation, test) example counts.
    pub counts: [usize; 3],
}

impl Splits {
    /// The file of one split.
    pub fn path(&self, split: Split) -> &Path {
        match split {
            Split::Train => &self.train,
            Split::Validation => &self.validation,
            Split::Test => &self.test,
        }
    }
}

/// Default fractions of train, validation and test.
pub const DEFAULT_RATIOS: [f64; 3] = [0.6, 0.15, 0.25];

/// Makes (or finds) the splits: three explicit files are used as they are; with `train` and `test` alone the
/// validation split is carved out of `train` (a seeded hash, `validation_fraction`); one file is split three ways.
/// `test_every = N` keeps every Nth test example (a fixed stride of a large test set). Written files go to `dir`.
pub fn make_splits(spec: &DataSpec, task: &Task, dir: &Path) -> Result<Splits> {
    let (train, validation, test) = match (&spec.train, &spec.validation, &spec.test) {
        (Some(train), Some(validation), Some(test)) => {
            (train.clone(), validation.clone(), test.clone())
        }
        (Some(train), None, Some(test)) => {
            let fraction = spec
                .validation_fraction
                .unwrap_or(DEFAULT_VALIDATION_FRACTION);
            let ratios = [1.0 - fraction, fraction, 0.0];
            let [train, validation, _] = split_file(train, task, ratios, spec.seed, dir)?;
            (train, validation, test.clone())
        }
        (None, None, None) => {
            let file = spec
                .file
                .clone()
                .unwrap_or_else(|| task.dataset.path.clone());
            let ratios = spec.split.unwrap_or(DEFAULT_RATIOS);
            let [train, validation, test] = split_file(&file, task, ratios, spec.seed, dir)?;
            (train, validation, test)
        }
        _ => return Err(Error::Data {
            path: dir.to_path_buf(),
            message:
                "[data] names either one `file`, or `train` and `test` (validation carved out of \
                          train), or all of `train`, `validation` and `test`"
                    .into(),
        }),
    };
    let test = match spec.test_every {
        Some(n) if n > 1 => every_nth(&test, n, &dir.join("test.jsonl"))?,
        _ => test,
    };
    Ok(Splits {
        counts: [count(&train)?, count(&validation)?, count(&test)?],
        train,
        validation,
        test,
    })
}

/// Default share of an explicit train file held out for validation.
pub const DEFAULT_VALIDATION_FRACTION: f64 = 0.05;

fn records_of(p: &Path) -> Result<Vec<(usize, serde_json::Value)>> {
    read_records(p).map_err(|e| Error::Data {
        path: p.to_path_buf(),
        message: e.to_string(),
    })
}

fn count(p: &Path) -> Result<usize> {
    Ok(records_of(p)?.len())
}

/// Writes every `n`th record of `from` (the 1st, the n+1th, …) to `to`.
fn every_nth(from: &Path, n: usize, to: &Path) -> Result<PathBuf> {
    let mut text = String::new();
    for (_, r) in records_of(from)?.iter().step_by(n) {
        text.push_str(&serde_json::to_string(r).unwrap_or_default());
        text.push('\n');
    }
    write_atomic(to, text.as_bytes())?;
    Ok(to.to_path_buf())
}

/// Splits `file` by a seeded hash of each example's normalised input into train / validation / test files in
/// `dir` (a split with fraction 0 may stay empty).
fn split_file(
    file: &Path,
    task: &Task,
    [train, validation, test]: [f64; 3],
    seed: u64,
    dir: &Path,
) -> Result<[PathBuf; 3]> {
    let bad = |message: String| Error::Data {
        path: file.to_path_buf(),
        message,
    };
    let records = records_of(file)?;
    let sum = train + validation + test;
    let ratios = SplitRatios {
        train: train / sum,
        validation: validation / sum,
        test: test / sum,
    };
    let mut out: [String; 3] = Default::default();
    let mut counts = [0usize; 3];
    for (line, record) in &records {
        let key = field(record, &task.dataset.input)
            .map(as_text)
            .ok_or_else(|| {
                bad(format!(
                    "line {line}: no input field `{}`",
                    task.dataset.input
                ))
            })?;
        let normalized = key
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        let i = assign(&normalized, seed, &ratios) as usize;
        counts[i] += 1;
        out[i].push_str(&serde_json::to_string(record).unwrap_or_default());
        out[i].push('\n');
    }
    let wanted = [ratios.train, ratios.validation, ratios.test];
    for (i, name) in ["train", "validation", "test"].iter().enumerate() {
        if counts[i] == 0 && wanted[i] > 0.0 {
            return Err(bad(format!(
                "the {name} split is empty ({} records, fractions {:.2}/{:.2}/{:.2}): add examples or change [data] split",
                records.len(),
                ratios.train,
                ratios.validation,
                ratios.test
            )));
        }
    }
    let paths = ["train", "validation", "test"].map(|n| dir.join(format!("{n}.jsonl")));
    for ((p, text), &want) in paths.iter().zip(&out).zip(&wanted) {
        if want > 0.0 {
            write_atomic(p, text.as_bytes())?;
        }
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(path: &Path) -> Task {
        let text = format!(
            "metrics = [\"exact_match\"]\n[dataset]\npath = {:?}\ninput = \"q\"\ntarget = \"a\"\n",
            path.display().to_string()
        );
        Task::from_toml(&text, path.parent().unwrap(), path).unwrap()
    }

    #[test]
    fn splits_are_seeded_and_keep_every_record_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("all.jsonl");
        let lines: Vec<String> = (0..200)
            .map(|i| format!("{{\"q\": \"question {i}\", \"a\": \"{i}\"}}"))
            .collect();
        std::fs::write(&file, lines.join("\n")).unwrap();
        let spec = DataSpec {
            file: Some(file.clone()),
            seed: 3,
            ..DataSpec::default()
        };
        let a = make_splits(&spec, &task(&file), &dir.path().join("a")).unwrap();
        let b = make_splits(&spec, &task(&file), &dir.path().join("b")).unwrap();
        assert_eq!(a.counts, b.counts);
        assert_eq!(a.counts.iter().sum::<usize>(), 200);
        assert!(
            a.counts[0] > 90 && a.counts[1] > 10 && a.counts[2] > 25,
            "{:?}",
            a.counts
        );
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&a.test), read(&b.test));
        // No question is in two splits.
        let test = read(&a.test);
        assert!(read(&a.train).lines().all(|l| !test.contains(l)));
    }

    #[test]
    fn an_empty_split_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("one.jsonl");
        std::fs::write(&file, "{\"q\": \"only\", \"a\": \"1\"}\n").unwrap();
        let spec = DataSpec::default();
        let err = make_splits(&spec, &task(&file), dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("one.jsonl") && err.contains("split is empty"),
            "{err}"
        );
    }

    #[test]
    fn validation_is_carved_from_train_and_the_test_keeps_a_stride() {
        let dir = tempfile::tempdir().unwrap();
        let (train, test) = (dir.path().join("train.jsonl"), dir.path().join("dev.jsonl"));
        let rows = |n: usize, tag: &str| -> String {
            (0..n)
                .map(|i| format!("{{\"q\": \"{tag} question {i}\", \"a\": \"{i}\"}}\n"))
                .collect()
        };
        std::fs::write(&train, rows(400, "train")).unwrap();
        std::fs::write(&test, rows(10, "dev")).unwrap();
        let spec = DataSpec {
            train: Some(train.clone()),
            test: Some(test.clone()),
            validation_fraction: Some(0.1),
            test_every: Some(3),
            ..DataSpec::default()
        };
        let out = dir.path().join("split");
        let s = make_splits(&spec, &task(&train), &out).unwrap();
        assert_eq!(s.counts[0] + s.counts[1], 400);
        assert!(s.counts[1] > 20 && s.counts[1] < 70, "{:?}", s.counts);
        // Every third dev question: 0, 3, 6, 9.
        assert_eq!(s.counts[2], 4);
        let kept = std::fs::read_to_string(&s.test).unwrap();
        assert!(kept.contains("dev question 3\"") && !kept.contains("dev question 1\""));
        let (t, v) = (
            std::fs::read_to_string(&s.train).unwrap(),
            std::fs::read_to_string(&s.validation).unwrap(),
        );
        assert!(v.lines().all(|l| !t.contains(l)));
        // Validation without test is refused with the rule.
        let bad = DataSpec {
            train: Some(train),
            ..DataSpec::default()
        };
        let err = make_splits(&bad, &task(&test), &out)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`train` and `test`"), "{err}");
    }
}
