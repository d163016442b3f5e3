//! Shared by the tests that run the real default models.

use std::path::PathBuf;

/// The GGUF path in environment variable `var`, or `None` (with a note) when
/// it is unset; unset is an error when `TUNEUP_REQUIRE_MODELS` is set, as in
/// `scripts/test.sh`.
pub fn model_path(var: &str) -> Option<PathBuf> {
    match std::env::var(var) {
        Ok(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            assert!(
                std::env::var("TUNEUP_REQUIRE_MODELS").is_err(),
                "{var} is not set but TUNEUP_REQUIRE_MODELS is"
            );
            eprintln!("skipping: set {var} to the GGUF path (scripts/test.sh does)");
            None
        }
    }
}
