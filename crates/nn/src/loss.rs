//! Cross-entropy over logits, the training loss of a language model.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use crate::cpu::{f32_slice, with_f32};
use crate::vmath;
use crate::Result;

/// `−Σᵢ log softmax(logitsᵢ)[targetᵢ]` over logits `(rows, vocab)` and u32
/// targets `(rows)`. In training on the CPU (f32 logits part of a graph) one
/// op whose backward pass writes `softmax − onehot` in a single sweep; the
/// composed form allocates a `(rows, vocab)` buffer for each of about a
/// dozen steps. Elsewhere the composed candle ops.
pub fn cross_entropy_sum(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (rows, _) = logits.dims2()?;
    if targets.dims1()? != rows {
        candle_core::bail!(
            "cross entropy: {} targets for {rows} rows of logits",
            targets.dims1()?
        );
    }
    if logits.track_op() && logits.dtype() == DType::F32 && logits.device().is_cpu() {
        let targets = targets.to_dtype(DType::U32)?.to_vec1::<u32>()?;
        return logits.contiguous()?.apply_op1(CrossEntropyOp { targets });
    }
    let logp = candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
    let picked = logp.gather(&targets.unsqueeze(1)?, 1)?;
    picked.sum_all()?.neg()
}

struct CrossEntropyOp {
    targets: Vec<u32>,
}

impl CrossEntropyOp {
    /// The target of `row`, checked against the vocabulary.
    fn target(&self, row: usize, vocab: usize) -> Result<usize> {
        let t = self.targets[row] as usize;
        if t >= vocab {
            candle_core::bail!("cross entropy: target {t} outside a vocabulary of {vocab}");
        }
        Ok(t)
    }
}

crate::dispatch! {
    /// `log Σ exp(x)` of one row, computed as `max + log Σ exp(x − max)`.
    fn log_sum_exp(row: &[f32]) -> f32 {
        let max = vmath::max(row);
        max + vmath::sum_exp(row, max).ln()
    }
}

crate::dispatch! {
    /// `g ← scale · exp(x − shift)` (the softmax times `scale` when `shift`
    /// is the row's log-sum-exp).
    fn scaled_softmax(g: &mut [f32], row: &[f32], shift: f32, scale: f32) {
        for (g, &x) in g.iter_mut().zip(row) {
            *g = scale * vmath::exp(x - shift);
        }
    }
}

impl CustomOp1 for CrossEntropyOp {
    fn name(&self) -> &'static str {
        "cross-entropy-train"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (rows, vocab) = layout.shape().dims2()?;
        let xs = f32_slice(storage, layout, self.name())?;
        let losses = xs
            .par_chunks(vocab)
            .enumerate()
            .map(|(r, row)| Ok((log_sum_exp(row) - row[self.target(r, vocab)?]) as f64))
            .collect::<Result<Vec<f64>>>()?;
        debug_assert_eq!(losses.len(), rows);
        let total = losses.iter().sum::<f64>() as f32;
        Ok((CpuStorage::F32(vec![total]), Shape::from(())))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let (_, vocab) = arg.dims2()?;
        let scale = grad_res.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        let mut grad = vec![0f32; arg.elem_count()];
        with_f32(arg, self.name(), |xs| {
            grad.par_chunks_mut(vocab)
                .zip(xs.par_chunks(vocab))
                .enumerate()
                .try_for_each(|(r, (g, row))| {
                    scaled_softmax(g, row, log_sum_exp(row), scale);
                    g[self.target(r, vocab)?] -= scale;
                    Ok(())
                })
        })?;
        Ok(Some(Tensor::from_vec(grad, arg.shape(), arg.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::testing::assert_agree;
    use candle_core::Device;

    #[test]
    fn matches_composed_loss_and_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let logits = Tensor::randn(0f32, 4.0, (6, 50), &dev)?;
        let targets = Tensor::new(&[0u32, 49, 7, 7, 13, 2], &dev)?;
        let composed = |t: &[Tensor]| -> Result<Tensor> {
            let logp = candle_nn::ops::log_softmax(&t[0], D::Minus1)?;
            logp.gather(&targets.unsqueeze(1)?, 1)?.sum_all()?.neg()
        };
        assert_agree(
            &[logits],
            &|t: &[Tensor]| cross_entropy_sum(&t[0], &targets),
            &composed,
            1e-4,
        )
    }

    #[test]
    fn bad_targets_are_errors() -> Result<()> {
        let dev = Device::Cpu;
        let logits = candle_core::Var::from_tensor(&Tensor::zeros((2, 5), DType::F32, &dev)?)?;
        let too_few = Tensor::new(&[1u32], &dev)?;
        assert!(cross_entropy_sum(logits.as_tensor(), &too_few).is_err());
        let outside = Tensor::new(&[1u32, 5], &dev)?;
        assert!(cross_entropy_sum(logits.as_tensor(), &outside).is_err());
        Ok(())
    }
}
