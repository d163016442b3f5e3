//! Full fine-tuning on a tiny random model: gradients reach every base
//! weight (projections, norms, embeddings) and agree with finite
//! differences; recomputation gives the whole graph's gradients; a trained
//! model written as an HF folder reloads to the same logits (GGUF q/k row
//! permutation undone, tied embeddings kept tied).

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};
use common::batch;
use tuneup_generate::ChatModel;
use tuneup_models::{AttentionPrecision, LoadOptions, LogitsFor, ModelFiles};
use tuneup_test_utils::{max_abs_diff, rel_err, write_tiny_gguf, TinySpec};
use tuneup_train::step::{accumulate_gradients_keeping, eval_loss};
use tuneup_train::{write_model_folder, FullParams, FullWrapper};

fn spec(tied: bool) -> TinySpec {
    let mut s = TinySpec::llama();
    s.hidden = 64;
    s.intermediate = 128;
    s.heads = 4;
    s.kv_heads = 2;
    s.tied = tied;
    s
}

fn load_full(
    spec: &TinySpec,
    train_embeddings: bool,
) -> (ChatModel, FullParams, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_tiny_gguf(&path, spec).unwrap();
    let wrapper = Arc::new(FullWrapper::default());
    let opts = LoadOptions {
        wrapper: Some(wrapper.clone()),
        ..LoadOptions::default()
    };
    let mut model = ChatModel::load(&ModelFiles::Gguf(path), &opts).unwrap();
    let params = FullParams::attach(&wrapper, &mut model.model.decoder, train_embeddings).unwrap();
    (model, params, dir)
}

fn grads(model: &ChatModel, params: &FullParams, recompute: bool) -> HashMap<String, Tensor> {
    grads_keeping(model, params, if recompute { 0 } else { usize::MAX })
}

/// Gradients with recomputation after the first `kept` layers.
fn grads_keeping(model: &ChatModel, params: &FullParams, kept: usize) -> HashMap<String, Tensor> {
    let vars = params.named_vars();
    let mut g = HashMap::new();
    accumulate_gradients_keeping(&model.model.decoder, &batch(), &vars, 1.0, kept, &mut g).unwrap();
    g
}

#[test]
fn gradients_reach_every_base_weight_and_match_finite_differences() {
    let (model, params, _dir) = load_full(&spec(true), true);
    // 7 projections and 2 norms per layer, the final norm, the (tied) table.
    assert_eq!(params.params.len(), 2 * 9 + 1 + 1);
    let g = grads(&model, &params, false);
    let b = batch();
    let eps = 1e-2f32;
    for (name, var) in params.named_vars() {
        let grad = g
            .get(&name)
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let gv: Vec<f32> = grad.flatten_all().unwrap().to_vec1().unwrap();
        let mut idx: Vec<usize> = (0..gv.len()).collect();
        idx.sort_by(|&i, &j| gv[j].abs().total_cmp(&gv[i].abs()));
        assert!(gv[idx[0]].abs() > 1e-4, "{name}: gradient is all but zero");
        let original = var.as_tensor().copy().unwrap();
        let shape = original.dims().to_vec();
        let base: Vec<f32> = original.flatten_all().unwrap().to_vec1().unwrap();
        for &k in &idx[..2] {
            let loss_at = |delta: f32| {
                let mut v = base.clone();
                v[k] += delta;
                var.set(&Tensor::from_vec(v, shape.as_slice(), &Device::Cpu).unwrap())
                    .unwrap();
                eval_loss(&model.model.decoder, &b).unwrap()
            };
            let fd = (loss_at(eps) - loss_at(-eps)) / (2.0 * eps as f64);
            let ag = gv[k] as f64;
            assert!(
                (fd - ag).abs() <= 3e-3 + 3e-2 * ag.abs(),
                "{name}[{k}]: finite difference {fd:.6} vs autograd {ag:.6}"
            );
        }
        var.set(&original).unwrap();
    }
}

