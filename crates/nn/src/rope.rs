//! Rotary position embeddings.

use candle_core::{DType, Device, Tensor};

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
        // The fused kernels have no backward pass; training takes the
        // composed (differentiable) formulation.
        match (self.layout, x.track_op()) {
            (RopeLayout::Interleaved, false) => candle_nn::rotary_emb::rope_i(&x, &cos, &sin),
            (RopeLayout::Halves, false) => candle_nn::rotary_emb::rope(&x, &cos, &sin),
            (RopeLayout::Interleaved, true) => candle_nn::rotary_emb::rope_i_slow(&x, &cos, &sin),
            (RopeLayout::Halves, true) => candle_nn::rotary_emb::rope_slow(&x, &cos, &sin),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
