//! Token ids must match llama.cpp's exactly (fixtures made with llama.cpp itself).
//!
//! Needs the GGUF files: set `TUNEUP_SMOLLM2_GGUF` and `TUNEUP_QWEN_GGUF`; each test is
//! skipped (with a message) when its variable is unset.

mod common;

use common::{
    extra_fixture_dirs, fixtures_dir, gguf_tokenizer, read_fixture, read_fixture_in, QWEN_ENV,
    SMOLLM2_ENV,
};
use tuneup_tokenize::{StreamDecoder, Tokenizer};

fn ids_of(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("ids array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

fn check_tokenize(tok: &Tokenizer, model: &str) {
    let mut roots = vec![fixtures_dir()];
    roots.extend(extra_fixture_dirs());
    for root in roots {
        check_tokenize_in(tok, model, &root);
    }
}

fn check_tokenize_in(tok: &Tokenizer, model: &str, root: &std::path::Path) {
    let Some(cases) = read_fixture_in(root, &format!("llamacpp/{model}/tokenize.json")) else {
        return;
    };
    let cases = cases.as_array().expect("a list of cases");
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    for case in cases {
        let text = case["text"].as_str().expect("text");
        let add_special = case["add_special"].as_bool().expect("add_special");
        let parse_special = case["parse_special"].as_bool().unwrap_or(true);
        let want = ids_of(&case["ids"]);
        let got = tok
            .encode_with_options(text, add_special, parse_special)
            .expect("encode");
        if got != want {
            failures.push(format!(
                "text={text:?} add_special={add_special} parse_special={parse_special}\n  llama.cpp: {want:?}\n  ours:      {got:?}"
            ));
        }
        if parse_special {
            assert_eq!(tok.encode(text, add_special).unwrap(), got);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} {model} cases in {} differ from llama.cpp:\n{}",
        failures.len(),
        cases.len(),
        root.display(),
        failures.join("\n")
    );
}

/// Decoding every fixture's ids gives the text back, and streaming gives the same text.
fn check_round_trip(tok: &Tokenizer, model: &str) {
    let Some(cases) = read_fixture(&format!("llamacpp/{model}/tokenize.json")) else {
        return;
    };
    for case in cases.as_array().expect("a list of cases") {
        let text = case["text"].as_str().unwrap();
        let ids = tok.encode(text, false).unwrap();
        let decoded = tok.decode(&ids, false).unwrap();
        assert_eq!(decoded, text, "round trip of {text:?} via {ids:?}");
        for skip in [false, true] {
            let full = tok.decode(&ids, skip).unwrap();
            let mut stream = StreamDecoder::new(tok, skip);
            let mut streamed = String::new();
            for &id in &ids {
                if let Some(delta) = stream.push(id).unwrap() {
                    streamed.push_str(&delta);
                }
            }
            streamed.push_str(&stream.finish().unwrap());
            assert_eq!(streamed, full, "streaming {text:?} (skip_special={skip})");
        }
    }
}

fn check_meta(tok: &Tokenizer, model: &str) {
    let Some(meta) = read_fixture(&format!("llamacpp/{model}/meta.json")) else {
        return;
    };
    if let Some(eog) = meta.get("eog_ids") {
        assert_eq!(tok.eog_ids(), ids_of(eog).as_slice(), "eog ids of {model}");
    }
    if let Some(add_bos) = meta.get("add_bos").and_then(|v| v.as_bool()) {
        assert_eq!(tok.add_bos(), add_bos, "add_bos of {model}");
    }
    for (key, id, text) in [
        ("bos", tok.bos_id(), tok.bos_token()),
        ("eos", tok.eos_id(), tok.eos_token()),
    ] {
        if let Some(want) = meta.get(key) {
            assert_eq!(
                id,
                want["id"].as_u64().map(|x| x as u32),
                "{key} id of {model}"
            );
            assert_eq!(text, want["text"].as_str(), "{key} text of {model}");
        }
    }
    if let Some(n) = meta.get("n_vocab").and_then(|v| v.as_u64()) {
        assert_eq!(tok.vocab_size() as u64, n);
    }
}

#[test]
fn smollm2_matches_llama_cpp() {
    let Some(tok) = gguf_tokenizer(SMOLLM2_ENV) else {
        return;
    };
    check_meta(&tok, "smollm2-135m");
    check_tokenize(&tok, "smollm2-135m");
    check_round_trip(&tok, "smollm2-135m");
}

#[test]
fn qwen_matches_llama_cpp() {
    let Some(tok) = gguf_tokenizer(QWEN_ENV) else {
        return;
    };
    check_meta(&tok, "qwen2.5-coder-0.5b");
    check_tokenize(&tok, "qwen2.5-coder-0.5b");
    check_round_trip(&tok, "qwen2.5-coder-0.5b");
}

#[test]
fn gguf_basics() {
    let Some(tok) = gguf_tokenizer(QWEN_ENV) else {
        return;
    };
    assert_eq!(tok.token_id("<|im_end|>"), Some(151645));
    assert_eq!(tok.id_to_piece(151645).as_deref(), Some("<|im_end|>"));
    assert!(tok.is_eog(151645));
    assert!(!tok.is_eog(151644));
    assert!(tok.chat_template().unwrap().contains("<tool_call>"));
    let ids = tok.encode("<|im_start|>user\nhi<|im_end|>", false).unwrap();
    assert_eq!(ids[0], 151644);
    assert_eq!(*ids.last().unwrap(), 151645);
    assert_eq!(tok.decode(&ids, true).unwrap(), "user\nhi");
    assert!(tok.decode(&[u32::MAX], false).is_err());
}
