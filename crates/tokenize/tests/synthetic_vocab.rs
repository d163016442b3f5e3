//! Tokenizers built from small, hand-made GGUF metadata: SentencePiece ("llama") and
//! byte-level BPE ("gpt2") vocabularies, streaming decode, and error reporting.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use tuneup_tokenize::{Error, StreamDecoder, TokenKind, Tokenizer};

fn strings(v: &[&str]) -> Value {
    Value::Array(v.iter().map(|s| Value::String(s.to_string())).collect())
}

// ---------------------------------------------------------------------------------------
// SentencePiece
// ---------------------------------------------------------------------------------------

/// A tiny SentencePiece vocabulary: `<unk> <s> </s>`, 256 byte tokens, then pieces with
/// scores (higher merges first), plus a control and a user-defined token.
fn spm_vocab() -> (Vec<String>, Vec<f32>, Vec<i32>) {
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut scores = vec![0.0f32, 0.0, 0.0];
    let mut types = vec![2, 3, 3];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        scores.push(0.0);
        types.push(6);
    }
    let pieces = [
        "▁",
        "h",
        "e",
        "l",
        "o",
        "w",
        "r",
        "d",
        "a",
        "b",
        "c",
        ",",
        "!",
        "▁h",
        "he",
        "ll",
        "lo",
        "llo",
        "hell",
        "hello",
        "▁hello",
        "▁w",
        "or",
        "wor",
        "▁wor",
        "ld",
        "▁world",
        "ab",
        "bc",
        "abc",
        "▁a",
        "▁ab",
        "▁abc",
        "▁▁",
        "▁▁▁",
    ];
    for (i, p) in pieces.iter().enumerate() {
        tokens.push(p.to_string());
        // Single characters score low; longer pieces score by a fixed, distinct order.
        let score = if p.chars().count() == 1 {
            -1000.0 - i as f32
        } else {
            -(i as f32)
        };
        scores.push(score);
        types.push(1);
    }
    tokens.push("<|im_end|>".into());
    scores.push(0.0);
    types.push(3);
    tokens.push("<tool>".into());
    scores.push(0.0);
    types.push(4);
    (tokens, scores, types)
}

fn spm_metadata() -> HashMap<String, Value> {
    let (tokens, scores, types) = spm_vocab();
    let tok_refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    HashMap::from([
        (
            "tokenizer.ggml.model".to_string(),
            Value::String("llama".into()),
        ),
        ("tokenizer.ggml.tokens".to_string(), strings(&tok_refs)),
        (
            "tokenizer.ggml.scores".to_string(),
            Value::Array(scores.into_iter().map(Value::F32).collect()),
        ),
        (
            "tokenizer.ggml.token_type".to_string(),
            Value::Array(types.into_iter().map(Value::I32).collect()),
        ),
        ("tokenizer.ggml.bos_token_id".to_string(), Value::U32(1)),
        ("tokenizer.ggml.eos_token_id".to_string(), Value::U32(2)),
        ("tokenizer.ggml.unknown_token_id".to_string(), Value::U32(0)),
    ])
}

/// llama.cpp's SentencePiece algorithm, written plainly: repeatedly merge the adjacent
/// pair whose concatenation is the highest-scoring vocabulary entry (leftmost on ties);
/// symbols that are not tokens become their byte tokens.
fn reference_spm(tokens: &[String], scores: &[f32], text: &str) -> Vec<u32> {
    let index: HashMap<&str, usize> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let mut syms: Vec<String> = text.chars().map(|c| c.to_string()).collect();
    loop {
        let mut best: Option<(f32, usize)> = None;
        for i in 0..syms.len().saturating_sub(1) {
            let cat = format!("{}{}", syms[i], syms[i + 1]);
            if let Some(&id) = index.get(cat.as_str()) {
                if best.is_none_or(|(s, _)| scores[id] > s) {
                    best = Some((scores[id], i));
                }
            }
        }
        let Some((_, i)) = best else { break };
        let right = syms.remove(i + 1);
        syms[i].push_str(&right);
    }
    let mut out = Vec::new();
    for s in syms {
        match index.get(s.as_str()) {
            Some(&id) => out.push(id as u32),
            None => {
                for b in s.bytes() {
                    out.push(index[format!("<0x{b:02X}>").as_str()] as u32);
                }
            }
        }
    }
    out
}

fn id(tok: &Tokenizer, t: &str) -> u32 {
    tok.token_id(t)
        .unwrap_or_else(|| panic!("{t} not in vocab"))
}

