//! `Decoder::forward_rows` (one step for several sequences, as continuous
//! batching runs it) gives each sequence the logits its own single-sequence
//! step gives, whatever the other sequences hold.

use tuneup_models::{load, LoadOptions, LogitsFor, ModelFiles};
use tuneup_test_utils::{max_abs_diff, write_tiny_gguf, TinySpec};

#[test]
fn batched_rows_equal_separate_steps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    // Qwen2's layout (QKV bias) and a fused-projection architecture (Phi-3).
    for arch in ["qwen2", "phi3", "llama"] {
        write_tiny_gguf(&path, &TinySpec::llama().with_arch(arch)).unwrap();
        let m = load(&ModelFiles::Gguf(path.clone()), &LoadOptions::default()).unwrap();
        let d = &m.decoder;
        let prompts: [&[u32]; 3] = [&[1, 2, 3, 4, 5, 6, 7], &[9, 8], &[100, 200, 50, 60, 70]];
        let mut batched: Vec<_> = prompts.iter().map(|_| d.new_state()).collect();
        let mut single: Vec<_> = prompts.iter().map(|_| d.new_state()).collect();
        for (i, p) in prompts.iter().enumerate() {
            d.forward(p, &mut batched[i], LogitsFor::Last).unwrap();
            d.forward(p, &mut single[i], LogitsFor::Last).unwrap();
        }
        // Three steps, so positions and caches diverge between the rows.
        for step in 0..3u32 {
            let next = [11 + step, 22 + step, 33 + step];
            let mut refs: Vec<_> = batched.iter_mut().collect();
            let rows = d.forward_rows(&next, &mut refs).unwrap();
            assert_eq!(rows.dims2().unwrap().0, 3);
            for i in 0..3 {
                let want = d
                    .forward(&[next[i]], &mut single[i], LogitsFor::Last)
                    .unwrap();
                let got = rows.narrow(0, i, 1).unwrap();
                let diff = max_abs_diff(&got, &want);
                // Only summation order differs (the products see 3 rows instead of 1).
                assert!(diff < 1e-3, "{arch} step {step} row {i}: {diff}");
            }
        }
        for (b, s) in batched.iter().zip(&single) {
            assert_eq!(b.len(), s.len());
        }
    }
}

#[test]
fn mismatched_rows_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_tiny_gguf(&path, &TinySpec::llama()).unwrap();
    let m = load(&ModelFiles::Gguf(path), &LoadOptions::default()).unwrap();
    let mut a = m.decoder.new_state();
    assert!(m.decoder.forward_rows(&[1, 2], &mut [&mut a]).is_err());
    assert!(m.decoder.forward_rows(&[100_000], &mut [&mut a]).is_err());
}
