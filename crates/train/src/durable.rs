//! Folders published as a whole: written under a temporary name beside their destination, every file and
//! the folder flushed to disk (fsync), then renamed into place and the parent flushed, so that after a
//! crash or power loss the destination holds either the old folder or the complete new one.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// `.NAME.SUFFIX` beside `dir` (a hidden sibling on the same file system, so a rename is atomic).
pub fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    dir.with_file_name(format!(".{name}.{suffix}"))
}

/// An empty temporary folder beside `dir` (an older leftover is removed first).
pub fn fresh_sibling(dir: &Path) -> Result<PathBuf> {
    let tmp = sibling(dir, "tmp");
    if tmp.exists() {
        fs_err::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    fs_err::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    Ok(tmp)
}

/// Flushes a folder's entries (names, renames) to disk.
pub fn sync_dir(dir: &Path) -> Result<()> {
    fs_err::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Flushes every file under `dir`, its subfolders and `dir` itself.
pub fn sync_tree(dir: &Path) -> Result<()> {
    for entry in fs_err::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            fs_err::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(&path, e))?;
        }
    }
    sync_dir(dir)
}

/// Moves the finished folder `tmp` to `dest` durably, replacing an older `dest`: the old folder is moved
/// aside first and removed only once the new one is in place.
pub fn publish_dir(tmp: &Path, dest: &Path) -> Result<()> {
    sync_tree(tmp)?;
    let old = sibling(dest, "old");
    if old.exists() {
        fs_err::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    let replacing = dest.exists();
    if replacing {
        fs_err::rename(dest, &old).map_err(|e| Error::io(dest, e))?;
    }
    fs_err::rename(tmp, dest).map_err(|e| Error::io(dest, e))?;
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    sync_dir(&parent)?;
    if replacing {
        fs_err::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_folder_replaces_the_old_one_whole() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tmp", e))?;
        let dest = dir.path().join("adapter");
        for version in ["1", "2"] {
            let tmp = fresh_sibling(&dest)?;
            fs_err::create_dir_all(tmp.join("sub")).map_err(|e| Error::io(&tmp, e))?;
            fs_err::write(tmp.join("sub/file"), version).map_err(|e| Error::io(&tmp, e))?;
            publish_dir(&tmp, &dest)?;
            assert_eq!(
                fs_err::read_to_string(dest.join("sub/file")).unwrap(),
                version
            );
        }
        let left: Vec<_> = fs_err::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            left,
            vec!["adapter".to_string()],
            "no temporary folders are left"
        );
        Ok(())
    }
}
