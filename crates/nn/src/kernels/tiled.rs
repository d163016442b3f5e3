//! Prefill GEMM for the symmetric 32-weight formats (Q4_0, Q5_0, Q8_0) on
//! AVX-512 VNNI.
//!
//! The per-row kernels turn every (weight block, activation block) pair's
//! eight integer lanes into floats and scale them: about six instructions
//! per 32 multiply-adds. Here a strip of [`STRIP`] weight rows is decoded
//! once per block and transposed so that lane `j` of register `g` holds bytes
//! `4g..4g + 4` of row `j`; one activation row then meets all eight rows with
//! one `vpdpbusd` per four columns (its four bytes broadcast), and the eight
//! rows' sums come out in eight lanes, scaled by one multiply-add. Activations
//! enter as unsigned bytes (`q + 128`); the `128 · Σw` this adds is taken off
//! through the accumulator's starting value, so the integer sums are exact.
//!
//! The float sums are formed in a different order than the per-row kernel's,
//! so this path only runs for at least [`MIN_ROWS`] activation rows: decoding
//! steps and speculative verification passes (at most 16 rows) keep the
//! per-row kernel and stay bit-identical to each other.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::symmetric::SymmetricBlock;

/// Weight rows per strip (one register's eight i32 lanes).
pub(crate) const STRIP: usize = 8;

/// Fewest activation rows that take this path (see the module docs).
pub(crate) const MIN_ROWS: usize = 17;

/// Activation rows multiplied together with one strip.
const ROWS: usize = 4;

/// One strip of decoded weights: per block, [`STRIP`] transposed registers,
/// the rows' scales and `-128 · Σw` per row.
pub(crate) struct Strip {
    w: Vec<__m256i>,
    d: Vec<__m256>,
    corr: Vec<__m256i>,
}

impl Strip {
    /// An empty strip; [`Strip::decode`] sizes it.
    pub(crate) fn new() -> Self {
        Strip {
            w: Vec::new(),
            d: Vec::new(),
            corr: Vec::new(),
        }
    }

    /// Decodes rows `j0..j0 + STRIP` (`nb` blocks each, `row_bytes` apart).
    ///
    /// # Safety
    ///
    /// The CPU must support AVX2, FMA, F16C, AVX512-VNNI and AVX512-VL.
    /// `w` must hold those rows (asserted).
    #[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
    pub(crate) unsafe fn decode<B: SymmetricBlock>(
        &mut self,
        w: &[u8],
        row_bytes: usize,
        j0: usize,
        nb: usize,
    ) {
        assert!(w.len() >= (j0 + STRIP) * row_bytes && row_bytes >= nb * B::BYTES);
        self.w.resize(nb * STRIP, _mm256_setzero_si256());
        self.d.resize(nb, _mm256_setzero_ps());
        self.corr.resize(nb, _mm256_setzero_si256());
        let ones = _mm256_set1_epi8(1);
        for b in 0..nb {
            let mut rows = [_mm256_setzero_si256(); STRIP];
            let mut d = [0f32; STRIP];
            for (j, (row, dj)) in rows.iter_mut().zip(&mut d).enumerate() {
                // SAFETY: block `b` of row `j0 + j` lies within `w` (asserted).
                let (dd, q) =
                    unsafe { B::decode_avx2(w.as_ptr().add((j0 + j) * row_bytes + b * B::BYTES)) };
                (*row, *dj) = (q, dd);
            }
            let t = transpose_8x8_epi32(rows);
            let mut sum = _mm256_setzero_si256();
            for g in &t {
                sum = _mm256_dpbusd_epi32(sum, ones, *g);
            }
            self.w[b * STRIP..(b + 1) * STRIP].copy_from_slice(&t);
            // SAFETY: `d` holds eight f32.
            self.d[b] = unsafe { _mm256_loadu_ps(d.as_ptr()) };
            self.corr[b] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(sum, 7));
        }
    }

    /// `out[r][0..8] = Σ_b d_b · d_x · Σ w·x` for activation rows `0..m` of
    /// `xu` (unsigned bytes, `k` per row) with scales `dx` (`nb` per row);
    /// row `r`'s eight results go to `out + r · stride`.
    ///
    /// # Safety
    ///
    /// As for [`Strip::decode`], which must have run with the same `nb`;
    /// `out + r · stride .. + 8` must be writable for every `r < m`.
    #[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
    pub(crate) unsafe fn multiply(
        &self,
        xu: &[u8],
        dx: &[f32],
        k: usize,
        m: usize,
        out: *mut f32,
        stride: usize,
    ) {
        let nb = self.d.len();
        assert!(nb * 32 == k && xu.len() >= m * k && dx.len() >= m * nb);
        let mut r = 0;
        while r + ROWS <= m {
            // SAFETY: rows `r..r + ROWS` are within `xu`, `dx` and `out`.
            unsafe { self.rows::<ROWS>(xu, dx, k, r, out, stride) };
            r += ROWS;
        }
        while r < m {
            // SAFETY: as above, one row.
            unsafe { self.rows::<1>(xu, dx, k, r, out, stride) };
            r += 1;
        }
    }

    /// [`Strip::multiply`] for activation rows `r0..r0 + R`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
    unsafe fn rows<const R: usize>(
        &self,
        xu: &[u8],
        dx: &[f32],
        k: usize,
        r0: usize,
        out: *mut f32,
        stride: usize,
    ) {
        let nb = self.d.len();
        let mut acc = [_mm256_setzero_ps(); R];
        let xp = xu.as_ptr();
        for b in 0..nb {
            let w = &self.w[b * STRIP..(b + 1) * STRIP];
            // Two integer chains per row (even and odd column groups).
            let mut even = [self.corr[b]; R];
            let mut odd = [_mm256_setzero_si256(); R];
            for g in (0..STRIP).step_by(2) {
                for r in 0..R {
                    // SAFETY: `(r0 + r) · k + 32b + 4g + 8 <= m · k`.
                    let (x0, x1) = unsafe {
                        let p = xp.add((r0 + r) * k + b * 32 + 4 * g);
                        (
                            (p as *const i32).read_unaligned(),
                            (p.add(4) as *const i32).read_unaligned(),
                        )
                    };
                    even[r] = _mm256_dpbusd_epi32(even[r], _mm256_set1_epi32(x0), w[g]);
                    odd[r] = _mm256_dpbusd_epi32(odd[r], _mm256_set1_epi32(x1), w[g + 1]);
                }
            }
            for r in 0..R {
                // SAFETY: `(r0 + r) · nb + b < m · nb`.
                let dxr = unsafe { _mm256_broadcast_ss(&*dx.as_ptr().add((r0 + r) * nb + b)) };
                let sum = _mm256_cvtepi32_ps(_mm256_add_epi32(even[r], odd[r]));
                acc[r] = _mm256_fmadd_ps(sum, _mm256_mul_ps(self.d[b], dxr), acc[r]);
            }
        }
        for (r, a) in acc.iter().enumerate() {
            // SAFETY: the caller guarantees eight writable floats per row.
            unsafe { _mm256_storeu_ps(out.add((r0 + r) * stride), *a) };
        }
    }
}

