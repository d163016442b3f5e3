//! Hand-written CPU kernels for quantized formats where candle's own CPU path
//! is slow.
//!
//! Candle 0.11 has no SIMD dot product for GGUF Q4_1 on x86, so a Q4_1 model
//! spends most of its decode time in the scalar reference loop. [`q4_1`]
//! replaces that with an AVX2+FMA kernel (and a portable scalar fallback) that
//! follows llama.cpp's `ggml_vec_dot_q4_1_q8_1`.

pub mod q4_1;

pub use q4_1::{matmul_q4_1, Q4_1Weights};