#[test]
fn spm_encodes_like_llama_cpp() {
    let tok = Tokenizer::from_gguf(&spm_metadata()).unwrap();
    assert!(tok.add_bos());
    assert_eq!(tok.bos_token(), Some("<s>"));
    assert_eq!(tok.eos_token(), Some("</s>"));
    // BOS, dummy-prefix space, merges by score: `▁h` outranks `he`, so `▁hello` is
    // never reached, while `▁world` is.
    assert_eq!(
        tok.encode("hello world", true).unwrap(),
        vec![
            1,
            id(&tok, "▁h"),
            id(&tok, "e"),
            id(&tok, "llo"),
            id(&tok, "▁world")
        ]
    );
    assert_eq!(tok.encode("abc", false).unwrap(), vec![id(&tok, "▁abc")]);
    assert_eq!(tok.encode("", true).unwrap(), vec![1]);
    assert!(tok.encode("", false).unwrap().is_empty());
    // Characters outside the vocabulary fall back to bytes: 한 = ED 95 9C.
    assert_eq!(
        tok.encode("한", false).unwrap(),
        vec![
            id(&tok, "▁"),
            id(&tok, "<0xED>"),
            id(&tok, "<0x95>"),
            id(&tok, "<0x9C>")
        ]
    );
    // Special tokens are matched in text; the text after them gets the dummy prefix too.
    assert_eq!(
        tok.encode("hello<|im_end|>world<tool>abc", false).unwrap(),
        vec![
            id(&tok, "▁h"),
            id(&tok, "e"),
            id(&tok, "llo"),
            id(&tok, "<|im_end|>"),
            id(&tok, "▁world"),
            id(&tok, "<tool>"),
            id(&tok, "▁abc"),
        ]
    );
    // Without parse_special, control text is plain text but user-defined tokens still match.
    let plain = tok
        .encode_with_options("<|im_end|><tool>", false, false)
        .unwrap();
    assert!(!plain.contains(&id(&tok, "<|im_end|>")));
    assert!(plain.contains(&id(&tok, "<tool>")));
}

#[test]
fn spm_matches_reference_on_many_strings() {
    let (tokens, scores, _) = spm_vocab();
    let tok = Tokenizer::from_gguf(&spm_metadata()).unwrap();
    let alphabet: Vec<char> = "helowrdabc ,!한😀".chars().collect();
    // A small deterministic generator (no external RNG needed).
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..2000 {
        let len = (next() % 14) as usize;
        let text: String = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        let escaped = format!("▁{}", text.replace(' ', "▁"));
        let want = if text.is_empty() {
            vec![]
        } else {
            reference_spm(&tokens, &scores, &escaped)
        };
        assert_eq!(tok.encode(&text, false).unwrap(), want, "text {text:?}");
        // Decoding gives the text back (the dummy prefix is removed).
        assert_eq!(tok.decode(&want, false).unwrap(), text, "decode {text:?}");
    }
}

#[test]
fn spm_decode_and_stream() {
    let tok = Tokenizer::from_gguf(&spm_metadata()).unwrap();
    let ids = tok.encode("hello 한😀 world<|im_end|>", true).unwrap();
    assert_eq!(tok.decode(&ids, true).unwrap(), "hello 한😀 world");
    assert_eq!(
        tok.decode(&ids, false).unwrap(),
        "<s> hello 한😀 world<|im_end|>"
    );
    for skip in [true, false] {
        let mut stream = StreamDecoder::new(&tok, skip);
        let mut deltas = Vec::new();
        for &i in &ids {
            if let Some(d) = stream.push(i).unwrap() {
                deltas.push(d);
            }
        }
        deltas.push(stream.finish().unwrap());
        assert_eq!(deltas.concat(), tok.decode(&ids, skip).unwrap());
        assert!(deltas.iter().all(|d| !d.contains('\u{fffd}')));
    }
    assert_eq!(tok.token_kind(id(&tok, "<0x0A>")), Some(TokenKind::Byte));
    assert_eq!(tok.token_kind(0), Some(TokenKind::Unknown));
    assert!(tok.is_eog(2));
    assert!(tok.is_eog(id(&tok, "<|im_end|>")));
}

#[test]
fn spm_add_space_prefix_can_be_disabled() {
    let mut meta = spm_metadata();
    meta.insert("tokenizer.ggml.add_space_prefix".into(), Value::Bool(false));
    meta.insert("tokenizer.ggml.add_bos_token".into(), Value::Bool(false));
    let tok = Tokenizer::from_gguf(&meta).unwrap();
    assert_eq!(tok.encode("hello", true).unwrap(), vec![id(&tok, "hello")]);
    assert_eq!(tok.decode(&[id(&tok, "▁hello")], false).unwrap(), " hello");
}