/// The 8 × 8 transpose of 32-bit lanes: lane `j` of result `g` is lane `g`
/// of input `j`.
#[inline]
#[target_feature(enable = "avx2")]
fn transpose_8x8_epi32(r: [__m256i; 8]) -> [__m256i; 8] {
    let a0 = _mm256_unpacklo_epi32(r[0], r[1]);
    let a1 = _mm256_unpackhi_epi32(r[0], r[1]);
    let a2 = _mm256_unpacklo_epi32(r[2], r[3]);
    let a3 = _mm256_unpackhi_epi32(r[2], r[3]);
    let a4 = _mm256_unpacklo_epi32(r[4], r[5]);
    let a5 = _mm256_unpackhi_epi32(r[4], r[5]);
    let a6 = _mm256_unpacklo_epi32(r[6], r[7]);
    let a7 = _mm256_unpackhi_epi32(r[6], r[7]);
    let b0 = _mm256_unpacklo_epi64(a0, a2);
    let b1 = _mm256_unpackhi_epi64(a0, a2);
    let b2 = _mm256_unpacklo_epi64(a1, a3);
    let b3 = _mm256_unpackhi_epi64(a1, a3);
    let b4 = _mm256_unpacklo_epi64(a4, a6);
    let b5 = _mm256_unpackhi_epi64(a4, a6);
    let b6 = _mm256_unpacklo_epi64(a5, a7);
    let b7 = _mm256_unpackhi_epi64(a5, a7);
    [
        _mm256_permute2x128_si256(b0, b4, 0x20),
        _mm256_permute2x128_si256(b1, b5, 0x20),
        _mm256_permute2x128_si256(b2, b6, 0x20),
        _mm256_permute2x128_si256(b3, b7, 0x20),
        _mm256_permute2x128_si256(b0, b4, 0x31),
        _mm256_permute2x128_si256(b1, b5, 0x31),
        _mm256_permute2x128_si256(b2, b6, 0x31),
        _mm256_permute2x128_si256(b3, b7, 0x31),
    ]
}

/// The activations as unsigned bytes, `q + 128`.
pub(crate) fn unsigned(qs: &[i8]) -> Vec<u8> {
    qs.iter().map(|&q| (q as u8) ^ 0x80).collect()
}
