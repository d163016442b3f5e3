//! The generation loop on a tiny random model: speculative decoding gives
//! exactly the greedy output, prefix reuse changes nothing but speed, stop
//! strings, limits and cancellation behave.

use std::ops::ControlFlow;

use tuneup_generate::{
    ChatModel, FinishReason, GenerateParams, Generator, NullSink, PromptLookup, SamplingParams,
    Speculation,
};
use tuneup_models::{LoadOptions, ModelFiles};
use tuneup_test_utils::{write_tiny_gguf, TinySpec};

fn tiny(dir: &std::path::Path, context: usize) -> ChatModel {
    let path = dir.join("tiny.gguf");
    let mut spec = TinySpec::llama();
    spec.context = context;
    write_tiny_gguf(&path, &spec).unwrap();
    ChatModel::load(&ModelFiles::Gguf(path), &LoadOptions::default()).unwrap()
}

fn greedy(max_tokens: usize) -> GenerateParams {
    GenerateParams {
        max_tokens,
        sampling: SamplingParams::greedy(),
        ignore_eos: true,
        ..GenerateParams::default()
    }
}

/// A prompt that repeats itself, so prompt lookup finds drafts.
fn prompt() -> Vec<u32> {
    let base: Vec<u32> = vec![10, 20, 30, 40, 50, 60, 70, 80];
    base.iter()
        .chain(&base)
        .chain(&base[..3])
        .copied()
        .collect()
}

#[test]
fn speculative_decoding_equals_greedy() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny(dir.path(), 256);
    let plain = Generator::new(&m.model.decoder, &m.tokenizer)
        .generate(&prompt(), &mut greedy(40), &mut NullSink)
        .unwrap();
    let mut params = greedy(40);
    params.speculation = Speculation::PromptLookup(PromptLookup::default());
    let spec = Generator::new(&m.model.decoder, &m.tokenizer)
        .generate(&prompt(), &mut params, &mut NullSink)
        .unwrap();
    assert_eq!(plain.tokens, spec.tokens);
    assert_eq!(plain.text, spec.text);
    assert!(spec.stats.draft_proposed > 0, "no drafts were tried");
    assert!(spec.stats.decode_passes <= plain.stats.decode_passes);

    // A draft model (here the same weights) is always right: far fewer passes.
    let draft = tuneup_generate::DraftModel::new(m.model.decoder.clone(), 320, 4).unwrap();
    let mut params = greedy(40);
    params.speculation = Speculation::DraftModel(Box::new(draft));
    let drafted = Generator::new(&m.model.decoder, &m.tokenizer)
        .generate(&prompt(), &mut params, &mut NullSink)
        .unwrap();
    assert_eq!(plain.tokens, drafted.tokens);
    assert!(drafted.stats.draft_accepted * 10 >= drafted.stats.draft_proposed * 9);
    assert!(drafted.stats.decode_passes * 3 < plain.stats.decode_passes);
}

#[test]
fn prefix_reuse_gives_the_same_answer() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny(dir.path(), 256);
    let mut g = Generator::new(&m.model.decoder, &m.tokenizer);
    let first = g
        .generate(&prompt(), &mut greedy(5), &mut NullSink)
        .unwrap();
    let mut longer = prompt();
    longer.extend_from_slice(&first.tokens);
    longer.extend_from_slice(&[1, 2, 3]);
    let reused = g.generate(&longer, &mut greedy(12), &mut NullSink).unwrap();
    assert!(reused.stats.cached_prompt_tokens >= prompt().len());
    let fresh = Generator::new(&m.model.decoder, &m.tokenizer)
        .generate(&longer, &mut greedy(12), &mut NullSink)
        .unwrap();
    assert_eq!(fresh.stats.cached_prompt_tokens, 0);
    assert_eq!(reused.tokens, fresh.tokens);
}

#[test]
fn limits_stops_and_cancellation() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny(dir.path(), 32);
    let mut g = Generator::new(&m.model.decoder, &m.tokenizer);
    // max_tokens
    let out = g
        .generate(&prompt(), &mut greedy(3), &mut NullSink)
        .unwrap();
    assert_eq!(out.tokens.len(), 3);
    assert_eq!(out.stats.finish_reason, FinishReason::Length);
    // The context window caps generation.
    let out = g
        .generate(&prompt(), &mut greedy(1000), &mut NullSink)
        .unwrap();
    assert_eq!(out.tokens.len(), 32 - prompt().len());
    // A prompt that does not fit is an error, not a panic.
    let e = g
        .generate(&[5; 40], &mut greedy(3), &mut NullSink)
        .unwrap_err();
    assert!(e.to_string().contains("40 tokens"), "{e}");
    // A stop string taken from the greedy text ends generation before it.
    let full = g
        .generate(&prompt(), &mut greedy(8), &mut NullSink)
        .unwrap();
    let chars: Vec<char> = full.text.chars().collect();
    if chars.len() >= 4 {
        let stop: String = chars[2..4].iter().collect();
        let mut params = greedy(8);
        params.stop = vec![stop.clone()];
        let out = g.generate(&prompt(), &mut params, &mut NullSink).unwrap();
        assert_eq!(out.stats.finish_reason, FinishReason::Stop);
        assert!(!out.text.contains(&stop));
        assert!(full.text.starts_with(&out.text));
    }
    // The sink can cancel.
    let mut n = 0;
    let mut sink = |_id: u32, _t: &str| {
        n += 1;
        if n == 2 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let out = g.generate(&prompt(), &mut greedy(10), &mut sink).unwrap();
    assert_eq!(out.stats.finish_reason, FinishReason::Cancelled);
    assert_eq!(out.tokens.len(), 2);
}

#[test]
fn seeded_sampling_is_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny(dir.path(), 256);
    let params = || GenerateParams {
        max_tokens: 20,
        sampling: SamplingParams {
            temperature: 1.0,
            seed: 1234,
            ..SamplingParams::default()
        },
        ignore_eos: true,
        ..GenerateParams::default()
    };
    let a = Generator::new(&m.model.decoder, &m.tokenizer)
        .generate(&prompt(), &mut params(), &mut NullSink)
        .unwrap();
    let b = Generator::new(&m.model.decoder, &m.tokenizer)
        .generate(&prompt(), &mut params(), &mut NullSink)
        .unwrap();
    assert_eq!(a.tokens, b.tokens);
}

#[test]
fn chat_prompt_uses_the_models_template() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny(dir.path(), 256);
    let msgs = vec![serde_json::json!({"role": "user", "content": "서울 날씨 어때?"})];
    let (text, ids) = m.chat_prompt(&msgs, None).unwrap();
    assert_eq!(
        text,
        "<|im_start|>user\n서울 날씨 어때?<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(ids[0], m.tokenizer.token_id("<|im_start|>").unwrap());
    assert_eq!(m.tokenizer.decode(&ids, false).unwrap(), text);
}
