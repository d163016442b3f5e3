//! Scaled dot-product attention with grouped key/value heads.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use crate::cpu::{all_cpu_f32, f32_slice, with_f32};
use crate::segments::Segments;
use crate::sgemm::{self, MatRef};
use crate::vmath;
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
/// additive `(seq, len)` mask (see [`causal_mask`]), one `(b, seq, len)`
/// mask per sequence (see [`Segments::mask`]), or `None` when every query
/// may see every key (a single decoded token).
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
        let mask = if mask.rank() == 3 {
            // One mask per sequence (packed rows): `(b, 1, rep·seq, len)`.
            mask.unsqueeze(1)?
                .broadcast_as((b, rep, seq, len))?
                .reshape((b, 1, rep * seq, len))?
        } else if rep > 1 {
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
    let seq = q.dims4()?.2;
    let len = k.dims4()?.2;
    let causal = mask.is_some_and(|m| m.dims() == [seq, len]) || seq == 1;
    if training_op_applies(q, k, v) && causal {
        return apply_training_op(q, k, v, scale, None);
    }
    grouped_query_attention(q, k, v, mask, scale)
}

/// [`causal_self_attention`] over packed rows: each token attends only to
/// the earlier tokens of its own example (`segments`). On the CPU in
/// training the same op with the example starts; elsewhere the composed
/// attention with [`Segments::mask`].
pub fn packed_self_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    segments: &Segments,
    scale: f64,
) -> Result<Tensor> {
    let (b, _, seq, _) = q.dims4()?;
    if (segments.rows(), segments.seq()) != (b, seq) {
        candle_core::bail!(
            "packed attention: segments of {}×{} tokens for queries {:?}",
            segments.rows(),
            segments.seq(),
            q.dims()
        );
    }
    if training_op_applies(q, k, v) {
        return apply_training_op(q, k, v, scale, Some(segments.shared_starts()));
    }
    grouped_query_attention(q, k, v, Some(&segments.mask(q.device())?), scale)
}

/// Whether the fused training op takes these inputs: part of a graph, f32
/// on the CPU, whole sequences, key/value heads shared evenly.
fn training_op_applies(q: &Tensor, k: &Tensor, v: &Tensor) -> bool {
    let (Ok((_, heads, seq, _)), Ok((_, kv_heads, len, _))) = (q.dims4(), k.dims4()) else {
        return false;
    };
    [q, k, v].iter().any(|t| t.track_op())
        && all_cpu_f32(&[q, k, v])
        && len == seq
        && heads.is_multiple_of(kv_heads)
}

fn apply_training_op(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    starts: Option<Arc<[u32]>>,
) -> Result<Tensor> {
    let (_, heads, _, d) = q.dims4()?;
    let (_, kv_heads, _, _) = k.dims4()?;
    q.contiguous()?.apply_op3(
        &k.contiguous()?,
        &v.contiguous()?,
        CausalAttentionOp {
            scale: scale as f32,
            rep: heads / kv_heads,
            head_dim: d,
            starts,
        },
    )
}

/// `softmax(q kᵀ·scale + causal mask)·v` over q `(b, heads, seq, d)` and
/// k, v `(b, kv_heads, seq, d)`, differentiable with respect to all three.
/// As in [`grouped_query_attention_with`], the `rep` query heads sharing a
/// key/value head are folded into rows, so the key and value gradients sum
/// over them. Each (sequence, key/value head) group is one task of the
/// rayon pool running its products serially; the backward pass recomputes
/// the attention weights. With `starts` (packed rows, `(b, seq)` example
/// starts) a query sees only the keys of its own example.
struct CausalAttentionOp {
    scale: f32,
    rep: usize,
    head_dim: usize,
    starts: Option<Arc<[u32]>>,
}

/// Shapes of one call: `groups` = batch · kv_heads, each with `rows` =
/// rep · seq folded query rows over `seq` keys of width `d`.
#[derive(Clone, Copy)]
struct Groups {
    groups: usize,
    kv_heads: usize,
    rows: usize,
    seq: usize,
    d: usize,
}

impl CausalAttentionOp {
    fn groups(&self, q: &Layout, k: &Layout, v: &Layout) -> Result<Groups> {
        let (b, heads, seq, d) = q.shape().dims4()?;
        let (kb, kvh, kseq, kd) = k.shape().dims4()?;
        if d != self.head_dim
            || k.dims() != v.dims()
            || (kb, kseq, kd) != (b, seq, d)
            || heads != kvh * self.rep
        {
            candle_core::bail!(
                "causal-attention-train: q {:?} k {:?} v {:?}",
                q.dims(),
                k.dims(),
                v.dims()
            );
        }
        if self.starts.as_ref().is_some_and(|s| s.len() != b * seq) {
            candle_core::bail!(
                "causal-attention-train: example starts do not fit q {:?}",
                q.dims()
            );
        }
        Ok(Groups {
            groups: b * kvh,
            kv_heads: kvh,
            rows: self.rep * seq,
            seq,
            d,
        })
    }

