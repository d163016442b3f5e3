//! Sequences stepped together through `Decoder::forward_rows` (continuous
//! batching) produce what each produces alone with the `Generator`.

use tuneup_generate::{ChatModel, GenerateParams, Generator, NullSink, SamplingParams, Sequence};
use tuneup_models::{LoadOptions, ModelFiles};
use tuneup_test_utils::{write_tiny_gguf, TinySpec};

fn params(seed: u64, max_tokens: usize, stop: &[&str]) -> GenerateParams {
    GenerateParams {
        max_tokens,
        sampling: if seed == 0 {
            SamplingParams::greedy()
        } else {
            SamplingParams {
                temperature: 0.9,
                seed,
                ..SamplingParams::default()
            }
        },
        stop: stop.iter().map(|s| s.to_string()).collect(),
        ignore_eos: true,
        ..GenerateParams::default()
    }
}

#[test]
fn batched_sequences_match_separate_generations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_tiny_gguf(&path, &TinySpec::llama()).unwrap();
    let m = ChatModel::load(&ModelFiles::Gguf(path), &LoadOptions::default()).unwrap();
    let (d, tok) = (&m.model.decoder, &m.tokenizer);
    let jobs: Vec<(Vec<u32>, u64, usize)> = vec![
        (vec![1, 2, 3, 4, 5], 0, 20),
        (vec![50, 60], 7, 9),
        (vec![100, 101, 102, 103, 104, 105, 106, 107], 0, 14),
        (vec![200], 3, 20),
    ];
    let alone: Vec<_> = jobs
        .iter()
        .map(|(p, seed, n)| {
            Generator::new(d, tok)
                .generate(p, &mut params(*seed, *n, &[]), &mut NullSink)
                .unwrap()
        })
        .collect();
    let mut seqs: Vec<Sequence> = jobs
        .iter()
        .map(|(p, seed, n)| {
            Sequence::start(
                d,
                tok,
                p,
                params(*seed, *n, &[]),
                d.new_state(),
                Vec::new(),
                &mut NullSink,
            )
            .unwrap()
        })
        .collect();
    loop {
        let live: Vec<usize> = (0..seqs.len())
            .filter(|&i| seqs[i].pending().is_some())
            .collect();
        if live.is_empty() {
            break;
        }
        let ids: Vec<u32> = live.iter().map(|&i| seqs[i].pending().unwrap()).collect();
        let mut states: Vec<_> = seqs
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| live.contains(i))
            .map(|(_, s)| s.state_mut())
            .collect();
        let logits = d
            .forward_rows(&ids, &mut states)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        for (row, &i) in live.iter().enumerate() {
            let mut l = logits[row].clone();
            seqs[i].advance(&mut l, &mut NullSink).unwrap();
        }
    }
    for ((seq, want), (prompt, _, _)) in seqs.into_iter().zip(&alone).zip(&jobs) {
        let (got, state, cached) = seq.finish(&mut NullSink).unwrap();
        assert_eq!(got.tokens, want.tokens);
        assert_eq!(got.text, want.text);
        assert_eq!(got.stats.finish_reason, want.stats.finish_reason);
        // The cache holds the prompt and every generated token but the last.
        assert_eq!(state.len(), prompt.len() + got.tokens.len() - 1);
        assert_eq!(cached.len(), state.len());
    }
}

#[test]
fn a_finished_sequence_hands_its_cache_to_the_next_turn() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_tiny_gguf(&path, &TinySpec::llama()).unwrap();
    let m = ChatModel::load(&ModelFiles::Gguf(path), &LoadOptions::default()).unwrap();
    let (d, tok) = (&m.model.decoder, &m.tokenizer);
    let first: Vec<u32> = vec![5, 6, 7, 8, 9, 10];
    let mut s = Sequence::start(
        d,
        tok,
        &first,
        params(0, 5, &[]),
        d.new_state(),
        Vec::new(),
        &mut NullSink,
    )
    .unwrap();
    while let Some(t) = s.pending() {
        let mut l = d
            .forward_rows(&[t], &mut [s.state_mut()])
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        s.advance(&mut l, &mut NullSink).unwrap();
    }
    let (out, state, cached) = s.finish(&mut NullSink).unwrap();
    let mut second = first.clone();
    second.extend_from_slice(&out.tokens);
    second.extend_from_slice(&[40, 41]);
    let s2 = Sequence::start(
        d,
        tok,
        &second,
        params(0, 3, &[]),
        state,
        cached,
        &mut NullSink,
    )
    .unwrap();
    let (out2, _, _) = s2.finish(&mut NullSink).unwrap();
    assert_eq!(
        out2.stats.cached_prompt_tokens,
        first.len() + out.tokens.len() - 1
    );
}
