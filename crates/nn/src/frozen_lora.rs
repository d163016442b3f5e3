//! A frozen base projection and its LoRA update as one training op.
//!
//! Composed from candle ops, a LoRA layer in training is a dropout multiply,
//! two skinny products, a scaling and an addition, each a graph node with
//! its own buffers and backward step. [`frozen_lora_matmul`] computes
//! `y = x Wᵀ + s·((x⊙m) Aᵀ) Bᵀ` with the GEMM on the frozen `W` and the
//! LoRA products accumulated into the same output, and returns the
//! gradients of `x`, `A` and `B` from one backward step that recomputes the
//! small `(x⊙m) Aᵀ` instead of keeping it.

use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::cpu::{all_cpu_f32, f32_slice, with_f32};
use crate::frozen::{dense_input_grad, dense_product, frozen_matmul, FrozenWeight};
use crate::sgemm::{self, MatRef};
use crate::vmath;
use crate::Result;

/// The trainable side of a LoRA layer.
#[derive(Debug, Clone)]
pub struct LoraFactors {
    /// `A`: `(r, in)`.
    pub a: Tensor,
    /// `B`: `(out, r)`.
    pub b: Tensor,
    /// `α / r` (or `α / √r` for rsLoRA).
    pub scale: f64,
    /// Dropout on the LoRA input.
    pub dropout: Option<Dropout>,
}

/// Inverted dropout whose mask is a function of `(seed, element index)`:
/// the op regenerates it in the backward pass instead of keeping a
/// `(rows, in)` buffer per layer, and recomputation and resumed runs see
/// the same mask.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    /// Mask seed (per step, micro-batch and module).
    pub seed: u64,
    /// Keep probability in `(0, 1]`.
    pub keep: f32,
}

impl Dropout {
    /// The mask value of element `i`: 0 or `1 / keep`.
    #[inline(always)]
    pub fn value(&self, i: usize) -> f32 {
        // splitmix64 of (seed, i): a counter-based generator, so any
        // element can be produced independently and in parallel.
        let mut z = self
            .seed
            .wrapping_add((i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let uniform = (z >> 40) as f32 / (1u64 << 24) as f32;
        if uniform < self.keep {
            1.0 / self.keep
        } else {
            0.0
        }
    }

    /// The mask values of elements `start..start + out.len()`. The 64-bit
    /// multiplies of the generator vectorise eight wide with AVX-512DQ (the
    /// masks of a LoRA step are hundreds of millions of elements); the plain
    /// build does two at a time.
    pub fn fill(&self, start: usize, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            // SAFETY: the features it is compiled for were just detected.
            return unsafe { self.fill_avx512(start, out) };
        }
        self.fill_portable(start, out)
    }

    #[inline(always)]
    fn fill_portable(&self, start: usize, out: &mut [f32]) {
        for (j, v) in out.iter_mut().enumerate() {
            *v = self.value(start + j);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512dq,avx512vl")]
    fn fill_avx512(&self, start: usize, out: &mut [f32]) {
        self.fill_portable(start, out)
    }

    /// `out[j] = src[j] · mask(start + j)`, or `out[j] += …` with `accumulate`.
    fn apply(&self, start: usize, src: &[f32], out: &mut [f32], accumulate: bool) {
        let mut mask = [0f32; 1024];
        for (c, (out, src)) in out.chunks_mut(1024).zip(src.chunks(1024)).enumerate() {
            let mask = &mut mask[..out.len()];
            self.fill(start + c * 1024, mask);
            if accumulate {
                out.iter_mut()
                    .zip(src)
                    .zip(&*mask)
                    .for_each(|((o, x), m)| *o += x * m);
            } else {
                out.iter_mut()
                    .zip(src)
                    .zip(&*mask)
                    .for_each(|((o, x), m)| *o = x * m);
            }
        }
    }

    /// The mask as a `(rows, cols)` tensor (composed paths); on a CUDA GPU
    /// made there, with the same values.
    pub fn mask(&self, rows: usize, cols: usize, device: &Device) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if let Device::Cuda(d) = device {
            return crate::cuda_dropout::mask(self, rows, cols, d);
        }
        let mut m = vec![0f32; rows * cols];
        m.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, m)| self.fill(c * CHUNK, m));
        Tensor::from_vec(m, (rows, cols), device)
    }
}

