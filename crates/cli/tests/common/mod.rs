//! Running the real `tuneup` binary from the integration tests.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

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

/// Runs `tuneup ARGS` as [`tuneup`] does, with `input` on its stdin.
#[allow(dead_code)]
pub fn tuneup_with_stdin(home: &Path, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tuneup"))
        .args(args)
        .env("TUNEUP_HOME", home)
        .env_remove("TUNEUP_MODEL")
        .env_remove("TUNEUP_RAG_STORE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tuneup starts");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).expect("stdin written");
    }
    child.wait_with_output().expect("tuneup runs")
}
