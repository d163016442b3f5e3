//! Opening a tiny random model through the runtime seam, with and without PEFT adapters, and the errors for a
//! spec or adapter folder that does not exist.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{Device, Tensor};
use tuneup_generate::ChatModel;
use tuneup_models::{load, LoadOptions, LogitsFor, ModelFiles};
use tuneup_runtime::{open, Error, ModelRequest, NoProgress};
use tuneup_test_utils::{max_abs_diff, write_tiny_gguf, TinySpec};
use tuneup_train::{peft, LoraConfig, LoraInit, LoraWrapper, QkRowOrder};

const IDS: [u32; 7] = [5, 17, 42, 99, 3, 250, 7];

fn logits(m: &ChatModel) -> Tensor {
    let mut st = m.model.decoder.new_state();
    m.model
        .decoder
        .forward(&IDS, &mut st, LogitsFor::All)
        .unwrap()
}

/// A tiny GGUF in `dir`.
fn tiny_model(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.gguf");
    write_tiny_gguf(&path, &TinySpec::llama()).unwrap();
    path
}

/// Saves a rank-4 adapter for `base` in `dir/name`: random B factors (or zero ones when `zero_b`). Returns the
/// folder and the logits of base + adapter computed in memory, before saving.
fn write_adapter(base: &Path, dir: &Path, name: &str, zero_b: bool) -> (PathBuf, Tensor) {
    let cfg = LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        target_modules: vec!["all-linear".into()],
        use_rslora: true,
    };
    let w = Arc::new(
        LoraWrapper::new(cfg.clone(), LoraInit::Fresh { seed: 11 }, &Device::Cpu).unwrap(),
    );
    let model = ChatModel::load(
        &ModelFiles::Gguf(base.to_owned()),
        &LoadOptions {
            wrapper: Some(w.clone()),
            ..LoadOptions::default()
        },
    )
    .unwrap();
    if !zero_b {
        for p in w.adapters().modules.values() {
            p.b.set(&Tensor::randn(0f32, 0.1, p.b.as_tensor().dims(), &Device::Cpu).unwrap())
                .unwrap();
        }
    }
    let want = logits(&model);
    let out = dir.join(name);
    peft::save(
        &out,
        &w.adapters(),
        &cfg,
        "tiny",
        QkRowOrder::of(&model.model.decoder),
    )
    .unwrap();
    (out, want)
}

#[test]
fn opens_a_model_by_path_with_its_context_cap() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_model(dir.path());
    let req = ModelRequest {
        ctx_size: Some(128),
        ..ModelRequest::new(path.to_str().unwrap())
    };
    let m = open(&req, &mut NoProgress).unwrap();
    let cfg = m.model.decoder.config();
    assert_eq!(cfg.num_layers, 2);
    assert_eq!(cfg.max_position_embeddings, 128, "the context cap applies");
    // The same weights as a plain load.
    let plain = load(&ModelFiles::Gguf(path), &LoadOptions::default()).unwrap();
    let mut st = plain.decoder.new_state();
    let want = plain
        .decoder
        .forward(&IDS, &mut st, LogitsFor::All)
        .unwrap();
    assert!(max_abs_diff(&logits(&m), &want) < 1e-5);
    assert!(
        m.template.is_some(),
        "the tiny GGUF carries a chat template"
    );
}

#[test]
fn opens_a_model_with_adapters() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_model(dir.path());
    let (adapter, want) = write_adapter(&path, dir.path(), "adapter", false);
    let spec = path.to_str().unwrap();
    let base = open(&ModelRequest::new(spec), &mut NoProgress).unwrap();
    let req = ModelRequest {
        adapters: vec![adapter.clone()],
        ..ModelRequest::new(spec)
    };
    let adapted = open(&req, &mut NoProgress).unwrap();
    let got = logits(&adapted);
    assert!(
        max_abs_diff(&got, &want) < 1e-4,
        "opened base + adapter computes what the in-memory adapter computed"
    );
    assert!(
        max_abs_diff(&got, &logits(&base)) > 1e-3,
        "the adapter changes the logits"
    );
    // A second adapter adds its update: a zero update leaves the first one's result.
    let (zero, _) = write_adapter(&path, dir.path(), "zero", true);
    let req = ModelRequest {
        adapters: vec![adapter, zero],
        ..ModelRequest::new(spec)
    };
    let stacked = open(&req, &mut NoProgress).unwrap();
    assert!(max_abs_diff(&logits(&stacked), &got) < 1e-5);
}

#[test]
fn a_missing_model_names_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-model.gguf");
    let spec = missing.to_str().unwrap();
    let err = open(&ModelRequest::new(spec), &mut NoProgress).unwrap_err();
    assert!(matches!(err, Error::Resolve { .. }), "{err:?}");
    assert!(err.to_string().contains(spec), "{err}");
}

#[test]
fn a_missing_adapter_folder_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_model(dir.path());
    let missing = dir.path().join("no-such-adapter");
    let req = ModelRequest {
        adapters: vec![missing.clone()],
        ..ModelRequest::new(path.to_str().unwrap())
    };
    let err = open(&req, &mut NoProgress).unwrap_err();
    assert!(matches!(err, Error::AdapterMissing { .. }), "{err:?}");
    assert!(err.to_string().contains(missing.to_str().unwrap()), "{err}");
    // Checked before the model is resolved (nothing is pulled for a request that cannot succeed).
    let req = ModelRequest {
        adapters: vec![missing],
        ..ModelRequest::new(dir.path().join("no-such-model.gguf").to_str().unwrap())
    };
    let err = open(&req, &mut NoProgress).unwrap_err();
    assert!(matches!(err, Error::AdapterMissing { .. }), "{err:?}");
}

#[test]
fn an_adapter_folder_without_an_adapter_names_the_path_and_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_model(dir.path());
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let spec = path.to_str().unwrap();
    let req = ModelRequest {
        adapters: vec![empty.clone()],
        ..ModelRequest::new(spec)
    };
    let err = open(&req, &mut NoProgress).unwrap_err().to_string();
    assert!(err.contains(empty.to_str().unwrap()), "{err}");
    assert!(err.contains(spec), "{err}");
}

#[test]
fn a_file_that_is_not_a_model_names_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.gguf");
    std::fs::write(&bad, b"not a gguf file").unwrap();
    let spec = bad.to_str().unwrap();
    let err = open(&ModelRequest::new(spec), &mut NoProgress)
        .unwrap_err()
        .to_string();
    assert!(err.contains(spec), "{err}");
}

#[test]
fn the_gpu_is_cuda_device_0_or_an_error_saying_how_to_get_it() {
    assert!(tuneup_runtime::device(false).unwrap().is_cpu());
    match tuneup_runtime::device(true) {
        Ok(d) => assert!(d.is_cuda(), "{d:?}"),
        Err(e) => assert!(
            e.to_string()
                .starts_with("opening CUDA device 0 (build with --features cuda)"),
            "{e}"
        ),
    }
}
