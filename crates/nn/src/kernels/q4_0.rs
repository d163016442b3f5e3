//! GGUF Q4_0: 32 weights as `d: f16, qs: [u8; 16]` (ggml's `block_q4_0`,
//! 18 bytes). Weight `j` (0..16) is `d · ((qs[j] & 0xF) - 8)`; weight `j + 16`
//! takes the high nibble.

use super::symmetric::SymmetricBlock;

/// The Q4_0 block format.
pub(crate) struct Q4_0;

impl SymmetricBlock for Q4_0 {
    const BYTES: usize = 18;

    fn decode(blk: &[u8], q: &mut [i8; 32]) -> f32 {
        for (j, &byte) in blk[2..18].iter().enumerate() {
            q[j] = (byte & 0x0F) as i8 - 8;
            q[j + 16] = (byte >> 4) as i8 - 8;
        }
        half::f16::from_le_bytes([blk[0], blk[1]]).to_f32()
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn decode_avx2(p: *const u8) -> (f32, std::arch::x86_64::__m256i) {
        use super::simd::{f16_at, nibbles_32};
        use std::arch::x86_64::*;
        // SAFETY: the caller guarantees 18 readable bytes and AVX2/F16C.
        unsafe {
            (
                f16_at(p),
                _mm256_sub_epi8(nibbles_32(p.add(2)), _mm256_set1_epi8(8)),
            )
        }
    }
}
