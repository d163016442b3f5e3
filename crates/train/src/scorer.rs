//! Choosing the best checkpoint: by a task metric ([`CheckpointScorer`]) or
//! by validation loss, recorded in `best.json` beside the result.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tuneup_generate::ChatModel;

use crate::error::{Error, Result};

/// Scores the model being trained on a held-out task (higher is better), e.g. execution accuracy.
pub trait CheckpointScorer {
    /// Short metric name for logs and metrics.jsonl, e.g. "sql_execution".
    fn metric_name(&self) -> String;
    /// Scores the model as it is now (adapters attached and in inference mode). Err = message; the run goes on
    /// and records the failure, it is not fatal.
    fn score(&mut self, model: &ChatModel, step: u64) -> std::result::Result<f64, String>;
}

/// `selected_by` of [`BestRecord`] when no scorer is set.
pub const BY_VALIDATION_LOSS: &str = "validation_loss";

/// File name of [`BestRecord`] in the output folder.
pub const BEST_FILE: &str = "best.json";

/// What `…-best` holds (`best.json` in the output folder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestRecord {
    /// Optimiser step of the best result (0 = the model before training).
    pub step: u64,
    /// The metric it was chosen by: a scorer's name, or `validation_loss`.
    pub selected_by: String,
    /// That metric's value (higher is better for a scorer's metric, lower
    /// for the validation loss).
    pub value: f64,
    /// Validation loss at that step, when there is validation data.
    pub val_loss: Option<f64>,
}

impl BestRecord {
    /// `dir/best.json`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(BEST_FILE)
    }

    /// Writes `dir/best.json`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = Self::path(dir);
        let text = serde_json::to_string_pretty(self).expect("best record serialises");
        fs_err::write(&path, text + "\n").map_err(|e| Error::io(&path, e))
    }

    /// Reads `dir/best.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = Self::path(dir);
        let text = fs_err::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::bad_file(&path, e.to_string()))
    }
}
