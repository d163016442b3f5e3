//! Scaled dot-product attention with grouped key/value heads.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor, D};

use crate::attention_op::AttentionOp;
use crate::cpu::all_cpu_f32;
use crate::rope::RotaryEmbedding;
use crate::segments::Segments;
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

/// The training op over `(b, heads, seq, d)` inputs: it reads them as the
/// `(b, seq, heads, d)` views their transposes are, and its output,
/// transposed back, is the `(b, heads, seq, d)` the callers expect (whose
/// own transpose to `(b, seq, heads·d)` is then free).
fn apply_training_op(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    starts: Option<Arc<[u32]>>,
) -> Result<Tensor> {
    let (_, heads, _, d) = q.dims4()?;
    let (_, kv_heads, _, _) = k.dims4()?;
    let op = AttentionOp {
        scale: scale as f32,
        head_dim: d,
        rep: heads / kv_heads,
        rope: None,
        starts,
    };
    let seq_major = |t: &Tensor| t.transpose(1, 2);
    seq_major(q)?
        .apply_op3(&seq_major(k)?, &seq_major(v)?, op)?
        .transpose(1, 2)
}

/// Causal self-attention of whole sequences from position 0 with RoPE
/// applied first, over the projections' own layout: q `(b, seq, heads·d)`,
/// k and v `(b, seq, kv_heads·d)` (`d` the rope's head width; views with a
/// contiguous last axis, such as narrowed slices of a fused projection),
/// returning `(b, seq, heads·d)`; with `segments`, packed rows. In training
/// on the CPU one op that rotates inside and reads and writes this layout,
/// so the graph keeps no rotated, transposed or reshaped copies; `None`
/// where that op does not apply (the caller then composes RoPE and
/// attention itself).
pub fn fused_rotary_self_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    rope: &RotaryEmbedding,
    segments: Option<&Segments>,
    scale: f64,
) -> Result<Option<Tensor>> {
    let d = rope.head_dim();
    let (b, seq, width) = q.dims3()?;
    let (_, kseq, kv_width) = k.dims3()?;
    let applies = [q, k, v].iter().any(|t| t.track_op())
        && all_cpu_f32(&[q, k, v])
        && kseq == seq
        && width % d == 0
        && kv_width % d == 0
        && kv_width > 0
        && (width / d).is_multiple_of(kv_width / d)
        && [q, k, v].iter().all(|t| t.stride()[2] == 1);
    if !applies {
        return Ok(None);
    }
    if let Some(s) = segments {
        if (s.rows(), s.seq()) != (b, seq) {
            candle_core::bail!(
                "packed attention: segments of {}×{} tokens for queries {:?}",
                s.rows(),
                s.seq(),
                q.dims()
            );
        }
    }
    let op = AttentionOp {
        scale: scale as f32,
        head_dim: d,
        rep: width / kv_width,
        rope: Some(rope.table(0, seq)?),
        starts: segments.map(Segments::shared_starts),
    };
    Ok(Some(q.apply_op3(k, v, op)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::testing::{assert_agree, assert_agree_in_nodes};

    /// Nodes of the old-layout training path: three inputs, their
    /// transposes, the op and the transpose back.
    const TRANSPOSED_OP_NODES: usize = 8;

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
            assert_agree_in_nodes(
                &[q, k, v],
                TRANSPOSED_OP_NODES,
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
        assert_agree_in_nodes(
            &[q, k, v],
            TRANSPOSED_OP_NODES,
            &|t: &[Tensor]| packed_self_attention(&t[0], &t[1], &t[2], &segments, 0.35),
            &|t: &[Tensor]| grouped_query_attention(&t[0], &t[1], &t[2], Some(&mask), 0.35),
            1e-5,
        )
    }

    /// The rotary op over the projections' layout equals the split into
    /// heads, RoPE, the composed attention and the merge of the heads — values and the
    /// gradients of the unrotated q, k and v, causal and packed, both RoPE
    /// layouts, shared and unshared heads.
    #[test]
    fn fused_rotary_attention_matches_rope_then_attention() -> Result<()> {
        use crate::rope::{RopeLayout, RotaryEmbedding};
        let dev = Device::Cpu;
        let (b, s, d) = (2, 7, 8);
        let segments = Segments::from_boundaries(&[&[3, 5], &[]], s)?;
        for layout in [RopeLayout::Interleaved, RopeLayout::Halves] {
            let rope = RotaryEmbedding::new(d, 16, 10000.0, None, layout, &dev)?;
            for ((h, kvh), packed) in [((6, 2), false), ((3, 3), false), ((4, 1), true)] {
                let q = Tensor::randn(0f32, 1.0, (b, s, h * d), &dev)?;
                let k = Tensor::randn(0f32, 1.0, (b, s, kvh * d), &dev)?;
                let v = Tensor::randn(0f32, 1.0, (b, s, kvh * d), &dev)?;
                let seg = packed.then_some(&segments);
                let mask = match seg {
                    Some(seg) => seg.mask(&dev)?,
                    None => causal_mask(s, 0, &dev)?,
                };
                let composed = |t: &[Tensor]| -> Result<Tensor> {
                    let heads_first = |t: &Tensor| t.reshape((b, s, (), d))?.transpose(1, 2);
                    let q = rope.apply(&heads_first(&t[0])?, 0)?;
                    let k = rope.apply(&heads_first(&t[1])?, 0)?;
                    let v = heads_first(&t[2])?;
                    grouped_query_attention(&q, &k, &v, Some(&mask), 0.35)?
                        .transpose(1, 2)?
                        .reshape((b, s, h * d))
                };
                let fused = |t: &[Tensor]| -> Result<Tensor> {
                    fused_rotary_self_attention(&t[0], &t[1], &t[2], &rope, seg, 0.35)?
                        .ok_or_else(|| candle_core::Error::Msg("fused op not taken".into()))
                };
                assert_agree(&[q, k, v], &fused, &composed, 1e-5)?;
            }
        }
        Ok(())
    }

    /// Sequences longer than one query block of the op (ragged last block,
    /// packed examples crossing block edges) agree with the composed
    /// attention too.
    #[test]
    fn several_query_blocks_match_composed_gradients() -> Result<()> {
        let dev = Device::Cpu;
        let (b, h, kvh, s, d) = (2, 4, 2, 75, 8);
        let segments = Segments::from_boundaries(&[&[20, 40, 41], &[70]], s)?;
        for packed in [false, true] {
            let q = Tensor::randn(0f32, 1.0, (b, h, s, d), &dev)?;
            let k = Tensor::randn(0f32, 1.0, (b, kvh, s, d), &dev)?;
            let v = Tensor::randn(0f32, 1.0, (b, kvh, s, d), &dev)?;
            let mask = if packed {
                segments.mask(&dev)?
            } else {
                causal_mask(s, 0, &dev)?
            };
            let fused = |t: &[Tensor]| {
                if packed {
                    packed_self_attention(&t[0], &t[1], &t[2], &segments, 0.35)
                } else {
                    causal_self_attention(&t[0], &t[1], &t[2], Some(&mask), 0.35)
                }
            };
            assert_agree_in_nodes(
                &[q, k, v],
                TRANSPOSED_OP_NODES,
                &fused,
                &|t: &[Tensor]| grouped_query_attention(&t[0], &t[1], &t[2], Some(&mask), 0.35),
                1e-4,
            )?;
        }
        Ok(())
    }

    /// Without a graph the rotary op declines (the caller composes).
    #[test]
    fn fused_rotary_attention_is_for_training_only() -> Result<()> {
        use crate::rope::{RopeLayout, RotaryEmbedding};
        let dev = Device::Cpu;
        let rope = RotaryEmbedding::new(8, 16, 10000.0, None, RopeLayout::Halves, &dev)?;
        let q = Tensor::randn(0f32, 1.0, (1, 5, 32), &dev)?;
        let k = Tensor::randn(0f32, 1.0, (1, 5, 16), &dev)?;
        assert!(fused_rotary_self_attention(&q, &k, &k, &rope, None, 0.3)?.is_none());
        Ok(())
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
        assert_agree_in_nodes(
            &[q, k, v],
            TRANSPOSED_OP_NODES,
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
