//! GGUF Q4_1 × Q8_1.
//!
//! A Q4_1 block (ggml's `block_q4_1`, 20 bytes) holds 32 weights as
//! `d: f16, m: f16, qs: [u8; 16]`: weight `j` (0..16) is `d * (qs[j] & 0xF) + m`
//! and weight `j + 16` is `d * (qs[j] >> 4) + m`. With Q8_1 activations
//! (`x ≈ d_x · q`, `s_x = d_x · Σq`) one block contributes
//! `d · d_x · Σ(q_w · q_x) + m · s_x`, as in ggml's `ggml_vec_dot_q4_1_q8_1`.

use super::activations::{ActKind, ActSlice};
use super::matmul::BlockFormat;

/// The Q4_1 block format.
pub(crate) struct Q4_1;

/// Reads the little-endian f16 at `b[0..2]` as f32.
fn f16_le(b: &[u8]) -> f32 {
    half::f16::from_le_bytes([b[0], b[1]]).to_f32()
}

impl BlockFormat for Q4_1 {
    const QK: usize = 32;
    const BYTES: usize = 20;
    const ACT: ActKind = ActKind::Q8_1;

    fn dot_rows_scalar(wrow: &[u8], nb: usize, act: ActSlice<'_>, out: &mut [f32]) {
        let k = nb * 32;
        for (r, o) in out.iter_mut().enumerate() {
            let mut sum = 0f32;
            for (b, blk) in wrow.chunks_exact(Self::BYTES).take(nb).enumerate() {
                let (dw, mw, qs) = (f16_le(&blk[0..2]), f16_le(&blk[2..4]), &blk[4..20]);
                let xb = &act.qs[r * k + b * 32..r * k + b * 32 + 32];
                let mut sumi = 0i32;
                for j in 0..16 {
                    sumi += (qs[j] & 0x0F) as i32 * xb[j] as i32
                        + (qs[j] >> 4) as i32 * xb[j + 16] as i32;
                }
                sum += sumi as f32 * dw * act.d[r * nb + b] + mw * act.s[r * nb + b];
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

    const WIDE_VNNI: bool = true;

    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_rows_vnni(wrow: &[u8], nb: usize, act: ActSlice<'_>, out: &mut [f32]) {
        use super::simd::{dispatch_rows, dispatch_rows_wide};
        // SAFETY: forwarded from the caller (AVX2, FMA, F16C, AVX-512 VNNI/VL present).
        unsafe { dispatch_rows_wide!(vnni::dot_rows(wrow, nb, act, out)) }
    }
}

/// Defines `dot_rows::<R>` compiled for the target features `$features`,
/// with `$dot` as the byte dot product (the AVX2 and VNNI kernels share this
/// text).
#[cfg(target_arch = "x86_64")]
macro_rules! q4_1_kernel {
    ($features:literal, $dot:ident) => {
        use super::super::activations::ActSlice;
        use super::super::simd::{alternate_blocks, hsum, nibbles_32, $dot};
        use super::{BlockFormat, Q4_1};
        use std::arch::x86_64::*;

        /// Dots one Q4_1 weight row with `R` activation rows into `out[0..R]`.
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
            let k = nb * 32;
            assert!(wrow.len() >= nb * Q4_1::BYTES && out.len() >= R);
            assert!(act.qs.len() >= R * k && act.d.len() >= R * nb && act.s.len() >= R * nb);
            let mut acc = [[_mm256_setzero_ps(); R]; 2];
            let mut accm = [[_mm_setzero_ps(); R]; 2];
            let (wp, xp, dp, sp) = (
                wrow.as_ptr(),
                act.qs.as_ptr(),
                act.d.as_ptr(),
                act.s.as_ptr(),
            );
            // Two accumulator sets over alternate blocks shorten the FMA chains.
            macro_rules! block {
                ($b:expr, $set:expr) => {{
                    let b = $b;
                    // SAFETY: block `b < nb` lies within `wrow` (asserted above).
                    let (dm, w) = unsafe {
                        let blk = wp.add(b * Q4_1::BYTES);
                        // d and m are two consecutive little-endian f16 values.
                        let dm16 = _mm_cvtsi32_si128((blk as *const i32).read_unaligned());
                        (_mm_cvtph_ps(dm16), nibbles_32(blk.add(4)))
                    };
                    let mw = _mm_movehdup_ps(dm);
                    for r in 0..R {
                        let i = r * nb + b;
                        // SAFETY: `i < R * nb` and `r * k + b * 32 + 32 <= R * k`
                        // (asserted above); the loads are unaligned.
                        let (xv, dx, sx) = unsafe {
                            (
                                _mm256_loadu_si256(xp.add(r * k + b * 32) as *const __m256i),
                                _mm_load_ss(dp.add(i)),
                                _mm_load_ss(sp.add(i)),
                            )
                        };
                        let p = $dot(w, xv);
                        let scale = _mm256_broadcastss_ps(_mm_mul_ss(dm, dx));
                        acc[$set][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), scale, acc[$set][r]);
                        accm[$set][r] = _mm_fmadd_ss(mw, sx, accm[$set][r]);
                    }
                }};
            }
            alternate_blocks!(nb, block);
            for r in 0..R {
                let v = _mm256_add_ps(acc[0][r], acc[1][r]);
                let m = _mm_add_ss(accm[0][r], accm[1][r]);
                out[r] = hsum(v) + _mm_cvtss_f32(m);
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    q4_1_kernel!("avx2,fma,f16c", dot_u8_i8);
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    q4_1_kernel!("avx2,fma,f16c,avx512vnni,avx512vl", dot_u8_i8_vnni);
}
