//! Rotary position embeddings.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::cpu::{f32_slice, fused_training};
use crate::Result;

/// How the two halves of each rotated pair are laid out in a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeLayout {
    /// Adjacent pairs `(x0, x1), (x2, x3), …` — llama.cpp's "normal" RoPE,
    /// used by GGUF llama-arch files (their Q/K rows are permuted at
    /// conversion time).
    Interleaved,
    /// First half against second half (`rotate_half`) — HF checkpoints and
    /// llama.cpp's NEOX RoPE (Qwen2, Phi-3, Gemma).
    Halves,
}

/// Llama 3.x frequency scaling (`rope_scaling.rope_type == "llama3"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Llama3Scaling {
    /// Overall scale factor.
    pub factor: f32,
    /// Wavelengths above `original_max / low_freq_factor` are scaled fully.
    pub low_freq_factor: f32,
    /// Wavelengths below `original_max / high_freq_factor` are kept.
    pub high_freq_factor: f32,
    /// Context length of the original pre-training.
    pub original_max_position_embeddings: usize,
}

impl Llama3Scaling {
    /// Per-frequency divisors as llama.cpp stores them in `rope_freqs.weight`.
    pub fn freq_factors(&self, head_dim: usize, theta: f32) -> Vec<f32> {
        let low_wavelen = self.original_max_position_embeddings as f32 / self.low_freq_factor;
        let high_wavelen = self.original_max_position_embeddings as f32 / self.high_freq_factor;
        (0..head_dim / 2)
            .map(|i| {
                let freq = 1.0 / theta.powf(2.0 * i as f32 / head_dim as f32);
                let wavelen = 2.0 * std::f32::consts::PI / freq;
                if wavelen < high_wavelen {
                    1.0
                } else if wavelen > low_wavelen {
                    self.factor
                } else {
                    let smooth = (self.original_max_position_embeddings as f32 / wavelen
                        - self.low_freq_factor)
                        / (self.high_freq_factor - self.low_freq_factor);
                    1.0 / ((1.0 - smooth) / self.factor + smooth)
                }
            })
            .collect()
    }
}

/// Precomputed cos/sin tables for every position up to the context length.
#[derive(Debug, Clone)]
pub struct RotaryEmbedding {
    cos: Tensor,
    sin: Tensor,
    layout: RopeLayout,
    rotary_dim: usize,
}

impl RotaryEmbedding {
    /// Builds tables for `max_positions` positions of heads of `head_dim`,
    /// with base `theta` and optional per-frequency divisors
    /// (`freq_factors.len() == head_dim / 2`).
    pub fn new(
        head_dim: usize,
        max_positions: usize,
        theta: f32,
        freq_factors: Option<&[f32]>,
        layout: RopeLayout,
        device: &Device,
    ) -> Result<Self> {
        let half = head_dim / 2;
        if let Some(f) = freq_factors {
            if f.len() != half {
                candle_core::bail!(
                    "rope frequency factors have {} entries, expected head_dim/2 = {half}",
                    f.len()
                );
            }
        }
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| {
                let base = 1.0 / theta.powf(2.0 * i as f32 / head_dim as f32);
                base / freq_factors.map_or(1.0, |f| f[i])
            })
            .collect();
        let inv_freq = Tensor::from_vec(inv_freq, (1, half), device)?;
        let pos = Tensor::arange(0u32, max_positions as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((max_positions, 1))?;
        let freqs = pos.broadcast_mul(&inv_freq)?;
        Ok(Self {
            cos: freqs.cos()?,
            sin: freqs.sin()?,
            layout,
            rotary_dim: head_dim,
        })
    }

    /// Largest number of positions the tables cover.
    pub fn max_positions(&self) -> usize {
        self.cos.dims()[0]
    }

