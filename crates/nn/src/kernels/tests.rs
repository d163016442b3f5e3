//! Every kernel against three references: the dense product with the
//! dequantized weight (candle's dequantization), candle's own `QMatMul`
//! (same activation quantization as ggml), and our scalar kernel.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};

use super::matmul::Kernel;
use super::{BlockType, QuantWeights};

const ALL: [GgmlDType; 6] = [
    GgmlDType::Q4_0,
    GgmlDType::Q4_1,
    GgmlDType::Q5_0,
    GgmlDType::Q8_0,
    GgmlDType::Q4K,
    GgmlDType::Q6K,
];

struct Case {
    weights: QuantWeights,
    qtensor: QTensor,
    dequantized: Vec<f32>,
    x: Vec<f32>,
}

fn setup(dtype: GgmlDType, n: usize, k: usize, m: usize) -> Case {
    let dev = Device::Cpu;
    let w = Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap();
    let qtensor = QTensor::quantize(&w, dtype).unwrap();
    let bytes = qtensor.data().unwrap().into_owned();
    let weights = QuantWeights::new(BlockType::from_ggml(dtype).unwrap(), bytes, n, k).unwrap();
    let dequantized = qtensor
        .dequantize(&dev)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let x = Tensor::randn(0f32, 1.0, (m, k), &dev)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    Case {
        weights,
        qtensor,
        dequantized,
        x,
    }
}

fn dense(wd: &[f32], x: &[f32], n: usize, k: usize) -> Vec<f32> {
    let m = x.len() / k;
    let mut y = vec![0f32; m * n];
    for r in 0..m {
        for j in 0..n {
            y[r * n + j] = (0..k).map(|i| x[r * k + i] * wd[j * k + i]).sum();
        }
    }
    y
}

fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    let num: f32 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let den: f32 = b.iter().map(|y| y * y).sum();
    (num / den).sqrt()
}

fn shapes(dtype: GgmlDType) -> Vec<(usize, usize, usize)> {
    let k = if matches!(dtype, GgmlDType::Q4K | GgmlDType::Q6K) {
        512
    } else {
        96
    };
    // m = 7 runs a group of four rows and a group of three; m = 23 and 40
    // take the tiled prefill GEMM where there is one (n = 97: a 1-row tail).
    vec![
        (97, k, 1),
        (97, k, 2),
        (33, k, 7),
        (300, 2 * k, 5),
        (97, k, 23),
        (64, 2 * k, 40),
    ]
}

#[test]
fn kernels_match_the_dequantized_product() {
    for dtype in ALL {
        for (n, k, m) in shapes(dtype) {
            let c = setup(dtype, n, k, m);
            let mut y = vec![0f32; m * n];
            c.weights.matmul(&c.x, &mut y);
            let rel = rel_err(&y, &dense(&c.dequantized, &c.x, n, k));
            // Only the 8-bit activation quantization separates the two.
            assert!(
                rel < 0.01,
                "{dtype:?} n={n} k={k} m={m}: relative error {rel}"
            );
        }
    }
}

#[test]
fn kernels_match_candle_qmatmul() {
    for dtype in ALL {
        // candle's scalar Q4_1/Q5_0 reference asserts an even block count.
        for (n, k, m) in shapes(dtype)
            .into_iter()
            .filter(|(_, k, _)| (k / 32) % 2 == 0)
        {
            let c = setup(dtype, n, k, m);
            let mut y = vec![0f32; m * n];
            c.weights.matmul(&c.x, &mut y);
            let x = Tensor::from_vec(c.x.clone(), (m, k), &Device::Cpu).unwrap();
            let want: Vec<f32> = QMatMul::from_qtensor(c.qtensor)
                .unwrap()
                .forward(&x)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let rel = rel_err(&y, &want);
            assert!(
                rel < 3e-3,
                "{dtype:?} n={n} k={k} m={m}: relative error {rel}"
            );
        }
    }
}

#[test]
fn simd_matches_scalar() {
    for simd in Kernel::supported().into_iter().skip(1) {
        for dtype in ALL {
            for (n, k, m) in shapes(dtype) {
                let c = setup(dtype, n, k, m);
                let (mut ys, mut yv) = (vec![0f32; m * n], vec![0f32; m * n]);
                c.weights.matmul_with(Kernel::Scalar, &c.x, &mut ys);
                c.weights.matmul_with(simd, &c.x, &mut yv);
                let scale = ys.iter().fold(0f32, |a, v| a.max(v.abs()));
                for (a, b) in ys.iter().zip(&yv) {
                    assert!(
                        (a - b).abs() <= 2e-5 * scale,
                        "{simd:?} {dtype:?} n={n} k={k} m={m}: {a} vs {b}"
                    );
                }
            }
        }
    }
}

