//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::quantized::gguf_file;
use tuneup_tokenize::Tokenizer;

/// `fixtures/` at the workspace root.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// Reads the metadata of the GGUF named by `env_var`, or explains the skip and
/// returns `None` when the variable is unset.
pub fn gguf_metadata(env_var: &str) -> Option<HashMap<String, gguf_file::Value>> {
    let Some(path) = std::env::var_os(env_var) else {
        eprintln!("skipping: {env_var} is not set (point it at the GGUF file to run this test)");
        return None;
    };
    let mut file = std::fs::File::open(&path)
        .unwrap_or_else(|e| panic!("cannot open {env_var}={}: {e}", path.to_string_lossy()));
    let content = gguf_file::Content::read(&mut file)
        .unwrap_or_else(|e| panic!("cannot read GGUF {}: {e}", path.to_string_lossy()));
    Some(content.metadata)
}

/// The tokenizer of the GGUF named by `env_var` (see [`gguf_metadata`]).
pub fn gguf_tokenizer(env_var: &str) -> Option<Tokenizer> {
    let metadata = gguf_metadata(env_var)?;
    Some(Tokenizer::from_gguf(&metadata).expect("tokenizer from GGUF metadata"))
}

/// Reads a JSON fixture, or explains the skip and returns `None` when it is absent.
pub fn read_fixture(relative: &str) -> Option<serde_json::Value> {
    read_fixture_in(&fixtures_dir(), relative)
}

/// Extra fixture roots with the same layout as `fixtures/`, from the
/// `TUNEUP_EXTRA_FIXTURES` variable (paths separated by `:`), for local stress tests.
pub fn extra_fixture_dirs() -> Vec<PathBuf> {
    std::env::var_os("TUNEUP_EXTRA_FIXTURES")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default()
}

/// Reads `root/relative` as JSON, or explains the skip and returns `None` when absent.
pub fn read_fixture_in(root: &std::path::Path, relative: &str) -> Option<serde_json::Value> {
    let path = root.join(relative);
    if !path.is_file() {
        eprintln!("skipping: fixture {} does not exist", path.display());
        return None;
    }
    let text = std::fs::read_to_string(&path).expect("read fixture");
    Some(
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("bad JSON in {}: {e}", path.display())),
    )
}

pub const SMOLLM2_ENV: &str = "TUNEUP_SMOLLM2_GGUF";
pub const QWEN_ENV: &str = "TUNEUP_QWEN_GGUF";
