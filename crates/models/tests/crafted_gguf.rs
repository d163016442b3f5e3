//! Crafted GGUF files, written byte by byte, are clear errors through the public load path: never a panic,
//! an abort or an allocation far beyond the file's size. Each file is first shown to differ from a loadable
//! one only in the crafted field.

use std::path::{Path, PathBuf};

use tuneup_models::{load, LoadOptions, ModelFiles};
use tuneup_test_utils::gguf_bytes::{tiny_llama_bytes, value_type, GgufBytes, GGML_F32};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Loads `bytes` as a GGUF file and returns the error text, which must name the file.
fn load_error(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "crafted.gguf", bytes);
    let err = load(&ModelFiles::Gguf(path), &LoadOptions::default())
        .expect_err("a crafted file must not load")
        .to_string();
    assert!(
        err.contains("crafted.gguf"),
        "the error names the file: {err}"
    );
    err
}

fn assert_contains(err: &str, want: &str) {
    assert!(err.contains(want), "expected '{want}' in: {err}");
}

#[test]
fn the_untouched_tiny_model_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "tiny.gguf", &tiny_llama_bytes(&[]));
    let model = load(&ModelFiles::Gguf(path), &LoadOptions::default()).unwrap();
    assert_eq!(model.decoder.config().num_layers, 1);
}

#[test]
fn alignment_zero_is_an_error_not_a_division_by_zero() {
    let bytes = tiny_llama_bytes(&[(
        "general.alignment",
        value_type::U32,
        0u32.to_le_bytes().to_vec(),
    )]);
    assert_contains(&load_error(&bytes), "general.alignment is 0");
    let bytes = tiny_llama_bytes(&[(
        "general.alignment",
        value_type::U32,
        24u32.to_le_bytes().to_vec(),
    )]);
    assert_contains(&load_error(&bytes), "power of two");
}

#[test]
fn block_count_two_to_the_forty_is_an_error_not_an_abort() {
    let bytes = tiny_llama_bytes(&[(
        "llama.block_count",
        value_type::U64,
        (1u64 << 40).to_le_bytes().to_vec(),
    )]);
    let err = load_error(&bytes);
    assert_contains(&err, "layers is 1099511627776");
}

#[test]
fn absurd_hyper_parameters_are_errors() {
    for (key, what) in [
        ("llama.context_length", "context length"),
        ("llama.attention.key_length", "head dimension"),
        ("llama.embedding_length", "hidden size"),
    ] {
        let bytes =
            tiny_llama_bytes(&[(key, value_type::U64, (1u64 << 40).to_le_bytes().to_vec())]);
        assert_contains(&load_error(&bytes), what);
    }
}

#[test]
fn dimensions_whose_product_overflows_are_an_error() {
    let g = GgufBytes::new()
        .string("general.architecture", "llama")
        .tensor(
            "token_embd.weight",
            &[1 << 32, 1 << 32, 1 << 8],
            GGML_F32,
            0,
        );
    assert_contains(&load_error(&g.build(&[0; 64])), "product overflows");
    // Four dimensions of 2^16 multiply to 2^64: one past u64.
    let g = GgufBytes::new().tensor("t", &[1 << 16; 4], GGML_F32, 0);
    assert_contains(&load_error(&g.build(&[0; 64])), "product overflows");
}

#[test]
fn more_than_four_dimensions_is_an_error() {
    let g = GgufBytes::new().tensor("t", &[1; 5], GGML_F32, 0);
    assert_contains(&load_error(&g.build(&[0; 64])), "5 dimensions");
}

#[test]
fn tensor_data_beyond_the_file_is_an_error() {
    let g = GgufBytes::new().tensor("t", &[16, 16], GGML_F32, 1 << 40);
    assert_contains(&load_error(&g.build(&[0; 1024])), "past the end");
    // Fits by offset, not by size.
    let g = GgufBytes::new().tensor("t", &[1024, 1024], GGML_F32, 0);
    assert_contains(&load_error(&g.build(&[0; 1024])), "past the end");
    // An offset that wraps around u64 when added to the data start.
    let g = GgufBytes::new().tensor("t", &[8], GGML_F32, u64::MAX - 31);
    assert_contains(&load_error(&g.build(&[0; 64])), "past the end");
}

#[test]
fn huge_array_and_string_lengths_are_errors() {
    // An array of 2^40 u32s in a small file.
    let mut v = value_type::U32.to_le_bytes().to_vec();
    v.extend((1u64 << 40).to_le_bytes());
    let g = GgufBytes::new().raw_kv("tokenizer.ggml.scores", value_type::ARRAY, &v);
    assert_contains(&load_error(&g.build(&[])), "all arrays together");
    // An array of strings whose count fits the cap but not the file.
    let mut v = value_type::STRING.to_le_bytes().to_vec();
    v.extend((1u64 << 22).to_le_bytes());
    let g = GgufBytes::new().raw_kv("tokenizer.ggml.tokens", value_type::ARRAY, &v);
    assert_contains(&load_error(&g.build(&[])), "file ends");
    // A string longer than the file.
    let mut v = (1u64 << 50).to_le_bytes().to_vec();
    v.extend(b"abc");
    let g = GgufBytes::new().raw_kv("general.name", value_type::STRING, &v);
    assert_contains(&load_error(&g.build(&[])), "file ends");
    // Header counts far beyond the file.
    let mut g = GgufBytes::new().u32("a", 1);
    g.declared_counts = Some((0, 1 << 50));
    assert_contains(&load_error(&g.build(&[])), "metadata entries");
}

#[test]
fn arrays_nested_without_end_are_an_error() {
    let mut v = Vec::new();
    for _ in 0..100 {
        v.extend(value_type::ARRAY.to_le_bytes());
        v.extend(1u64.to_le_bytes());
    }
    let g = GgufBytes::new().raw_kv("deep", value_type::ARRAY, &v);
    assert_contains(&load_error(&g.build(&[])), "nests arrays");
}

#[test]
fn a_tensor_shaped_unlike_the_configuration_is_an_error() {
    // The metadata says 2 heads of 4; a Q projection of 8 × 8 fits, so claim 4 heads of 4 (16 rows).
    let bytes = tiny_llama_bytes(&[(
        "llama.attention.key_length",
        value_type::U32,
        8u32.to_le_bytes().to_vec(),
    )]);
    assert_contains(&load_error(&bytes), "q_proj");
    // A scalar embedding.
    let g = GgufBytes::new()
        .string("general.architecture", "llama")
        .tensor("token_embd.weight", &[], GGML_F32, 0);
    assert_contains(&load_error(&g.build(&[0; 64])), "expected a matrix");
}

/// candle read an empty tensor through a dangling pointer (fuzz: gguf_header, a `slice::from_raw_parts`
/// precondition panic).
#[test]
fn a_tensor_with_a_zero_dimension_is_an_error() {
    let g = GgufBytes::new()
        .string("general.architecture", "llama")
        .tensor("token_embd.weight", &[8, 0], GGML_F32, 0);
    assert_contains(&load_error(&g.build(&[0; 64])), "dimension of 0");
}
