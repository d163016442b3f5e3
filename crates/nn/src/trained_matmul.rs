//! `x Wᵀ` with a trained weight (full fine-tuning) on the CPU GEMM.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};

use crate::cpu::{all_cpu_f32, f32_slice, with_f32};
use crate::sgemm::{self, MatRef};
use crate::Result;

/// `x Wᵀ` over rows `x` `(m, in)` and `W` `(out, in)`, differentiable with
/// respect to both. On the CPU in f32 one op whose products (`y`, `∂x = ∂y W`,
/// `∂W = ∂yᵀ x`) run in [`sgemm`]; elsewhere candle's matmul.
pub fn trained_matmul(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if all_cpu_f32(&[x, w]) && x.rank() == 2 && w.rank() == 2 {
        return x.contiguous()?.apply_op2(&w.contiguous()?, TrainedMatmulOp);
    }
    x.matmul(&w.t()?)
}

struct TrainedMatmulOp;

impl CustomOp2 for TrainedMatmulOp {
    fn name(&self) -> &'static str {
        "trained-matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (m, k) = l1.shape().dims2()?;
        let (n, wk) = l2.shape().dims2()?;
        if wk != k {
            candle_core::bail!("{}: x {:?} by W {:?}", self.name(), l1.dims(), l2.dims());
        }
        let x = f32_slice(s1, l1, self.name())?;
        let w = f32_slice(s2, l2, self.name())?;
        let mut y = vec![0f32; m * n];
        sgemm::matmul(MatRef::new(x, m, k)?, MatRef::new(w, n, k)?.t(), &mut y)?;
        Ok((CpuStorage::F32(y), Shape::from((m, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (m, k) = x.dims2()?;
        let (n, _) = w.dims2()?;
        let g = grad_res.to_dtype(DType::F32)?.contiguous()?;
        let mut dx = vec![0f32; m * k];
        let mut dw = vec![0f32; n * k];
        with_f32(x, self.name(), |xs| {
            with_f32(w, self.name(), |ws| {
                with_f32(&g, self.name(), |gs| {
                    let gm = MatRef::new(gs, m, n)?;
                    sgemm::matmul(gm, MatRef::new(ws, n, k)?, &mut dx)?;
                    sgemm::matmul(gm.t(), MatRef::new(xs, m, k)?, &mut dw)
                })
            })
        })?;
        Ok((
            Some(Tensor::from_vec(dx, (m, k), x.device())?),
            Some(Tensor::from_vec(dw, (n, k), w.device())?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::testing::assert_agree;
    use candle_core::Device;

    #[test]
    fn matches_candle_matmul_and_gradients() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (300, 40), &dev)?;
        let w = Tensor::randn(0f32, 0.5, (70, 40), &dev)?;
        assert_agree(
            &[x, w],
            &|t: &[Tensor]| trained_matmul(&t[0], &t[1]),
            &|t: &[Tensor]| t[0].matmul(&t[1].t()?),
            1e-3,
        )
    }
}
