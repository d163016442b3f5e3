//! Kernels for the 32-weight formats that decode to `d · q` with signed 8-bit
//! `q` and no offset (Q4_0, Q5_0, Q8_0), multiplied with Q8_0 activations:
//! one block contributes `d · d_x · Σ(q · q_x)`, as in ggml's
//! `ggml_vec_dot_q{4,5,8}_0_q8_0`. Each format only says how to decode a
//! block; the loops are shared.

use std::marker::PhantomData;

use super::activations::{ActKind, ActSlice};
use super::matmul::BlockFormat;
#[cfg(target_arch = "x86_64")]
use super::simd::{dispatch_rows, dispatch_rows_wide};

/// The [`BlockFormat`] of a [`SymmetricBlock`].
pub(crate) struct Symmetric<B>(PhantomData<B>);

/// A 32-weight block that decodes to a scale and 32 signed bytes.
pub(crate) trait SymmetricBlock {
    /// Bytes per block.
    const BYTES: usize;
    /// Decodes one block: returns `d` and writes the 32 values.
    fn decode(blk: &[u8], q: &mut [i8; 32]) -> f32;
    /// Decodes the block at `p` into `d` and 32 signed bytes in lane order.
    ///
    /// # Safety
    ///
    /// `p` must point at `BYTES` readable bytes; the CPU must support AVX2,
    /// FMA and F16C.
    #[cfg(target_arch = "x86_64")]
    unsafe fn decode_avx2(p: *const u8) -> (f32, std::arch::x86_64::__m256i);
}

impl<B: SymmetricBlock> BlockFormat for Symmetric<B> {
    const QK: usize = 32;
    const BYTES: usize = B::BYTES;
    const ACT: ActKind = ActKind::Q8_0;

    fn dot_rows_scalar(wrow: &[u8], nb: usize, act: ActSlice<'_>, out: &mut [f32]) {
        let k = nb * 32;
        let mut q = [0i8; 32];
        for (r, o) in out.iter_mut().enumerate() {
            let mut sum = 0f32;
            for (b, blk) in wrow.chunks_exact(B::BYTES).take(nb).enumerate() {
                let d = B::decode(blk, &mut q);
                let xb = &act.qs[r * k + b * 32..r * k + b * 32 + 32];
                let sumi: i32 = q.iter().zip(xb).map(|(&w, &x)| w as i32 * x as i32).sum();
                sum += sumi as f32 * d * act.d[r * nb + b];
            }
            *o = sum;
        }
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_rows_avx2(wrow: &[u8], nb: usize, act: ActSlice<'_>, out: &mut [f32]) {
        // SAFETY: forwarded from the caller (AVX2, FMA, F16C present).
        unsafe { dispatch_rows!(avx2::dot_rows::<B>(wrow, nb, act, out)) }
    }

    const WIDE_VNNI: bool = true;

    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_rows_vnni(wrow: &[u8], nb: usize, act: ActSlice<'_>, out: &mut [f32]) {
        // SAFETY: forwarded from the caller (AVX2, FMA, F16C, AVX-512 VNNI/VL present).
        unsafe { dispatch_rows_wide!(vnni::dot_rows::<B>(wrow, nb, act, out)) }
    }
}

/// Defines `dot_rows::<B, R>` compiled for the target features `$features`,
/// with `$dot` as the byte dot product (the AVX2 and VNNI kernels share this
/// text).
#[cfg(target_arch = "x86_64")]
macro_rules! symmetric_kernel {
    ($features:literal, $dot:ident) => {
        use super::super::activations::ActSlice;
        use super::super::simd::{alternate_blocks, hsum, $dot};
        use super::SymmetricBlock;
        use std::arch::x86_64::*;

        /// Dots one weight row of `B` blocks with `R` activation rows.
        ///
        /// # Safety
        ///
        /// The CPU must support `$features`. Slice lengths are asserted.
        #[target_feature(enable = $features)]
        pub(super) unsafe fn dot_rows<B: SymmetricBlock, const R: usize>(
            wrow: &[u8],
            nb: usize,
            act: ActSlice<'_>,
            out: &mut [f32],
        ) {
            let k = nb * 32;
            assert!(wrow.len() >= nb * B::BYTES && out.len() >= R);
            assert!(act.qs.len() >= R * k && act.d.len() >= R * nb);
            let mut acc = [[_mm256_setzero_ps(); R]; 2];
            let (wp, xp) = (wrow.as_ptr(), act.qs.as_ptr());
            // Two accumulator sets over alternate blocks shorten the FMA chains.
            macro_rules! block {
                ($b:expr, $set:expr) => {{
                    let b = $b;
                    // SAFETY: block `b < nb` lies within `wrow` (asserted above).
                    let (d, w) = unsafe { B::decode_avx2(wp.add(b * B::BYTES)) };
                    // |w| once per block; each row only moves w's signs onto x.
                    let aw = _mm256_sign_epi8(w, w);
                    for r in 0..R {
                        // SAFETY: `r * k + b * 32 + 32 <= R * k` and
                        // `r * nb + b < R * nb` (asserted above).
                        let (xv, dx) = unsafe {
                            (
                                _mm256_loadu_si256(xp.add(r * k + b * 32) as *const __m256i),
                                *act.d.get_unchecked(r * nb + b),
                            )
                        };
                        let p = _mm256_cvtepi32_ps($dot(aw, _mm256_sign_epi8(xv, w)));
                        acc[$set][r] = _mm256_fmadd_ps(p, _mm256_set1_ps(d * dx), acc[$set][r]);
                    }
                }};
            }
            alternate_blocks!(nb, block);
            for r in 0..R {
                out[r] = hsum(_mm256_add_ps(acc[0][r], acc[1][r]));
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    symmetric_kernel!("avx2,fma,f16c", dot_u8_i8);
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    symmetric_kernel!("avx2,fma,f16c,avx512vnni,avx512vl", dot_u8_i8_vnni);
}