/// Elements per parallel task of the elementwise passes.
const CHUNK: usize = 8192;

/// `x Wᵀ + scale·((x⊙mask) Aᵀ) Bᵀ` over a frozen `W`, differentiable with
/// respect to `x`, `A` and `B`. One op on the CPU in f32; composed from
/// candle ops elsewhere.
pub fn frozen_lora_matmul(x: &Tensor, weight: FrozenWeight, lora: &LoraFactors) -> Result<Tensor> {
    let op = FrozenLoraOp::new(weight.clone(), lora)?;
    if !all_cpu_f32(&[x, &lora.a, &lora.b]) {
        return composed(x, weight, lora);
    }
    // Any leading dimensions: a reshape would be one more graph node, whose
    // backward step allocates, zeroes and adds a gradient of x's size.
    x.contiguous()?
        .apply_op3(&lora.a.contiguous()?, &lora.b.contiguous()?, op)
}

/// `y + scale·((x⊙mask) Aᵀ) Bᵀ`: the LoRA update added to the base layer's
/// output `y` (shape `(…, out)`). For inference (CPU f32, no graph, no
/// dropout) this is two products on the raw buffers — a handful of candle
/// ops per module per token made decoding with an adapter three times
/// slower than without; otherwise candle ops, so gradients flow.
pub fn add_lora_update(y: &Tensor, x: &Tensor, lora: &LoraFactors) -> Result<Tensor> {
    let (a, b) = (&lora.a, &lora.b);
    let (r, k) = a.dims2()?;
    let (n, br) = b.dims2()?;
    if br != r || x.dims().last() != Some(&k) || y.dims().last() != Some(&n) {
        candle_core::bail!(
            "LoRA update: A {:?} B {:?} do not fit input {:?} and output {:?}",
            a.dims(),
            b.dims(),
            x.dims(),
            y.dims()
        );
    }
    let tracked = [y, x, a, b].iter().any(|t| t.track_op());
    if tracked || lora.dropout.is_some() || !all_cpu_f32(&[y, x, a, b]) {
        let mut x2 = x.reshape(((), k))?;
        if let Some(d) = &lora.dropout {
            let mask = d.mask(x2.dims()[0], k, x.device())?;
            x2 = x2.broadcast_mul(&mask.to_dtype(x.dtype())?)?;
        }
        let (a, b) = (a.to_dtype(x.dtype())?, b.to_dtype(x.dtype())?);
        let h = (x2.matmul(&a.t()?)?.matmul(&b.t()?)? * lora.scale)?;
        return y + h.reshape(y.shape())?;
    }
    let scale = lora.scale;
    let m = x.elem_count() / k;
    let mut out = y.flatten_all()?.to_vec1::<f32>()?;
    with_f32(x, "LoRA update", |xs| {
        with_f32(a, "LoRA update", |a_s| {
            with_f32(b, "LoRA update", |b_s| {
                if m <= FEW_ROWS {
                    lora_rows(&mut out, xs, a_s, b_s, k, r, scale as f32);
                    return Ok(());
                }
                let mut t = vec![0f32; m * r];
                sgemm::matmul(MatRef::new(xs, m, k)?, MatRef::new(a_s, r, k)?.t(), &mut t)?;
                sgemm::gemm(
                    scale as f32,
                    MatRef::new(&t, m, r)?,
                    MatRef::new(b_s, n, r)?.t(),
                    1.0,
                    &mut out,
                )
            })
        })
    })?;
    Tensor::from_vec(out, y.shape(), y.device())
}

/// Up to this many rows (decoding), [`add_lora_update`] uses dot products
/// over the rows of `A` and `B` instead of the GEMM, whose packing of both
/// factors would cost more than the products.
const FEW_ROWS: usize = 8;

/// Outputs per block in [`lora_rows`]: independent sums the compiler can
/// keep in one vector register.
const OUT_BLOCK: usize = 16;

