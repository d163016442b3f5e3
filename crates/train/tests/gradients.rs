//! Gradients of every LoRA factor agree with central finite differences on
//! a tiny random model; activation recomputation gives the same gradients
//! as the whole graph; QLoRA (gradients through quantized blocks) agrees
//! with LoRA over the dequantized weights, and bf16 base products (the
//! default on CPUs with AVX512-BF16) with f32 ones.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};
use common::batch;
use tuneup_models::{load, LinearWrapper, LoadOptions, LoadedModel, ModelFiles};
use tuneup_nn::bf16_linear::Bf16FrozenLinear;
use tuneup_nn::{DenseLinear, LinearRef};
use tuneup_test_utils::{max_abs_diff, rel_err, write_tiny_gguf, TinySpec};
use tuneup_train::step::{accumulate_gradients, accumulate_gradients_keeping, eval_loss};
use tuneup_train::{LoraConfig, LoraInit, LoraWrapper};

fn spec() -> TinySpec {
    let mut s = TinySpec::llama();
    s.hidden = 64;
    s.intermediate = 128;
    s.heads = 4;
    s.kv_heads = 2;
    s
}

fn lora_config() -> LoraConfig {
    LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        target_modules: vec!["all-linear".into()],
        use_rslora: false,
    }
}

/// What the adapter wraps.
#[derive(Clone, Copy, PartialEq)]
enum Base {
    /// The layer as loaded (quantized stays quantized).
    AsStored,
    /// A dense f32 copy.
    Dense,
    /// The layer packed to bf16 for the training products.
    Bf16,
}

/// Prepares the base before the adapter wraps it.
struct BaseThenLora(Arc<LoraWrapper>, Base);
impl LinearWrapper for BaseThenLora {
    fn wrap(&self, module: &str, base: LinearRef) -> tuneup_models::Result<LinearRef> {
        let base: LinearRef = match self.1 {
            Base::AsStored => base,
            Base::Dense => Arc::new(DenseLinear::new(
                base.dense_weight()?,
                base.bias().cloned(),
            )?),
            Base::Bf16 => Bf16FrozenLinear::pack_or_keep(base)?,
        };
        self.0.wrap(module, base)
    }
}

fn load_tiny(spec: &TinySpec, base: Base) -> (LoadedModel, Arc<LoraWrapper>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_tiny_gguf(&path, spec).unwrap();
    let wrapper = Arc::new(
        LoraWrapper::new(lora_config(), LoraInit::Fresh { seed: 3 }, &Device::Cpu).unwrap(),
    );
    let opts = LoadOptions {
        wrapper: Some(Arc::new(BaseThenLora(wrapper.clone(), base))),
        ..LoadOptions::default()
    };
    let model = load(&ModelFiles::Gguf(path), &opts).unwrap();
    // B starts at zero, which would make every gradient of A zero: give it values.
    for (i, pair) in wrapper.adapters().modules.values().enumerate() {
        let b = Tensor::randn(0f32, 0.05, pair.b.as_tensor().dims(), &Device::Cpu).unwrap();
        let _ = i;
        pair.b.set(&b).unwrap();
    }
    (model, wrapper, dir)
}

fn grads(model: &LoadedModel, w: &LoraWrapper, recompute: bool) -> HashMap<String, Tensor> {
    grads_keeping(model, w, if recompute { 0 } else { usize::MAX })
}

/// Gradients with recomputation after the first `kept` layers.
fn grads_keeping(model: &LoadedModel, w: &LoraWrapper, kept: usize) -> HashMap<String, Tensor> {
    let params = w.adapters().named_vars();
    let mut g = HashMap::new();
    w.train_switch()
        .training(1, || {
            accumulate_gradients_keeping(&model.decoder, &batch(), &params, 1.0, kept, &mut g)
        })
        .unwrap();
    g
}

