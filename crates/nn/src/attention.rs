//! Scaled dot-product attention with grouped key/value heads.

use candle_core::{DType, Device, Tensor, D};

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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn mask_with_offset() -> Result<()> {
        let m = causal_mask(2, 3, &Device::Cpu)?.to_vec2::<f32>()?;
        assert_eq!(m[0][3], 0.0);
        assert!(m[0][4].is_infinite());
        assert_eq!(m[1][4], 0.0);
        Ok(())
    }
}
