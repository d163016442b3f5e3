//! On-the-fly quantization of activation rows into the 8-bit block formats
//! ggml multiplies quantized weights with: Q8_0 and Q8_1 (blocks of 32) and
//! Q8_K (blocks of 256 with per-16 sums).
//!
//! Each quantizer follows ggml's x86 code for the same format (rounding half
//! to even, scales stored as ggml stores them), so dot products come out as
//! llama.cpp's do.

use rayon::prelude::*;

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
/// `qs` holds `m · k` values; `d` one scale per block; `s` one `d · Σq` per
/// block (filled for Q8_0 and Q8_1); `bsums` sixteen sums per block (filled
/// for Q8_K only).
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

/// One row's input and outputs while quantizing: `((x, qs), d), (s, bsums)`.
type RowSlices<'a> = (
    ((&'a [f32], &'a mut [i8]), &'a mut [f32]),
    (&'a mut [f32], &'a mut [i16]),
);

/// The rows `r0..r0 + rows` of an [`ActRows`], as the kernels read them.
#[derive(Clone, Copy)]
pub(crate) struct ActSlice<'a> {
    pub qs: &'a [i8],
    pub d: &'a [f32],
    pub s: &'a [f32],
    pub bsums: &'a [i16],
}

impl ActRows {
    /// Quantizes `x` (`m` rows of `k`, `k` a multiple of the block size),
    /// rows in parallel when there are several.
    pub(crate) fn quantize(kind: ActKind, x: &[f32], k: usize) -> Self {
        let qk = kind.block();
        debug_assert!(k.is_multiple_of(qk) && x.len().is_multiple_of(k));
        let nb = k / qk;
        let nblocks = x.len() / qk;
        // `s` and `bsums` are filled only for the formats that use them.
        let mut rows = ActRows {
            qs: vec![0i8; x.len()],
            d: vec![0f32; nblocks],
            s: vec![0f32; nblocks],
            bsums: vec![0i16; nblocks * 16],
            k,
            nb,
        };
        let simd = simd_available();
        let row = |(((x, qs), d), (s, bsums)): RowSlices<'_>| {
            for b in 0..nb {
                let (xb, qb) = (&x[b * qk..(b + 1) * qk], &mut qs[b * qk..(b + 1) * qk]);
                match kind {
                    ActKind::Q8_0 | ActKind::Q8_1 => {
                        let (db, sum) = quantize_block_q8_0(simd, xb, qb);
                        d[b] = half::f16::from_f32(db).to_f32();
                        s[b] = half::f16::from_f32(db * sum as f32).to_f32();
                    }
                    ActKind::Q8K => {
                        d[b] = quantize_block_q8_k(simd, xb, qb, &mut bsums[b * 16..b * 16 + 16]);
                    }
                }
            }
        };
        let (qs, d, s, bsums) = (&mut rows.qs, &mut rows.d, &mut rows.s, &mut rows.bsums);
        if x.len() / k > 1 && x.len() >= PARALLEL_MIN_VALUES {
            x.par_chunks_exact(k)
                .zip(qs.par_chunks_exact_mut(k))
                .zip(d.par_chunks_exact_mut(nb))
                .zip(
                    s.par_chunks_exact_mut(nb)
                        .zip(bsums.par_chunks_exact_mut(nb * 16)),
                )
                .for_each(row);
        } else {
            x.chunks_exact(k)
                .zip(qs.chunks_exact_mut(k))
                .zip(d.chunks_exact_mut(nb))
                .zip(s.chunks_exact_mut(nb).zip(bsums.chunks_exact_mut(nb * 16)))
                .for_each(row);
        }
        rows
    }

    /// The rows `r0..r0 + rows`.
    pub(crate) fn slice(&self, r0: usize, rows: usize) -> ActSlice<'_> {
        let (k, nb) = (self.k, self.nb);
        ActSlice {
            qs: &self.qs[r0 * k..(r0 + rows) * k],
            d: &self.d[r0 * nb..(r0 + rows) * nb],
            s: &self.s[r0 * nb..(r0 + rows) * nb],
            bsums: &self.bsums[r0 * nb * 16..(r0 + rows) * nb * 16],
        }
    }
}

/// Below this many values the rows are quantized on the calling thread.
const PARALLEL_MIN_VALUES: usize = 1 << 14;