    /// The angles of positions `offset..offset + seq` as f32 rows, for the
    /// CPU training ops that rotate inside themselves.
    pub(crate) fn table(&self, offset: usize, seq: usize) -> Result<RopeTable> {
        if offset + seq > self.max_positions() {
            candle_core::bail!(
                "position {} is beyond the rope table ({} positions)",
                offset + seq,
                self.max_positions()
            );
        }
        let rows = |t: &Tensor| -> Result<Arc<[f32]>> {
            Ok(t.narrow(0, offset, seq)?
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?
                .into())
        };
        Ok(RopeTable {
            cos: rows(&self.cos)?,
            sin: rows(&self.sin)?,
            layout: self.layout,
            seq,
        })
    }

    /// Head width the tables rotate.
    pub fn head_dim(&self) -> usize {
        self.rotary_dim
    }

    /// Rotates `x` of shape `(batch, heads, seq, head_dim)` whose first token
    /// sits at position `offset`.
    pub fn apply(&self, x: &Tensor, offset: usize) -> Result<Tensor> {
        let (_, _, seq, dim) = x.dims4()?;
        if dim != self.rotary_dim {
            candle_core::bail!("rope built for head_dim {} got {dim}", self.rotary_dim);
        }
        if offset + seq > self.max_positions() {
            candle_core::bail!(
                "position {} is beyond the rope table ({} positions)",
                offset + seq,
                self.max_positions()
            );
        }
        let cos = self.cos.narrow(0, offset, seq)?.to_dtype(x.dtype())?;
        let sin = self.sin.narrow(0, offset, seq)?.to_dtype(x.dtype())?;
        let x = x.contiguous()?;
        if fused_training(&x) {
            // Training on the CPU: one op whose backward pass is the
            // rotation by the opposite angles.
            return x.apply_op1(RopeOp {
                table: self.table(offset, seq)?,
                inverse: false,
            });
        }
        // candle's fused kernels have no backward pass; training off the CPU
        // takes the composed (differentiable) formulation.
        match (self.layout, x.track_op()) {
            (RopeLayout::Interleaved, false) => candle_nn::rotary_emb::rope_i(&x, &cos, &sin),
            (RopeLayout::Halves, false) => candle_nn::rotary_emb::rope(&x, &cos, &sin),
            (RopeLayout::Interleaved, true) => candle_nn::rotary_emb::rope_i_slow(&x, &cos, &sin),
            (RopeLayout::Halves, true) => candle_nn::rotary_emb::rope_slow(&x, &cos, &sin),
        }
    }
}

/// The cos/sin rows of `seq` consecutive positions (`(seq, head_dim / 2)`
/// each) and the pair layout: what rotating one head vector needs.
#[derive(Debug, Clone)]
pub(crate) struct RopeTable {
    cos: Arc<[f32]>,
    sin: Arc<[f32]>,
    layout: RopeLayout,
    seq: usize,
}

impl RopeTable {
    /// Positions covered.
    pub(crate) fn seq(&self) -> usize {
        self.seq
    }

    /// Head width rotated.
    pub(crate) fn head_dim(&self) -> usize {
        2 * self.cos.len() / self.seq.max(1)
    }

    /// Rotates one head vector `x` by the angles of table row `t` (or by
    /// their opposites, `inverse`: the backward pass) into `y`.
    pub(crate) fn rotate(&self, t: usize, x: &[f32], y: &mut [f32], inverse: bool) {
        let half = x.len() / 2;
        let cos = &self.cos[t * half..(t + 1) * half];
        let sin = &self.sin[t * half..(t + 1) * half];
        let sign = if inverse { -1.0 } else { 1.0 };
        for i in 0..half {
            let (c, s) = (cos[i], sign * sin[i]);
            let (a, b) = match self.layout {
                RopeLayout::Interleaved => (2 * i, 2 * i + 1),
                RopeLayout::Halves => (i, i + half),
            };
            y[a] = x[a] * c - x[b] * s;
            y[b] = x[a] * s + x[b] * c;
        }
    }
}

/// Rotation of `(batch, heads, seq, head_dim)` by the angles of `seq`
/// consecutive positions, or by their opposites (`inverse`, the backward
/// pass).
struct RopeOp {
    table: RopeTable,
    inverse: bool,
}

