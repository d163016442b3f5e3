//! Times the parts of one training step on a real model:
//! `cargo run --release -p tuneup-train --example profile_step -- MODEL.gguf [rows] [len]`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use candle_core::{Device, Tensor};
use tuneup_models::{load, LoadOptions, ModelFiles};
use tuneup_train::examples::{Batch, Example};
use tuneup_train::step::{accumulate_gradients, eval_loss};
use tuneup_train::{LoraConfig, LoraInit, LoraWrapper};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = std::path::PathBuf::from(&args[1]);
    let rows: usize = args.get(2).map_or(4, |s| s.parse().unwrap());
    let len: usize = args.get(3).map_or(256, |s| s.parse().unwrap());
    let w = Arc::new(
        LoraWrapper::new(
            LoraConfig::default(),
            LoraInit::Fresh { seed: 1 },
            &Device::Cpu,
        )
        .unwrap(),
    );
    let opts = LoadOptions {
        wrapper: Some(w.clone()),
        ..LoadOptions::default()
    };
    let m = load(&ModelFiles::Gguf(path), &opts).unwrap();
    let ex: Vec<Example> = (0..rows)
        .map(|r| Example {
            ids: (0..len as u32)
                .map(|i| (i * 7 + r as u32 * 13) % 4000 + 10)
                .collect(),
            target: vec![true; len],
        })
        .collect();
    let refs: Vec<&Example> = ex.iter().collect();
    if std::env::var("ONLY_LAYER").is_ok() {
        let x = Tensor::randn(
            0f32,
            1.0,
            (rows, len, m.decoder.config().hidden_size),
            &Device::Cpu,
        )
        .unwrap();
        let mask = m.decoder.causal_mask(len).unwrap();
        w.train_switch().set(Some(1));
        let xv = candle_core::Var::from_tensor(&x).unwrap();
        for _ in 0..20 {
            let t = Instant::now();
            let y = m
                .decoder
                .layer_forward_full(3, xv.as_tensor(), mask.as_ref())
                .unwrap();
            let f = t.elapsed().as_secs_f64();
            let _ = y.sum_all().unwrap().backward().unwrap();
            println!("fwd {f:.3} total {:.3}", t.elapsed().as_secs_f64());
        }
        return;
    }
    let batch = Batch::new(&refs, 0, &Device::Cpu).unwrap();
    let params = w.adapters().named_vars();
    {
        let x = Tensor::randn(0f32, 1.0, (rows * len, 576), &Device::Cpu).unwrap();
        let wq = m.decoder.layers()[0].down.clone();
        let xd = Tensor::randn(0f32, 1.0, (rows * len, 1536), &Device::Cpu).unwrap();
        let t = Instant::now();
        for _ in 0..5 {
            wq.forward(&xd).unwrap();
        }
        println!("down quant kernel x5: {:.3} s", t.elapsed().as_secs_f64());
        let wd = wq.dense_weight().unwrap();
        let t = Instant::now();
        for _ in 0..5 {
            xd.matmul(&wd.t().unwrap()).unwrap();
        }
        println!("down f32 gemm x5:     {:.3} s", t.elapsed().as_secs_f64());
        let t = Instant::now();
        for _ in 0..5 {
            wq.dense_weight().unwrap();
        }
        println!("down dequantize x5:   {:.3} s", t.elapsed().as_secs_f64());
        let t = Instant::now();
        let h = m.decoder.lm_head().forward(&x).unwrap();
        println!("lm_head quant:        {:.3} s", t.elapsed().as_secs_f64());
        let t = Instant::now();
        let _ = candle_nn::ops::log_softmax(&h, candle_core::D::Minus1).unwrap();
        println!("log_softmax:          {:.3} s", t.elapsed().as_secs_f64());
        let ids = Tensor::new(&[1u32, 2, 3], &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let t = Instant::now();
        m.decoder.embed(&ids).unwrap();
        println!("embed:                {:.3} s", t.elapsed().as_secs_f64());
    }
    let t = Instant::now();
    eval_loss(&m.decoder, &batch).unwrap();
    println!(
        "forward (no graph):       {:.2} s",
        t.elapsed().as_secs_f64()
    );
    for recompute in [false, true] {
        let mut g = HashMap::new();
        w.train_switch().set(Some(1));
        let t = Instant::now();
        accumulate_gradients(&m.decoder, &batch, &params, 1.0, recompute, &mut g).unwrap();
        w.train_switch().set(None);
        println!(
            "forward+backward recompute={recompute}: {:.2} s",
            t.elapsed().as_secs_f64()
        );
    }
    // One layer in train mode vs inference mode.
    let x = Tensor::randn(
        0f32,
        1.0,
        (rows, len, m.decoder.config().hidden_size),
        &Device::Cpu,
    )
    .unwrap();
    let mask = m.decoder.causal_mask(len).unwrap();
    let t = Instant::now();
    for _ in 0..5 {
        m.decoder.layer_forward_full(3, &x, mask.as_ref()).unwrap();
    }
    println!(
        "layer fwd inference x5:   {:.2} s",
        t.elapsed().as_secs_f64()
    );
    w.train_switch().set(Some(1));
    let t = Instant::now();
    for _ in 0..5 {
        m.decoder.layer_forward_full(3, &x, mask.as_ref()).unwrap();
    }
    println!(
        "layer fwd train x5:       {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let xv = candle_core::Var::from_tensor(&x).unwrap();
    let t = Instant::now();
    for _ in 0..5 {
        let y = m
            .decoder
            .layer_forward_full(3, xv.as_tensor(), mask.as_ref())
            .unwrap();
        let t2 = Instant::now();
        let _ = y.sum_all().unwrap().backward().unwrap();
        print!("bwd {:.2}s ", t2.elapsed().as_secs_f64());
    }
    println!(
        "\nlayer fwd+bwd train x5:   {:.2} s",
        t.elapsed().as_secs_f64()
    );
}
