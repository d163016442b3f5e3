//! GGUF Q6_K × Q8_K.
//!
//! A Q6_K super-block (ggml's `block_q6_K`, 210 bytes) holds 256 weights as
//! `ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16`. In 128-weight
//! chunk `c`, with `ql = ql[64c..]` and `qh = qh[32c..]`, weight `128c + l`
//! (l < 32) is `ql[l] & 0xF | (qh[l] & 3) << 4`, `+32` takes `ql[l+32] & 0xF`
//! and `qh` bits 2–3, `+64` takes `ql[l] >> 4` and bits 4–5, `+96` takes
//! `ql[l+32] >> 4` and bits 6–7; every value is offset by −32 and weight `i`
//! has scale `d · scales[i / 16]` (ggml's `ggml_vec_dot_q6_K_q8_K`). The −32
//! offset is applied once per 16 weights through the activations' per-16 sums.

use super::activations::{ActKind, ActSlice};
use super::matmul::BlockFormat;

/// The Q6_K block format.
pub(crate) struct Q6K;

/// `32 · Σ scales[g] · bsums[g]`: the −32 offset of every value, per block.
fn offset_correction(scales: &[u8], bsums: &[i16]) -> i32 {
    32 * scales
        .iter()
        .zip(bsums)
        .map(|(&s, &b)| s as i8 as i32 * b as i32)
        .sum::<i32>()
}

impl BlockFormat for Q6K {
    const QK: usize = 256;
    const BYTES: usize = 210;
    const ACT: ActKind = ActKind::Q8K;

    fn dot_rows_scalar(wrow: &[u8], nb: usize, act: ActSlice<'_>, out: &mut [f32]) {
        let k = nb * 256;
        let mut u = [0u8; 256];
        for (r, o) in out.iter_mut().enumerate() {
            let mut sum = 0f32;
            for (b, blk) in wrow.chunks_exact(Self::BYTES).take(nb).enumerate() {
                let (ql, qh, scales) = (&blk[0..128], &blk[128..192], &blk[192..208]);
                let d = half::f16::from_le_bytes([blk[208], blk[209]]).to_f32();
                for c in 0..2 {
                    let (ql, qh, u) = (&ql[64 * c..], &qh[32 * c..], &mut u[128 * c..]);
                    for l in 0..32 {
                        u[l] = (ql[l] & 0x0F) | ((qh[l] & 3) << 4);
                        u[l + 32] = (ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4);
                        u[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
                        u[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
                    }
                }
                let xb = &act.qs[r * k + b * 256..r * k + b * 256 + 256];
                let mut sumi = 0i32;
                for (g, (ug, xg)) in u.chunks_exact(16).zip(xb.chunks_exact(16)).enumerate() {
                    let s: i32 = ug.iter().zip(xg).map(|(&w, &x)| w as i32 * x as i32).sum();
                    sumi += scales[g] as i8 as i32 * s;
                }
                let i = r * nb + b;
                sumi -= offset_correction(scales, &act.bsums[i * 16..i * 16 + 16]);
                sum += d * act.d[i] * sumi as f32;
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
macro_rules! q6_k_kernel {
    ($features:literal, $madd_acc:ident) => {
        use super::super::activations::ActSlice;
        use super::super::simd::{f16_at, hsum, $madd_acc};
        use super::{BlockFormat, Q6K};
        use std::arch::x86_64::*;

        /// Dots one Q6_K weight row with `R` activation rows into `out[0..R]`.
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
            assert!(wrow.len() >= nb * Q6K::BYTES && out.len() >= R);
            assert!(
                act.qs.len() >= R * k && act.d.len() >= R * nb && act.bsums.len() >= R * nb * 16
            );
            let m4 = _mm256_set1_epi8(0x0F);
            let m2 = _mm256_set1_epi8(0x03);
            let mut acc = [_mm256_setzero_ps(); R];
            let xp = act.qs.as_ptr();
            for (b, blk) in wrow.chunks_exact(Q6K::BYTES).take(nb).enumerate() {
                let p = blk.as_ptr();
                // SAFETY: `blk` has 210 bytes: the scales at 192, d at 208.
                let (scales, d) = unsafe {
                    (
                        _mm_loadu_si128(p.add(192) as *const __m128i),
                        f16_at(p.add(208)),
                    )
                };
                let scales16 = _mm256_cvtepi8_epi16(scales);
                let mut sumi = [_mm256_setzero_si256(); R];
                for c in 0..2 {
                    // SAFETY: ql chunk at 64c (64 bytes) and qh chunk at 128 + 32c
                    // (32 bytes) lie within the block.
                    let (ql1, ql2, qh) = unsafe {
                        (
                            _mm256_loadu_si256(p.add(64 * c) as *const __m256i),
                            _mm256_loadu_si256(p.add(64 * c + 32) as *const __m256i),
                            _mm256_loadu_si256(p.add(128 + 32 * c) as *const __m256i),
                        )
                    };
                    let u = [
                        _mm256_or_si256(
                            _mm256_and_si256(ql1, m4),
                            _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4),
                        ),
                        _mm256_or_si256(
                            _mm256_and_si256(ql2, m4),
                            _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_slli_epi16(m2, 2)), 2),
                        ),
                        _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                            _mm256_and_si256(qh, _mm256_slli_epi16(m2, 4)),
                        ),
                        _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16(ql2, 4), m4),
                            _mm256_srli_epi16(_mm256_and_si256(qh, _mm256_slli_epi16(m2, 6)), 2),
                        ),
                    ];
                    // i16 lanes 0..8 take scale 8c + 2i, lanes 8..16 scale 8c + 2i + 1.
                    let sc: [__m256i; 4] = std::array::from_fn(|i| {
                        let g = (8 * c + 2 * i) as i64;
                        let pick =
                            _mm_set_epi64x((g + 1) * 0x0101010101010101, g * 0x0101010101010101);
                        _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, pick))
                    });
                    for (r, s) in sumi.iter_mut().enumerate() {
                        let off = r * k + b * 256 + 128 * c;
                        for i in 0..4 {
                            // SAFETY: `off + 32i + 32 <= R * k` (asserted above).
                            let x = unsafe {
                                _mm256_loadu_si256(xp.add(off + 32 * i) as *const __m256i)
                            };
                            // 6-bit × 8-bit pairs fit i16 (2·63·127).
                            *s = $madd_acc(*s, sc[i], _mm256_maddubs_epi16(u[i], x));
                        }
                    }
                }
                for r in 0..R {
                    let i = r * nb + b;
                    // SAFETY: 16 sums per block, `i < R * nb` (asserted above).
                    let bs = unsafe {
                        _mm256_loadu_si256(act.bsums.as_ptr().add(i * 16) as *const __m256i)
                    };
                    // The −32 offset of every value: 32 · Σ scale · sum of 16.
                    let corr = _mm256_slli_epi32(_mm256_madd_epi16(scales16, bs), 5);
                    let total = _mm256_sub_epi32(sumi[r], corr);
                    acc[r] = _mm256_fmadd_ps(
                        _mm256_set1_ps(d * act.d[i]),
                        _mm256_cvtepi32_ps(total),
                        acc[r],
                    );
                }
            }
            for r in 0..R {
                out[r] = hsum(acc[r]);
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    q6_k_kernel!("avx2,fma,f16c", madd_acc);
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    q6_k_kernel!("avx2,fma,f16c,avx512vnni,avx512vl", madd_acc_vnni);
}
