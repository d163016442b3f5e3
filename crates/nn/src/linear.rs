//! The pluggable linear layer: `y = x Wᵀ + b` over dense or quantized weights.

use std::fmt::Debug;
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Module, Tensor};

use crate::frozen::{frozen_matmul, FrozenWeight};
use crate::kernels::{BlockType, QuantWeights};
use crate::Result;

/// A linear projection `y = x Wᵀ (+ b)` with `W` of shape `(out, in)`.
///
/// Models hold `Arc<dyn Linear>` for every projection, so quantized, dense
/// and adapter-wrapped layers (LoRA over either) share one model
/// implementation. Inputs have any leading dimensions and `in_features()`
/// as the last one.
pub trait Linear: Send + Sync + Debug {
    /// Applies the projection to `x` of shape `(…, in_features)`.
    fn forward(&self, x: &Tensor) -> Result<Tensor>;
    /// Width of the input.
    fn in_features(&self) -> usize;
    /// Width of the output.
    fn out_features(&self) -> usize;
    /// The weight as a dense `(out, in)` f32 tensor (dequantized when
    /// stored quantized). Used by merging, training and reference checks.
    fn dense_weight(&self) -> Result<Tensor>;
    /// The bias, if any.
    fn bias(&self) -> Option<&Tensor>;
    /// Storage format of the weight, for reports (`"F32"`, `"Q4K"`, …).
    fn storage_kind(&self) -> String;
    /// The weight as the training ops use it when it is not trained (a
    /// LoRA base); `None` for layers that cannot provide one (wrappers,
    /// weights that are themselves trained).
    fn frozen_weight(&self) -> Option<FrozenWeight> {
        None
    }
    /// `forward(silu(gate) ⊙ up)`: the down projection of a gated MLP.
    /// Layers whose training op can take the activation inside (so the graph
    /// keeps no separate activation) override this.
    fn forward_silu_mul(&self, gate: &Tensor, up: &Tensor) -> Result<Tensor> {
        self.forward(&crate::swiglu::silu_mul(gate, up)?)
    }
}

/// Shared handle to any linear layer.
pub type LinearRef = Arc<dyn Linear>;

/// A linear layer over a dense weight (F32, F16 or BF16).
#[derive(Debug, Clone)]
pub struct DenseLinear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl DenseLinear {
    /// Wraps `weight` of shape `(out, in)` and an optional bias of shape `(out,)`.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        let (out, _) = weight.dims2()?;
        if let Some(b) = &bias {
            let n = b.dims1()?;
            if n != out {
                candle_core::bail!("bias has {n} elements but the weight has {out} output rows");
            }
        }
        Ok(Self { weight, bias })
    }

    /// The `(out, in)` weight as stored.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

impl Linear for DenseLinear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.track_op() && !self.weight.track_op() {
            // Training with this layer frozen: no gradient for the weight.
            let y = frozen_matmul(
                x,
                FrozenWeight::Dense(self.weight.clone()),
                self.out_features(),
                self.in_features(),
            )?;
            return match &self.bias {
                Some(b) => y.broadcast_add(&b.to_dtype(y.dtype())?),
                None => Ok(y),
            };
        }
        let w = if self.weight.dtype() == x.dtype() {
            self.weight.clone()
        } else {
            self.weight.to_dtype(x.dtype())?
        };
        let y = match x.dims() {
            [b1, b2, _, _] => x.matmul(&w.broadcast_left((*b1, *b2))?.t()?)?,
            [b, _, _] => x.matmul(&w.broadcast_left(*b)?.t()?)?,
            _ => x.matmul(&w.t()?)?,
        };
        match &self.bias {
            Some(b) => y.broadcast_add(&b.to_dtype(y.dtype())?),
            None => Ok(y),
        }
    }
    fn in_features(&self) -> usize {
        self.weight.dims()[1]
    }
    fn out_features(&self) -> usize {
        self.weight.dims()[0]
    }
    fn dense_weight(&self) -> Result<Tensor> {
        self.weight.to_dtype(DType::F32)
    }
    fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
    fn storage_kind(&self) -> String {
        format!("{:?}", self.weight.dtype()).to_uppercase()
    }
    fn frozen_weight(&self) -> Option<FrozenWeight> {
        (!self.weight.track_op()).then(|| FrozenWeight::Dense(self.weight.clone()))
    }
}

/// A linear layer whose weight stays in GGUF quantized blocks (Q4_0, Q4_1,
/// Q5_0, Q8_0, Q4_K, Q5_K, Q6_K, …). The activation is quantized on the fly
/// and multiplied block by block, so the weight is never expanded.
#[derive(Debug, Clone)]
pub struct QuantLinear {
    weight: Arc<QTensor>,
    matmul: QMatMul,
    /// Raw blocks for our own CPU kernels (faster than candle's CPU path);
    /// `None` for block types without one and for non-CPU weights.
    kernel: Option<QuantWeights>,
    bias: Option<Tensor>,
}

impl QuantLinear {
    /// Wraps a quantized `(out, in)` weight and an optional dense bias.
    pub fn new(weight: Arc<QTensor>, bias: Option<Tensor>) -> Result<Self> {
        let (out, _) = weight.shape().dims2()?;
        if let Some(b) = &bias {
            let n = b.dims1()?;
            if n != out {
                candle_core::bail!("bias has {n} elements but the weight has {out} output rows");
            }
        }
        let matmul = QMatMul::from_arc(weight.clone())?;
        let kernel = match BlockType::from_ggml(weight.dtype()) {
            Some(block) if weight.device().is_cpu() => {
                let (n, k) = weight.shape().dims2()?;
                QuantWeights::new(block, weight.data()?.into_owned(), n, k).ok()
            }
            _ => None,
        };
        Ok(Self {
            weight,
            matmul,
            kernel,
            bias,
        })
    }

