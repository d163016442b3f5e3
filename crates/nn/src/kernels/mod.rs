//! Hand-written CPU kernels for GGUF quantized matrix multiplication.
//!
//! Candle 0.11's CPU path for several GGUF block types is scalar on x86
//! (Q4_1 and Q5_0 have no SIMD dot product at all), and its driver is not
//! tuned for the small matrices of 0.1B–1B models. [`QuantWeights`] keeps a
//! weight's raw GGUF blocks and multiplies them with AVX2/FMA kernels that
//! follow llama.cpp's (`ggml_vec_dot_*`), with a portable scalar fallback:
//! Q4_1 (× Q8_1 activations), Q4_0, Q5_0 and Q8_0 (× Q8_0), Q4_K and Q6_K (× Q8_K).

mod activations;
mod matmul;
mod q4_0;
mod q4_1;
mod q4_k;
mod q5_0;
mod q6_k;
mod q8_0;
#[cfg(target_arch = "x86_64")]
mod simd;
mod symmetric;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod tiled;

pub use matmul::{BlockType, QuantWeights};
