//! A frozen layer whose training products run on the bf16 GEMM.
//!
//! Training a LoRA or QLoRA adapter multiplies by every frozen base weight
//! two or three times per step (forward, recomputation, input gradient).
//! Through [`FrozenWeight::Quant`] each product expands the GGUF blocks to
//! f32 and packs them for the f32 GEMM again. [`Bf16FrozenLinear`] rounds
//! the weight to bfloat16 and packs it once ([`PackedBf16`], 2 bytes per
//! weight kept for the run), so the products run on `vdpbf16ps` with f32
//! sums — mixed precision as PyTorch's `autocast(bfloat16)` does it, with
//! the gradients and optimiser state still f32. Inference through the same
//! layer (no gradient tracked) uses the wrapped layer unchanged.

use std::sync::Arc;

use candle_core::{DType, Tensor};

use crate::bf16_gemm::{self, PackedBf16};
use crate::cpu::with_f32;
use crate::frozen::{frozen_matmul, FrozenWeight};
use crate::linear::{Linear, LinearRef};
use crate::Result;

/// A frozen base layer with a bf16 copy of its weight for training products.
#[derive(Debug)]
pub struct Bf16FrozenLinear {
    base: LinearRef,
    packed: Arc<PackedBf16>,
}

impl Bf16FrozenLinear {
    /// Packs `base`'s weight; `None` when the CPU lacks AVX512-BF16, the
    /// base is not a frozen CPU weight, or its shape does not fit the kernel
    /// (both dimensions multiples of 32) — the base then serves as it is.
    pub fn pack(base: LinearRef) -> Result<Option<Self>> {
        let Some(weight) = base.frozen_weight() else {
            return Ok(None);
        };
        let (n, k) = weight.dims()?;
        if !bf16_gemm::available() || !n.is_multiple_of(32) || !k.is_multiple_of(32) {
            return Ok(None);
        }
        let device = candle_core::Device::Cpu;
        if matches!(&weight, FrozenWeight::Dense(w) if !w.device().is_cpu())
            || matches!(&weight, FrozenWeight::Quant(q) if !q.device().is_cpu())
        {
            return Ok(None);
        }
        let dense = weight.dense_f32(&device)?.contiguous()?;
        let packed = with_f32(&dense, "bf16 pack", |w| Ok(PackedBf16::pack(w, n, k)))?;
        Ok(packed.map(|packed| Self {
            base,
            packed: Arc::new(packed),
        }))
    }

    /// `base` packed when it can be, else `base` itself.
    pub fn pack_or_keep(base: LinearRef) -> Result<LinearRef> {
        Ok(match Self::pack(base.clone())? {
            Some(packed) => Arc::new(packed),
            None => base,
        })
    }

    /// Bytes of the bf16 copy.
    pub fn packed_bytes(&self) -> usize {
        self.packed.bytes()
    }
}

impl Linear for Bf16FrozenLinear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !(x.track_op() && x.device().is_cpu() && x.dtype() == DType::F32) {
            return self.base.forward(x);
        }
        let y = frozen_matmul(
            x,
            FrozenWeight::Bf16(self.packed.clone()),
            self.out_features(),
            self.in_features(),
        )?;
        match self.base.bias() {
            Some(b) => y.broadcast_add(&b.to_dtype(y.dtype())?),
            None => Ok(y),
        }
    }
    fn in_features(&self) -> usize {
        self.base.in_features()
    }
    fn out_features(&self) -> usize {
        self.base.out_features()
    }
    fn dense_weight(&self) -> Result<Tensor> {
        self.base.dense_weight()
    }
    fn bias(&self) -> Option<&Tensor> {
        self.base.bias()
    }
    fn storage_kind(&self) -> String {
        self.base.storage_kind()
    }
    fn frozen_weight(&self) -> Option<FrozenWeight> {
        Some(FrozenWeight::Bf16(self.packed.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DenseLinear;
    use candle_core::{Device, Var};

    fn rounded(t: &Tensor) -> Result<Tensor> {
        t.to_dtype(DType::BF16)?.to_dtype(DType::F32)
    }

    #[test]
    fn products_and_input_gradient_use_the_rounded_weight() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (64, 96), &dev)?;
        let b = Tensor::randn(0f32, 1.0, 64, &dev)?;
        let base: LinearRef = Arc::new(DenseLinear::new(w.clone(), Some(b.clone()))?);
        let Some(layer) = Bf16FrozenLinear::pack(base.clone())? else {
            eprintln!("skipped: this CPU has no AVX512-BF16");
            return Ok(());
        };
        assert_eq!(layer.packed_bytes(), 64 * 96 * 2);
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (5, 7, 96), &dev)?)?;
        let y = layer.forward(x.as_tensor())?;
        let g = Tensor::randn(0f32, 1.0, (5, 7, 64), &dev)?;
        let dx = (&y * &g)?.sum_all()?.backward()?;
        let dx = dx.get(x.as_tensor()).expect("input gradient");
        // Reference: both operands rounded to bf16, products in f32.
        let (xr, wr, gr) = (rounded(x.as_tensor())?, rounded(&w)?, rounded(&g)?);
        let want_y = xr.broadcast_matmul(&wr.t()?)?.broadcast_add(&b)?;
        let want_dx = gr.broadcast_matmul(&wr)?;
        for (got, want) in [(&y, &want_y), (dx, &want_dx)] {
            let err = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(err < 1e-3, "max |diff| {err}");
        }
        // Without a tracked input the base layer answers in f32.
        let plain = layer.forward(&x.as_tensor().detach())?;
        let base_y = base.forward(&x.as_tensor().detach())?;
        let d = (plain - base_y)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert_eq!(d, 0.0);
        Ok(())
    }

    #[test]
    fn shapes_the_kernel_cannot_take_stay_as_they_are() -> Result<()> {
        let w = Tensor::randn(0f32, 1.0, (48, 96), &Device::Cpu)?;
        let base: LinearRef = Arc::new(DenseLinear::new(w, None)?);
        assert!(Bf16FrozenLinear::pack(base)?.is_none());
        Ok(())
    }
}