#[test]
fn recomputation_gives_the_whole_graph_gradients() {
    let (model, params, _dir) = load_full(&spec(true), true);
    let whole = grads(&model, &params, false);
    assert_eq!(whole.len(), params.params.len());
    // Every layer recomputed, and only the second (with trained embeddings,
    // the gradient passes through the kept first layer to the table).
    for recomputed in [
        grads(&model, &params, true),
        grads_keeping(&model, &params, 1),
    ] {
        assert_eq!(recomputed.len(), whole.len());
        for (name, g) in &whole {
            let r = &recomputed[name];
            assert!(rel_err(g, r) < 1e-4, "{name}: {}", rel_err(g, r));
        }
    }
}

fn logits(m: &ChatModel, ids: &[u32]) -> Tensor {
    let mut st = m.model.decoder.new_state();
    m.model
        .decoder
        .forward(ids, &mut st, LogitsFor::All)
        .unwrap()
}

/// Moves every trainable weight, writes the folder, reloads it.
fn round_trip(spec: &TinySpec, train_embeddings: bool) {
    let (mut model, params, dir) = load_full(spec, train_embeddings);
    // f32 attention: the default f16 rounding of keys and values could flip
    // on last-bit differences between the two layer implementations.
    model
        .model
        .decoder
        .set_kv_precision(AttentionPrecision::F32);
    for p in &params.params {
        let t = p.var.as_tensor();
        let noise = Tensor::randn(0f32, 0.02, t.dims(), &Device::Cpu).unwrap();
        p.var.set(&(t + noise).unwrap()).unwrap();
    }
    let out = dir.path().join("model");
    write_model_folder(&out, &model).unwrap();
    // Written twice: the second replaces the first.
    write_model_folder(&out, &model).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["tie_word_embeddings"], spec.tied);
    let mut reloaded =
        ChatModel::load(&ModelFiles::HfFolder(out), &LoadOptions::default()).unwrap();
    reloaded
        .model
        .decoder
        .set_kv_precision(AttentionPrecision::F32);
    assert!(reloaded.template.is_some(), "the chat template is kept");
    let ids = [5u32, 17, 42, 99, 3, 250, 7, 7, 128, 64, 31];
    let (a, b) = (logits(&model, &ids), logits(&reloaded, &ids));
    assert!(
        max_abs_diff(&a, &b) < 1e-4,
        "reloaded logits differ by {}",
        max_abs_diff(&a, &b)
    );
    let text = "<|im_start|>user\nhello<|im_end|>";
    assert_eq!(
        model.tokenizer.encode(text, true).unwrap(),
        reloaded.tokenizer.encode(text, true).unwrap()
    );
}

#[test]
fn hf_folder_reloads_to_the_same_logits_tied_with_embeddings() {
    round_trip(&spec(true), true);
}

#[test]
fn hf_folder_reloads_to_the_same_logits_untied_quantized_base() {
    round_trip(&spec(false).with_weight_type(GgmlDType::Q8_0), false);
}

fn records() -> Vec<tuneup_train::TrainRecord> {
    common::records(6, 0)
}

fn metrics_losses(dir: &std::path::Path) -> Vec<f64> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"]
                .as_f64()
                .unwrap()
        })
        .collect()
}

