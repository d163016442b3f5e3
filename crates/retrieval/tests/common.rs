//! Shared helpers for the retrieval integration tests.

#![allow(dead_code)]

use std::path::PathBuf;

/// The all-MiniLM-L6-v2 folder: `TUNEUP_MINILM_DIR`, or the default cache location. `None` (test skipped) when
/// missing, unless `TUNEUP_REQUIRE_MODELS=1` (then the test fails).
pub fn minilm_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("TUNEUP_MINILM_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            let home = std::env::var_os("TUNEUP_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/tuneup")))?;
            Some(home.join("models/all-minilm-l6-v2"))
        })
        .filter(|d| d.join("model.safetensors").is_file());
    if dir.is_none() {
        assert!(
            std::env::var("TUNEUP_REQUIRE_MODELS").as_deref() != Ok("1"),
            "all-MiniLM-L6-v2 is required: run `tuneup pull all-minilm-l6-v2` or set TUNEUP_MINILM_DIR"
        );
        eprintln!("skipped: all-MiniLM-L6-v2 not found (tuneup pull all-minilm-l6-v2)");
    }
    dir
}

/// Cosine similarity.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}
