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
    /// The eval task the ladder measured (to re-run `tuneup eval` with these settings).
    pub task: PathBuf,
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
    if let Some(a) = &mut w.adapter {
        if a.is_relative() {
            *a = run.join("winner").join(&*a);
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
    let w = Winner {
        ladder: cfg.name.clone(),
        rung: row.rung,
        config: row.config.clone(),
        model: model.to_owned(),
        adapter,
        model_dir: row.variant.model.clone(),
        task: cfg.task.clone(),
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