/// `vpdpbusd` forms the same integer sums as AVX2's `maddubs`/`madd` pair,
/// so the per-row VNNI kernels must agree with the AVX2 ones bit for bit
/// (decoding stays identical across machines with and without VNNI). Long
/// prefills (the tiled GEMM) sum in another order and are covered by
/// `simd_matches_scalar`.
#[test]
fn vnni_is_bit_identical_to_avx2() {
    let supported = Kernel::supported();
    let (Some(&avx2), Some(&vnni)) = (
        supported.iter().find(|k| format!("{k:?}") == "Avx2"),
        supported.iter().find(|k| format!("{k:?}") == "Vnni"),
    ) else {
        eprintln!("skipped: this CPU has no AVX-512 VNNI");
        return;
    };
    for dtype in ALL {
        for (n, k, m) in shapes(dtype) {
            if m >= super::tiled::MIN_ROWS {
                continue;
            }
            let c = setup(dtype, n, k, m);
            let (mut ya, mut yv) = (vec![0f32; m * n], vec![0f32; m * n]);
            c.weights.matmul_with(avx2, &c.x, &mut ya);
            c.weights.matmul_with(vnni, &c.x, &mut yv);
            assert!(ya == yv, "{dtype:?} n={n} k={k} m={m}");
        }
    }
}

/// Speculative decoding verifies drafted tokens in one batch and relies on
/// every row coming out exactly as a single-row (decode) product would.
#[test]
fn rows_do_not_depend_on_the_batch() {
    for kernel in Kernel::supported() {
        for dtype in ALL {
            let (n, k, _) = shapes(dtype)[0];
            let m = 11;
            let c = setup(dtype, n, k, m);
            let mut all = vec![0f32; m * n];
            c.weights.matmul_with(kernel, &c.x, &mut all);
            for r in [0, 5, m - 1] {
                let mut one = vec![0f32; n];
                c.weights
                    .matmul_with(kernel, &c.x[r * k..(r + 1) * k], &mut one);
                assert_eq!(one, all[r * n..(r + 1) * n], "{kernel:?} {dtype:?} row {r}");
            }
        }
    }
}

#[test]
fn wrong_sizes_are_errors() {
    assert!(QuantWeights::new(BlockType::Q4_1, vec![0u8; 20], 1, 32).is_ok());
    let err = QuantWeights::new(BlockType::Q4_1, vec![0u8; 19], 1, 32).unwrap_err();
    assert!(err.to_string().contains("expected 20"), "{err}");
    let err = QuantWeights::new(BlockType::Q6K, vec![0u8; 210], 1, 128).unwrap_err();
    assert!(err.to_string().contains("not a multiple of 256"), "{err}");
    assert!(BlockType::from_ggml(GgmlDType::Q2K).is_none());
}

#[test]
fn zero_activations_give_zero() {
    for dtype in ALL {
        let (n, k, _) = shapes(dtype)[0];
        let c = setup(dtype, n, k, 1);
        let mut y = vec![1f32; n];
        c.weights.matmul(&vec![0f32; k], &mut y);
        assert!(y.iter().all(|&v| v == 0.0), "{dtype:?}: {y:?}");
    }
}

/// Rough timing: `cargo test -p tuneup-nn --release -- --ignored --nocapture timing`.
#[test]
#[ignore]
fn timing_decode_shapes() {
    use std::time::Instant;
    for (dtype, n, k) in [
        (GgmlDType::Q4_1, 1536, 576),
        (GgmlDType::Q5_0, 4864, 896),
        (GgmlDType::Q8_0, 4864, 896),
        (GgmlDType::Q4K, 896, 4864),
        (GgmlDType::Q6K, 896, 4864),
    ] {
        let m: usize = std::env::var("TIMING_M")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let c = setup(dtype, n, k, m);
        let mut y = vec![0f32; n * m];
        let iters = (500 / m.max(1) + 5) as u32;
        let mut ours = 0;
        c.weights.matmul(&c.x, &mut y); // warm-up: page faults, thread start
        for kernel in Kernel::supported().into_iter().skip(1) {
            let t = Instant::now();
            for _ in 0..iters {
                c.weights.matmul_with(kernel, &c.x, &mut y);
            }
            ours = t.elapsed().as_nanos() / iters as u128;
            println!("{dtype:?} n={n} k={k} m={m}: {kernel:?} {ours} ns");
        }
        let x = Tensor::from_vec(c.x.clone(), (m, k), &Device::Cpu).unwrap();
        let qm = QMatMul::from_qtensor(c.qtensor).unwrap();
        let t = Instant::now();
        for _ in 0..iters / 10 + 1 {
            qm.forward(&x).unwrap();
        }
        let theirs = t.elapsed().as_nanos() / (iters / 10 + 1) as u128;
        println!(
            "{dtype:?} n={n} k={k} m={m}: ours {ours} ns, candle {theirs} ns ({:.1}x)",
            theirs as f64 / ours as f64
        );
    }
}
