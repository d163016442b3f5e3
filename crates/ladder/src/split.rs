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

/// Makes (or finds) the splits: explicit files are used as they are; one file is split into `dir`.
pub fn make_splits(spec: &DataSpec, task: &Task, dir: &Path) -> Result<Splits> {
    if let (Some(train), Some(validation), Some(test)) = (&spec.train, &spec.validation, &spec.test)
    {
        let count = |p: &Path| -> Result<usize> {
            Ok(read_records(p)
                .map_err(|e| Error::Data {
                    path: p.to_path_buf(),
                    message: e.to_string(),
                })?
                .len())
        };
        return Ok(Splits {
            counts: [count(train)?, count(validation)?, count(test)?],
            train: train.clone(),
            validation: validation.clone(),
            test: test.clone(),
        });
    }
    let file = spec
        .file
        .clone()
        .unwrap_or_else(|| task.dataset.path.clone());
    let bad = |message: String| Error::Data {
        path: file.clone(),
        message,
    };
    let records = read_records(&file).map_err(|e| bad(e.to_string()))?;
    let [train, validation, test] = spec.split.unwrap_or(DEFAULT_RATIOS);
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
        let i = assign(&normalized, spec.seed, &ratios) as usize;
        counts[i] += 1;
        out[i].push_str(&serde_json::to_string(record).unwrap_or_default());
        out[i].push('\n');
    }
    for (i, name) in ["train", "validation", "test"].iter().enumerate() {
        if counts[i] == 0 && (i > 0 || ratios.train > 0.0) {
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
    for (p, text) in paths.iter().zip(&out) {
        write_atomic(p, text.as_bytes())?;
    }
    let [train, validation, test] = paths;
    Ok(Splits {
        train,
        validation,
        test,
        counts,
    })
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
}
