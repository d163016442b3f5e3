//! A SentencePiece ("llama") vocabulary must tokenize exactly like llama.cpp.
//!
//! `tests/data/tiny-spm.gguf` is a vocabulary-only GGUF trained with sentencepiece;
//! `tests/data/tiny-spm-llamacpp.json` is llama.cpp's tokenization of random texts with
//! it (see `tests/data/make_tiny_spm.py`). No environment variables needed.

use std::path::PathBuf;

use candle_core::quantized::gguf_file;
use tuneup_tokenize::{StreamDecoder, Tokenizer};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn tiny_spm() -> Tokenizer {
    let mut file = std::fs::File::open(data("tiny-spm.gguf")).expect("tests/data/tiny-spm.gguf");
    let content = gguf_file::Content::read(&mut file).expect("valid GGUF");
    Tokenizer::from_gguf(&content.metadata).expect("tokenizer")
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("ids")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

#[test]
fn tiny_spm_matches_llama_cpp() {
    let tok = tiny_spm();
    let text = std::fs::read_to_string(data("tiny-spm-llamacpp.json")).expect("fixture");
    let fixture: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(tok.eog_ids(), ids(&fixture["eog_ids"]).as_slice());
    assert!(tok.add_bos());
    let cases = fixture["cases"].as_array().expect("cases");
    let mut failures = Vec::new();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let add_special = case["add_special"].as_bool().unwrap();
        let parse_special = case["parse_special"].as_bool().unwrap();
        let want = ids(&case["ids"]);
        let got = tok
            .encode_with_options(text, add_special, parse_special)
            .unwrap();
        if got != want {
            failures.push(format!(
                "{text:?} add_special={add_special} parse_special={parse_special}\n  llama.cpp: {want:?}\n  ours:      {got:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn tiny_spm_round_trips_and_streams() {
    let tok = tiny_spm();
    for text in [
        "Hello world",
        "안녕하세요! 서울 날씨 어때? 😀",
        "  two  spaces\n\ttab",
    ] {
        let ids = tok.encode(text, true).unwrap();
        assert_eq!(ids[0], tok.bos_id().unwrap());
        assert_eq!(tok.decode(&ids, true).unwrap(), text);
        let mut stream = StreamDecoder::new(&tok, true);
        let mut out = String::new();
        for &id in &ids {
            out.extend(stream.push(id).unwrap());
        }
        out.push_str(&stream.finish().unwrap());
        assert_eq!(out, text);
    }
}