    /// The quantized weight.
    pub fn qtensor(&self) -> &Arc<QTensor> {
        &self.weight
    }

    /// The GGUF block type of the weight.
    pub fn ggml_dtype(&self) -> GgmlDType {
        self.weight.dtype()
    }
}

impl Linear for QuantLinear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = if x.is_contiguous() {
            x.clone()
        } else {
            x.contiguous()?
        };
        let y = match &self.kernel {
            _ if x.track_op() => {
                // Training through the frozen quantized base (QLoRA).
                frozen_matmul(
                    &x,
                    FrozenWeight::Quant(self.weight.clone()),
                    self.out_features(),
                    self.in_features(),
                )?
            }
            Some(w) if x.dtype() == DType::F32 && x.device().is_cpu() => {
                let k = w.k();
                let dims = x.dims();
                if dims.last() != Some(&k) {
                    candle_core::bail!("QuantLinear: input {:?} does not end in {k}", x.shape());
                }
                let xs = x.flatten_all()?.to_vec1::<f32>()?;
                let m = xs.len() / k;
                let mut ys = vec![0f32; m * w.n()];
                w.matmul(&xs, &mut ys);
                let mut out_dims = dims.to_vec();
                *out_dims.last_mut().expect("non-empty dims") = w.n();
                Tensor::from_vec(ys, out_dims, x.device())?
            }
            _ => self.matmul.forward(&x)?,
        };
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
    fn in_features(&self) -> usize {
        self.weight.shape().dims()[1]
    }
    fn out_features(&self) -> usize {
        self.weight.shape().dims()[0]
    }
    fn dense_weight(&self) -> Result<Tensor> {
        self.weight.dequantize(&self.weight.device())
    }
    fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
    fn storage_kind(&self) -> String {
        format!("{:?}", self.weight.dtype())
    }
    fn frozen_weight(&self) -> Option<FrozenWeight> {
        Some(FrozenWeight::Quant(self.weight.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn quantized_matches_dense_within_quantization_error() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (64, 256), &dev)?;
        let b = Tensor::randn(0f32, 1.0, 64, &dev)?;
        let x = Tensor::randn(0f32, 1.0, (2, 3, 256), &dev)?;
        let dense = DenseLinear::new(w.clone(), Some(b.clone()))?;
        let yd = dense.forward(&x)?;
        for dtype in [
            GgmlDType::Q8_0,
            GgmlDType::Q6K,
            GgmlDType::Q4K,
            GgmlDType::Q4_0,
            GgmlDType::Q4_1,
        ] {
            let q = Arc::new(QTensor::quantize(&w, dtype)?);
            let ql = QuantLinear::new(q, Some(b.clone()))?;
            let yq = ql.forward(&x)?;
            let rel = ((&yq - &yd)?.sqr()?.sum_all()?.to_scalar::<f32>()?
                / yd.sqr()?.sum_all()?.to_scalar::<f32>()?)
            .sqrt();
            let tol = if dtype == GgmlDType::Q8_0 { 0.01 } else { 0.12 };
            assert!(rel < tol, "{dtype:?}: relative error {rel}");
            assert_eq!(ql.dense_weight()?.dims(), &[64, 256]);
        }
        Ok(())
    }

    #[test]
    fn own_kernels_match_candle_qmatmul() -> Result<()> {
        let dev = Device::Cpu;
        for (dtype, n, k) in [
            (GgmlDType::Q4_1, 97, 256),
            (GgmlDType::Q5_0, 64, 576),
            (GgmlDType::Q6K, 33, 512),
        ] {
            let w = Tensor::randn(0f32, 1.0, (n, k), &dev)?;
            let b = Tensor::randn(0f32, 1.0, n, &dev)?;
            let q = Arc::new(QTensor::quantize(&w, dtype)?);
            let ql = QuantLinear::new(q.clone(), Some(b.clone()))?;
            assert!(ql.kernel.is_some());
            let reference = QMatMul::from_arc(q)?;
            for shape in [vec![1, k], vec![2, 7, k]] {
                let x = Tensor::randn(0f32, 1.0, shape.as_slice(), &dev)?;
                let yq = ql.forward(&x)?;
                let yc = reference.forward(&x)?.broadcast_add(&b)?;
                assert_eq!(yq.dims(), yc.dims());
                let rel = ((&yq - &yc)?.sqr()?.sum_all()?.to_scalar::<f32>()?
                    / yc.sqr()?.sum_all()?.to_scalar::<f32>()?)
                .sqrt();
                assert!(
                    rel < 3e-3,
                    "{dtype:?} n={n} k={k} {shape:?}: relative error {rel}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn mismatched_bias_is_an_error() {
        let dev = Device::Cpu;
        let w = Tensor::zeros((4, 8), DType::F32, &dev).unwrap();
        let b = Tensor::zeros(5, DType::F32, &dev).unwrap();
        let err = DenseLinear::new(w, Some(b)).unwrap_err().to_string();
        assert!(err.contains("bias has 5 elements"), "{err}");
    }
}
