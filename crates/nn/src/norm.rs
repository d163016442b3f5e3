//! Root-mean-square layer normalisation.

use candle_core::{DType, Tensor};

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
        } else {
            // Differentiable formulation (training) or non-f32 inputs.
            let x32 = x.to_dtype(DType::F32)?;
            let ms = x32.sqr()?.mean_keepdim(candle_core::D::Minus1)?;
            let y = x32.broadcast_div(&(ms + self.eps as f64)?.sqrt()?)?;
            y.broadcast_mul(&self.weight.to_dtype(DType::F32)?)?
                .to_dtype(x.dtype())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
}