impl CustomOp1 for RopeOp {
    fn name(&self) -> &'static str {
        "rope-train"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let xs = f32_slice(storage, layout, self.name())?;
        let (_, _, seq, dim) = layout.shape().dims4()?;
        if seq != self.table.seq() || self.table.head_dim() != dim || dim % 2 != 0 {
            candle_core::bail!(
                "{}: input {:?} does not match the table",
                self.name(),
                layout.dims()
            );
        }
        let mut ys = vec![0f32; xs.len()];
        ys.par_chunks_mut(dim)
            .zip(xs.par_chunks(dim))
            .enumerate()
            .for_each(|(row, (y, x))| self.table.rotate(row % seq, x, y, self.inverse));
        Ok((CpuStorage::F32(ys), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let inverse = Self {
            table: self.table.clone(),
            inverse: !self.inverse,
        };
        Ok(Some(grad_res.contiguous()?.apply_op1_no_bwd(&inverse)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::testing::assert_agree;

    /// Rotating by position p then reading the dot product with a vector at
    /// position q depends only on p - q: the defining property of RoPE.
    #[test]
    fn relative_positions_only() -> Result<()> {
        let dev = Device::Cpu;
        for layout in [RopeLayout::Interleaved, RopeLayout::Halves] {
            let rope = RotaryEmbedding::new(8, 64, 10000.0, None, layout, &dev)?;
            let q = Tensor::randn(0f32, 1.0, (1, 1, 1, 8), &dev)?;
            let k = Tensor::randn(0f32, 1.0, (1, 1, 1, 8), &dev)?;
            let dot = |pq: usize, pk: usize| -> Result<f32> {
                let a = rope.apply(&q, pq)?.flatten_all()?;
                let b = rope.apply(&k, pk)?.flatten_all()?;
                (a * b)?.sum_all()?.to_scalar::<f32>()
            };
            let d1 = dot(10, 7)?;
            let d2 = dot(30, 27)?;
            assert!((d1 - d2).abs() < 1e-4, "{layout:?}: {d1} vs {d2}");
        }
        Ok(())
    }

    /// The training op agrees with candle's composed formulation of both
    /// layouts in value and in the input gradient, at an offset.
    #[test]
    fn training_op_matches_composed_gradients() -> Result<()> {
        let dev = Device::Cpu;
        for layout in [RopeLayout::Interleaved, RopeLayout::Halves] {
            let rope = RotaryEmbedding::new(8, 32, 10000.0, None, layout, &dev)?;
            let x = Tensor::randn(0f32, 1.0, (2, 3, 5, 8), &dev)?;
            let (offset, seq) = (4, 5);
            let cos = rope.cos.narrow(0, offset, seq)?;
            let sin = rope.sin.narrow(0, offset, seq)?;
            let composed = |t: &[Tensor]| match layout {
                RopeLayout::Interleaved => candle_nn::rotary_emb::rope_i_slow(&t[0], &cos, &sin),
                RopeLayout::Halves => candle_nn::rotary_emb::rope_slow(&t[0], &cos, &sin),
            };
            assert_agree(
                &[x],
                &|t: &[Tensor]| rope.apply(&t[0], offset),
                &composed,
                1e-5,
            )?;
        }
        Ok(())
    }

    #[test]
    fn llama3_factors_bounds() {
        let s = Llama3Scaling {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192,
        };
        let f = s.freq_factors(64, 500000.0);
        assert_eq!(f[0], 1.0);
        assert_eq!(*f.last().unwrap(), 8.0);
        assert!(f.iter().all(|&x| (1.0..=8.0).contains(&x)));
    }

    #[test]
    fn out_of_range_is_an_error() {
        let rope =
            RotaryEmbedding::new(8, 4, 10000.0, None, RopeLayout::Halves, &Device::Cpu).unwrap();
        let x = Tensor::zeros((1, 1, 2, 8), DType::F32, &Device::Cpu).unwrap();
        assert!(rope.apply(&x, 3).is_err());
    }
}
