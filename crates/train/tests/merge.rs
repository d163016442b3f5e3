//! A merged GGUF computes what base + adapter computes.

use std::sync::Arc;

use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};
use tuneup_models::{load, LoadOptions, LoadedModel, LogitsFor, ModelFiles};
use tuneup_test_utils::{max_abs_diff, write_tiny_gguf, TinySpec};
use tuneup_train::{
    attach_adapter, merge_gguf, peft, LoraConfig, LoraInit, LoraWrapper, QkRowOrder,
};

fn logits(m: &LoadedModel) -> Tensor {
    let mut st = m.decoder.new_state();
    m.decoder
        .forward(&[5, 17, 42, 99, 3, 250, 7], &mut st, LogitsFor::All)
        .unwrap()
}

#[test]
fn merged_gguf_equals_base_plus_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.gguf");
    write_tiny_gguf(&base, &TinySpec::llama()).unwrap();
    let cfg = LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        target_modules: vec!["all-linear".into()],
        use_rslora: true,
    };
    let w =
        Arc::new(LoraWrapper::new(cfg.clone(), LoraInit::Fresh { seed: 9 }, &Device::Cpu).unwrap());
    let m = load(
        &ModelFiles::Gguf(base.clone()),
        &LoadOptions {
            wrapper: Some(w.clone()),
            ..LoadOptions::default()
        },
    )
    .unwrap();
    for p in w.adapters().modules.values() {
        p.b.set(&Tensor::randn(0f32, 0.1, p.b.as_tensor().dims(), &Device::Cpu).unwrap())
            .unwrap();
    }
    let want = logits(&m);
    let order = QkRowOrder::of(&m.decoder);
    let adapter = dir.path().join("adapter");
    peft::save(&adapter, &w.adapters(), &cfg, "tiny", order).unwrap();
    let mut reloaded = load(&ModelFiles::Gguf(base.clone()), &LoadOptions::default()).unwrap();
    attach_adapter(&mut reloaded.decoder, &adapter).unwrap();
    for (dtype, tol) in [(GgmlDType::F32, 2e-3f32), (GgmlDType::F16, 2e-2)] {
        let out = dir.path().join(format!("merged-{dtype:?}.gguf"));
        let report = merge_gguf(&base, &adapter, order, &out, dtype).unwrap();
        assert_eq!(report.merged, 14, "7 projections × 2 layers");
        let merged = load(&ModelFiles::Gguf(out), &LoadOptions::default()).unwrap();
        let d = max_abs_diff(&logits(&merged), &want);
        assert!(
            d < tol,
            "{dtype:?}: merged differs from base + adapter by {d}"
        );
    }
}
