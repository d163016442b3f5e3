//! The gated activation of Llama-family MLPs: `silu(gate) ⊙ up`.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::cpu::{all_cpu_f32, f32_slice, with_f32};
use crate::vmath::sigmoid;
use crate::Result;

/// Elements per parallel task.
const CHUNK: usize = 8192;

/// `silu(gate) ⊙ up`. In training on the CPU (inputs part of a graph, f32)
/// one op with its own backward pass, which candle would otherwise take in
/// six elementwise steps, each with its own buffers; elsewhere the plain
/// candle ops.
pub fn silu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    let training = (gate.track_op() || up.track_op()) && all_cpu_f32(&[gate, up]);
    if training && gate.shape() == up.shape() {
        return gate.contiguous()?.apply_op2(&up.contiguous()?, SiluMulOp);
    }
    candle_nn::ops::silu(gate)? * up
}

struct SiluMulOp;

crate::dispatch! {
    /// `y = silu(g)·u` element-wise.
    fn silu_mul_into(y: &mut [f32], g: &[f32], u: &[f32]) {
        for ((y, &g), &u) in y.iter_mut().zip(g).zip(u) {
            *y = g * sigmoid(g) * u;
        }
    }
}

crate::dispatch! {
    /// The gradients of `silu(g)·u` for the upstream `dy`, element-wise.
    fn silu_mul_grad_into(dg: &mut [f32], du: &mut [f32], g: &[f32], u: &[f32], dy: &[f32]) {
        let inputs = g.iter().zip(u).zip(dy);
        for ((dg, du), ((&g, &u), &dy)) in dg.iter_mut().zip(du.iter_mut()).zip(inputs) {
            let s = sigmoid(g);
            *du = dy * g * s;
            *dg = dy * u * s * (1.0 + g * (1.0 - s));
        }
    }
}

/// `silu(g)·u` of two equally long slices, in parallel.
pub(crate) fn silu_mul_slices(g: &[f32], u: &[f32]) -> Vec<f32> {
    let mut y = vec![0f32; g.len()];
    y.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
        .for_each(|(y, (g, u))| silu_mul_into(y, g, u));
    y
}

/// The gradients `(∂g, ∂u)` of `silu(g)·u` for the upstream `dy`, in parallel.
pub(crate) fn silu_mul_grads(g: &[f32], u: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (mut dg, mut du) = (vec![0f32; g.len()], vec![0f32; u.len()]);
    dg.par_chunks_mut(CHUNK)
        .zip(du.par_chunks_mut(CHUNK))
        .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
        .zip(dy.par_chunks(CHUNK))
        .for_each(|(((dg, du), (g, u)), dy)| silu_mul_grad_into(dg, du, g, u, dy));
    (dg, du)
}

impl CustomOp2 for SiluMulOp {
    fn name(&self) -> &'static str {
        "silu-mul-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = f32_slice(s1, l1, self.name())?;
        let u = f32_slice(s2, l2, self.name())?;
        if g.len() != u.len() {
            candle_core::bail!("{}: {:?} and {:?}", self.name(), l1.dims(), l2.dims());
        }
        Ok((CpuStorage::F32(silu_mul_slices(g, u)), l1.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad_res.to_dtype(DType::F32)?;
        let (dg, du) = with_f32(gate, self.name(), |g| {
            with_f32(up, self.name(), |u| {
                with_f32(&grad, self.name(), |dy| Ok(silu_mul_grads(g, u, dy)))
            })
        })?;
        Ok((
            Some(Tensor::from_vec(dg, gate.shape(), gate.device())?),
            Some(Tensor::from_vec(du, up.shape(), up.device())?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::testing::assert_agree;
    use candle_core::Device;

    #[test]
    fn matches_composed_gradients() -> Result<()> {
        let dev = Device::Cpu;
        let g = Tensor::randn(0f32, 3.0, (3, 7, 40), &dev)?;
        let u = Tensor::randn(0f32, 1.0, (3, 7, 40), &dev)?;
        assert_agree(
            &[g, u],
            &|t: &[Tensor]| silu_mul(&t[0], &t[1]),
            &|t: &[Tensor]| candle_nn::ops::silu(&t[0])? * &t[1],
            1e-5,
        )
    }

    #[test]
    fn inference_path_is_the_plain_ops() -> Result<()> {
        let dev = Device::Cpu;
        let g = Tensor::randn(0f32, 1.0, (5, 8), &dev)?;
        let u = Tensor::randn(0f32, 1.0, (5, 8), &dev)?;
        let a = silu_mul(&g, &u)?;
        let b = (candle_nn::ops::silu(&g)? * &u)?;
        assert_eq!(a.to_vec2::<f32>()?, b.to_vec2::<f32>()?);
        Ok(())
    }
}