/// A stopped full fine-tuning run resumes from its checkpoint (weights and
/// AdamW moments) on the same loss curve; the loss falls; norms are
/// trained without weight decay.
#[test]
fn stopped_run_resumes_on_the_same_curve() {
    use std::sync::atomic::AtomicBool;
    use tuneup_train::{Method, Session, Silent, TrainConfig};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_tiny_gguf(&path, &spec(true)).unwrap();
    let config = |out: &str| {
        let mut c = TrainConfig {
            model: path.display().to_string(),
            train_file: "train.jsonl".into(),
            output_dir: dir.path().join(out),
            method: Method::Full,
            train_embeddings: true,
            learning_rate: 1e-3,
            warmup_steps: 1,
            max_steps: Some(4),
            batch_size: 2,
            max_seq_len: 64,
            save_every: 1,
            eval_every: 0,
            ..TrainConfig::default()
        };
        c.optimizer.weight_decay = 0.1;
        c
    };
    let files = ModelFiles::Gguf(path.clone());
    let opts = LoadOptions::default();
    let run = |out: &str, resume: bool, stop: bool| {
        let mut s = Session::prepare(config(out), &files, &opts, &records(), &[]).unwrap();
        s.run(resume, &AtomicBool::new(stop), &mut Silent).unwrap()
    };
    let whole = run("whole", false, false);
    assert_eq!(whole.steps, 4);
    assert!(whole.saved_dir.join("model.safetensors").is_file());
    let reference = metrics_losses(&dir.path().join("whole"));
    assert!(
        reference[3] < reference[0],
        "loss should fall: {reference:?}"
    );
    let stopped = run("stopped", false, true);
    assert!(stopped.interrupted);
    assert_eq!(stopped.steps, 1);
    let resumed = run("stopped", true, false);
    assert_eq!(resumed.steps, 4);
    let again = metrics_losses(&dir.path().join("stopped"));
    assert_eq!(again.len(), reference.len());
    for (a, b) in reference.iter().zip(&again) {
        assert!(
            (a - b).abs() < 1e-5 * a.abs().max(1.0),
            "{reference:?} vs {again:?}"
        );
    }
}

/// Parameters are counted from the file headers; full fine-tuning above
/// the size limit is refused before any weight is loaded.
#[test]
fn models_above_the_limit_are_refused_without_force() {
    use tuneup_train::{Method, Session, TrainConfig};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    let s = spec(true);
    write_tiny_gguf(&path, &s).unwrap();
    let count = tuneup_train::full::stored_parameter_count(&ModelFiles::Gguf(path)).unwrap();
    let per_layer = 2 * s.hidden * s.hidden + 3 * s.hidden * s.intermediate;
    assert!(count as usize > s.layers * per_layer, "{count}");
    // An HF folder whose header claims 2B parameters (no data needed).
    let big = dir.path().join("big");
    std::fs::create_dir_all(&big).unwrap();
    std::fs::write(big.join("config.json"), "{}").unwrap();
    let header = br#"{"model.embed_tokens.weight":{"dtype":"F32","shape":[50000,40000],"data_offsets":[0,0]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    std::fs::write(big.join("model.safetensors"), bytes).unwrap();
    let config = TrainConfig {
        model: "big".into(),
        train_file: "train.jsonl".into(),
        output_dir: dir.path().join("out"),
        method: Method::Full,
        ..TrainConfig::default()
    };
    let err = Session::prepare(
        config,
        &ModelFiles::HfFolder(big),
        &LoadOptions::default(),
        &records(),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("2.00B parameters") && err.contains("--force"),
        "{err}"
    );
}

/// With packing, training rows hold several records each (with their
/// boundaries), and the validation loss is that of the unpacked records.
#[test]
fn packing_fills_rows_and_leaves_validation_alone() {
    use tuneup_train::{Method, Session, TrainConfig};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_tiny_gguf(&path, &spec(true)).unwrap();
    let files = ModelFiles::Gguf(path.clone());
    let session = |packing: bool| {
        let config = TrainConfig {
            model: path.display().to_string(),
            train_file: "train.jsonl".into(),
            output_dir: dir.path().join("out"),
            method: Method::Qlora,
            // Each record is 57 tokens: rows of 128 hold two whole ones.
            max_seq_len: 128,
            packing,
            ..TrainConfig::default()
        };
        Session::prepare(
            config,
            &files,
            &LoadOptions::default(),
            &records(),
            &records(),
        )
        .unwrap()
    };
    let (plain, packed) = (session(false), session(true));
    assert_eq!(plain.train_examples().len(), records().len());
    assert_eq!(
        packed.train_examples().len(),
        3,
        "6 × 57 tokens, two whole records per row of 128"
    );
    for row in packed.train_examples() {
        assert_eq!(row.boundaries, vec![57]);
        assert_eq!(row.ids.len(), 114);
    }
    let (a, b) = (
        plain.validation_loss().unwrap().unwrap(),
        packed.validation_loss().unwrap().unwrap(),
    );
    assert!((a - b).abs() < 1e-6 * a.abs(), "validation loss {a} vs {b}");
}
