//! GGUF Q8_0: 32 weights as `d: f16, qs: [i8; 32]` (ggml's `block_q8_0`,
//! 34 bytes); weight `j` is `d · qs[j]`.

use super::symmetric::SymmetricBlock;

/// The Q8_0 block format.
pub(crate) struct Q8_0;

impl SymmetricBlock for Q8_0 {
    const BYTES: usize = 34;

    fn decode(blk: &[u8], q: &mut [i8; 32]) -> f32 {
        for (q, &b) in q.iter_mut().zip(&blk[2..34]) {
            *q = b as i8;
        }
        half::f16::from_le_bytes([blk[0], blk[1]]).to_f32()
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn decode_avx2(p: *const u8) -> (f32, std::arch::x86_64::__m256i) {
        use super::simd::f16_at;
        use std::arch::x86_64::*;
        // SAFETY: the caller guarantees 34 readable bytes and AVX2/F16C.
        unsafe { (f16_at(p), _mm256_loadu_si256(p.add(2) as *const __m256i)) }
    }
}
