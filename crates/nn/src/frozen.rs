//! Back-propagation through a frozen weight (LoRA and QLoRA bases).
//!
//! candle's autograd computes the gradient of every operand of a matmul,
//! including a frozen weight's — as much work again as the input gradient,
//! and a weight-sized buffer per layer kept until the end of the backward
//! pass. [`FrozenMatmulOp`] computes `y = x Wᵀ` and returns only `∂x = ∂y·W`.
//! A quantized weight is expanded to f32 just for each product (the model
//! stays in its GGUF blocks in memory); large products then run in the f32
//! GEMM, which on CPUs without 8-bit dot-product instructions is faster than
//! the quantized kernel at training batch sizes.

use std::sync::Arc;

use candle_core::quantized::{QStorage, QTensor};
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Storage, Tensor};

use crate::bf16_gemm::PackedBf16;
use crate::cpu::{f32_slice, with_f32};
use crate::sgemm::{self, MatRef};
use crate::Result;

/// A weight that training does not change (a LoRA or QLoRA base), as the
/// training ops use it.
#[derive(Clone, Debug)]
pub enum FrozenWeight {
    /// Dense `(out, in)` (any float type; used as f32).
    Dense(Tensor),
    /// GGUF blocks, expanded per product.
    Quant(Arc<QTensor>),
    /// Rounded to bfloat16 and packed once for the bf16 GEMM
    /// ([`Bf16FrozenLinear`](crate::bf16_linear::Bf16FrozenLinear)): the
    /// products take bf16 inputs with f32 sums.
    Bf16(Arc<PackedBf16>),
}

impl FrozenWeight {
    /// `(out, in)`.
    pub fn dims(&self) -> Result<(usize, usize)> {
        match self {
            Self::Dense(w) => w.dims2(),
            Self::Quant(q) => q.shape().dims2(),
            Self::Bf16(p) => Ok((p.n(), p.k())),
        }
    }

    pub(crate) fn dense_f32(&self, device: &Device) -> Result<Tensor> {
        match self {
            Self::Dense(w) => w.to_dtype(DType::F32),
            Self::Quant(q) if device.is_cpu() => parallel_dequantize(q),
            Self::Quant(q) => q.dequantize(device),
            Self::Bf16(p) => Tensor::from_vec(p.to_f32(), (p.n(), p.k()), device),
        }
    }
}

/// candle's CPU dequantization is single-threaded and runs for every
/// product here; split the rows over the thread pool instead.
fn parallel_dequantize(q: &QTensor) -> Result<Tensor> {
    use rayon::prelude::*;
    let dtype = q.dtype();
    let Ok((n, k)) = q.shape().dims2() else {
        return q.dequantize(&Device::Cpu);
    };
    let block = dtype.block_size();
    if block <= 1 || k % block != 0 || n < 64 {
        return q.dequantize(&Device::Cpu);
    }
    let row_bytes = k / block * dtype.type_size();
    let data = q.data()?;
    if data.len() != n * row_bytes {
        return q.dequantize(&Device::Cpu);
    }
    let chunk_rows = (n / (4 * rayon::current_num_threads().max(1))).clamp(16, 512);
    let mut out = vec![0f32; n * k];
    out.par_chunks_mut(chunk_rows * k)
        .enumerate()
        .try_for_each(|(c, dst)| -> Result<()> {
            let rows = dst.len() / k;
            let start = c * chunk_rows;
            let bytes = &data[start * row_bytes..(start + rows) * row_bytes];
            let storage =
                QStorage::from_data(std::borrow::Cow::Borrowed(bytes), &Device::Cpu, dtype)?;
            let part = QTensor::new(storage, (rows, k))?.dequantize(&Device::Cpu)?;
            let (s, l) = part.storage_and_layout();
            match (&*s, l.contiguous_offsets()) {
                (Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) => dst.copy_from_slice(&v[a..b]),
                _ => candle_core::bail!("dequantize: unexpected layout"),
            }
            Ok(())
        })?;
    Tensor::from_vec(out, (n, k), &Device::Cpu)
}

