//! Running the real `tuneup` binary from the integration tests.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `tuneup ARGS` with `TUNEUP_HOME=home` and none of the environment defaults a developer may have set
/// (model, RAG store).
pub fn tuneup(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tuneup"))
        .args(args)
        .env("TUNEUP_HOME", home)
        .env_remove("TUNEUP_MODEL")
        .env_remove("TUNEUP_RAG_STORE")
        .output()
        .expect("tuneup runs")
}

/// The stdout of a run that must have succeeded (the failure message shows both streams).
pub fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "tuneup failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
