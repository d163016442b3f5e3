//! `tuneup bench train`: training throughput and peak memory on fixed
//! token batches, the shapes the PEFT anchor script uses.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use candle_core::Tensor;
use serde::Serialize;
use tuneup_models::{load, LoadOptions, ModelFiles};

use crate::config::{Method, Precision};
use crate::error::{Error, Result};
use crate::examples::{Batch, Example};
use crate::lora::{LoraConfig, LoraInit, LoraWrapper};
use crate::metrics::memory_mib;
use crate::optim::{clip_global_norm, AdamW, AdamWConfig};
use crate::step::{accumulate_gradients_keeping, kept_layers};
use crate::trainable::adapter_wrapper;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Sequences per step.
    pub batch: usize,
    /// Tokens per sequence.
    pub seq: usize,
    /// LoRA rank (alpha = 2·rank, as the anchor).
    pub rank: usize,
    /// Timed steps (after one warm-up step).
    pub steps: usize,
    /// LoRA (dense base) or QLoRA.
    pub method: Method,
    /// Activation recomputation.
    pub gradient_checkpointing: bool,
    /// With recomputation, layers that keep their activations instead.
    pub keep_layers: usize,
    /// Arithmetic of the base products.
    pub precision: Precision,
    /// Where the model and the batches live (CPU or a CUDA GPU).
    pub device: candle_core::Device,
}

/// Measured throughput and memory.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Training tokens per second over the timed steps.
    pub tokens_per_s: f64,
    /// Mean seconds per step.
    pub step_s: f64,
    /// Peak resident memory of the process, MiB.
    pub peak_rss_mib: f64,
    /// Trainable parameters.
    pub trainable_params: usize,
    /// Loss of the last step.
    pub loss: f64,
}

/// Trains LoRA r = `rank` on q,k,v,o,gate,up,down with loss on every token
/// of fixed pseudo-random batches and reports tokens/s and peak memory.
pub fn bench_training(files: &ModelFiles, cfg: &BenchConfig) -> Result<BenchReport> {
    let lora = LoraConfig {
        rank: cfg.rank,
        alpha: 2.0 * cfg.rank as f64,
        dropout: 0.05,
        target_modules: [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ]
        .map(String::from)
        .to_vec(),
        use_rslora: false,
    };
    let device = cfg.device.clone();
    let wrapper = Arc::new(LoraWrapper::new(
        lora,
        LoraInit::Fresh { seed: 0 },
        &device,
    )?);
    let opts = LoadOptions {
        wrapper: Some(match cfg.method {
            Method::Qlora | Method::Lora => {
                adapter_wrapper(wrapper.clone(), cfg.method, cfg.precision, &device)
            }
            Method::Full => {
                return Err(Error::Config(
                    "the training benchmark measures lora and qlora, not full fine-tuning".into(),
                ))
            }
        }),
        device: device.clone(),
        ..LoadOptions::default()
    };
    let model = load(files, &opts)?;
    let vocab = model.decoder.embedding().rows() as u32;
    let examples: Vec<Example> = (0..cfg.batch)
        .map(|r| Example {
            ids: (0..cfg.seq)
                .map(|i| {
                    10 + ((i * 7919 + r * 104_729) as u32
                        % vocab.min(4000).saturating_sub(10).max(1))
                })
                .collect(),
            target: vec![true; cfg.seq],
            boundaries: Vec::new(),
        })
        .collect();
    let refs: Vec<&Example> = examples.iter().collect();
    let batch = Batch::new(&refs, 0, &device)?;
    let adapters = wrapper.adapters();
    let params = adapters.named_vars();
    let mut opt = AdamW::new(params.clone(), AdamWConfig::default())?;
    let switch = wrapper.train_switch();
    let mut times = Vec::new();
    let mut loss = 0.0;
    for step in 0..=cfg.steps {
        let t = Instant::now();
        let mut grads: HashMap<String, Tensor> = HashMap::new();
        let sum = switch.training(step as u64, || {
            accumulate_gradients_keeping(
                &model.decoder,
                &batch,
                &params,
                1.0 / batch.target_count as f64,
                kept_layers(cfg.gradient_checkpointing, cfg.keep_layers),
                &mut grads,
            )
        })?;
        loss = sum / batch.target_count as f64;
        clip_global_norm(&mut grads, 1.0)?;
        opt.step(&grads, 1e-4)?;
        // A GPU runs the optimiser's kernels after `step` returns.
        device.synchronize()?;
        if step > 0 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    let step_s = times.iter().sum::<f64>() / times.len().max(1) as f64;
    Ok(BenchReport {
        tokens_per_s: (cfg.batch * cfg.seq) as f64 / step_s,
        step_s,
        peak_rss_mib: memory_mib().1,
        trainable_params: adapters.parameter_count(),
        loss,
    })
}
