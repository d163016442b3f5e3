//! `tokenizer.json` (with the `tokenizers` crate behind it): loading an HF tokenizer folder, then encoding
//! and decoding a few strings with whatever loaded.
#![no_main]

#[path = "scratch.rs"]
mod scratch;

use libfuzzer_sys::fuzz_target;
use tuneup_tokenize::Tokenizer;

fuzz_target!(|data: &[u8]| {
    let path = scratch::scratch_file("tokenizer.json", data);
    let Ok(tok) = Tokenizer::from_hf_dir(path.parent().expect("scratch folder")) else {
        return;
    };
    for text in [
        "hello world",
        "서울 날씨 어때?",
        "<|im_start|>user\n\u{0}\u{ffff}",
        "",
    ] {
        if let Ok(ids) = tok.encode(text, true) {
            let _ = tok.decode(&ids, false);
        }
    }
    let _ = tok.decode(&[0, 1, 2, u32::MAX], true);
});