    /// Attention weights `(rows, seq)` of group `group`'s folded queries.
    fn weights(&self, g: Groups, group: usize, q: &[f32], k: &[f32]) -> Result<Vec<f32>> {
        let mut p = vec![0f32; g.rows * g.seq];
        sgemm::matmul_serial(
            MatRef::new(q, g.rows, g.d)?,
            MatRef::new(k, g.seq, g.d)?.t(),
            &mut p,
        )?;
        match &self.starts {
            Some(starts) => {
                let row = group / g.kv_heads;
                packed_softmax_rows(&mut p, &starts[row * g.seq..][..g.seq], self.scale);
            }
            None => causal_softmax_rows(&mut p, g.seq, self.scale),
        }
        Ok(p)
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
        let g = self.groups(l1, l2, l3)?;
        let q = f32_slice(s1, l1, self.name())?;
        let k = f32_slice(s2, l2, self.name())?;
        let v = f32_slice(s3, l3, self.name())?;
        let (qn, kn) = (g.rows * g.d, g.seq * g.d);
        let mut out = vec![0f32; g.groups * qn];
        out.par_chunks_mut(qn)
            .enumerate()
            .try_for_each(|(i, o)| -> Result<()> {
                let p = self.weights(g, i, &q[i * qn..][..qn], &k[i * kn..][..kn])?;
                sgemm::matmul_serial(
                    MatRef::new(&p, g.rows, g.seq)?,
                    MatRef::new(&v[i * kn..][..kn], g.seq, g.d)?,
                    o,
                )
            })?;
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (q, k, v) = (q.contiguous()?, k.contiguous()?, v.contiguous()?);
        let grad = grad_res.to_dtype(DType::F32)?.contiguous()?;
        let (lq, lk) = (q.layout().clone(), k.layout().clone());
        let g = self.groups(&lq, &lk, v.layout())?;
        let (qn, kn) = (g.rows * g.d, g.seq * g.d);
        let mut dq = vec![0f32; g.groups * qn];
        let mut dk = vec![0f32; g.groups * kn];
        let mut dv = vec![0f32; g.groups * kn];
        with_f32(&q, self.name(), |qs| {
            with_f32(&k, self.name(), |ks| {
                with_f32(&v, self.name(), |vs| {
                    with_f32(&grad, self.name(), |gs| {
                        dq.par_chunks_mut(qn)
                            .zip(dk.par_chunks_mut(kn))
                            .zip(dv.par_chunks_mut(kn))
                            .enumerate()
                            .try_for_each(|(i, ((dq, dk), dv))| {
                                let qi = MatRef::new(&qs[i * qn..][..qn], g.rows, g.d)?;
                                let ki = MatRef::new(&ks[i * kn..][..kn], g.seq, g.d)?;
                                let vi = MatRef::new(&vs[i * kn..][..kn], g.seq, g.d)?;
                                let gi = MatRef::new(&gs[i * qn..][..qn], g.rows, g.d)?;
                                let p = self.weights(g, i, qi.data(), ki.data())?;
                                let pm = MatRef::new(&p, g.rows, g.seq)?;
                                sgemm::matmul_serial(pm.t(), gi, dv)?;
                                // ∂scores·scale, computed in place over ∂p = ∂o·vᵀ.
                                let mut ds = vec![0f32; g.rows * g.seq];
                                sgemm::matmul_serial(gi, vi.t(), &mut ds)?;
                                softmax_grad_rows(&mut ds, &p, g.seq, self.scale);
                                let dsm = MatRef::new(&ds, g.rows, g.seq)?;
                                sgemm::matmul_serial(dsm, ki, dq)?;
                                sgemm::matmul_serial(dsm.t(), qi, dk)
                            })
                    })
                })
            })
        })?;
        let dev = q.device();
        Ok((
            Some(Tensor::from_vec(dq, q.shape(), dev)?),
            Some(Tensor::from_vec(dk, k.shape(), dev)?),
            Some(Tensor::from_vec(dv, v.shape(), dev)?),
        ))
    }
}