crate::dispatch! {
    /// `out[i][o] += scale · Σⱼ B[o][j] · (A[j] · x[i])` for every row `i`,
    /// with row-major `x` `(m, k)`, `A` `(r, k)`, `B` `(n, r)`, `out` `(m, n)`.
    fn lora_rows(out: &mut [f32], x: &[f32], a: &[f32], b: &[f32], k: usize, r: usize, scale: f32) {
        let n = b.len() / r.max(1);
        let mut t = vec![0f32; r];
        for (xrow, orow) in x.chunks_exact(k).zip(out.chunks_exact_mut(n)) {
            for (t, arow) in t.iter_mut().zip(a.chunks_exact(k)) {
                *t = scale * vmath::dot(xrow, arow);
            }
            // B's rows are only r long: sum OUT_BLOCK outputs side by side.
            for (orows, bblock) in orow.chunks_mut(OUT_BLOCK).zip(b.chunks(OUT_BLOCK * r)) {
                let mut acc = [0f32; OUT_BLOCK];
                for (j, &tj) in t.iter().enumerate() {
                    for (q, acc) in acc.iter_mut().enumerate().take(orows.len()) {
                        *acc += tj * bblock[q * r + j];
                    }
                }
                orows.iter_mut().zip(acc).for_each(|(o, v)| *o += v);
            }
        }
    }
}

/// The same function from candle ops (non-CPU devices, other dtypes).
fn composed(x: &Tensor, weight: FrozenWeight, lora: &LoraFactors) -> Result<Tensor> {
    let (n, k) = weight.dims()?;
    add_lora_update(&frozen_matmul(x, weight, n, k)?, x, lora)
}

/// The CPU training op of [`frozen_lora_matmul`] (and, around it, of
/// [`frozen_lora_silu_mul`](crate::swiglu_lora::frozen_lora_silu_mul)).
pub(crate) struct FrozenLoraOp {
    weight: FrozenWeight,
    pub(crate) out_features: usize,
    pub(crate) in_features: usize,
    rank: usize,
    scale: f32,
    dropout: Option<Dropout>,
}

impl FrozenLoraOp {
    /// The op for `weight` and `lora`; an error when the factors do not fit.
    pub(crate) fn new(weight: FrozenWeight, lora: &LoraFactors) -> Result<Self> {
        let (out_features, in_features) = weight.dims()?;
        let (r, ak) = lora.a.dims2()?;
        let (bn, br) = lora.b.dims2()?;
        if ak != in_features || bn != out_features || br != r {
            candle_core::bail!(
                "LoRA factors A {:?} B {:?} do not fit a {out_features}×{in_features} weight",
                lora.a.dims(),
                lora.b.dims()
            );
        }
        Ok(Self {
            weight,
            out_features,
            in_features,
            rank: r,
            scale: lora.scale as f32,
            dropout: lora.dropout,
        })
    }

    /// `x⊙mask` (or `x` itself without dropout).
    fn masked<R>(&self, x: &[f32], f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
        let Some(d) = self.dropout else {
            return f(x);
        };
        let mut xm = vec![0f32; x.len()];
        xm.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .enumerate()
            .for_each(|(c, (o, x))| d.apply(c * CHUNK, x, o, false));
        f(&xm)
    }

    /// `t = (x⊙mask) Aᵀ`, `(m, r)`.
    fn low_rank(&self, xm: &[f32], a: &[f32]) -> Result<Vec<f32>> {
        let (k, r) = (self.in_features, self.rank);
        let m = xm.len() / k;
        let mut t = vec![0f32; m * r];
        sgemm::matmul(MatRef::new(xm, m, k)?, MatRef::new(a, r, k)?.t(), &mut t)?;
        Ok(t)
    }
}

impl CustomOp3 for FrozenLoraOp {
    fn name(&self) -> &'static str {
        "frozen-lora"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let xs = f32_slice(s1, l1, self.name())?;
        let a = f32_slice(s2, l2, self.name())?;
        let b = f32_slice(s3, l3, self.name())?;
        let y = self.forward_slices(xs, a, b)?;
        Ok((CpuStorage::F32(y), self.output_shape(l1)?))
    }

    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = grad_res.to_dtype(DType::F32)?.contiguous()?;
        let (dx, da, db) = with_f32(x, self.name(), |xs| {
            with_f32(a, self.name(), |a_s| {
                with_f32(b, self.name(), |b_s| {
                    with_f32(&g, self.name(), |gs| self.backward_slices(xs, a_s, b_s, gs))
                })
            })
        })?;
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(da, a.shape(), dev)?),
            Some(Tensor::from_vec(db, b.shape(), dev)?),
        ))
    }
}