// ---------------------------------------------------------------------------------------
// Byte-level BPE
// ---------------------------------------------------------------------------------------

/// GPT-2's byte → character table.
fn byte_chars() -> Vec<char> {
    let mut n = 0u32;
    (0..256u32)
        .map(|b| {
            let printable = (0x21..=0x7e).contains(&b)
                || (0xa1..=0xac).contains(&b)
                || (0xae..=0xff).contains(&b);
            char::from_u32(if printable {
                b
            } else {
                n += 1;
                255 + n
            })
            .unwrap()
        })
        .collect()
}

fn bpe_metadata(pre: &str) -> HashMap<String, Value> {
    let mut tokens: Vec<String> = vec![
        "<|endoftext|>".into(),
        "<|im_start|>".into(),
        "<|im_end|>".into(),
    ];
    let mut types = vec![3, 3, 3];
    for c in byte_chars() {
        tokens.push(c.to_string());
        types.push(1);
    }
    let merges = [
        "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld", "h e", "l l", "he ll", "hell o",
    ];
    for m in merges {
        tokens.push(m.replace(' ', ""));
        types.push(1);
    }
    let tok_refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    HashMap::from([
        (
            "tokenizer.ggml.model".to_string(),
            Value::String("gpt2".into()),
        ),
        ("tokenizer.ggml.pre".to_string(), Value::String(pre.into())),
        ("tokenizer.ggml.tokens".to_string(), strings(&tok_refs)),
        ("tokenizer.ggml.merges".to_string(), strings(&merges)),
        (
            "tokenizer.ggml.token_type".to_string(),
            Value::Array(types.into_iter().map(Value::I32).collect()),
        ),
        ("tokenizer.ggml.bos_token_id".to_string(), Value::U32(1)),
        ("tokenizer.ggml.eos_token_id".to_string(), Value::U32(2)),
        (
            "tokenizer.chat_template".to_string(),
            Value::String("{{ messages }}".into()),
        ),
    ])
}

#[test]
fn bpe_encodes_and_decodes() {
    let tok = Tokenizer::from_gguf(&bpe_metadata("qwen2")).unwrap();
    assert!(!tok.add_bos());
    assert_eq!(tok.vocab_size(), 3 + 256 + 9);
    assert_eq!(tok.chat_template(), Some("{{ messages }}"));
    let ids = tok
        .encode("<|im_start|>hello world<|im_end|>", true)
        .unwrap();
    assert_eq!(ids, vec![1, id(&tok, "hello"), id(&tok, "Ġworld"), 2]);
    assert_eq!(tok.decode(&ids, true).unwrap(), "hello world");
    assert_eq!(
        tok.id_to_piece(id(&tok, "Ġworld")).as_deref(),
        Some("Ġworld")
    );
    assert_eq!(tok.eog_ids(), &[0, 2]);
}

#[test]
fn stream_decoder_korean_split_over_byte_tokens() {
    let tok = Tokenizer::from_gguf(&bpe_metadata("qwen2")).unwrap();
    let text = "안녕하세요, world! 👍🏽 한국어";
    let ids = tok.encode(text, false).unwrap();
    // Every Korean syllable is three byte tokens here.
    assert!(ids.len() > text.chars().count());
    let full = tok.decode(&ids, false).unwrap();
    assert_eq!(full, text);
    let mut stream = StreamDecoder::new(&tok, false);
    let mut deltas = Vec::new();
    let mut held_back = 0;
    for &i in &ids {
        match stream.push(i).unwrap() {
            Some(d) => {
                assert!(
                    !d.contains('\u{fffd}'),
                    "delta {d:?} is not clean UTF-8 text"
                );
                deltas.push(d);
            }
            None => held_back += 1,
        }
    }
    deltas.push(stream.finish().unwrap());
    assert!(held_back > 0, "multibyte characters must be held back");
    assert_eq!(deltas.concat(), full);
    // A character cut off at the end is flushed as U+FFFD, like a full decode.
    let cut = &ids[..ids.len() - 1];
    let mut stream = StreamDecoder::new(&tok, false);
    let mut out = String::new();
    for &i in cut {
        out.extend(stream.push(i).unwrap());
    }
    out.push_str(&stream.finish().unwrap());
    assert_eq!(out, tok.decode(cut, false).unwrap());
    assert!(out.ends_with('\u{fffd}'));
}

