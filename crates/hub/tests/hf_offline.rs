//! The `hf:` path without a network: resolving from a pre-filled hf-hub cache,
//! and the error when the hub cannot be reached. Also local paths.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use tuneup_hub::{
    pull, resolve, resolve_with, Cache, Error, ModelLocation, ModelSpec, PullOptions,
};

/// Options pointing hf-hub at `hf_cache` and at an endpoint that refuses connections.
fn offline(hf_cache: &Path) -> PullOptions {
    PullOptions {
        hf_endpoint: Some("http://127.0.0.1:9".into()),
        hf_cache_dir: Some(hf_cache.to_path_buf()),
        ..PullOptions::default()
    }
}

/// Lays out `files` the way hf-hub caches them for `org/name` at `main`.
fn fill_hf_cache(hf_cache: &Path, repo_folder: &str, files: &[(&str, &[u8])]) -> PathBuf {
    let repo = hf_cache.join(repo_folder);
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
    let snapshot = repo.join("snapshots/0123abcd");
    for (name, data) in files {
        let path = snapshot.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
    snapshot
}

#[test]
fn unreachable_hub_says_so_and_suggests_a_local_path() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = Cache::new(tmp.path().join("home"));
    let opts = offline(&tmp.path().join("hf"));
    for spec in [
        "hf:some-org/some-model",
        "hf:some-org/some-model:m.Q4_0.gguf",
    ] {
        let spec: ModelSpec = spec.parse().unwrap();
        let err = pull(&spec, &cache, &opts, &mut Recorder::default()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::HubUnreachable { .. }), "{msg}");
        assert!(
            msg.contains("could not reach the Hugging Face hub at http://127.0.0.1:9"),
            "{msg}"
        );
        assert!(
            msg.contains("some-org/some-model") && msg.contains("local path"),
            "{msg}"
        );
        let err = resolve_with(&spec, &cache, &opts, &mut Recorder::default()).unwrap_err();
        assert!(matches!(err, Error::HubUnreachable { .. }), "{err}");
    }
}

#[test]
fn cached_single_folder_resolves_without_network() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    let snapshot = fill_hf_cache(
        &hf,
        "models--org--tiny",
        &[
            ("config.json", b"{}"),
            ("tokenizer.json", b"{}"),
            ("tokenizer_config.json", b"{}"),
            ("model.safetensors", b""),
            ("tiny.Q8_0.gguf", b"GGUF"),
        ],
    );
    let cache = Cache::new(tmp.path().join("home"));
    let opts = offline(&hf);
    let folder: ModelSpec = "hf:org/tiny".parse().unwrap();
    assert_eq!(
        resolve_with(&folder, &cache, &opts, &mut Recorder::default()).unwrap(),
        ModelLocation::HfFolder(snapshot.clone())
    );
    assert_eq!(
        pull(&folder, &cache, &opts, &mut Recorder::default()).unwrap(),
        ModelLocation::HfFolder(snapshot.clone())
    );
    let file: ModelSpec = "hf:org/tiny:tiny.Q8_0.gguf".parse().unwrap();
    assert_eq!(
        resolve_with(&file, &cache, &opts, &mut Recorder::default()).unwrap(),
        ModelLocation::GgufFile(snapshot.join("tiny.Q8_0.gguf"))
    );
}

#[test]
fn cached_sharded_folder_needs_every_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    let index = br#"{"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}"#;
    let snapshot = fill_hf_cache(
        &hf,
        "models--org--sharded",
        &[
            ("config.json", b"{}"),
            ("tokenizer.json", b"{}"),
            ("tokenizer_config.json", b"{}"),
            ("model.safetensors.index.json", index),
            ("model-00001-of-00002.safetensors", b""),
        ],
    );
    let cache = Cache::new(tmp.path().join("home"));
    let opts = offline(&hf);
    let spec: ModelSpec = "hf:org/sharded".parse().unwrap();
    // One shard is missing, so it must go to the (unreachable) hub for it.
    let err = resolve_with(&spec, &cache, &opts, &mut Recorder::default()).unwrap_err();
    assert!(matches!(err, Error::HubUnreachable { .. }), "{err}");
    std::fs::write(snapshot.join("model-00002-of-00002.safetensors"), b"").unwrap();
    assert_eq!(
        resolve_with(&spec, &cache, &opts, &mut Recorder::default()).unwrap(),
        ModelLocation::HfFolder(snapshot)
    );
}

#[test]
fn local_paths_resolve_and_missing_ones_are_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = Cache::new(tmp.path().join("home"));
    let gguf = tmp.path().join("model.gguf");
    std::fs::write(&gguf, b"GGUF\x03\0\0\0").unwrap();
    let spec: ModelSpec = gguf.to_str().unwrap().parse().unwrap();
    assert_eq!(
        resolve(&spec, &cache, &mut Recorder::default()).unwrap(),
        ModelLocation::GgufFile(gguf)
    );

    let missing = tmp.path().join("nope.gguf");
    let err = missing.to_str().unwrap().parse::<ModelSpec>().unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("model not found: ") && msg.contains("nope.gguf"),
        "{msg}"
    );
    assert!(
        msg.contains("known aliases: smollm2-135m, qwen2.5-coder-0.5b, all-minilm-l6-v2"),
        "{msg}"
    );
    let err = resolve(&ModelSpec::Local(missing), &cache, &mut Recorder::default()).unwrap_err();
    assert!(matches!(err, Error::ModelNotFound { .. }), "{err}");
}