impl FrozenLoraOp {
    /// The output shape for an input of `x`'s layout: its leading
    /// dimensions, then `out_features`.
    pub(crate) fn output_shape(&self, x: &Layout) -> Result<Shape> {
        let mut dims = x.dims().to_vec();
        if dims.last() != Some(&self.in_features) {
            candle_core::bail!("LoRA input {dims:?} does not end in {}", self.in_features);
        }
        *dims.last_mut().expect("non-empty dims") = self.out_features;
        Ok(Shape::from(dims))
    }

    /// `y = x Wᵀ + s·((x⊙mask) Aᵀ) Bᵀ` over row-major `x` `(m, in)`.
    pub(crate) fn forward_slices(&self, xs: &[f32], a: &[f32], b: &[f32]) -> Result<Vec<f32>> {
        let (n, k, r) = (self.out_features, self.in_features, self.rank);
        let m = xs.len() / k;
        let t = self.masked(xs, |xm| self.low_rank(xm, a))?;
        let mut y = dense_product(xs, &self.weight)?;
        sgemm::gemm(
            self.scale,
            MatRef::new(&t, m, r)?,
            MatRef::new(b, n, r)?.t(),
            1.0,
            &mut y,
        )?;
        Ok(y)
    }

    /// `(∂x, ∂A, ∂B)` for the output gradient `gs` `(m, out)`.
    pub(crate) fn backward_slices(
        &self,
        xs: &[f32],
        a_s: &[f32],
        b_s: &[f32],
        gs: &[f32],
    ) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let (n, k, r) = (self.out_features, self.in_features, self.rank);
        let m = gs.len() / n;
        let mut da = vec![0f32; r * k];
        let mut db = vec![0f32; n * r];
        // ∂x through the frozen weight, then the LoRA part added.
        let mut dx = dense_input_grad(gs, &self.weight)?;
        let gm = MatRef::new(gs, m, n)?;
        let am = MatRef::new(a_s, r, k)?;
        self.masked(xs, |xm| {
            let t = self.low_rank(xm, a_s)?;
            let tm = MatRef::new(&t, m, r)?;
            // ∂B = s·∂yᵀ t, ∂t = s·∂y B, ∂A = ∂tᵀ (x⊙mask).
            sgemm::gemm(self.scale, gm.t(), tm, 0.0, &mut db)?;
            let mut dt = vec![0f32; m * r];
            sgemm::gemm(self.scale, gm, MatRef::new(b_s, n, r)?, 0.0, &mut dt)?;
            let dtm = MatRef::new(&dt, m, r)?;
            sgemm::matmul(dtm.t(), MatRef::new(xm, m, k)?, &mut da)?;
            self.add_input_grad(dtm, am, &mut dx)
        })?;
        Ok((dx, da, db))
    }
}

