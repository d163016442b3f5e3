//! Crafted model files through the real binary: `tuneup info -m FILE` prints a clear error and exits
//! non-zero; it never panics or aborts.

use std::path::Path;
use std::process::{Command, Output};

use tuneup_test_utils::gguf_bytes::{tiny_llama_bytes, value_type, GgufBytes, GGML_F32};

fn info(home: &Path, model: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tuneup"))
        .args(["info", "-m", model.to_str().unwrap()])
        .env("TUNEUP_HOME", home)
        .env_remove("TUNEUP_MODEL")
        .output()
        .expect("tuneup starts")
}

#[test]
fn info_on_crafted_ggufs_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.gguf");
    std::fs::write(&good, tiny_llama_bytes(&[])).unwrap();
    let out = info(dir.path(), &good);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("layers:         1"));

    let u32v = |v: u32| v.to_le_bytes().to_vec();
    let u64v = |v: u64| v.to_le_bytes().to_vec();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "alignment-zero.gguf",
            tiny_llama_bytes(&[("general.alignment", value_type::U32, u32v(0))]),
            "general.alignment is 0",
        ),
        (
            "layers-2-40.gguf",
            tiny_llama_bytes(&[("llama.block_count", value_type::U64, u64v(1 << 40))]),
            "layers is 1099511627776",
        ),
        (
            "overflowing-dims.gguf",
            GgufBytes::new()
                .tensor("token_embd.weight", &[1 << 32, 1 << 32, 2], GGML_F32, 0)
                .build(&[0; 64]),
            "product overflows",
        ),
        (
            "data-beyond-file.gguf",
            GgufBytes::new()
                .tensor("token_embd.weight", &[8, 8], GGML_F32, 1 << 40)
                .build(&[0; 256]),
            "past the end",
        ),
    ];
    for (name, bytes, want) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = info(dir.path(), &path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} should fail: {stderr}");
        assert_eq!(
            out.status.code(),
            Some(1),
            "{name}: a plain error exit, not a signal: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{name} panicked: {stderr}");
        assert!(
            stderr.contains(name),
            "{name}: the error names the file: {stderr}"
        );
        assert!(
            stderr.contains(want),
            "{name}: expected '{want}' in: {stderr}"
        );
    }
}
