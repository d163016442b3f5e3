//! Root-mean-square layer normalisation.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::cpu::{f32_slice, fused_training};
use crate::Result;

/// RMSNorm: `x / sqrt(mean(x²) + eps) * weight`.
///
/// Gemma's `(1 + weight)` convention is folded into `weight` by the loader,
/// so one implementation serves every architecture.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    /// A norm over the last dimension with the given scale and epsilon.
    pub fn new(weight: Tensor, eps: f32) -> Self {
        Self { weight, eps }
    }

    /// The scale vector.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// Normalises the last dimension of `x`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.dtype() == DType::F32 && x.is_contiguous() && !x.track_op() {
            candle_nn::ops::rms_norm(x, &self.weight, self.eps)
        } else if fused_training(x) && !self.weight.track_op() {
            // Training on the CPU: one op with its own backward pass (the
            // weight is frozen, so only ∂x).
            let weight = self
                .weight
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            x.contiguous()?.apply_op1(RmsNormOp {
                weight: weight.into(),
                eps: self.eps,
            })
        } else {
            self.composed(x)
        }
    }

    /// The differentiable formulation from candle ops (training off the
    /// CPU, a trained weight, non-f32 inputs).
    fn composed(&self, x: &Tensor) -> Result<Tensor> {
        let x32 = x.to_dtype(DType::F32)?;
        let ms = x32.sqr()?.mean_keepdim(candle_core::D::Minus1)?;
        let y = x32.broadcast_div(&(ms + self.eps as f64)?.sqrt()?)?;
        y.broadcast_mul(&self.weight.to_dtype(DType::F32)?)?
            .to_dtype(x.dtype())
    }
}

/// `1 / sqrt(mean(x²) + eps)` of one row.
fn inv_rms(x: &[f32], eps: f32) -> f32 {
    let ss: f32 = x.iter().map(|v| v * v).sum();
    1.0 / (ss / x.len() as f32 + eps).sqrt()
}

/// RMSNorm over the last dimension with a frozen weight, differentiable
/// with respect to `x` (training).
struct RmsNormOp {
    weight: Arc<[f32]>,
    eps: f32,
}

impl CustomOp1 for RmsNormOp {
    fn name(&self) -> &'static str {
        "rms-norm-train"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let xs = f32_slice(storage, layout, self.name())?;
        let n = self.weight.len();
        if layout.dims().last() != Some(&n) {
            candle_core::bail!(
                "{}: input {:?} does not end in {n}",
                self.name(),
                layout.dims()
            );
        }
        let mut ys = vec![0f32; xs.len()];
        ys.par_chunks_mut(n)
            .zip(xs.par_chunks(n))
            .for_each(|(y, x)| {
                let inv = inv_rms(x, self.eps);
                for ((y, &x), &w) in y.iter_mut().zip(x).zip(self.weight.iter()) {
                    *y = x * inv * w;
                }
            });
        Ok((CpuStorage::F32(ys), layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let g = grad_res.contiguous()?;
        let dx = arg.contiguous()?.apply_op2_no_bwd(
            &g,
            &RmsNormGradOp {
                weight: self.weight.clone(),
                eps: self.eps,
            },
        )?;
        Ok(Some(dx))
    }
}

/// `∂x` of [`RmsNormOp`] from `x` and `∂y`: with `r = sqrt(mean(x²) + eps)`,
/// `∂x = w⊙∂y / r − x · Σ(w⊙∂y⊙x) / (n·r³)`.
struct RmsNormGradOp {
    weight: Arc<[f32]>,
    eps: f32,
}

impl CustomOp2 for RmsNormGradOp {
    fn name(&self) -> &'static str {
        "rms-norm-train-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let xs = f32_slice(s1, l1, self.name())?;
        let gs = f32_slice(s2, l2, self.name())?;
        let n = self.weight.len();
        if l1.shape() != l2.shape() || l1.dims().last() != Some(&n) {
            candle_core::bail!(
                "{}: shapes {:?} and {:?}",
                self.name(),
                l1.dims(),
                l2.dims()
            );
        }
        let mut dxs = vec![0f32; xs.len()];
        dxs.par_chunks_mut(n)
            .zip(xs.par_chunks(n).zip(gs.par_chunks(n)))
            .for_each(|(dx, (x, g))| {
                let inv = inv_rms(x, self.eps);
                let dot: f32 = x
                    .iter()
                    .zip(g)
                    .zip(self.weight.iter())
                    .map(|((x, g), w)| x * g * w)
                    .sum();
                let c = dot * inv * inv * inv / n as f32;
                for (((dx, &x), &g), &w) in dx.iter_mut().zip(x).zip(g).zip(self.weight.iter()) {
                    *dx = w * g * inv - x * c;
                }
            });
        Ok((CpuStorage::F32(dxs), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::testing::assert_agree;
    use candle_core::{Device, Var};

    #[test]
    fn fast_and_differentiable_paths_agree() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 2.0, (3, 16), &dev)?;
        let w = Tensor::randn(1f32, 0.1, 16, &dev)?;
        let n = RmsNorm::new(w, 1e-6);
        let fast = n.forward(&x)?;
        let xv = Var::from_tensor(&x)?;
        let slow = n.forward(xv.as_tensor())?;
        let diff = (fast - slow)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "diff {diff}");
        Ok(())
    }

    /// The training op agrees with the composed formulation in value and
    /// in the input gradient.
    #[test]
    fn training_op_matches_composed_gradients() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 2.0, (2, 5, 24), &dev)?;
        let w = Tensor::randn(1f32, 0.3, 24, &dev)?;
        let n = RmsNorm::new(w, 1e-5);
        assert_agree(
            &[x],
            &|t: &[Tensor]| n.forward(&t[0]),
            &|t: &[Tensor]| n.composed(&t[0]),
            1e-5,
        )
    }
}
