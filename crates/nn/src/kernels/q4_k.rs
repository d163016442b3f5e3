//! GGUF Q4_K × Q8_K.
//!
//! A Q4_K super-block (ggml's `block_q4_K`, 144 bytes) holds 256 weights as
//! `d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]`: eight sub-blocks of
//! 32 with 6-bit scales `sc` and minimums `mn` packed in `scales`. In 64-weight
//! chunk `c`, weights `64c..64c+32` are the low nibbles of `qs[32c..32c+32]`
//! (sub-block `2c`) and the next 32 the high nibbles (sub-block `2c+1`).
//! Weight = `d · sc · q - dmin · mn`. With Q8_K activations the minimums only
//! need the activations' per-16 sums, as in ggml's `ggml_vec_dot_q4_K_q8_K`.

use super::activations::{ActKind, ActSlice};
use super::matmul::BlockFormat;

/// The Q4_K block format.
pub(crate) struct Q4K;

/// The eight 6-bit scales and minimums of a super-block (ggml's
/// `get_scale_min_k4`).
fn scales_and_mins(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let (mut sc, mut mn) = ([0u8; 8], [0u8; 8]);
    for j in 0..8 {
        if j < 4 {
            sc[j] = s[j] & 63;
            mn[j] = s[j + 4] & 63;
        } else {
            sc[j] = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
            mn[j] = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
        }
    }
    (sc, mn)
}

/// `Σ mn[j] · (sum of the activations of sub-block j)` from the per-16 sums.
fn min_correction(mn: &[u8; 8], bsums: &[i16]) -> i32 {
    mn.iter()
        .enumerate()
        .map(|(j, &m)| m as i32 * (bsums[2 * j] as i32 + bsums[2 * j + 1] as i32))
        .sum()
}

fn f16_le(b: &[u8]) -> f32 {
    half::f16::from_le_bytes([b[0], b[1]]).to_f32()
}

impl BlockFormat for Q4K {
    const QK: usize = 256;
    const BYTES: usize = 144;
    const ACT: ActKind = ActKind::Q8K;

    fn dot_rows_scalar(wrow: &[u8], nb: usize, act: ActSlice<'_>, out: &mut [f32]) {
        let k = nb * 256;
        for (r, o) in out.iter_mut().enumerate() {
            let mut sum = 0f32;
            for (b, blk) in wrow.chunks_exact(Self::BYTES).take(nb).enumerate() {
                let (d, dmin) = (f16_le(&blk[0..2]), f16_le(&blk[2..4]));
                let (sc, mn) = scales_and_mins(&blk[4..16]);
                let qs = &blk[16..144];
                let xb = &act.qs[r * k + b * 256..r * k + b * 256 + 256];
                let mut sumi = 0i32;
                for c in 0..4 {
                    let (mut lo, mut hi) = (0i32, 0i32);
                    for l in 0..32 {
                        let q = qs[32 * c + l];
                        lo += (q & 0x0F) as i32 * xb[64 * c + l] as i32;
                        hi += (q >> 4) as i32 * xb[64 * c + 32 + l] as i32;
                    }
                    sumi += sc[2 * c] as i32 * lo + sc[2 * c + 1] as i32 * hi;
                }
                let bsums = &act.bsums[(r * nb + b) * 16..(r * nb + b) * 16 + 16];
                let dx = act.d[r * nb + b];
                sum += dx * d * sumi as f32 - dx * dmin * min_correction(&mn, bsums) as f32;
            }
            *o = sum;
        }
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_rows_avx2(wrow: &[u8], nb: usize, act: ActSlice<'_>, out: &mut [f32]) {
        use super::simd::dispatch_rows;
        // SAFETY: forwarded from the caller (AVX2, FMA, F16C present).
        unsafe { dispatch_rows!(avx2::dot_rows(wrow, nb, act, out)) }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::super::activations::ActSlice;
    use super::super::simd::{f16_at, hsum};
    use super::{min_correction, scales_and_mins, BlockFormat, Q4K};
    use std::arch::x86_64::*;

    /// Dots one Q4_K weight row with `R` activation rows into `out[0..R]`.
    ///
    /// # Safety
    ///
    /// The CPU must support AVX2, FMA and F16C. Slice lengths are asserted.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_rows<const R: usize>(
        wrow: &[u8],
        nb: usize,
        act: ActSlice<'_>,
        out: &mut [f32],
    ) {
        let k = nb * 256;
        assert!(wrow.len() >= nb * Q4K::BYTES && out.len() >= R);
        assert!(act.qs.len() >= R * k && act.d.len() >= R * nb && act.bsums.len() >= R * nb * 16);
        let m4 = _mm256_set1_epi8(0x0F);
        let mut acc = [_mm256_setzero_ps(); R];
        let mut accm = [0f32; R];
        let xp = act.qs.as_ptr();
        for (b, blk) in wrow.chunks_exact(Q4K::BYTES).take(nb).enumerate() {
            // SAFETY: `blk` has 144 bytes.
            let (d, dmin) = unsafe { (f16_at(blk.as_ptr()), f16_at(blk.as_ptr().add(2))) };
            let (sc, mn) = scales_and_mins(&blk[4..16]);
            let mut sumi = [_mm256_setzero_si256(); R];
            for c in 0..4 {
                // SAFETY: bytes 16 + 32c .. 48 + 32c lie within the block.
                let q4 =
                    unsafe { _mm256_loadu_si256(blk.as_ptr().add(16 + 32 * c) as *const __m256i) };
                let lo = _mm256_and_si256(q4, m4);
                let hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
                let (slo, shi) = (
                    _mm256_set1_epi16(sc[2 * c] as i16),
                    _mm256_set1_epi16(sc[2 * c + 1] as i16),
                );
                for (r, s) in sumi.iter_mut().enumerate() {
                    let off = r * k + b * 256 + 64 * c;
                    // SAFETY: `off + 64 <= R * k` (asserted above).
                    let (xl, xh) = unsafe {
                        (
                            _mm256_loadu_si256(xp.add(off) as *const __m256i),
                            _mm256_loadu_si256(xp.add(off + 32) as *const __m256i),
                        )
                    };
                    // 4-bit × 8-bit pairs fit i16; scales (< 64) times a
                    // pair sum fit i32.
                    let pl = _mm256_madd_epi16(slo, _mm256_maddubs_epi16(lo, xl));
                    let ph = _mm256_madd_epi16(shi, _mm256_maddubs_epi16(hi, xh));
                    *s = _mm256_add_epi32(*s, _mm256_add_epi32(pl, ph));
                }
            }
            for r in 0..R {
                let i = r * nb + b;
                let dx = act.d[i];
                acc[r] =
                    _mm256_fmadd_ps(_mm256_set1_ps(dx * d), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
                accm[r] += dx * dmin * min_correction(&mn, &act.bsums[i * 16..i * 16 + 16]) as f32;
            }
        }
        for r in 0..R {
            out[r] = hsum(acc[r]) - accm[r];
        }
    }
}
