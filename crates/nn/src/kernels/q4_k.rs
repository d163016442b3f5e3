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

    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_rows_vnni(wrow: &[u8], nb: usize, act: ActSlice<'_>, out: &mut [f32]) {
        use super::simd::dispatch_rows;
        // SAFETY: forwarded from the caller (AVX2, FMA, F16C, AVX-512 VNNI/VL present).
        unsafe { dispatch_rows!(vnni::dot_rows(wrow, nb, act, out)) }
    }
}

/// Defines `dot_rows::<R>` compiled for the target features `$features`,
/// with `$madd_acc` as the multiply-add of 16-bit pairs (the AVX2 and VNNI
/// kernels share this text).
#[cfg(target_arch = "x86_64")]
macro_rules! q4_k_kernel {
    ($features:literal, $madd_acc:ident) => {
        use super::super::activations::ActSlice;
        use super::super::simd::{f16_at, hsum, $madd_acc};
        use super::{BlockFormat, Q4K};
        use std::arch::x86_64::*;

        /// Dots one Q4_K weight row with `R` activation rows into `out[0..R]`.
        ///
        /// # Safety
        ///
        /// The CPU must support `$features`. Slice lengths are asserted.
        #[target_feature(enable = $features)]
        pub(super) unsafe fn dot_rows<const R: usize>(
            wrow: &[u8],
            nb: usize,
            act: ActSlice<'_>,
            out: &mut [f32],
        ) {
            let k = nb * 256;
            assert!(wrow.len() >= nb * Q4K::BYTES && out.len() >= R);
            assert!(
                act.qs.len() >= R * k && act.d.len() >= R * nb && act.bsums.len() >= R * nb * 16
            );
            let m4 = _mm256_set1_epi8(0x0F);
            let mut acc = [_mm256_setzero_ps(); R];
            let mut accm = [_mm_setzero_ps(); R];
            let xp = act.qs.as_ptr();
            for (b, blk) in wrow.chunks_exact(Q4K::BYTES).take(nb).enumerate() {
                // SAFETY: `blk` has 144 bytes.
                let (d, dmin) = unsafe { (f16_at(blk.as_ptr()), f16_at(blk.as_ptr().add(2))) };
                // i16 lanes 0..8: the sub-block scales; 8..16: the minimums.
                let scales_mins = _mm256_cvtepu8_epi16(unpack_scales(&blk[4..16]));
                let mins = _mm256_extracti128_si256(scales_mins, 1);
                let scales = _mm256_permute2x128_si256(scales_mins, scales_mins, 0);
                let mut sumi = [_mm256_setzero_si256(); R];
                for c in 0..4 {
                    // SAFETY: bytes 16 + 32c .. 48 + 32c lie within the block.
                    let q4 = unsafe {
                        _mm256_loadu_si256(blk.as_ptr().add(16 + 32 * c) as *const __m256i)
                    };
                    let lo = _mm256_and_si256(q4, m4);
                    let hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
                    // Broadcast i16 lane 2c (2c + 1) of the scales.
                    let pick = |l: i16| _mm256_set1_epi16(((2 * l + 1) << 8) | (2 * l));
                    let slo = _mm256_shuffle_epi8(scales, pick(2 * c as i16));
                    let shi = _mm256_shuffle_epi8(scales, pick(2 * c as i16 + 1));
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
                        *s = $madd_acc(*s, slo, _mm256_maddubs_epi16(lo, xl));
                        *s = $madd_acc(*s, shi, _mm256_maddubs_epi16(hi, xh));
                    }
                }
                for r in 0..R {
                    let i = r * nb + b;
                    let dx = act.d[i];
                    acc[r] = _mm256_fmadd_ps(
                        _mm256_set1_ps(dx * d),
                        _mm256_cvtepi32_ps(sumi[r]),
                        acc[r],
                    );
                    // SAFETY: 16 sums per block, `i < R * nb` (asserted above).
                    let bs = unsafe {
                        _mm256_loadu_si256(act.bsums.as_ptr().add(i * 16) as *const __m256i)
                    };
                    // Sums of the eight 32-value sub-blocks.
                    let bs32 =
                        _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
                    let prod = _mm_cvtepi32_ps(_mm_madd_epi16(mins, bs32));
                    accm[r] = _mm_fmadd_ps(_mm_set1_ps(dx * dmin), prod, accm[r]);
                }
            }
            for r in 0..R {
                let m = accm[r];
                let m = _mm_add_ps(m, _mm_movehl_ps(m, m));
                let m = _mm_add_ss(m, _mm_movehdup_ps(m));
                out[r] = hsum(acc[r]) - _mm_cvtss_f32(m);
            }
        }

        /// ggml's AVX2 unpacking of the 12 scale bytes: the eight 6-bit scales
        /// in bytes 0..8 and the eight minimums in bytes 8..16.
        #[inline]
        #[target_feature(enable = "avx2")]
        fn unpack_scales(s: &[u8]) -> __m128i {
            const KMASK1: u32 = 0x3f3f3f3f;
            const KMASK2: u32 = 0x0f0f0f0f;
            const KMASK3: u32 = 0x03030303;
            let word =
                |i: usize| u32::from_le_bytes([s[4 * i], s[4 * i + 1], s[4 * i + 2], s[4 * i + 3]]);
            let (u0, u1, u2) = (word(0), word(1), word(2));
            let u3 = ((u2 >> 4) & KMASK2) | (((u1 >> 6) & KMASK3) << 4);
            let m0 = u1 & KMASK1;
            let s1 = (u2 & KMASK2) | (((u0 >> 6) & KMASK3) << 4);
            _mm_set_epi32(u3 as i32, m0 as i32, s1 as i32, (u0 & KMASK1) as i32)
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    q4_k_kernel!("avx2,fma,f16c", madd_acc);
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    q4_k_kernel!("avx2,fma,f16c,avx512vnni,avx512vl", madd_acc_vnni);
}
