//! A preallocated key/value cache that can also be rolled back (speculative
//! decoding rejects drafted tokens by truncating).

use candle_core::{DType, Device, Tensor};

use crate::Result;

/// Keys and values of one attention layer for one sequence, stored as
/// `(batch, kv_heads, capacity, head_dim)` and grown by doubling.
#[derive(Debug, Clone)]
pub struct KvCache {
    k: Option<Tensor>,
    v: Option<Tensor>,
    len: usize,
    max_len: usize,
}

impl KvCache {
    /// An empty cache that refuses to grow beyond `max_len` positions.
    pub fn new(max_len: usize) -> Self {
        Self {
            k: None,
            v: None,
            len: 0,
            max_len,
        }
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets everything (keeps the allocation).
    pub fn reset(&mut self) {
        self.len = 0;
    }

    /// Keeps only the first `len` positions.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    fn capacity(&self) -> usize {
        self.k.as_ref().map_or(0, |k| k.dims()[2])
    }

    fn grow(&mut self, needed: usize, like: &Tensor) -> Result<()> {
        let cap = self.capacity();
        if needed <= cap {
            return Ok(());
        }
        let (b, h, _, d) = like.dims4()?;
        let new_cap = needed.max(cap * 2).max(256).min(self.max_len.max(needed));
        let dev: Device = like.device().clone();
        let dtype: DType = like.dtype();
        let nk = Tensor::zeros((b, h, new_cap, d), dtype, &dev)?;
        let nv = Tensor::zeros((b, h, new_cap, d), dtype, &dev)?;
        if let (Some(k), Some(v)) = (&self.k, &self.v) {
            if self.len > 0 {
                nk.slice_set(&k.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                nv.slice_set(&v.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
            }
        }
        self.k = Some(nk);
        self.v = Some(nv);
        Ok(())
    }

    /// Appends `k`, `v` of shape `(batch, kv_heads, seq, head_dim)` and
    /// returns views of everything cached so far.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let seq = k.dims4()?.2;
        let needed = self.len + seq;
        if needed > self.max_len {
            candle_core::bail!(
                "the KV cache holds at most {} positions, {} requested",
                self.max_len,
                needed
            );
        }
        self.grow(needed, k)?;
        let (ck, cv) = match (&self.k, &self.v) {
            (Some(ck), Some(cv)) => (ck, cv),
            _ => candle_core::bail!("kv cache not allocated"),
        };
        ck.slice_set(&k.contiguous()?, 2, self.len)?;
        cv.slice_set(&v.contiguous()?, 2, self.len)?;
        self.len = needed;
        Ok((ck.narrow(2, 0, self.len)?, cv.narrow(2, 0, self.len)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_truncate_and_regrow() -> Result<()> {
        let dev = Device::Cpu;
        let mut c = KvCache::new(1000);
        let a = Tensor::ones((1, 2, 3, 4), DType::F32, &dev)?;
        let b = (Tensor::ones((1, 2, 300, 4), DType::F32, &dev)? * 2.0)?;
        c.append(&a, &a)?;
        let (k, _) = c.append(&b, &b)?;
        assert_eq!(k.dims(), &[1, 2, 303, 4]);
        assert_eq!(
            k.sum_all()?.to_scalar::<f32>()?,
            (2 * 3 * 4 + 2 * 300 * 4 * 2) as f32
        );
        c.truncate(3);
        let (k, v) = c.append(&a, &a)?;
        assert_eq!(k.dims(), &[1, 2, 6, 4]);
        assert_eq!(v.sum_all()?.to_scalar::<f32>()?, 48.0);
        assert!(c
            .append(&Tensor::zeros((1, 2, 995, 4), DType::F32, &dev)?, &a)
            .is_err());
        Ok(())
    }
}
