//! Bad input gets a clear error naming the problem, never a panic.

use std::io::Write;

use tuneup_models::{load, Error, LoadOptions, LogitsFor, ModelFiles};
use tuneup_test_utils::{write_tiny_gguf, write_tiny_hf, TinySpec};

fn load_err(files: ModelFiles) -> Error {
    load(&files, &LoadOptions::default()).unwrap_err()
}

#[test]
fn truncated_gguf_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    write_tiny_gguf(&path, &TinySpec::llama()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for cut in [10, 200, bytes.len() / 2, bytes.len() - 7] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let e = load_err(ModelFiles::Gguf(path.clone())).to_string();
        assert!(e.contains("model.gguf"), "cut {cut}: {e}");
        assert!(
            e.contains("truncated") || e.contains("GGUF"),
            "cut {cut}: {e}"
        );
    }
}

#[test]
fn garbage_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.gguf");
    std::fs::write(&path, b"this is not a model file at all").unwrap();
    let e = load_err(ModelFiles::Gguf(path)).to_string();
    assert!(e.contains("not a valid GGUF"), "{e}");
    let e = ModelFiles::from_path(&dir.path().join("nope.gguf"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope.gguf") && e.contains("not found"), "{e}");
}

#[test]
fn unknown_architecture_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = TinySpec::llama();
    spec.arch = "mamba";
    let path = dir.path().join("m.gguf");
    write_tiny_gguf(&path, &spec).unwrap();
    let e = load_err(ModelFiles::Gguf(path)).to_string();
    assert!(e.contains("'mamba'") && e.contains("qwen2"), "{e}");
}

/// A hand-written GGUF header whose only tensor is IQ2_XXS (ggml type 16).
#[test]
fn unsupported_quantization_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("iq.gguf");
    let mut f = std::fs::File::create(&path).unwrap();
    let s = |f: &mut std::fs::File, s: &str| {
        f.write_all(&(s.len() as u64).to_le_bytes()).unwrap();
        f.write_all(s.as_bytes()).unwrap();
    };
    f.write_all(b"GGUF").unwrap();
    f.write_all(&3u32.to_le_bytes()).unwrap();
    f.write_all(&1u64.to_le_bytes()).unwrap(); // tensors
    f.write_all(&1u64.to_le_bytes()).unwrap(); // metadata
    s(&mut f, "general.architecture");
    f.write_all(&8u32.to_le_bytes()).unwrap(); // string
    s(&mut f, "llama");
    s(&mut f, "token_embd.weight");
    f.write_all(&2u32.to_le_bytes()).unwrap();
    f.write_all(&256u64.to_le_bytes()).unwrap();
    f.write_all(&4u64.to_le_bytes()).unwrap();
    f.write_all(&16u32.to_le_bytes()).unwrap(); // IQ2_XXS
    f.write_all(&0u64.to_le_bytes()).unwrap();
    f.write_all(&[0u8; 4096]).unwrap();
    drop(f);
    let e = load_err(ModelFiles::Gguf(path)).to_string();
    assert!(e.contains("IQ2_XXS"), "{e}");
}

#[test]
fn corrupt_safetensors_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_hf(dir.path(), &TinySpec::llama()).unwrap();
    let st = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&st).unwrap();
    std::fs::write(&st, &bytes[..bytes.len() / 3]).unwrap();
    let e = load_err(ModelFiles::HfFolder(dir.path().to_path_buf())).to_string();
    assert!(
        e.contains("model.safetensors") && e.contains("safetensors"),
        "{e}"
    );
}

#[test]
fn context_overflow_and_bad_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    let mut spec = TinySpec::llama();
    spec.context = 16;
    write_tiny_gguf(&path, &spec).unwrap();
    let m = load(&ModelFiles::Gguf(path), &LoadOptions::default()).unwrap();
    let mut st = m.decoder.new_state();
    let e = m
        .decoder
        .forward(&[1; 17], &mut st, LogitsFor::Last)
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::ContextOverflow {
                needed: 17,
                limit: 16
            }
        ),
        "{e}"
    );
    let e = m
        .decoder
        .forward(&[1, 100_000], &mut st, LogitsFor::Last)
        .unwrap_err();
    assert!(e.to_string().contains("100000"), "{e}");
    m.decoder
        .forward(&[1; 10], &mut st, LogitsFor::Last)
        .unwrap();
    let e = m
        .decoder
        .forward(&[1; 7], &mut st, LogitsFor::Last)
        .unwrap_err();
    assert!(
        matches!(e, Error::ContextOverflow { needed: 17, .. }),
        "{e}"
    );
}
