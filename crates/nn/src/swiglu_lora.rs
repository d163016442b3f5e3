//! The gated MLP's down projection with its activation inside: one training
//! op for `(silu(gate) ⊙ up) Wᵀ` plus the LoRA update.
//!
//! As separate ops the activation `silu(gate) ⊙ up` is a graph node of
//! `(tokens, intermediate)` kept until the backward pass — beside `gate` and
//! `up`, which its own backward pass needs anyway (6 MiB per SmolLM2 layer
//! at 1,024 tokens, an eighth of a layer's activations). This op keeps only
//! `gate` and `up` and recomputes the activation in its backward pass.

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor};

use crate::cpu::{all_cpu_f32, f32_slice, with_f32};
use crate::frozen::FrozenWeight;
use crate::frozen_lora::{frozen_lora_matmul, FrozenLoraOp, LoraFactors};
use crate::swiglu::{silu_mul, silu_mul_grads, silu_mul_slices};
use crate::Result;

/// `silu(gate) ⊙ up` through a frozen projection and its LoRA update:
/// [`frozen_lora_matmul`] of [`silu_mul`], with gradients for `gate`, `up`,
/// `A` and `B`. One op on the CPU in f32 (the factors travel as one
/// concatenated argument, split again by candle's backward pass of the
/// concatenation); composed from those two elsewhere.
pub fn frozen_lora_silu_mul(
    gate: &Tensor,
    up: &Tensor,
    weight: FrozenWeight,
    lora: &LoraFactors,
) -> Result<Tensor> {
    let op = FrozenLoraOp::new(weight.clone(), lora)?;
    let k = op.in_features;
    if !all_cpu_f32(&[gate, up, &lora.a, &lora.b])
        || gate.shape() != up.shape()
        || gate.dims().last() != Some(&k)
    {
        return frozen_lora_matmul(&silu_mul(gate, up)?, weight, lora);
    }
    let factors = Tensor::cat(&[lora.a.flatten_all()?, lora.b.flatten_all()?], 0)?;
    gate.contiguous()?
        .apply_op3(&up.contiguous()?, &factors, SwigluLoraOp { inner: op })
}

struct SwigluLoraOp {
    inner: FrozenLoraOp,
}

impl SwigluLoraOp {
    /// `silu(g) ⊙ u` of two equally long slices.
    fn activation(&self, g: &[f32], u: &[f32]) -> Result<Vec<f32>> {
        if g.len() != u.len() {
            candle_core::bail!("{}: gate and up differ in size", self.name());
        }
        Ok(silu_mul_slices(g, u))
    }

    /// `A` and `B` from the concatenated factors.
    fn split<'a>(&self, factors: &'a [f32]) -> Result<(&'a [f32], &'a [f32])> {
        let FrozenLoraOp {
            in_features: k,
            out_features: n,
            ..
        } = self.inner;
        let r = factors.len() / (k + n);
        if r * (k + n) != factors.len() {
            candle_core::bail!("{}: {} factor values", self.name(), factors.len());
        }
        Ok(factors.split_at(r * k))
    }
}

impl CustomOp3 for SwigluLoraOp {
    fn name(&self) -> &'static str {
        "silu-mul-frozen-lora"
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
        let act = self.activation(
            f32_slice(s1, l1, self.name())?,
            f32_slice(s2, l2, self.name())?,
        )?;
        let (a, b) = self.split(f32_slice(s3, l3, self.name())?)?;
        let y = self.inner.forward_slices(&act, a, b)?;
        Ok((CpuStorage::F32(y), self.inner.output_shape(l1)?))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        factors: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad_res.to_dtype(DType::F32)?.contiguous()?;
        let name = self.name();
        let (dg, du, df) = with_f32(gate, name, |g| {
            with_f32(up, name, |u| {
                with_f32(factors, name, |f| {
                    with_f32(&grad, name, |gs| {
                        let act = self.activation(g, u)?;
                        let (a, b) = self.split(f)?;
                        let (dact, mut da, db) = self.inner.backward_slices(&act, a, b, gs)?;
                        drop(act);
                        let (dg, du) = silu_mul_grads(g, u, &dact);
                        da.extend_from_slice(&db);
                        Ok((dg, du, da))
                    })
                })
            })
        })?;
        let dev = gate.device();
        Ok((
            Some(Tensor::from_vec(dg, gate.shape(), dev)?),
            Some(Tensor::from_vec(du, up.shape(), dev)?),
            Some(Tensor::from_vec(df, factors.shape(), dev)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::testing::assert_agree_in_nodes;
    use crate::frozen_lora::Dropout;
    use candle_core::{Device, Var};

    /// The fused op equals the activation, then the frozen LoRA op: values
    /// and the gradients of gate, up, A and B, with and without dropout.
    #[test]
    fn matches_activation_then_projection() -> Result<()> {
        let dev = Device::Cpu;
        let (m, k, n, r) = (37, 64, 48, 4);
        let weight = FrozenWeight::Dense(Tensor::randn(0f32, 0.5, (n, k), &dev)?);
        for dropout in [None, Some(Dropout { seed: 7, keep: 0.8 })] {
            let a = Var::from_tensor(&Tensor::randn(0f32, 0.3, (r, k), &dev)?)?;
            let b = Var::from_tensor(&Tensor::randn(0f32, 0.3, (n, r), &dev)?)?;
            let lora = |t: &[Tensor]| LoraFactors {
                a: t[2].clone(),
                b: t[3].clone(),
                scale: 1.5,
                dropout,
            };
            let gate = Tensor::randn(0f32, 1.0, (m, k), &dev)?;
            let up = Tensor::randn(0f32, 1.0, (m, k), &dev)?;
            let fused = |t: &[Tensor]| frozen_lora_silu_mul(&t[0], &t[1], weight.clone(), &lora(t));
            let composed = |t: &[Tensor]| -> Result<Tensor> {
                let act = (candle_nn::ops::silu(&t[0])? * &t[1])?;
                frozen_lora_matmul(&act, weight.clone(), &lora(t))
            };
            // Four inputs, the two flattened factors and their
            // concatenation, the op.
            let inputs = [gate, up, a.as_tensor().clone(), b.as_tensor().clone()];
            assert_agree_in_nodes(&inputs, 8, &fused, &composed, 1e-4)?;
        }
        Ok(())
    }
}
