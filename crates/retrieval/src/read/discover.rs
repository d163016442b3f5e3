//! Finding the supported documents under files and folders.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use super::kind_of;

/// Folder names never walked into (besides hidden entries).
const SKIPPED_DIRS: &[&str] = &["target", "node_modules", "__pycache__"];

/// What [`discover`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovered {
    /// Supported files, sorted, without duplicates (also none reaching the same file through a symlink).
    pub files: Vec<PathBuf>,
    /// Inputs that could not be used, with why: a missing path, an explicitly given file of an unsupported type,
    /// an unreadable folder entry, a symlink loop. Unsupported files found while walking a folder are not
    /// listed here; they are silently left out.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Every supported file under `inputs`.
///
/// A file given explicitly is kept if [`kind_of`] supports it (hidden or not), else reported in
/// [`Discovered::skipped`]. Folders are walked recursively, following symlinks (loops are reported and not
/// followed), skipping hidden entries (names starting with `.`, so `.git` too) and `target`, `node_modules`,
/// `__pycache__` folders. Never fails: every problem is an entry in `skipped`.
pub fn discover(inputs: &[PathBuf]) -> Discovered {
    let mut files = BTreeSet::new();
    let mut skipped = Vec::new();
    for input in inputs {
        if input.is_dir() {
            walk(input, &mut files, &mut skipped);
        } else if !input.exists() {
            skipped.push((input.clone(), "no such file or folder".into()));
        } else if kind_of(input).is_some() {
            files.insert(input.clone());
        } else {
            skipped.push((input.clone(), "unsupported file type".into()));
        }
    }
    // The same file reached by two paths (symlinks, `a/../a`): keep the first in sorted order.
    let mut seen = BTreeSet::new();
    let files = files
        .into_iter()
        .filter(|f| seen.insert(std::fs::canonicalize(f).unwrap_or_else(|_| f.clone())))
        .collect();
    skipped.sort();
    skipped.dedup();
    Discovered { files, skipped }
}

fn walk(root: &Path, files: &mut BTreeSet<PathBuf>, skipped: &mut Vec<(PathBuf, String)>) {
    let entries = WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            e.depth() == 0 || !excluded(e.file_name().to_str(), e.file_type().is_dir())
        });
    for entry in entries {
        match entry {
            Ok(e) if e.file_type().is_file() && kind_of(e.path()).is_some() => {
                files.insert(e.into_path());
            }
            Ok(_) => {}
            Err(err) => {
                let path = err.path().unwrap_or(root).to_path_buf();
                let why = if err.loop_ancestor().is_some() {
                    "symlink loop".to_string()
                } else {
                    err.to_string()
                };
                skipped.push((path, why));
            }
        }
    }
}

/// Hidden entries, and folders such as `target`.
fn excluded(name: Option<&str>, is_dir: bool) -> bool {
    match name {
        None => true,
        Some(n) => n.starts_with('.') || (is_dir && SKIPPED_DIRS.contains(&n)),
    }
}
