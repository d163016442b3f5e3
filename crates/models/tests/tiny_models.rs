//! Every architecture branch on tiny random models the test writes itself:
//! GGUF and HF layouts of the same weights agree, the KV cache agrees with a
//! full-sequence pass, and every quantized block type agrees with its own
//! dequantized weights.

use candle_core::quantized::GgmlDType;
use candle_core::Tensor;
use tuneup_models::{load, AttentionPrecision, LoadOptions, LoadedModel, LogitsFor, ModelFiles};
use tuneup_test_utils::{max_abs_diff, rel_err, write_tiny_gguf, write_tiny_hf, TinySpec};

const IDS: [u32; 9] = [5, 17, 42, 99, 3, 250, 7, 7, 128];

fn gguf(dir: &std::path::Path, spec: &TinySpec, name: &str) -> LoadedModel {
    let path = dir.join(name);
    write_tiny_gguf(&path, spec).unwrap();
    load(&ModelFiles::Gguf(path), &LoadOptions::default()).unwrap()
}

fn all_logits(m: &LoadedModel, ids: &[u32]) -> Tensor {
    let mut st = m.decoder.new_state();
    m.decoder.forward(ids, &mut st, LogitsFor::All).unwrap()
}

#[test]
fn gguf_and_hf_layouts_agree_for_every_architecture() {
    let dir = tempfile::tempdir().unwrap();
    for arch in ["llama", "qwen2", "phi3", "gemma"] {
        let spec = TinySpec::llama().with_arch(arch);
        let g = gguf(dir.path(), &spec, &format!("{arch}.gguf"));
        let hf_dir = dir.path().join(format!("{arch}-hf"));
        write_tiny_hf(&hf_dir, &spec).unwrap();
        let h = load(&ModelFiles::HfFolder(hf_dir), &LoadOptions::default()).unwrap();
        assert_eq!(
            g.decoder.config().architecture,
            h.decoder.config().architecture
        );
        let (lg, lh) = (all_logits(&g, &IDS), all_logits(&h, &IDS));
        assert_eq!(lg.dims(), &[IDS.len(), spec.vocab]);
        let d = max_abs_diff(&lg, &lh);
        assert!(d < 1e-3, "{arch}: GGUF vs HF max diff {d}");
        // The logits must actually depend on the input.
        let spread = lg.max_all().unwrap().to_scalar::<f32>().unwrap()
            - lg.min_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(spread > 0.5, "{arch}: degenerate logits");
    }
}

/// With f32 attention the cache is exact; with llama.cpp's f16 rounding
/// (the default) chunking changes results only at the rounding level.
#[test]
fn cached_decoding_equals_full_sequence() {
    let dir = tempfile::tempdir().unwrap();
    for arch in ["llama", "qwen2", "phi3", "gemma"] {
        for (precision, tol) in [
            (AttentionPrecision::F32, 1e-3),
            (AttentionPrecision::F16Inputs, 2e-2),
        ] {
            let mut m = gguf(dir.path(), &TinySpec::llama().with_arch(arch), "m.gguf");
            m.decoder.set_kv_precision(precision);
            let full = all_logits(&m, &IDS);
            // Prefill 4, then one token at a time, then a chunk of 2.
            let mut st = m.decoder.new_state();
            let mut rows = vec![m
                .decoder
                .forward(&IDS[..4], &mut st, LogitsFor::All)
                .unwrap()];
            for &t in &IDS[4..7] {
                rows.push(m.decoder.forward(&[t], &mut st, LogitsFor::Last).unwrap());
            }
            rows.push(
                m.decoder
                    .forward(&IDS[7..], &mut st, LogitsFor::All)
                    .unwrap(),
            );
            let inc = Tensor::cat(&rows, 0).unwrap();
            let d = max_abs_diff(&full, &inc);
            assert!(d < tol, "{arch} {precision:?}: cached vs full max diff {d}");
            // Rolling back and recomputing gives the same logits again.
            st.truncate(5);
            let again = m
                .decoder
                .forward(&IDS[5..6], &mut st, LogitsFor::Last)
                .unwrap();
            let d = max_abs_diff(&again, &full.narrow(0, 5, 1).unwrap());
            assert!(d < tol, "{arch} {precision:?}: after truncate max diff {d}");
        }
    }
}

#[test]
fn every_quantized_type_matches_its_dequantized_weights() {
    let dir = tempfile::tempdir().unwrap();
    let base = TinySpec::llama();
    let reference = gguf(dir.path(), &base, "f32.gguf");
    let ref_logits = all_logits(&reference, &IDS);
    let types = [
        (GgmlDType::F16, 0.002),
        (GgmlDType::BF16, 0.01),
        (GgmlDType::Q8_0, 0.03),
        (GgmlDType::Q6K, 0.05),
        (GgmlDType::Q5K, 0.08),
        (GgmlDType::Q5_0, 0.08),
        (GgmlDType::Q4K, 0.15),
        (GgmlDType::Q4_1, 0.15),
        (GgmlDType::Q4_0, 0.2),
    ];
    for (t, tol) in types {
        let spec = base.clone().with_weight_type(t);
        let m = gguf(dir.path(), &spec, &format!("{t:?}.gguf"));
        let layer0 = &m.decoder.layers()[0];
        // Half-precision weights are widened to F32 at load (fast CPU matmul);
        // quantized blocks stay as they are.
        let want = match t {
            GgmlDType::F16 | GgmlDType::BF16 => "F32".to_string(),
            _ => format!("{t:?}"),
        };
        assert_eq!(layer0.o.storage_kind(), want);
        let got = all_logits(&m, &IDS);
        let e = rel_err(&got, &ref_logits);
        assert!(
            e < tol,
            "{t:?}: relative error vs F32 {e} (tolerance {tol})"
        );
    }
}

#[test]
fn quantized_embedding_and_tied_head() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = TinySpec::llama()
        .with_arch("qwen2")
        .with_weight_type(GgmlDType::Q8_0);
    spec.tied = true;
    spec.embedding_type = GgmlDType::Q8_0;
    let m = gguf(dir.path(), &spec, "tied.gguf");
    assert!(m.decoder.config().tie_word_embeddings);
    let mut f32_spec = spec.clone();
    f32_spec.weight_type = GgmlDType::F32;
    f32_spec.embedding_type = GgmlDType::F32;
    let r = gguf(dir.path(), &f32_spec, "tied32.gguf");
    let e = rel_err(&all_logits(&m, &IDS), &all_logits(&r, &IDS));
    assert!(e < 0.05, "relative error {e}");
}
