//! AVX2 helpers shared by the block kernels (ggml's `bytes_from_nibbles_32`,
//! `bytes_from_bits_32`, `mul_sum_i8_pairs` and horizontal sums), and the
//! AVX-512 VNNI form of the byte dot product.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

/// Calls `$module::dot_rows::<[T,] R>(args…)` with `R = $out.len()` (1 to 4).
macro_rules! dispatch_rows {
    ($module:ident::dot_rows$(::<$t:ident>)?($w:expr, $nb:expr, $act:expr, $out:expr)) => {
        match $out.len() {
            4 => $module::dot_rows::<$($t,)? 4>($w, $nb, $act, $out),
            3 => $module::dot_rows::<$($t,)? 3>($w, $nb, $act, $out),
            2 => $module::dot_rows::<$($t,)? 2>($w, $nb, $act, $out),
            _ => $module::dot_rows::<$($t,)? 1>($w, $nb, $act, $out),
        }
    };
}
pub(crate) use dispatch_rows;

/// [`dispatch_rows`] for 1 to 8 rows (the VNNI kernels).
macro_rules! dispatch_rows_wide {
    ($module:ident::dot_rows$(::<$t:ident>)?($w:expr, $nb:expr, $act:expr, $out:expr)) => {
        match $out.len() {
            8 => $module::dot_rows::<$($t,)? 8>($w, $nb, $act, $out),
            7 => $module::dot_rows::<$($t,)? 7>($w, $nb, $act, $out),
            6 => $module::dot_rows::<$($t,)? 6>($w, $nb, $act, $out),
            5 => $module::dot_rows::<$($t,)? 5>($w, $nb, $act, $out),
            _ => dispatch_rows!($module::dot_rows$(::<$t>)?($w, $nb, $act, $out)),
        }
    };
}
pub(crate) use dispatch_rows_wide;

/// Runs `$block!(b, set)` for every block `b < $nb`, alternating two
/// accumulator sets (0 and 1) over consecutive blocks to shorten the FMA
/// dependency chains.
macro_rules! alternate_blocks {
    ($nb:expr, $block:ident) => {
        let mut b = 0;
        while b + 1 < $nb {
            $block!(b, 0);
            $block!(b + 1, 1);
            b += 2;
        }
        if b < $nb {
            $block!(b, 0);
        }
    };
}
pub(crate) use alternate_blocks;

/// Sixteen packed bytes of nibbles → 32 bytes: low nibbles in lanes 0..16,
/// high nibbles in lanes 16..32.
///
/// # Safety
///
/// `p` must point at 16 readable bytes; the CPU must support AVX2.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn nibbles_32(p: *const u8) -> __m256i {
    // SAFETY: the caller guarantees 16 readable bytes; the load is unaligned.
    let q = unsafe { _mm_loadu_si128(p as *const __m128i) };
    let mask = _mm_set1_epi8(0x0F);
    let lo = _mm_and_si128(q, mask);
    let hi = _mm_and_si128(_mm_srli_epi16(q, 4), mask);
    _mm256_set_m128i(hi, lo)
}

/// The 32 bits of `bits` → 32 bytes, `0xFF` where the bit is set.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn bits_32(bits: u32) -> __m256i {
    let shuf = _mm256_set_epi64x(
        0x0303030303030303,
        0x0202020202020202,
        0x0101010101010101,
        0x0000000000000000,
    );
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(bits as i32), shuf);
    let bit_mask = _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe_u64 as i64);
    _mm256_cmpeq_epi8(_mm256_or_si256(bytes, bit_mask), _mm256_set1_epi64x(-1))
}

/// Sums of products of unsigned bytes `x` (≤ 128) with signed bytes `y`
/// (|y| ≤ 127), four adjacent products per i32 lane; no i16 saturation.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn dot_u8_i8(x: __m256i, y: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1))
}

/// [`dot_u8_i8`] in one AVX-512 VNNI instruction (`vpdpbusd`, which never
/// saturates): the same sums, so both kernels give identical results.
#[inline]
#[target_feature(enable = "avx2,avx512vnni,avx512vl")]
pub(crate) fn dot_u8_i8_vnni(x: __m256i, y: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(_mm256_setzero_si256(), x, y)
}

/// `acc + madd_epi16(a, b)`: products of signed 16-bit pairs, summed into
/// the eight i32 lanes of `acc`.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn madd_acc(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
    _mm256_add_epi32(acc, _mm256_madd_epi16(a, b))
}

/// [`madd_acc`] in one AVX-512 VNNI instruction (`vpdpwssd`): the same
/// integer sums.
#[inline]
#[target_feature(enable = "avx2,avx512vnni,avx512vl")]
pub(crate) fn madd_acc_vnni(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
    _mm256_dpwssd_epi32(acc, a, b)
}

/// Horizontal sum of eight f32 lanes.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// Reads the little-endian f16 at `p` as f32.
///
/// # Safety
///
/// `p` must point at two readable bytes; the CPU must support F16C.
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(crate) unsafe fn f16_at(p: *const u8) -> f32 {
    // SAFETY: the caller guarantees two readable bytes.
    let bits = unsafe { (p as *const u16).read_unaligned() };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}
