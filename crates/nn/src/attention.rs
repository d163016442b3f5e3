//! Scaled dot-product attention with grouped key/value heads.

use candle_core::{
    CpuStorage, CustomOp3, DType, Device, InplaceOp1, InplaceOp2, Layout, Shape, Tensor, D,
};
use rayon::prelude::*;

use crate::cpu::{f32_slice, f32_slice_mut, into_storage, tensor_of};
use crate::Result;

/// Additive causal mask of shape `(seq, offset + seq)` for `seq` new tokens
/// whose first one sits at position `offset`: 0 where a query may look,
/// `-inf` where it may not.
pub fn causal_mask(seq: usize, offset: usize, device: &Device) -> Result<Tensor> {
    let total = offset + seq;
    let mask: Vec<f32> = (0..seq)
        .flat_map(|i| {
            (0..total).map(move |j| {
                if j <= offset + i {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    Tensor::from_vec(mask, (seq, total), device)
}

/// Precision of the attention inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttentionPrecision {
    /// Everything in f32.
    #[default]
    F32,
    /// Queries and attention weights rounded to f16 before the products
    /// (accumulation stays f32); keys and values must already be rounded
    /// (the decoder rounds them once, when they enter the cache). This is
    /// what llama.cpp's CPU path computes with its default f16 KV cache, so
    /// greedy decoding agrees with it.
    F16Inputs,
}

/// Rounds an f32 tensor to the nearest f16 values (kept as f32).
pub fn round_f16(t: &Tensor) -> Result<Tensor> {
    match t.dtype() {
        DType::F32 => t.to_dtype(DType::F16)?.to_dtype(DType::F32),
        DType::F16 => t.to_dtype(DType::F32),
        _ => Ok(t.clone()),
    }
}

/// Attention for queries `(b, heads, seq, d)` over keys and values
/// `(b, kv_heads, len, d)` where `heads` is a multiple of `kv_heads`.
///
/// The query heads that share a key/value head are folded into the sequence
/// axis, so keys and values are never copied per query head. `mask` is an
/// additive `(seq, len)` mask (see [`causal_mask`]) or `None` when every
/// query may see every key (a single decoded token).
pub fn grouped_query_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: f64,
) -> Result<Tensor> {
    grouped_query_attention_with(q, k, v, mask, scale, AttentionPrecision::F32)
}

/// [`grouped_query_attention`] with a chosen input precision.
pub fn grouped_query_attention_with(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: f64,
    precision: AttentionPrecision,
) -> Result<Tensor> {
    let f16 = precision == AttentionPrecision::F16Inputs;
    let q = if f16 { round_f16(q)? } else { q.clone() };
    let q = &q;
    let (b, heads, seq, d) = q.dims4()?;
    let (_, kv_heads, len, _) = k.dims4()?;
    if !heads.is_multiple_of(kv_heads) {
        candle_core::bail!("{heads} query heads cannot share {kv_heads} key/value heads");
    }
    let rep = heads / kv_heads;
    let q = q.contiguous()?.reshape((b, kv_heads, rep * seq, d))?;
    let mut att = (q.matmul(&k.t()?)? * scale)?;
    if let Some(mask) = mask {
        let mask = if rep > 1 {
            mask.unsqueeze(0)?
                .broadcast_as((rep, seq, len))?
                .reshape((rep * seq, len))?
        } else {
            mask.clone()
        };
        att = att.broadcast_add(&mask.to_dtype(att.dtype())?)?;
    }
    let att = if att.dtype() == DType::F32 && !att.track_op() {
        candle_nn::ops::softmax_last_dim(&att)?
    } else {
        candle_nn::ops::softmax(&att, D::Minus1)?
    };
    let att = if f16 { round_f16(&att)? } else { att };
    att.matmul(&v.contiguous()?)?.reshape((b, heads, seq, d))
}

/// Attention of whole sequences from position 0, for passes without a
/// cache: `mask` is [`causal_mask`]`(seq, 0)` (`None` only for one token).
///
/// When the inputs are part of a graph (training) on the CPU, this is one
/// op with its own backward pass: candle's autograd through the composed
/// formulation runs a separate backward step (and gradient buffers) for the
/// scaling, the mask, each stage of the softmax and both products, and keeps
/// every `(rows, seq)` intermediate alive until the backward pass; the op
/// keeps nothing and recomputes the weights. Otherwise it is exactly
/// [`grouped_query_attention`].
pub fn causal_self_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: f64,
) -> Result<Tensor> {
    let (_, heads, seq, d) = q.dims4()?;
    let (_, kv_heads, len, _) = k.dims4()?;
    let training = [q, k, v].iter().any(|t| t.track_op())
        && [q, k, v]
            .iter()
            .all(|t| t.dtype() == DType::F32 && t.device().is_cpu());
    let causal = mask.is_some_and(|m| m.dims() == [seq, len]) || seq == 1;
    if training && causal && len == seq && heads.is_multiple_of(kv_heads) {
        return q.contiguous()?.apply_op3(
            &k.contiguous()?,
            &v.contiguous()?,
            CausalAttentionOp {
                scale: scale as f32,
                rep: heads / kv_heads,
                head_dim: d,
            },
        );
    }
    grouped_query_attention(q, k, v, mask, scale)
}

/// `softmax(q kᵀ·scale + causal mask)·v` over q `(b, heads, seq, d)` and
/// k, v `(b, kv_heads, seq, d)`, differentiable with respect to all three.
/// As in [`grouped_query_attention_with`], the `rep` query heads sharing a
/// key/value head are folded into rows, so the key and value gradients sum
/// over them. The backward pass recomputes the attention weights.
struct CausalAttentionOp {
    scale: f32,
    rep: usize,
    head_dim: usize,
}

impl CausalAttentionOp {
    /// Attention weights `(b, kv_heads, rep·seq, seq)` of folded queries
    /// `(b, kv_heads, rep·seq, d)` over keys `(b, kv_heads, seq, d)`.
    fn weights(&self, q: &Tensor, k: &Tensor) -> Result<Tensor> {
        let p = q.matmul(&k.t()?)?;
        p.inplace_op1(&CausalSoftmax { scale: self.scale })?;
        Ok(p)
    }

    /// Queries `(b, heads, seq, d)` folded to `(b, kv_heads, rep·seq, d)`.
    fn fold(&self, q: &Tensor) -> Result<Tensor> {
        let (b, heads, seq, d) = q.dims4()?;
        q.reshape((b, heads / self.rep, self.rep * seq, d))
    }
}

impl CustomOp3 for CausalAttentionOp {
    fn name(&self) -> &'static str {
        "causal-attention-train"
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
        let q = tensor_of(s1, l1, self.name())?;
        let k = tensor_of(s2, l2, self.name())?;
        let v = tensor_of(s3, l3, self.name())?;
        if q.dim(3)? != self.head_dim || k.dims() != v.dims() || k.dim(2)? != q.dim(2)? {
            candle_core::bail!(
                "{}: q {:?} k {:?} v {:?}",
                self.name(),
                q.dims(),
                k.dims(),
                v.dims()
            );
        }
        let p = self.weights(&self.fold(&q)?, &k)?;
        into_storage(&p.matmul(&v)?, q.shape().clone(), self.name())
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (q, k, v) = (self.fold(&q.detach())?, k.detach(), v.detach());
        let g = self.fold(&grad_res.contiguous()?)?;
        let p = self.weights(&q, &k)?;
        let dv = p.t()?.matmul(&g)?;
        // ∂scores·scale, computed in place over ∂p = ∂o·vᵀ.
        let ds = g.matmul(&v.t()?)?;
        ds.inplace_op2(&p, &SoftmaxGrad { scale: self.scale })?;
        let dq = ds.matmul(&k)?.reshape(grad_res.shape())?;
        let dk = ds.t()?.matmul(&q)?;
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}

/// In place over scores `(…, rows, seq)` whose row `r` belongs to query
/// position `r % seq`: `softmax(scores·scale)` over the keys up to that
/// position, 0 after it.
struct CausalSoftmax {
    scale: f32,
}

impl InplaceOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "causal-softmax"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let seq = layout.dims().last().copied().unwrap_or(0);
        if seq == 0 {
            return Ok(());
        }
        let xs = f32_slice_mut(storage, layout, self.name())?;
        xs.par_chunks_mut(seq).enumerate().for_each(|(r, row)| {
            let (live, masked) = row.split_at_mut(r % seq + 1);
            let max = live.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) * self.scale;
            let mut sum = 0f32;
            for x in live.iter_mut() {
                *x = (*x * self.scale - max).exp();
                sum += *x;
            }
            let inv = 1.0 / sum;
            live.iter_mut().for_each(|x| *x *= inv);
            masked.fill(0.0);
        });
        Ok(())
    }
}

