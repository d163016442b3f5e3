//! The real default models against llama.cpp on the same GGUF files
//! (fixtures made by `scripts/fixtures/make_llamacpp_fixtures.py`):
//! tokenization of the prompts, last-position logits within a stated
//! tolerance, and 64 greedily decoded tokens, token for token.

mod common;
use common::model_path;

use std::path::PathBuf;

use serde_json::Value;
use tuneup_generate::{argmax, ChatModel};
use tuneup_models::{LoadOptions, LogitsFor, ModelFiles};

/// Largest absolute logit difference accepted against llama.cpp (logits of
/// these models span about ±30). Both quantize activations to 8 bits before
/// the quantized dot products and round attention inputs to f16, but
/// accumulate in different orders, so logits differ slightly. Measured:
/// SmolLM2 0.74, Qwen2.5-Coder 0.34 at most over the whole vocabulary.
const LOGIT_TOLERANCE: f32 = 1.0;

/// Greedy decoding may take the other branch only where llama.cpp itself
/// was nearly undecided: its top-1 logit led the runner-up by less than this.
const NEAR_TIE: f32 = 0.25;

fn fixture_dir(model: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../fixtures/llamacpp/{model}"))
}

fn check_model(var: &str, fixture: &str) {
    let Some(path) = model_path(var) else { return };
    let m = ChatModel::load(&ModelFiles::Gguf(path), &LoadOptions::default()).unwrap();
    let dir = fixture_dir(fixture);
    let greedy: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("greedy.json")).unwrap()).unwrap();
    let cases = greedy["cases"].as_array().unwrap();
    let mut near_ties = 0;
    for (ci, case) in cases.iter().enumerate() {
        let name = case["name"].as_str().unwrap();
        let prompt_text = case["prompt_text"].as_str().unwrap();
        let want_prompt: Vec<u32> = serde_json::from_value(case["prompt_ids"].clone()).unwrap();
        let add_bos = want_prompt.first() == m.tokenizer.bos_id().as_ref()
            && !prompt_text.starts_with(m.tokenizer.bos_token().unwrap_or("\u{0}"));
        let got_prompt = m.tokenizer.encode(prompt_text, add_bos).unwrap();
        assert_eq!(
            got_prompt, want_prompt,
            "{fixture}/{name}: prompt tokens differ"
        );

        let dec = &m.model.decoder;
        let mut state = dec.new_state();
        let logits = dec
            .forward(&want_prompt, &mut state, LogitsFor::Last)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for pair in case["top_logits"].as_array().unwrap() {
            let id = pair[0].as_u64().unwrap() as usize;
            let want = pair[1].as_f64().unwrap() as f32;
            let d = (logits[id] - want).abs();
            assert!(
                d < LOGIT_TOLERANCE,
                "{fixture}/{name}: logit of {id}: {} vs llama.cpp {want}",
                logits[id]
            );
        }
        if ci == 0 {
            let raw = std::fs::read(dir.join("logits_0.f32")).unwrap();
            let reference: Vec<f32> = raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            assert_eq!(reference.len(), logits.len());
            let max_diff = logits
                .iter()
                .zip(&reference)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            eprintln!("{fixture}/{name}: max |logit diff| over the vocabulary = {max_diff:.4}");
            assert!(
                max_diff < LOGIT_TOLERANCE,
                "{fixture}: full logits differ by {max_diff}"
            );
        }
        let want_out: Vec<u32> = serde_json::from_value(case["output_ids"].clone()).unwrap();
        let mut got_out = Vec::new();
        let mut next = argmax(&logits);
        for _ in 0..want_out.len() {
            got_out.push(next);
            let l = dec.forward(&[next], &mut state, LogitsFor::Last).unwrap();
            next = argmax(&l.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        }
        if got_out != want_out {
            let at = got_out
                .iter()
                .zip(&want_out)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            let margin = case["top1_margins"][at].as_f64().unwrap_or(f64::MAX) as f32;
            eprintln!("{fixture}/{name}: diverges at token {at}, llama.cpp's own top-1 margin there {margin:.3}");
            assert!(
                margin < NEAR_TIE,
                "{fixture}/{name}: greedy output differs from llama.cpp at token {at} where its margin was {margin}"
            );
            near_ties += 1;
        } else {
            eprintln!(
                "{fixture}/{name}: {} greedy tokens identical to llama.cpp",
                want_out.len()
            );
        }
    }
    // Every divergence was at a near tie (checked above); at least one
    // prompt must match llama.cpp for all of its tokens.
    assert!(
        near_ties < cases.len(),
        "{fixture}: every prompt diverges from llama.cpp"
    );
}

#[test]
fn smollm2_matches_llama_cpp() {
    check_model("TUNEUP_SMOLLM2_GGUF", "smollm2-135m");
}

#[test]
fn qwen25_coder_matches_llama_cpp() {
    check_model("TUNEUP_QWEN_GGUF", "qwen2.5-coder-0.5b");
}
