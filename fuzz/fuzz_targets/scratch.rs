//! A scratch file per fuzzing process: the readers under test take paths, as tuneup's commands do.

use std::path::PathBuf;

/// `NAME` in a folder of this process under the temporary folder, created on first use.
pub fn scratch_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tuneup-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir.join(name)
}

/// Writes `data` to the scratch file `name` and returns its path.
pub fn scratch_file(name: &str, data: &[u8]) -> PathBuf {
    let path = scratch_path(name);
    std::fs::write(&path, data).expect("scratch file");
    path
}
