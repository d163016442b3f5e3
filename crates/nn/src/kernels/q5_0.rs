//! GGUF Q5_0: 32 weights as `d: f16, qh: u32, qs: [u8; 16]` (ggml's
//! `block_q5_0`, 22 bytes). Weight `j` (0..16) is
//! `d · ((qs[j] & 0xF | (bit j of qh) << 4) - 16)`; weight `j + 16` takes the
//! high nibble and bit `j + 16`.

use super::symmetric::SymmetricBlock;

/// The Q5_0 block format.
pub(crate) struct Q5_0;

impl SymmetricBlock for Q5_0 {
    const BYTES: usize = 22;

    fn decode(blk: &[u8], q: &mut [i8; 32]) -> f32 {
        let qh = u32::from_le_bytes([blk[2], blk[3], blk[4], blk[5]]);
        for (j, &byte) in blk[6..22].iter().enumerate() {
            let h0 = ((qh >> j) << 4) & 0x10;
            let h1 = (qh >> (j + 12)) & 0x10;
            q[j] = (((byte as u32 & 0x0F) | h0) as i32 - 16) as i8;
            q[j + 16] = (((byte as u32 >> 4) | h1) as i32 - 16) as i8;
        }
        half::f16::from_le_bytes([blk[0], blk[1]]).to_f32()
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn decode_avx2(p: *const u8) -> (f32, std::arch::x86_64::__m256i) {
        use super::simd::{bits_32, f16_at, nibbles_32};
        use std::arch::x86_64::*;
        // SAFETY: the caller guarantees 22 readable bytes and AVX2/F16C.
        unsafe {
            let qh = (p.add(2) as *const u32).read_unaligned();
            // A clear fifth bit means value - 16 < 0: set the top nibble so
            // the byte reads as that negative number.
            let top = _mm256_andnot_si256(bits_32(qh), _mm256_set1_epi8(0xF0u8 as i8));
            (f16_at(p), _mm256_or_si256(nibbles_32(p.add(6)), top))
        }
    }
}