crate::dispatch! {
    /// In place over rows of `seq` scores, row `r` the query at position
    /// `r % seq` (query heads folded into rows): `softmax(scores·scale)` over
    /// the keys up to that position, 0 after it.
    fn causal_softmax_rows(p: &mut [f32], seq: usize, scale: f32) {
        for (r, row) in p.chunks_mut(seq).enumerate() {
            let (live, masked) = row.split_at_mut(r % seq + 1);
            let max = vmath::max(live);
            let inv = 1.0 / vmath::exp_in_place(live, max, scale);
            live.iter_mut().for_each(|x| *x *= inv);
            masked.fill(0.0);
        }
    }
}

crate::dispatch! {
    /// [`causal_softmax_rows`] for packed rows: row `r`'s query at position
    /// `i = r % seq` sees the keys `starts[i] ..= i` (its own example).
    fn packed_softmax_rows(p: &mut [f32], starts: &[u32], scale: f32) {
        let seq = starts.len();
        for (r, row) in p.chunks_mut(seq).enumerate() {
            let i = r % seq;
            let (before, rest) = row.split_at_mut(starts[i] as usize);
            let (live, masked) = rest.split_at_mut(i + 1 - before.len());
            before.fill(0.0);
            let max = vmath::max(live);
            let inv = 1.0 / vmath::exp_in_place(live, max, scale);
            live.iter_mut().for_each(|x| *x *= inv);
            masked.fill(0.0);
        }
    }
}

crate::dispatch! {
    /// In place over rows of `∂p` given the weights `p`:
    /// `scale · p⊙(∂p − rowsum(∂p⊙p))`, the gradient of the scaled scores.
    fn softmax_grad_rows(dp: &mut [f32], p: &[f32], seq: usize, scale: f32) {
        for (dp, p) in dp.chunks_mut(seq).zip(p.chunks(seq)) {
            let dot: f32 = dp.iter().zip(p).map(|(a, b)| a * b).sum();
            for (dp, &p) in dp.iter_mut().zip(p) {
                *dp = scale * p * (*dp - dot);
            }
        }
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

    /// Packed rows: the training op agrees with the composed attention
    /// under the per-row mask, gradients included.
    #[test]
    fn packed_training_op_matches_composed_gradients() -> Result<()> {
        let dev = Device::Cpu;
        let (b, h, kvh, s, d) = (2, 6, 2, 7, 8);
        let segments = Segments::from_boundaries(&[&[3, 5], &[]], s)?;
        let mask = segments.mask(&dev)?;
        let q = Tensor::randn(0f32, 1.0, (b, h, s, d), &dev)?;
        let k = Tensor::randn(0f32, 1.0, (b, kvh, s, d), &dev)?;
        let v = Tensor::randn(0f32, 1.0, (b, kvh, s, d), &dev)?;
        assert_agree(
            &[q, k, v],
            &|t: &[Tensor]| packed_self_attention(&t[0], &t[1], &t[2], &segments, 0.35),
            &|t: &[Tensor]| grouped_query_attention(&t[0], &t[1], &t[2], Some(&mask), 0.35),
            1e-5,
        )
    }

    /// A packed example's outputs are those of the example alone.
    #[test]
    fn packed_examples_do_not_see_each_other() -> Result<()> {
        let dev = Device::Cpu;
        let (h, kvh, s, d) = (4, 2, 6, 8);
        let segments = Segments::from_boundaries(&[&[2]], s)?;
        let q = Tensor::randn(0f32, 1.0, (1, h, s, d), &dev)?;
        let k = Tensor::randn(0f32, 1.0, (1, kvh, s, d), &dev)?;
        let v = Tensor::randn(0f32, 1.0, (1, kvh, s, d), &dev)?;
        let tracked = |t: &Tensor| -> Result<Tensor> {
            Ok(candle_core::Var::from_tensor(t)?.as_tensor().clone())
        };
        let (qt, kt, vt) = (tracked(&q)?, tracked(&k)?, tracked(&v)?);
        let packed = packed_self_attention(&qt, &kt, &vt, &segments, 0.35)?;
        let mut alone = Vec::new();
        for (start, len) in [(0, 2), (2, 4)] {
            let part = |t: &Tensor| t.narrow(2, start, len);
            let mask = causal_mask(len, 0, &dev)?;
            alone.push(grouped_query_attention(
                &part(&q)?,
                &part(&k)?,
                &part(&v)?,
                Some(&mask),
                0.35,
            )?);
        }
        let alone = Tensor::cat(&alone, 2)?;
        let diff = (packed - alone)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "diff {diff}");
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
