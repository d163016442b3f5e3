//! The winning configuration as an artifact: `winner/winner.toml` (model, adapter or model folder, prompt and
//! inference settings, its metric) and a copy of its adapter, which `tuneup serve --ladder RUN` serves.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::LadderConfig;
use crate::error::{io, write_atomic, Result};
use crate::row::Row;
use crate::rung::RungKind;
use crate::variant::Variant;

/// `winner/winner.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Winner {
    /// The ladder's name.
    pub ladder: String,
    /// The rung that won.
    pub rung: RungKind,
    /// Its description.
    pub config: String,
    /// Base model spec.
    pub model: String,
    /// Adapter folder (inside `winner/`), when the winner is a LoRA rung.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<PathBuf>,
    /// Model folder replacing the base (full fine-tuning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_dir: Option<PathBuf>,
    /// The eval task the ladder started from.
    pub task: PathBuf,
    /// The winning rung's effective eval task (`task.toml` inside `winner/`: its prompt, few-shot pool,
    /// generation and verification settings), which `tuneup serve --ladder` answers requests with and
    /// `tuneup eval` re-runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_task: Option<PathBuf>,
    /// The prompt and inference settings.
    pub variant: Variant,
    /// Primary metric name.
    pub metric_name: String,
    /// Test metric.
    pub metric: Option<f64>,
}

/// Reads `RUN/winner/winner.toml`, with the adapter path made absolute.
pub fn read_winner(run: &Path) -> Result<Winner> {
    let path = run.join("winner").join("winner.toml");
    let text = std::fs::read_to_string(&path).map_err(io("reading the ladder's winner", &path))?;
    let mut w: Winner = toml::from_str(&text).map_err(|e| crate::error::Error::Config {
        path: path.clone(),
        message: e.to_string(),
    })?;
    for p in [&mut w.adapter, &mut w.served_task].into_iter().flatten() {
        if p.is_relative() {
            *p = run.join("winner").join(&*p);
        }
    }
    Ok(w)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(io("creating", to))?;
    for e in std::fs::read_dir(from)
        .map_err(io("reading", from))?
        .flatten()
    {
        let p = e.path();
        let dest = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &dest)?;
        } else {
            std::fs::copy(&p, &dest).map_err(io("copying", &p))?;
        }
    }
    Ok(())
}

/// Writes `out/winner/` for `row`.
pub fn write_winner(out: &Path, cfg: &LadderConfig, model: &str, row: &Row) -> Result<()> {
    let dir = out.join("winner");
    let adapter = match &row.variant.adapter {
        Some(a) => {
            let dest = dir.join("adapter");
            let _ = std::fs::remove_dir_all(&dest);
            copy_dir(a, &dest)?;
            Some(PathBuf::from("adapter"))
        }
        None => None,
    };
    // The test run's effective task: exactly what was measured.
    let served_task = match &row.eval_dir {
        Some(d) if out.join(d).join("task.toml").is_file() => {
            let from = out.join(d).join("task.toml");
            std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
            std::fs::copy(&from, dir.join("task.toml")).map_err(io("copying", &from))?;
            Some(PathBuf::from("task.toml"))
        }
        _ => None,
    };
    let w = Winner {
        ladder: cfg.name.clone(),
        rung: row.rung,
        config: row.config.clone(),
        model: model.to_owned(),
        adapter,
        model_dir: row.variant.model.clone(),
        task: cfg.task.clone(),
        served_task,
        variant: Variant {
            adapter: None,
            ..row.variant.clone()
        },
        metric_name: row.metric_name.clone(),
        metric: row.metric,
    };
    let text = toml::to_string(&w).map_err(|e| crate::error::Error::Config {
        path: dir.join("winner.toml"),
        message: e.to_string(),
    })?;
    write_atomic(&dir.join("winner.toml"), text.as_bytes())
}