/// In place over `∂p` (first operand) given the weights `p`:
/// `scale · p⊙(∂p − rowsum(∂p⊙p))`, the gradient of the scaled scores.
struct SoftmaxGrad {
    scale: f32,
}

impl InplaceOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "softmax-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        if l1.shape() != l2.shape() {
            candle_core::bail!(
                "{}: shapes {:?} and {:?}",
                self.name(),
                l1.dims(),
                l2.dims()
            );
        }
        let n = l1.dims().last().copied().unwrap_or(0);
        if n == 0 {
            return Ok(());
        }
        let ps = f32_slice(s2, l2, self.name())?;
        let dps = f32_slice_mut(s1, l1, self.name())?;
        dps.par_chunks_mut(n)
            .zip(ps.par_chunks(n))
            .for_each(|(dp, p)| {
                let dot: f32 = dp.iter().zip(p).map(|(a, b)| a * b).sum();
                for (dp, &p) in dp.iter_mut().zip(p) {
                    *dp = self.scale * p * (*dp - dot);
                }
            });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::testing::assert_agree;

    /// The folded grouped computation equals plain per-head attention with
    /// keys and values repeated for every query head.
    #[test]
    fn grouped_equals_repeated_heads() -> Result<()> {
        let dev = Device::Cpu;
        let (b, h, kvh, s, d) = (1, 6, 2, 5, 8);
        let q = Tensor::randn(0f32, 1.0, (b, h, s, d), &dev)?;
        let k = Tensor::randn(0f32, 1.0, (b, kvh, s, d), &dev)?;
        let v = Tensor::randn(0f32, 1.0, (b, kvh, s, d), &dev)?;
        let mask = causal_mask(s, 0, &dev)?;
        let got = grouped_query_attention(&q, &k, &v, Some(&mask), 0.5)?;
        let rep = h / kvh;
        let kr = k
            .unsqueeze(2)?
            .broadcast_as((b, kvh, rep, s, d))?
            .reshape((b, h, s, d))?;
        let vr = v
            .unsqueeze(2)?
            .broadcast_as((b, kvh, rep, s, d))?
            .reshape((b, h, s, d))?;
        let att = (q.matmul(&kr.t()?)? * 0.5)?.broadcast_add(&mask)?;
        let want = candle_nn::ops::softmax(&att, D::Minus1)?.matmul(&vr)?;
        let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "diff {diff}");
        Ok(())
    }

    /// The training op agrees with the composed grouped attention in value
    /// and in the gradients of q, k and v, with and without shared heads.
    #[test]
    fn training_op_matches_composed_gradients() -> Result<()> {
        let dev = Device::Cpu;
        for (h, kvh) in [(6, 2), (3, 3), (4, 1)] {
            let (b, s, d) = (2, 7, 8);
            let q = Tensor::randn(0f32, 1.0, (b, h, s, d), &dev)?;
            let k = Tensor::randn(0f32, 1.0, (b, kvh, s, d), &dev)?;
            let v = Tensor::randn(0f32, 1.0, (b, kvh, s, d), &dev)?;
            let mask = causal_mask(s, 0, &dev)?;
            let scale = 1.0 / (d as f64).sqrt();
            assert_agree(
                &[q, k, v],
                &|t: &[Tensor]| causal_self_attention(&t[0], &t[1], &t[2], Some(&mask), scale),
                &|t: &[Tensor]| grouped_query_attention(&t[0], &t[1], &t[2], Some(&mask), scale),
                1e-5,
            )?;
        }
        Ok(())
    }

    /// One token (no mask) sees only itself.
    #[test]
    fn training_op_single_token() -> Result<()> {
        let dev = Device::Cpu;
        let q = Tensor::randn(0f32, 1.0, (1, 4, 1, 8), &dev)?;
        let k = Tensor::randn(0f32, 1.0, (1, 2, 1, 8), &dev)?;
        let v = Tensor::randn(0f32, 1.0, (1, 2, 1, 8), &dev)?;
        assert_agree(
            &[q, k, v],
            &|t: &[Tensor]| causal_self_attention(&t[0], &t[1], &t[2], None, 0.3),
            &|t: &[Tensor]| grouped_query_attention(&t[0], &t[1], &t[2], None, 0.3),
            1e-5,
        )
    }

    #[test]
    fn mask_with_offset() -> Result<()> {
        let m = causal_mask(2, 3, &Device::Cpu)?.to_vec2::<f32>()?;
        assert_eq!(m[0][3], 0.0);
        assert!(m[0][4].is_infinite());
        assert_eq!(m[1][4], 0.0);
        Ok(())
    }
}