impl FrozenLoraOp {
    /// `∂x += (∂t A)⊙mask`.
    fn add_input_grad(&self, dt: MatRef<'_>, a: MatRef<'_>, dx: &mut [f32]) -> Result<()> {
        let Some(d) = self.dropout else {
            return sgemm::gemm(1.0, dt, a, 1.0, dx);
        };
        let mut u = vec![0f32; dx.len()];
        sgemm::matmul(dt, a, &mut u)?;
        dx.par_chunks_mut(CHUNK)
            .zip(u.par_chunks(CHUNK))
            .enumerate()
            .for_each(|(c, (dx, u))| d.apply(c * CHUNK, u, dx, true));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::testing::assert_agree;
    use candle_core::quantized::{GgmlDType, QTensor};
    use std::sync::Arc;

    fn check(weight: FrozenWeight, dense: &Tensor, dropout: Option<Dropout>) -> Result<()> {
        let dev = Device::Cpu;
        let (n, k) = dense.dims2()?;
        let r = 4;
        let x = Tensor::randn(0f32, 1.0, (10, k), &dev)?;
        let a = Tensor::randn(0f32, 0.3, (r, k), &dev)?;
        let b = Tensor::randn(0f32, 0.3, (n, r), &dev)?;
        let scale = 1.5;
        let mask = dropout.map(|d| d.mask(10, k, &dev)).transpose()?;
        assert_agree(
            &[x, a, b],
            &|t: &[Tensor]| {
                let lora = LoraFactors {
                    a: t[1].clone(),
                    b: t[2].clone(),
                    scale,
                    dropout,
                };
                frozen_lora_matmul(&t[0], weight.clone(), &lora)
            },
            &|t: &[Tensor]| {
                let mut x2 = t[0].clone();
                let base = x2.matmul(&dense.t()?)?;
                if let Some(m) = &mask {
                    x2 = (x2 * m)?;
                }
                let h = (x2.matmul(&t[1].t()?)?.matmul(&t[2].t()?)? * scale)?;
                base + h
            },
            1e-3,
        )
    }

    #[test]
    fn matches_composed_dense_and_quantized() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 0.5, (24, 64), &dev)?;
        check(FrozenWeight::Dense(w.clone()), &w, None)?;
        let dropout = Dropout { seed: 7, keep: 0.7 };
        check(FrozenWeight::Dense(w.clone()), &w, Some(dropout))?;
        let q = Arc::new(QTensor::quantize(&w, GgmlDType::Q8_0)?);
        let wq = q.dequantize(&dev)?;
        check(FrozenWeight::Quant(q), &wq, Some(dropout))
    }

    #[test]
    fn dropout_keeps_the_right_share_and_scales() -> Result<()> {
        let d = Dropout { seed: 3, keep: 0.9 };
        let n = 200_000;
        let kept = (0..n).filter(|&i| d.value(i) > 0.0).count() as f64 / n as f64;
        assert!((kept - 0.9).abs() < 0.005, "kept {kept}");
        assert!((0..100).all(|i| d.value(i) == 0.0 || (d.value(i) - 1.0 / 0.9).abs() < 1e-6));
        let other = Dropout { seed: 4, keep: 0.9 };
        assert!((0..1000).any(|i| d.value(i) != other.value(i)));
        let m = d
            .mask(3, 5, &Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        assert!(m.iter().enumerate().all(|(i, &v)| v == d.value(i)));
        // The vectorised fill and the fused multiply give the scalar values
        // from any start, across chunk boundaries and in the tail.
        let mut filled = vec![0f32; 3000];
        d.fill(12_345, &mut filled);
        assert!(filled
            .iter()
            .enumerate()
            .all(|(j, &v)| v == d.value(12_345 + j)));
        let x: Vec<f32> = (0..3000).map(|i| i as f32 * 0.5 - 7.0).collect();
        let mut out = vec![1f32; 3000];
        d.apply(77, &x, &mut out, true);
        assert!(out
            .iter()
            .enumerate()
            .all(|(j, &o)| o == 1.0 + x[j] * d.value(77 + j)));
        Ok(())
    }

    #[test]
    fn inference_update_equals_the_composed_one() -> Result<()> {
        let dev = Device::Cpu;
        let (n, k, r) = (24, 40, 4);
        let a = Tensor::randn(0f32, 0.3, (r, k), &dev)?;
        let b = Tensor::randn(0f32, 0.3, (n, r), &dev)?;
        for rows in [1, 3, 130] {
            let x = Tensor::randn(0f32, 1.0, (1, rows, k), &dev)?;
            let y = Tensor::randn(0f32, 1.0, (1, rows, n), &dev)?;
            let lora = LoraFactors {
                a: a.clone(),
                b: b.clone(),
                scale: 1.5,
                dropout: None,
            };
            let got = add_lora_update(&y, &x, &lora)?;
            let want = (&y + (x.broadcast_matmul(&a.t()?)?.broadcast_matmul(&b.t()?)? * 1.5)?)?;
            assert_eq!(got.dims(), want.dims());
            let d = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(d < 1e-5, "rows {rows}: {d}");
        }
        let x = Tensor::zeros((2, k + 1), DType::F32, &dev)?;
        let y = Tensor::zeros((2, n), DType::F32, &dev)?;
        let lora = LoraFactors {
            a,
            b,
            scale: 1.0,
            dropout: None,
        };
        assert!(add_lora_update(&y, &x, &lora).is_err());
        Ok(())
    }

    #[test]
    fn mismatched_factors_are_an_error() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::zeros((8, 16), DType::F32, &dev)?;
        let lora = LoraFactors {
            a: Tensor::zeros((2, 15), DType::F32, &dev)?,
            b: Tensor::zeros((8, 2), DType::F32, &dev)?,
            scale: 1.0,
            dropout: None,
        };
        let x = Tensor::zeros((3, 16), DType::F32, &dev)?;
        assert!(frozen_lora_matmul(&x, FrozenWeight::Dense(w), &lora).is_err());
        Ok(())
    }
}
