//! An adapter saved from a GGUF llama model (query/key rows permuted per
//! head) loads onto the HF layout of the same weights with the same
//! logits, and back: the PEFT files use HF's row order.

use std::sync::Arc;

use candle_core::{Device, Tensor};
use tuneup_models::{load, LoadOptions, LoadedModel, LogitsFor, ModelFiles};
use tuneup_test_utils::{max_abs_diff, write_tiny_gguf, write_tiny_hf, TinySpec};
use tuneup_train::{attach_adapter, peft, LoraConfig, LoraInit, LoraWrapper, QkRowOrder};

const IDS: [u32; 7] = [5, 17, 42, 99, 3, 250, 7];

fn logits(m: &LoadedModel) -> Tensor {
    let mut st = m.decoder.new_state();
    m.decoder.forward(&IDS, &mut st, LogitsFor::All).unwrap()
}

#[test]
fn gguf_adapter_equals_hf_adapter() {
    let dir = tempfile::tempdir().unwrap();
    for arch in ["llama", "qwen2"] {
        let spec = TinySpec::llama().with_arch(arch);
        let gguf = dir.path().join(format!("{arch}.gguf"));
        write_tiny_gguf(&gguf, &spec).unwrap();
        let hf = dir.path().join(format!("{arch}-hf"));
        write_tiny_hf(&hf, &spec).unwrap();

        let cfg = LoraConfig {
            rank: 4,
            alpha: 16.0,
            dropout: 0.0,
            target_modules: vec![
                "q_proj".into(),
                "k_proj".into(),
                "v_proj".into(),
                "down_proj".into(),
            ],
            use_rslora: false,
        };
        let wrapper = Arc::new(
            LoraWrapper::new(cfg.clone(), LoraInit::Fresh { seed: 1 }, &Device::Cpu).unwrap(),
        );
        let opts = LoadOptions {
            wrapper: Some(wrapper.clone()),
            ..LoadOptions::default()
        };
        let g = load(&ModelFiles::Gguf(gguf.clone()), &opts).unwrap();
        let base = load(&ModelFiles::Gguf(gguf.clone()), &LoadOptions::default()).unwrap();
        for p in wrapper.adapters().modules.values() {
            let b = Tensor::randn(0f32, 0.2, p.b.as_tensor().dims(), &Device::Cpu).unwrap();
            p.b.set(&b).unwrap();
        }
        let with_adapter = logits(&g);
        assert!(
            max_abs_diff(&with_adapter, &logits(&base)) > 1e-2,
            "{arch}: the adapter changes the output"
        );

        let adapter_dir = dir.path().join(format!("{arch}-adapter"));
        let order = QkRowOrder::of(&g.decoder);
        assert_eq!(
            matches!(order, QkRowOrder::GgufInterleaved { .. }),
            arch == "llama",
            "{arch}: {order:?}"
        );
        peft::save(&adapter_dir, &wrapper.adapters(), &cfg, "tiny", order).unwrap();

        let mut h = load(&ModelFiles::HfFolder(hf.clone()), &LoadOptions::default()).unwrap();
        assert_eq!(attach_adapter(&mut h.decoder, &adapter_dir).unwrap(), 8);
        let d = max_abs_diff(&logits(&h), &with_adapter);
        assert!(
            d < 2e-3,
            "{arch}: HF + adapter differs from GGUF + adapter by {d}"
        );

        let mut g2 = load(&ModelFiles::Gguf(gguf), &LoadOptions::default()).unwrap();
        attach_adapter(&mut g2.decoder, &adapter_dir).unwrap();
        let d = max_abs_diff(&logits(&g2), &with_adapter);
        assert!(d < 1e-5, "{arch}: reloaded adapter differs by {d}");
    }
}

#[test]
fn bad_adapters_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let spec = TinySpec::llama();
    let gguf = dir.path().join("m.gguf");
    write_tiny_gguf(&gguf, &spec).unwrap();
    let mut m = load(&ModelFiles::Gguf(gguf), &LoadOptions::default()).unwrap();
    let missing = dir.path().join("nothing");
    let err = attach_adapter(&mut m.decoder, &missing)
        .unwrap_err()
        .to_string();
    assert!(err.contains("adapter_config.json"), "{err}");

    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join("adapter_config.json"),
        r#"{"peft_type":"PREFIX_TUNING"}"#,
    )
    .unwrap();
    let err = attach_adapter(&mut m.decoder, &bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("PREFIX_TUNING"), "{err}");

    // Factors of the wrong shape for this model.
    std::fs::write(
        bad.join("adapter_config.json"),
        r#"{"peft_type":"LORA","r":2,"lora_alpha":4}"#,
    )
    .unwrap();
    let mut t = std::collections::HashMap::new();
    t.insert(
        "base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight".to_string(),
        Tensor::zeros((2, 7), candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    t.insert(
        "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight".to_string(),
        Tensor::zeros((9, 2), candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&t, bad.join("adapter_model.safetensors")).unwrap();
    let err = attach_adapter(&mut m.decoder, &bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("do not fit"), "{err}");
}
