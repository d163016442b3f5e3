//! Atomic checkpoints: adapter, optimiser moments and trainer state written
//! to a temporary folder, flushed to disk (files and folder) and renamed into
//! place, so a killed run, or a machine that lost power, always finds the last
//! complete one. A newest checkpoint that cannot be read anyway (a damaged
//! disk, a file changed by hand) makes `--resume` fall back to the one before.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::durable;
use crate::error::{Error, Result};

/// Optimiser moments inside a checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// Trainer state inside a checkpoint.
pub const STATE_FILE: &str = "trainer_state.json";

/// Where training stands; with the adapter and optimiser this is all a
/// resumed run needs (data order and dropout are functions of the seed and
/// the step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimiser steps done.
    pub step: u64,
    /// Tokens seen.
    pub tokens_seen: u64,
    /// Best validation loss so far.
    pub best_val_loss: Option<f64>,
    /// Evaluations since the best one (early stopping).
    pub evals_without_improvement: usize,
    /// Best task metric so far (runs with a [`crate::CheckpointScorer`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_metric: Option<f64>,
    /// Step of the result in `…-best` (0 = the model before training).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_step: Option<u64>,
    /// [`crate::TrainConfig::fingerprint`] of the run.
    pub config_fingerprint: String,
}

/// The checkpoints folder of a run.
pub fn checkpoints_dir(output_dir: &Path) -> PathBuf {
    output_dir.join("checkpoints")
}

fn step_dir_name(step: u64) -> String {
    format!("step-{step:08}")
}

/// Writes a checkpoint for `state.step`: `fill` writes the adapter and
/// optimiser files into the folder it is given; then the state is written
/// and the folder renamed into place. Keeps the newest `keep` checkpoints.
pub fn save(
    output_dir: &Path,
    state: &TrainerState,
    keep: usize,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let root = checkpoints_dir(output_dir);
    fs_err::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
    let dest = root.join(step_dir_name(state.step));
    let tmp = durable::fresh_sibling(&dest)?;
    fill(&tmp)?;
    let state_path = tmp.join(STATE_FILE);
    let text = serde_json::to_string_pretty(state).expect("state serialises");
    fs_err::write(&state_path, text).map_err(|e| Error::io(&state_path, e))?;
    // Every file and the folder reach the disk before the rename makes the checkpoint visible.
    durable::publish_dir(&tmp, &dest)?;
    let all = list(output_dir)?;
    for (_, old) in all.iter().take(all.len().saturating_sub(keep)) {
        fs_err::remove_dir_all(old).map_err(|e| Error::io(old, e))?;
    }
    Ok(dest)
}

/// Complete checkpoints, oldest first, as `(step, folder)`.
pub fn list(output_dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let root = checkpoints_dir(output_dir);
    if !root.is_dir() {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    for entry in fs_err::read_dir(&root).map_err(|e| Error::io(&root, e))? {
        let entry = entry.map_err(|e| Error::io(&root, e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(step) = name
            .strip_prefix("step-")
            .and_then(|s| s.parse::<u64>().ok())
        {
            if entry.path().join(STATE_FILE).is_file() {
                found.push((step, entry.path()));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Reads the state of a checkpoint folder.
pub fn read_state(dir: &Path) -> Result<TrainerState> {
    let path = dir.join(STATE_FILE);
    let text = fs_err::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::bad_file(&path, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(step: u64) -> TrainerState {
        TrainerState {
            step,
            tokens_seen: 0,
            best_val_loss: None,
            evals_without_improvement: 0,
            best_metric: None,
            best_step: None,
            config_fingerprint: "x".into(),
        }
    }

    #[test]
    fn keeps_the_newest_and_ignores_partial_ones() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tmp", e))?;
        for step in [10, 20, 30] {
            save(dir.path(), &state(step), 2, |d| {
                fs_err::write(d.join("x"), b"1").map_err(|e| Error::io(d, e))
            })?;
        }
        // A run killed while writing leaves a temporary folder behind.
        fs_err::create_dir_all(checkpoints_dir(dir.path()).join(".step-00000040.tmp")).unwrap();
        let steps: Vec<u64> = list(dir.path())?.into_iter().map(|(s, _)| s).collect();
        assert_eq!(steps, vec![20, 30]);
        assert_eq!(read_state(&list(dir.path())?[1].1)?.step, 30);
        Ok(())
    }

    #[test]
    fn states_written_before_metric_selection_still_load() {
        let old = r#"{"step": 7, "tokens_seen": 70, "best_val_loss": 1.5,
            "evals_without_improvement": 1, "config_fingerprint": "x"}"#;
        let s: TrainerState = serde_json::from_str(old).expect("old state parses");
        assert_eq!((s.step, s.best_metric, s.best_step), (7, None, None));
        assert_eq!(s.best_val_loss, Some(1.5));
    }
}
