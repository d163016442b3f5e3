//! Packed rows: several examples concatenated in one training row, each
//! attending only to its own earlier tokens.

use std::sync::{Arc, Mutex};

use candle_core::{Device, Tensor};

use crate::Result;

/// Where each token's example begins, for `rows` packed rows of `seq`
/// tokens: position `i` of a row may attend to positions `start(i) ..= i`.
/// RoPE needs no reset: within one example the query–key angles depend only
/// on the distance, which packing does not change.
#[derive(Debug, Clone)]
pub struct Segments {
    starts: Arc<[u32]>,
    rows: usize,
    seq: usize,
    /// The last [`Segments::mask`], reused by every layer of a pass.
    mask: Arc<Mutex<Option<Tensor>>>,
}

impl PartialEq for Segments {
    fn eq(&self, other: &Self) -> bool {
        (&self.starts, self.rows, self.seq) == (&other.starts, other.rows, other.seq)
    }
}

impl Segments {
    /// From each row's example boundaries: the positions (after 0, rising)
    /// where a later example begins.
    pub fn from_boundaries(boundaries: &[&[u32]], seq: usize) -> Result<Self> {
        let mut starts = Vec::with_capacity(boundaries.len() * seq);
        for (row, b) in boundaries.iter().enumerate() {
            if b.windows(2).any(|w| w[0] >= w[1]) || b.iter().any(|&p| p == 0 || p as usize >= seq)
            {
                candle_core::bail!("row {row}: example boundaries {b:?} must rise within 1..{seq}");
            }
            let mut start = 0;
            let mut next = b.iter().peekable();
            for i in 0..seq as u32 {
                if next.peek() == Some(&&i) {
                    start = i;
                    next.next();
                }
                starts.push(start);
            }
        }
        Ok(Self {
            starts: starts.into(),
            rows: boundaries.len(),
            seq,
            mask: Arc::default(),
        })
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Tokens per row.
    pub fn seq(&self) -> usize {
        self.seq
    }

    /// The example starts of row `row`, one per position.
    pub fn row_starts(&self, row: usize) -> &[u32] {
        &self.starts[row * self.seq..][..self.seq]
    }

    pub(crate) fn shared_starts(&self) -> Arc<[u32]> {
        self.starts.clone()
    }

    /// The additive mask `(rows, seq, seq)`: 0 where a query may look,
    /// `-inf` where it may not. Made once per device and kept.
    pub fn mask(&self, device: &Device) -> Result<Tensor> {
        let mut cached = self.mask.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = cached.as_ref().filter(|m| m.device().same_device(device)) {
            return Ok(m.clone());
        }
        let m = self.build_mask(device)?;
        *cached = Some(m.clone());
        Ok(m)
    }

    fn build_mask(&self, device: &Device) -> Result<Tensor> {
        let mut m = vec![f32::NEG_INFINITY; self.rows * self.seq * self.seq];
        for (r, rows) in m.chunks_mut(self.seq * self.seq).enumerate() {
            let starts = self.row_starts(r);
            for (i, row) in rows.chunks_mut(self.seq).enumerate() {
                row[starts[i] as usize..=i].fill(0.0);
            }
        }
        Tensor::from_vec(m, (self.rows, self.seq, self.seq), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_follow_the_boundaries() -> Result<()> {
        let s = Segments::from_boundaries(&[&[2, 3], &[]], 5)?;
        assert_eq!(s.row_starts(0), &[0, 0, 2, 3, 3]);
        assert_eq!(s.row_starts(1), &[0; 5]);
        let m = s.mask(&Device::Cpu)?.to_vec3::<f32>()?;
        assert_eq!(m[0][2][2], 0.0);
        assert!(m[0][2][1].is_infinite() && m[0][2][3].is_infinite());
        assert_eq!(m[0][4][3], 0.0);
        assert_eq!(m[1][4][0], 0.0);
        assert!(Segments::from_boundaries(&[&[3, 2]], 5).is_err());
        assert!(Segments::from_boundaries(&[&[0]], 5).is_err());
        assert!(Segments::from_boundaries(&[&[5]], 5).is_err());
        Ok(())
    }
}
