//! Inputs the fuzz targets (fuzz/, docs/fuzzing.md) found to panic, kept as regression tests: each is now a
//! clear error.

use serde_json::json;
use tuneup_tokenize::{ChatTemplate, Error, Tokenizer};

/// Loads `tokenizer_json` from a folder of its own.
fn load(tokenizer_json: &str) -> tuneup_tokenize::Result<Tokenizer> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokenizer.json"), tokenizer_json).unwrap();
    Tokenizer::from_hf_dir(dir.path())
}

fn word_level(normalizer: &str, decoder: &str) -> String {
    format!(
        r#"{{"version":"1.0","added_tokens":[],"normalizer":{normalizer},"pre_tokenizer":{{"type":"Whitespace"}},
        "post_processor":null,"decoder":{decoder},
        "model":{{"type":"WordLevel","vocab":{{"[UNK]":0,"hello":1}},"unk_token":"[UNK]"}}}}"#
    )
}

#[test]
fn the_untouched_tokenizer_loads() {
    let tok = load(&word_level("null", "null")).unwrap();
    assert_eq!(tok.encode("hello", false).unwrap(), vec![1]);
}

/// tokenizers 0.22 `expect`s the decoder to parse: a syntax error inside it panicked (fuzz: tokenizer_json).
#[test]
fn a_syntax_error_inside_the_decoder_is_an_error() {
    let text = word_level("null", r#"{"type":"ByteLevel",,"add_prefix_space":true}"#);
    let err = load(&text).expect_err("broken JSON");
    assert!(matches!(err, Error::Json { .. }), "{err}");
    assert!(err.to_string().contains("not JSON"), "{err}");
}

/// tokenizers 0.22 `expect`s a Precompiled normalizer to parse, also inside a Sequence.
#[test]
fn an_unreadable_precompiled_normalizer_is_an_error() {
    for normalizer in [
        r#"{"type":"Precompiled","precompiled_charsmap":"not base64 at all!"}"#,
        r#"{"type":"Sequence","normalizers":[{"type":"Lowercase"},{"type":"Precompiled","precompiled_charsmap":7}]}"#,
    ] {
        let err = load(&word_level(normalizer, "null")).expect_err("bad normalizer");
        assert!(err.to_string().contains("Precompiled normalizer"), "{err}");
    }
}

/// `{%}` opens and closes a tag in three bytes: the `{% generation %}` rewriting sliced it backwards
/// (fuzz: chat_template).
#[test]
fn overlapping_tag_delimiters_are_a_template_error() {
    for template in [
        "{%}",
        "a{%}b",
        "{{ 1 }}{%}{% if true %}x{% endif %}",
        "{%-}",
    ] {
        let result = ChatTemplate::new(template, "", "")
            .and_then(|t| t.render(&[json!({"role": "user", "content": "hi"})], None, false));
        assert!(
            matches!(result, Err(Error::Template(_))),
            "{template}: {result:?}"
        );
    }
}
