//! On-the-fly quantization of activation rows into the 8-bit block formats
//! ggml multiplies quantized weights with: Q8_0 and Q8_1 (blocks of 32) and
//! Q8_K (blocks of 256 with per-16 sums).
//!
//! Each quantizer follows ggml's x86 code for the same format (rounding half
//! to even, scales stored as ggml stores them), so dot products come out as
//! llama.cpp's do.

/// Which 8-bit activation format a weight format multiplies with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ActKind {
    /// Blocks of 32: `d = max|x| / 127` (kept as f16), `q = round(x / d)`.
    Q8_0,
    /// Q8_0 plus `s = d · Σq` per block (for formats with an offset).
    Q8_1,
    /// Blocks of 256: `d = max / -127` of the signed maximum (f32), and the
    /// sum of every 16 quantized values.
    Q8K,
}

impl ActKind {
    /// Activation values per block.
    pub(crate) fn block(self) -> usize {
        match self {
            ActKind::Q8_0 | ActKind::Q8_1 => 32,
            ActKind::Q8K => 256,
        }
    }
}

/// `m` rows of `k` activations in an 8-bit block format.
///
/// `qs` holds `m · k` values; `d` one scale per block; `s` (Q8_1 only) one
/// `d · Σq` per block; `bsums` (Q8_K only) sixteen sums per block.
pub(crate) struct ActRows {
    pub qs: Vec<i8>,
    pub d: Vec<f32>,
    pub s: Vec<f32>,
    pub bsums: Vec<i16>,
    /// Values per row.
    pub k: usize,
    /// Blocks per row.
    pub nb: usize,
}

/// The rows `r0..r0 + rows` of an [`ActRows`], as the kernels read them.
#[derive(Clone, Copy)]
pub(crate) struct ActSlice<'a> {
    pub qs: &'a [i8],
    pub d: &'a [f32],
    pub s: &'a [f32],
    pub bsums: &'a [i16],
}

impl ActRows {
    /// Quantizes `x` (`m` rows of `k`, `k` a multiple of the block size).
    pub(crate) fn quantize(kind: ActKind, x: &[f32], k: usize) -> Self {
        let qk = kind.block();
        debug_assert!(k.is_multiple_of(qk) && x.len().is_multiple_of(k));
        let nblocks = x.len() / qk;
        let mut rows = ActRows {
            qs: vec![0i8; x.len()],
            d: vec![0f32; nblocks],
            s: if kind == ActKind::Q8_1 {
                vec![0f32; nblocks]
            } else {
                Vec::new()
            },
            bsums: if kind == ActKind::Q8K {
                vec![0i16; nblocks * 16]
            } else {
                Vec::new()
            },
            k,
            nb: k / qk,
        };
        for (b, (xb, qb)) in x
            .chunks_exact(qk)
            .zip(rows.qs.chunks_exact_mut(qk))
            .enumerate()
        {
            match kind {
                ActKind::Q8_0 | ActKind::Q8_1 => {
                    let (d, sum) = quantize_block_q8_0(xb, qb);
                    rows.d[b] = half::f16::from_f32(d).to_f32();
                    if kind == ActKind::Q8_1 {
                        rows.s[b] = half::f16::from_f32(d * sum as f32).to_f32();
                    }
                }
                ActKind::Q8K => {
                    rows.d[b] = quantize_block_q8_k(xb, qb, &mut rows.bsums[b * 16..b * 16 + 16]);
                }
            }
        }
        rows
    }

    /// The rows `r0..r0 + rows`.
    pub(crate) fn slice(&self, r0: usize, rows: usize) -> ActSlice<'_> {
        let (k, nb) = (self.k, self.nb);
        ActSlice {
            qs: &self.qs[r0 * k..(r0 + rows) * k],
            d: &self.d[r0 * nb..(r0 + rows) * nb],
            s: if self.s.is_empty() {
                &[]
            } else {
                &self.s[r0 * nb..(r0 + rows) * nb]
            },
            bsums: if self.bsums.is_empty() {
                &[]
            } else {
                &self.bsums[r0 * nb * 16..(r0 + rows) * nb * 16]
            },
        }
    }
}

/// ggml's x86 `quantize_row_q8_0` for one block: returns the scale (before
/// ggml rounds it to f16) and the sum of the quantized values.
fn quantize_block_q8_0(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut sum = 0i32;
    for (q, &v) in q.iter_mut().zip(x) {
        let r = (v * id).round_ties_even() as i8;
        *q = r;
        sum += r as i32;
    }
    (d, sum)
}

/// ggml's `quantize_row_q8_K_ref` for one block of 256: returns the scale.
fn quantize_block_q8_k(x: &[f32], q: &mut [i8], bsums: &mut [i16]) -> f32 {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        q.fill(0);
        bsums.fill(0);
        return 0.0;
    }
    let iscale = -127.0 / max;
    for (q, &v) in q.iter_mut().zip(x) {
        *q = ((iscale * v).round_ties_even() as i32).min(127) as i8;
    }
    for (s, g) in bsums.iter_mut().zip(q.chunks_exact(16)) {
        *s = g.iter().map(|&v| v as i16).sum();
    }
    1.0 / iscale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_round_trips_within_half_a_step() {
        let x: Vec<f32> = (0..64)
            .map(|i| ((i * 37 % 19) as f32 - 9.0) * 0.13)
            .collect();
        let a = ActRows::quantize(ActKind::Q8_1, &x, 64);
        for (b, xb) in x.chunks_exact(32).enumerate() {
            let d = a.d[b];
            let sum: i32 = a.qs[b * 32..b * 32 + 32].iter().map(|&v| v as i32).sum();
            assert!((a.s[b] - d * sum as f32).abs() <= 1e-2 * (d * sum as f32).abs().max(1e-3));
            for (j, &v) in xb.iter().enumerate() {
                assert!((a.qs[b * 32 + j] as f32 * d - v).abs() <= 0.51 * d + 1e-3 * v.abs());
            }
        }
    }

    #[test]
    fn q8_k_sums_and_scale() {
        let x: Vec<f32> = (0..512)
            .map(|i| ((i * 53 % 101) as f32 - 50.0) * 0.01)
            .collect();
        let a = ActRows::quantize(ActKind::Q8K, &x, 512);
        assert_eq!(a.nb, 2);
        for b in 0..2 {
            for g in 0..16 {
                let s: i16 = a.qs[b * 256 + g * 16..b * 256 + g * 16 + 16]
                    .iter()
                    .map(|&v| v as i16)
                    .sum();
                assert_eq!(a.bsums[b * 16 + g], s);
            }
            for j in 0..256 {
                let v = x[b * 256 + j];
                assert!((a.qs[b * 256 + j] as f32 * a.d[b] - v).abs() <= 0.51 * a.d[b].abs());
            }
        }
        let zero = ActRows::quantize(ActKind::Q8K, &[0.0; 256], 256);
        assert_eq!(zero.d[0], 0.0);
    }
}
