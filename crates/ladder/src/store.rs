//! Finished rungs on disk: each rung's result under a fingerprint of everything it depends on (the ladder file,
//! the task, the split files' bytes, the model, the configuration it started from). Re-running skips a rung whose
//! fingerprint is unchanged; a changed earlier rung changes the later fingerprints.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{write_atomic, Result};
use crate::row::Row;
use crate::variant::Variant;

/// What a finished rung leaves for the next run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RungResult {
    /// The fingerprint of the rung's inputs.
    pub fingerprint: String,
    /// The row.
    pub row: Row,
    /// The best configuration after this rung.
    pub best_after: Variant,
    /// Its validation metric.
    pub best_validation: Option<f64>,
    /// Its test run folder (relative to the ladder's run folder).
    pub best_test_dir: Option<PathBuf>,
}

/// The hex SHA-256 of the parts, each length-prefixed so that boundaries count.
pub fn fingerprint(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The file a rung's result lives in.
pub fn result_path(rung_dir: &Path) -> PathBuf {
    rung_dir.join("result.json")
}

/// The stored result of a rung, if there is one with this fingerprint.
pub fn load(rung_dir: &Path, fingerprint: &str) -> Option<RungResult> {
    let text = std::fs::read_to_string(result_path(rung_dir)).ok()?;
    let r: RungResult = serde_json::from_str(&text).ok()?;
    (r.fingerprint == fingerprint).then_some(r)
}

/// Stores a finished rung (atomically: a kill never leaves half a result).
pub fn save(rung_dir: &Path, result: &RungResult) -> Result<()> {
    let text = serde_json::to_string_pretty(result).unwrap_or_default();
    write_atomic(&result_path(rung_dir), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_see_boundaries() {
        assert_ne!(fingerprint(&[b"ab", b"c"]), fingerprint(&[b"a", b"bc"]));
        assert_eq!(fingerprint(&[b"x"]), fingerprint(&[b"x"]));
        assert_eq!(fingerprint(&[b"x"]).len(), 64);
    }
}