#[test]
fn lora_gradients_match_finite_differences() {
    let (model, w, _dir) = load_tiny(&spec(), Base::AsStored);
    let g = grads(&model, &w, false);
    let params = w.adapters().named_vars();
    assert_eq!(params.len(), 2 * 7 * 2, "7 projections × 2 layers × (A, B)");
    let b = batch();
    let eps = 1e-2f32;
    let mut checked = 0;
    for (name, var) in &params {
        let grad = g
            .get(name)
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let gv: Vec<f32> = grad.flatten_all().unwrap().to_vec1().unwrap();
        // The two largest coordinates and one fixed one.
        let mut idx: Vec<usize> = (0..gv.len()).collect();
        idx.sort_by(|&i, &j| gv[j].abs().total_cmp(&gv[i].abs()));
        assert!(gv[idx[0]].abs() > 1e-4, "{name}: gradient is all but zero");
        let picks = [idx[0], idx[1], gv.len() / 3];
        let original = var.as_tensor().copy().unwrap();
        let shape = original.dims().to_vec();
        let base: Vec<f32> = original.flatten_all().unwrap().to_vec1().unwrap();
        for &k in &picks {
            let loss_at = |delta: f32| {
                let mut v = base.clone();
                v[k] += delta;
                var.set(&Tensor::from_vec(v, shape.as_slice(), &Device::Cpu).unwrap())
                    .unwrap();
                eval_loss(&model.decoder, &b).unwrap()
            };
            let fd = (loss_at(eps) - loss_at(-eps)) / (2.0 * eps as f64);
            let ag = gv[k] as f64;
            assert!(
                (fd - ag).abs() <= 2e-3 + 2e-2 * ag.abs(),
                "{name}[{k}]: finite difference {fd:.6} vs autograd {ag:.6}"
            );
            checked += 1;
        }
        var.set(&original).unwrap();
    }
    assert_eq!(checked, params.len() * 3);
}

#[test]
fn recomputation_gives_the_same_gradients() {
    let (model, w, _dir) = load_tiny(&spec(), Base::AsStored);
    let whole = grads(&model, &w, false);
    // Every layer recomputed, and only the second (the first keeps its activations).
    for recomputed in [grads(&model, &w, true), grads_keeping(&model, &w, 1)] {
        assert_eq!(whole.len(), recomputed.len());
        for (name, a) in &whole {
            let b = &recomputed[name];
            let diff = max_abs_diff(a, b);
            let scale = a
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(
                diff <= 1e-5 + 1e-4 * scale,
                "{name}: max diff {diff} (scale {scale})"
            );
        }
    }
}

#[test]
fn qlora_gradients_flow_through_quantized_blocks() {
    let s = spec().with_weight_type(GgmlDType::Q8_0);
    let (quant, wq, _d1) = load_tiny(&s, Base::AsStored);
    let (dense, wd, _d2) = load_tiny(&s, Base::Dense);
    // Same adapter values in both.
    for (m, p) in wq.adapters().modules {
        let other = &wd.adapters().modules[&m];
        other.a.set(p.a.as_tensor()).unwrap();
        other.b.set(p.b.as_tensor()).unwrap();
    }
    let o = tuneup_nn::Linear::storage_kind(quant.decoder.layers()[0].o.as_ref());
    assert!(o.starts_with("Q8_0"), "base stays quantized: {o}");
    let gq = grads(&quant, &wq, true);
    let gd = grads(&dense, &wd, true);
    for (name, a) in &gd {
        let b = &gq[name];
        let rel = rel_err(b, a);
        // Only the activations' 8-bit rounding in the quantized forward differs.
        assert!(rel < 0.05, "{name}: relative difference {rel}");
    }
}

