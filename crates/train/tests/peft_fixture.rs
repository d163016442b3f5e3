//! An adapter written by Python `peft` gives the logits transformers + peft
//! give (fixture from scripts/fixtures/make_peft_fixture.py).

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use tuneup_models::{load, AttentionPrecision, LoadOptions, LogitsFor, ModelFiles};
use tuneup_test_utils::max_abs_diff;
use tuneup_train::attach_adapter;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/train/peft")
}

fn expected(key: &str) -> (Vec<u32>, Tensor) {
    let text = std::fs::read_to_string(fixture().join("expected.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ids: Vec<u32> = serde_json::from_value(v["ids"].clone()).unwrap();
    let rows: Vec<Vec<f32>> = serde_json::from_value(v[key].clone()).unwrap();
    let (n, m) = (rows.len(), rows[0].len());
    let flat: Vec<f32> = rows.into_iter().flatten().collect();
    (ids, Tensor::from_vec(flat, (n, m), &Device::Cpu).unwrap())
}

fn run(adapter: bool) -> (Tensor, Tensor) {
    let mut m = load(
        &ModelFiles::HfFolder(fixture().join("base")),
        &LoadOptions::default(),
    )
    .unwrap();
    m.decoder.set_kv_precision(AttentionPrecision::F32);
    if adapter {
        assert_eq!(
            attach_adapter(&mut m.decoder, &fixture().join("adapter")).unwrap(),
            14
        );
    }
    let key = if adapter {
        "adapter_logits"
    } else {
        "base_logits"
    };
    let (ids, want) = expected(key);
    let mut st = m.decoder.new_state();
    (
        m.decoder.forward(&ids, &mut st, LogitsFor::All).unwrap(),
        want,
    )
}

#[test]
fn base_matches_transformers() {
    let (got, want) = run(false);
    let d = max_abs_diff(&got, &want);
    assert!(d < 1e-4, "base logits differ by {d}");
}

#[test]
fn peft_adapter_matches_python_peft() {
    let (got, want) = run(true);
    let (base, _) = run(false);
    assert!(
        max_abs_diff(&base, &want) > 1e-2,
        "the adapter must change the logits"
    );
    let d = max_abs_diff(&got, &want);
    assert!(d < 1e-4, "adapter logits differ from peft's by {d}");
}
