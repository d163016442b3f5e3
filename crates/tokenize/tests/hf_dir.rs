//! `Tokenizer::from_hf_dir`: a Hugging Face folder (`tokenizer.json` and friends).

mod common;

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use tuneup_tokenize::{ChatTemplate, StreamDecoder, Tokenizer};

fn tiny_spm() -> Tokenizer {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny-spm.gguf");
    let mut file = std::fs::File::open(path).expect("tests/data/tiny-spm.gguf");
    let content = gguf_file::Content::read(&mut file).expect("valid GGUF");
    Tokenizer::from_gguf(&content.metadata).expect("tokenizer")
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write test file");
}

fn streamed(tok: &Tokenizer, ids: &[u32], skip: bool) -> String {
    let mut stream = StreamDecoder::new(tok, skip);
    let mut out = String::new();
    for &id in ids {
        out.extend(stream.push(id).unwrap());
    }
    out.push_str(&stream.finish().unwrap());
    out
}

const TEXTS: &[&str] = &[
    "Hello world",
    " leading space",
    "안녕하세요! 서울 날씨 어때? 😀",
    "<s>special</s> and <tool>{\"a\": 1}</tool><|im_end|>",
    "fn main() {\n    let x = 1;\n}\n",
    "",
];

/// A SentencePiece-style folder (Replace/ByteFallback/Fuse/Strip decoder), written from
/// the GGUF-derived pipeline, behaves like the GGUF tokenizer.
#[test]
fn sentencepiece_folder_matches_gguf() {
    let gguf = tiny_spm();
    let dir = tempfile::tempdir().unwrap();
    let json = gguf.hf_tokenizer().to_string(true).unwrap();
    write(dir.path(), "tokenizer.json", &json);
    write(
        dir.path(),
        "tokenizer_config.json",
        r#"{"bos_token": {"content": "<s>"}, "eos_token": "</s>", "add_bos_token": true,
            "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}"}]}"#,
    );
    write(
        dir.path(),
        "generation_config.json",
        r#"{"eos_token_id": [2, 4]}"#,
    );
    let hf = Tokenizer::from_hf_dir(dir.path()).unwrap();
    assert_eq!(hf.vocab_size(), gguf.vocab_size());
    assert_eq!(hf.bos_token(), Some("<s>"));
    assert_eq!(hf.eos_token(), Some("</s>"));
    assert!(hf.add_bos());
    assert_eq!(hf.eog_ids(), gguf.eog_ids());
    for text in TEXTS {
        for add_special in [false, true] {
            let ids = gguf.encode(text, add_special).unwrap();
            assert_eq!(hf.encode(text, add_special).unwrap(), ids, "{text:?}");
            for skip in [false, true] {
                let want = gguf.decode(&ids, skip).unwrap();
                assert_eq!(hf.decode(&ids, skip).unwrap(), want, "{text:?}");
                assert_eq!(streamed(&hf, &ids, skip), want, "{text:?}");
            }
        }
    }
    let template = ChatTemplate::new(hf.chat_template().unwrap(), "<s>", "</s>").unwrap();
    let rendered = template
        .render(
            &[serde_json::json!({"role": "user", "content": "hi"})],
            None,
            false,
        )
        .unwrap();
    assert_eq!(rendered, "<s>hi");

    // chat_template.jinja wins over the config, as in transformers.
    write(dir.path(), "chat_template.jinja", "JINJA");
    assert_eq!(
        Tokenizer::from_hf_dir(dir.path()).unwrap().chat_template(),
        Some("JINJA")
    );
}

/// A byte-level folder built from the Qwen GGUF encodes like it (needs `TUNEUP_QWEN_GGUF`).
#[test]
fn byte_level_folder_matches_gguf() {
    let Some(gguf) = common::gguf_tokenizer(common::QWEN_ENV) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "tokenizer.json",
        &gguf.hf_tokenizer().to_string(false).unwrap(),
    );
    write(
        dir.path(),
        "tokenizer_config.json",
        r#"{"bos_token": null, "eos_token": "<|im_end|>"}"#,
    );
    let hf = Tokenizer::from_hf_dir(dir.path()).unwrap();
    assert!(!hf.add_bos());
    assert_eq!(hf.eos_token(), Some("<|im_end|>"));
    assert!(hf.is_eog(151645) && hf.is_eog(151643));
    for text in TEXTS {
        let ids = gguf.encode(text, false).unwrap();
        assert_eq!(hf.encode(text, true).unwrap(), ids, "{text:?}");
        assert_eq!(hf.decode(&ids, false).unwrap(), *text);
        assert_eq!(streamed(&hf, &ids, false), *text);
    }
}

/// Decoders that are not byte-oriented fall back to `tokenizers`' own decoder, also
/// when streaming.
#[test]
fn generic_decoder_folder() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "tokenizer.json",
        r#"{"version": "1.0", "truncation": null, "padding": null,
            "added_tokens": [{"id": 0, "content": "[UNK]", "single_word": false, "lstrip": false,
                              "rstrip": false, "normalized": false, "special": true}],
            "normalizer": null, "pre_tokenizer": {"type": "WhitespaceSplit"},
            "post_processor": null, "decoder": null,
            "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "hello": 1, "world": 2}, "unk_token": "[UNK]"}}"#,
    );
    let tok = Tokenizer::from_hf_dir(dir.path()).unwrap();
    let ids = tok.encode("hello world nope", true).unwrap();
    assert_eq!(ids, vec![1, 2, 0]);
    assert_eq!(tok.decode(&ids, true).unwrap(), "hello world");
    assert_eq!(
        streamed(&tok, &ids, false),
        tok.decode(&ids, false).unwrap()
    );
    assert!(tok.decode(&[7], false).is_err());
    assert!(tok.chat_template().is_none());
    assert_eq!(tok.bos_id(), None);
}

#[test]
fn missing_or_broken_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = Tokenizer::from_hf_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
    write(dir.path(), "tokenizer.json", "{ not json");
    let err = Tokenizer::from_hf_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
}