/// `x Wᵀ` on the CPU for row-major `x` `(m, in)`: the weight expanded to
/// f32 (in parallel) and multiplied by [`sgemm::matmul`].
pub fn dense_product(x: &[f32], weight: &FrozenWeight) -> Result<Vec<f32>> {
    let (n, k) = weight.dims()?;
    if k == 0 || !x.len().is_multiple_of(k) {
        candle_core::bail!("frozen product: {} inputs for rows of {k}", x.len());
    }
    let m = x.len() / k;
    let mut y = vec![0f32; m * n];
    if let FrozenWeight::Bf16(p) = weight {
        p.matmul_t(x, &mut y);
        return Ok(y);
    }
    let w = weight.dense_f32(&Device::Cpu)?;
    with_f32(&w, "frozen product", |w| {
        sgemm::matmul(MatRef::new(x, m, k)?, MatRef::new(w, n, k)?.t(), &mut y)
    })?;
    Ok(y)
}

/// `∂y W` on the CPU for row-major `∂y` `(m, out)`: the input gradient of
/// [`dense_product`], the weight expanded the same way.
pub(crate) fn dense_input_grad(g: &[f32], weight: &FrozenWeight) -> Result<Vec<f32>> {
    let (n, k) = weight.dims()?;
    if n == 0 || !g.len().is_multiple_of(n) {
        candle_core::bail!("frozen product: {} gradients for rows of {n}", g.len());
    }
    let m = g.len() / n;
    let mut dx = vec![0f32; m * k];
    if let Some(t) = match weight {
        FrozenWeight::Bf16(p) => p.transposed(),
        _ => None,
    } {
        // The transpose is packed per product (about a millisecond per
        // million weights) rather than kept beside the forward copy.
        t.matmul_t(g, &mut dx);
        return Ok(dx);
    }
    let w = weight.dense_f32(&Device::Cpu)?;
    with_f32(&w, "frozen product", |w| {
        sgemm::matmul(MatRef::new(g, m, n)?, MatRef::new(w, n, k)?, &mut dx)
    })?;
    Ok(dx)
}

/// `y = x Wᵀ` over a frozen `W`, differentiable with respect to `x` only.
pub(crate) struct FrozenMatmulOp {
    pub(crate) weight: FrozenWeight,
    pub(crate) out_features: usize,
    pub(crate) in_features: usize,
}

impl CustomOp1 for FrozenMatmulOp {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let xs = f32_slice(storage, layout, self.name())?;
        let (n, k) = (self.out_features, self.in_features);
        let mut dims = layout.shape().dims().to_vec();
        if dims.last() != Some(&k) {
            candle_core::bail!("frozen-matmul: input {dims:?} does not end in {k}");
        }
        let y = dense_product(xs, &self.weight)?;
        *dims.last_mut().expect("non-empty dims") = n;
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let g = grad_res.to_dtype(DType::F32)?.contiguous()?;
        if !arg.device().is_cpu() {
            let w = self.weight.dense_f32(arg.device())?;
            let g = g.reshape(((), self.out_features))?;
            return Ok(Some(g.matmul(&w)?.reshape(arg.shape())?));
        }
        let dx = with_f32(&g, self.name(), |g| dense_input_grad(g, &self.weight))?;
        Ok(Some(Tensor::from_vec(dx, arg.shape(), arg.device())?))
    }
}

/// `x Wᵀ` for training: through [`FrozenMatmulOp`] on CPU, through the
/// plain (differentiable) product elsewhere.
pub(crate) fn frozen_matmul(
    x: &Tensor,
    weight: FrozenWeight,
    out_features: usize,
    in_features: usize,
) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        let x = x.contiguous()?;
        return x.apply_op1(FrozenMatmulOp {
            weight,
            out_features,
            in_features,
        });
    }
    let w = weight.dense_f32(x.device())?.to_dtype(x.dtype())?;
    let mut dims = x.dims().to_vec();
    *dims.last_mut().expect("non-empty dims") = out_features;
    x.reshape(((), in_features))?.matmul(&w.t()?)?.reshape(dims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::GgmlDType;

    #[test]
    fn parallel_dequantize_equals_candle() -> Result<()> {
        let w = Tensor::randn(0f32, 1.0, (300, 256), &Device::Cpu)?;
        for dtype in [
            GgmlDType::Q4_1,
            GgmlDType::Q4K,
            GgmlDType::Q8_0,
            GgmlDType::Q6K,
        ] {
            let q = QTensor::quantize(&w, dtype)?;
            let a = parallel_dequantize(&q)?;
            let b = q.dequantize(&Device::Cpu)?;
            let d = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert_eq!(d, 0.0, "{dtype:?}");
        }
        Ok(())
    }
}