#[test]
fn bf16_base_products_give_nearly_the_f32_gradients() {
    if !tuneup_nn::bf16_gemm::available() {
        eprintln!("skipped: this CPU has no AVX512-BF16");
        return;
    }
    let (exact, we, _d1) = load_tiny(&spec(), Base::Dense);
    let (packed, wp, _d2) = load_tiny(&spec(), Base::Bf16);
    for (m, p) in we.adapters().modules {
        let other = &wp.adapters().modules[&m];
        other.a.set(p.a.as_tensor()).unwrap();
        other.b.set(p.b.as_tensor()).unwrap();
    }
    let head = packed.decoder.lm_head().frozen_weight();
    assert!(
        matches!(head, Some(tuneup_nn::frozen::FrozenWeight::Bf16(_))),
        "the output head is packed too"
    );
    let mut largest = 0f64;
    for recompute in [false, true] {
        let ge = grads(&exact, &we, recompute);
        let gp = grads(&packed, &wp, recompute);
        assert_eq!(ge.len(), gp.len());
        for (name, a) in &ge {
            let rel = rel_err(&gp[name], a) as f64;
            // Weights and activations rounded to 8 significant bits, sums in f32.
            assert!(rel < 0.05, "{name}: relative difference {rel}");
            largest = largest.max(rel);
        }
    }
    eprintln!("largest relative gradient difference: {largest:.2e}");
    assert!(largest > 0.0, "the bf16 products were not used");
    let (le, lp) = (
        eval_loss(&exact.decoder, &batch()).unwrap(),
        eval_loss(&packed.decoder, &batch()).unwrap(),
    );
    assert!((le - lp).abs() < 1e-2 * le.abs(), "loss {le} vs {lp}");
}

/// Two examples packed into one row give the loss and the gradients of the
/// same two examples as separate rows: attention stays within each example
/// (and RoPE only sees distances within it).
#[test]
fn packed_rows_train_as_separate_examples() {
    use tuneup_train::examples::{pack, Batch, Example};
    let (model, w, _dir) = load_tiny(&spec(), Base::AsStored);
    let params = w.adapters().named_vars();
    let a = Example {
        ids: vec![5, 17, 42, 99, 3, 250, 7],
        target: vec![false, false, true, true, true, true, true],
        boundaries: Vec::new(),
    };
    let b = Example {
        ids: vec![9, 8, 7, 6, 5],
        target: vec![false, true, true, true, true],
        boundaries: Vec::new(),
    };
    let rows = pack(&[a.clone(), b.clone()], 12);
    assert_eq!(rows.len(), 1);
    let packed = Batch::new(&[&rows[0]], 0, &Device::Cpu).unwrap();
    let separate = Batch::new(&[&a, &b], 0, &Device::Cpu).unwrap();
    assert_eq!(packed.target_count, separate.target_count);
    let (lp, ls) = (
        eval_loss(&model.decoder, &packed).unwrap(),
        eval_loss(&model.decoder, &separate).unwrap(),
    );
    assert!(
        (lp - ls).abs() < 1e-4 * ls.abs(),
        "loss packed {lp} vs separate {ls}"
    );
    for recompute in [false, true] {
        let run = |batch: &Batch| {
            let mut g = HashMap::new();
            w.train_switch()
                .training(1, || {
                    accumulate_gradients(&model.decoder, batch, &params, 1.0, recompute, &mut g)
                })
                .unwrap();
            g
        };
        let (gp, gs) = (run(&packed), run(&separate));
        for (name, g) in &gs {
            let rel = rel_err(&gp[name], g);
            assert!(
                rel < 1e-3,
                "{name}: packed vs separate gradient differs by {rel}"
            );
        }
    }
    // Without the boundaries the second example would see the first.
    let mut unmasked = rows[0].clone();
    unmasked.boundaries.clear();
    let lu = eval_loss(
        &model.decoder,
        &Batch::new(&[&unmasked], 0, &Device::Cpu).unwrap(),
    )
    .unwrap();
    assert!(
        (lu - ls).abs() > 1e-3 * ls.abs(),
        "the mask made no difference: {lu} vs {ls}"
    );
}