#[test]
fn types_are_thread_safe_and_template_comes_from_tokenizer() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tokenizer>();
    assert_send_sync::<tuneup_tokenize::ChatTemplate>();
    assert_send_sync::<StreamDecoder<'static>>();
    let tok = Tokenizer::from_gguf(&bpe_metadata("qwen2")).unwrap();
    let template = tuneup_tokenize::ChatTemplate::from_tokenizer(&tok)
        .unwrap()
        .expect("the metadata has a template");
    let out = template
        .render(
            &[serde_json::json!({"role": "user", "content": "hi"})],
            None,
            false,
        )
        .unwrap();
    assert_eq!(out, "[{'role': 'user', 'content': 'hi'}]");
    let no_template = Tokenizer::from_gguf(&spm_metadata()).unwrap();
    assert!(tuneup_tokenize::ChatTemplate::from_tokenizer(&no_template)
        .unwrap()
        .is_none());
}

#[test]
fn bpe_pre_tokenizers() {
    // SmolLM's pre-tokenizer splits digits one by one; llama3 keeps groups of three.
    let smol = Tokenizer::from_gguf(&bpe_metadata("smollm")).unwrap();
    let llama3 = Tokenizer::from_gguf(&bpe_metadata("llama-bpe")).unwrap();
    assert_eq!(smol.encode("12345", false).unwrap().len(), 5);
    assert!(llama3.add_bos());
    assert_eq!(llama3.encode("x", true).unwrap()[0], 1);
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

#[test]
fn unknown_tokenizer_model_is_a_clear_error() {
    let mut meta = bpe_metadata("qwen2");
    meta.insert(
        "tokenizer.ggml.model".into(),
        Value::String("rwkv-world".into()),
    );
    let err = Tokenizer::from_gguf(&meta).unwrap_err();
    assert!(matches!(&err, Error::UnsupportedModel { model } if model == "rwkv-world"));
    let msg = err.to_string();
    assert!(
        msg.contains("rwkv-world") && msg.contains("tokenizer.ggml.model"),
        "{msg}"
    );
}

#[test]
fn missing_tokens_key_is_a_clear_error() {
    let mut meta = bpe_metadata("qwen2");
    meta.remove("tokenizer.ggml.tokens");
    let err = Tokenizer::from_gguf(&meta).unwrap_err();
    assert!(matches!(&err, Error::MissingKey { key, .. } if key == "tokenizer.ggml.tokens"));
    assert!(err.to_string().contains("tokenizer.ggml.tokens"));

    let mut meta = bpe_metadata("qwen2");
    meta.remove("tokenizer.ggml.model");
    assert!(matches!(
        Tokenizer::from_gguf(&meta),
        Err(Error::MissingKey { key, .. }) if key == "tokenizer.ggml.model"
    ));

    let mut meta = bpe_metadata("qwen2");
    meta.remove("tokenizer.ggml.merges");
    assert!(matches!(
        Tokenizer::from_gguf(&meta),
        Err(Error::MissingKey { key, .. }) if key == "tokenizer.ggml.merges"
    ));
}

#[test]
fn malformed_metadata_is_a_clear_error() {
    let mut meta = bpe_metadata("qwen2");
    meta.insert("tokenizer.ggml.tokens".into(), Value::U32(3));
    let err = Tokenizer::from_gguf(&meta).unwrap_err().to_string();
    assert!(
        err.contains("tokenizer.ggml.tokens") && err.contains("array of strings"),
        "{err}"
    );

    let mut meta = bpe_metadata("qwen2");
    meta.insert("tokenizer.ggml.pre".into(), Value::String("mystery".into()));
    let err = Tokenizer::from_gguf(&meta).unwrap_err();
    assert!(matches!(&err, Error::UnknownPreTokenizer { pre, .. } if pre == "mystery"));

    let mut meta = bpe_metadata("qwen2");
    meta.insert(
        "tokenizer.ggml.token_type".into(),
        Value::Array(vec![Value::I32(1)]),
    );
    let err = Tokenizer::from_gguf(&meta).unwrap_err().to_string();
    assert!(err.contains("tokenizer.ggml.token_type"), "{err}");

    let mut meta = bpe_metadata("qwen2");
    meta.insert("tokenizer.ggml.tokens".into(), strings(&["a", "a"]));
    let err = Tokenizer::from_gguf(&meta).unwrap_err().to_string();
    assert!(err.contains("duplicate"), "{err}");

    let mut meta = bpe_metadata("qwen2");
    meta.insert("tokenizer.ggml.tokens".into(), strings(&[]));
    assert!(Tokenizer::from_gguf(&meta).is_err());
}