/// Whether the AVX2 quantizers can run.
fn simd_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// ggml's x86 `quantize_row_q8_0` for one block: returns the scale (before
/// ggml rounds it to f16) and the sum of the quantized values.
fn quantize_block_q8_0(simd: bool, x: &[f32], q: &mut [i8]) -> (f32, i32) {
    assert!(x.len() == 32 && q.len() == 32);
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: AVX2 was detected; both slices hold 32 values (asserted).
        return (d, unsafe {
            avx2::scale_round_32(x.as_ptr(), id, q.as_mut_ptr())
        });
    }
    let _ = simd;
    let mut sum = 0i32;
    for (q, &v) in q.iter_mut().zip(x) {
        let r = (v * id).round_ties_even() as i8;
        *q = r;
        sum += r as i32;
    }
    (d, sum)
}

/// ggml's `quantize_row_q8_K_ref` for one block of 256: returns the scale.
fn quantize_block_q8_k(simd: bool, x: &[f32], q: &mut [i8], bsums: &mut [i16]) -> f32 {
    assert!(x.len() == 256 && q.len() == 256 && bsums.len() == 16);
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    if amax == 0.0 {
        q.fill(0);
        bsums.fill(0);
        return 0.0;
    }
    // The first value of largest magnitude, with its sign.
    let max = x.iter().copied().find(|v| v.abs() == amax).unwrap_or(amax);
    let iscale = -127.0 / max;
    let mut done = false;
    #[cfg(target_arch = "x86_64")]
    if simd {
        for (xs, qs) in x.chunks_exact(32).zip(q.chunks_exact_mut(32)) {
            // SAFETY: AVX2 was detected; 32 values each.
            unsafe { avx2::scale_round_32(xs.as_ptr(), iscale, qs.as_mut_ptr()) };
        }
        done = true;
    }
    if !done {
        for (q, &v) in q.iter_mut().zip(x) {
            *q = (iscale * v).round_ties_even() as i8;
        }
    }
    // |iscale · v| ≤ 127 for every v, so no value needs ggml's clamp to 127.
    for (s, g) in bsums.iter_mut().zip(q.chunks_exact(16)) {
        *s = g.iter().map(|&v| v as i16).sum();
    }
    1.0 / iscale
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// Writes `round_ties_even(x[j] · scale)` for 32 values as bytes and
    /// returns their sum (ggml's AVX2 quantizer). Values must fit in i8.
    ///
    /// # Safety
    ///
    /// `x` must point at 32 readable f32, `q` at 32 writable bytes; the CPU
    /// must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn scale_round_32(x: *const f32, scale: f32, q: *mut i8) -> i32 {
        let mul = _mm256_set1_ps(scale);
        // SAFETY: the caller guarantees 32 readable values.
        let v: [__m256; 4] = std::array::from_fn(|i| unsafe { _mm256_loadu_ps(x.add(8 * i)) });
        let i: [__m256i; 4] = std::array::from_fn(|j| {
            let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm256_mul_ps(v[j], mul),
            );
            _mm256_cvtps_epi32(r)
        });
        let sum = _mm256_add_epi32(_mm256_add_epi32(i[0], i[1]), _mm256_add_epi32(i[2], i[3]));
        let s = _mm_add_epi32(
            _mm256_castsi256_si128(sum),
            _mm256_extracti128_si256(sum, 1),
        );
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        // Packing works per 128-bit lane; the permute restores the order.
        let p = _mm256_packs_epi16(
            _mm256_packs_epi32(i[0], i[1]),
            _mm256_packs_epi32(i[2], i[3]),
        );
        let p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        // SAFETY: the caller guarantees 32 writable bytes.
        unsafe { _mm256_storeu_si256(q as *mut __m256i, p) };
        _mm_cvtsi128_si32(s)
    }
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

    #[test]
    fn simd_and_scalar_quantizers_agree() {
        if !simd_available() {
            return;
        }
        let x: Vec<f32> = (0..256)
            .map(|i| ((i * 7919 % 257) as f32 - 128.0) * 0.037)
            .collect();
        for xb in x.chunks_exact(32) {
            let (mut qa, mut qb) = ([0i8; 32], [0i8; 32]);
            assert_eq!(
                quantize_block_q8_0(true, xb, &mut qa),
                quantize_block_q8_0(false, xb, &mut qb)
            );
            assert_eq!(qa, qb);
        }
        let (mut qa, mut qb) = ([0i8; 256], [0i8; 256]);
        let (mut sa, mut sb) = ([0i16; 16], [0i16; 16]);
        let da = quantize_block_q8_k(true, &x, &mut qa, &mut sa);
        let db = quantize_block_q8_k(false, &x, &mut qb, &mut sb);
        assert_eq!((da, qa, sa), (db, qb, sb));
    }
}
