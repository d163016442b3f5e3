//! GGUF files: the header check, candle's reader behind it, the tokenizer and configuration read from the
//! metadata, and the whole model load. Any input must give a model or an error, never a panic or an abort.
#![no_main]

#[path = "scratch.rs"]
mod scratch;

use candle_core::Device;
use libfuzzer_sys::fuzz_target;
use tuneup_models::{gguf_check, load, DecoderConfig, GgufWeights, LoadOptions, ModelFiles};
use tuneup_tokenize::Tokenizer;

fuzz_target!(|data: &[u8]| {
    let _ = gguf_check::check_header(data);
    let path = scratch::scratch_file("model.gguf", data);
    let Ok(weights) = GgufWeights::open(&path, &Device::Cpu) else {
        return;
    };
    let _ = Tokenizer::from_gguf(weights.metadata());
    let _ = DecoderConfig::from_gguf(weights.metadata(), 16, "fuzz");
    drop(weights);
    // The context is capped as `--ctx-size` does: a long declared context is a legitimate (large) RoPE table.
    let opts = LoadOptions {
        max_context: Some(512),
        ..LoadOptions::default()
    };
    let _ = load(&ModelFiles::Gguf(path), &opts);
});
