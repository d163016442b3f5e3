//! The shared driver of the quantized kernels: quantize the activations once,
//! split the weight rows over threads, and hand each kernel one weight row at
//! a time together with up to [`ROW_GROUP`] activation rows.

use std::fmt;
use std::sync::Arc;

use candle_core::quantized::GgmlDType;
use rayon::prelude::*;

use super::activations::{ActKind, ActRows, ActSlice};
use super::symmetric::{Symmetric, SymmetricBlock};
use super::{q4_1, q4_k, q5_0, q6_k, q8_0};

/// Below this many multiply-adds per call the work runs on the calling thread:
/// splitting it would cost more than it saves.
const PARALLEL_MIN_WORK: usize = 1 << 16;

/// Activation rows processed together against one weight row, so that the
/// unpacked weights are reused from registers during prefill.
pub(crate) const ROW_GROUP: usize = 4;

/// One GGUF weight block format with a dot-product kernel.
pub(crate) trait BlockFormat {
    /// Weights per block.
    const QK: usize;
    /// Bytes per block.
    const BYTES: usize;
    /// The activation format the kernel multiplies with.
    const ACT: ActKind;
    /// Portable kernel: dots one weight row (`nb` blocks) with
    /// `out.len()` activation rows.
    fn dot_rows_scalar(wrow: &[u8], nb: usize, act: ActSlice<'_>, out: &mut [f32]);
    /// AVX2 kernel, same contract, for `1 ≤ out.len() ≤ ROW_GROUP`.
    ///
    /// # Safety
    ///
    /// The CPU must support AVX2, FMA and F16C.
    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_rows_avx2(wrow: &[u8], nb: usize, act: ActSlice<'_>, out: &mut [f32]);
}

/// The GGUF block types with a kernel of our own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockType {
    /// `block_q4_1`: 32 weights, f16 scale and minimum, 4-bit values.
    Q4_1,
    /// `block_q5_0`: 32 weights, f16 scale, 5-bit values centred on 16.
    Q5_0,
    /// `block_q8_0`: 32 weights, f16 scale, 8-bit values.
    Q8_0,
    /// `block_q4_K`: 256 weights in 8 sub-blocks with 6-bit scales and minimums.
    Q4K,
    /// `block_q6_K`: 256 weights in 16 sub-blocks with 8-bit scales, 6-bit values.
    Q6K,
}

impl BlockType {
    /// The kernel for a GGUF block type, if we have one.
    pub fn from_ggml(dtype: GgmlDType) -> Option<Self> {
        Some(match dtype {
            GgmlDType::Q4_1 => Self::Q4_1,
            GgmlDType::Q5_0 => Self::Q5_0,
            GgmlDType::Q8_0 => Self::Q8_0,
            GgmlDType::Q4K => Self::Q4K,
            GgmlDType::Q6K => Self::Q6K,
            _ => return None,
        })
    }

    /// Weights per block and bytes per block.
    pub fn block_shape(self) -> (usize, usize) {
        match self {
            Self::Q4_1 => (q4_1::Q4_1::QK, q4_1::Q4_1::BYTES),
            Self::Q5_0 => (32, <q5_0::Q5_0 as SymmetricBlock>::BYTES),
            Self::Q8_0 => (32, <q8_0::Q8_0 as SymmetricBlock>::BYTES),
            Self::Q4K => (q4_k::Q4K::QK, q4_k::Q4K::BYTES),
            Self::Q6K => (q6_k::Q6K::QK, q6_k::Q6K::BYTES),
        }
    }
}

/// Raw GGUF blocks of an `(n, k)` weight matrix, row-major, with the kernel
/// that multiplies them.
#[derive(Clone)]
pub struct QuantWeights {
    block: BlockType,
    data: Arc<[u8]>,
    n: usize,
    k: usize,
}

impl QuantWeights {
    /// Wraps the raw block bytes of an `(n, k)` matrix of `block` blocks.
    ///
    /// Fails when `k` is not a multiple of the block size or `data` has the
    /// wrong length.
    pub fn new(
        block: BlockType,
        data: impl Into<Arc<[u8]>>,
        n: usize,
        k: usize,
    ) -> candle_core::Result<Self> {
        let data = data.into();
        let (qk, bytes) = block.block_shape();
        if k == 0 || !k.is_multiple_of(qk) {
            candle_core::bail!("{block:?}: row length {k} is not a multiple of {qk}");
        }
        let want = n * (k / qk) * bytes;
        if data.len() != want {
            candle_core::bail!(
                "{block:?}: {} bytes given for a ({n}, {k}) matrix, expected {want}",
                data.len()
            );
        }
        Ok(Self { block, data, n, k })
    }

    /// Number of output rows.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Length of each row (the input width).
    pub fn k(&self) -> usize {
        self.k
    }

    /// The block format.
    pub fn block_type(&self) -> BlockType {
        self.block
    }

    /// Computes `y = x Wᵀ` for `x` of shape `(m, k)` into `y` of shape `(m, n)`.
    ///
    /// # Panics
    ///
    /// When `x.len()` is not a multiple of `k` or `y.len() != m · n`.
    pub fn matmul(&self, x: &[f32], y: &mut [f32]) {
        self.matmul_with(select_kernel(), x, y)
    }

    pub(crate) fn matmul_with(&self, kernel: Kernel, x: &[f32], y: &mut [f32]) {
        let (w, n, k) = (&self.data[..], self.n, self.k);
        match self.block {
            BlockType::Q4_1 => matmul::<q4_1::Q4_1>(kernel, w, n, k, x, y),
            BlockType::Q5_0 => matmul::<Symmetric<q5_0::Q5_0>>(kernel, w, n, k, x, y),
            BlockType::Q8_0 => matmul::<Symmetric<q8_0::Q8_0>>(kernel, w, n, k, x, y),
            BlockType::Q4K => matmul::<q4_k::Q4K>(kernel, w, n, k, x, y),
            BlockType::Q6K => matmul::<q6_k::Q6K>(kernel, w, n, k, x, y),
        }
    }
}

impl fmt::Debug for QuantWeights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuantWeights")
            .field("block", &self.block)
            .field("n", &self.n)
            .field("k", &self.k)
            .field("bytes", &self.data.len())
            .finish()
    }
}

/// Which inner loop to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kernel {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

/// The fastest kernel this CPU runs.
pub(crate) fn select_kernel() -> Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
        {
            return Kernel::Avx2;
        }
    }
    Kernel::Scalar
}

/// `y = x Wᵀ` for `W` in format `F`, parallel over weight rows.
fn matmul<F: BlockFormat>(kernel: Kernel, w: &[u8], n: usize, k: usize, x: &[f32], y: &mut [f32]) {
    assert!(
        x.len().is_multiple_of(k),
        "{}: x length is not a multiple of k",
        std::any::type_name::<F>()
    );
    let m = x.len() / k;
    assert_eq!(y.len(), m * n, "quantized matmul: y length");
    if m == 0 || n == 0 {
        return;
    }
    let act = ActRows::quantize(F::ACT, x, k);
    // Output laid out weight-row-major (n, m) so each chunk of weight rows
    // owns a contiguous slice; for m == 1 that is `y` itself.
    if m == 1 {
        rows_parallel::<F>(kernel, w, n, k, m, &act, y);
    } else {
        let mut yt = vec![0f32; n * m];
        rows_parallel::<F>(kernel, w, n, k, m, &act, &mut yt);
        for (j, col) in yt.chunks_exact(m).enumerate() {
            for (r, &v) in col.iter().enumerate() {
                y[r * n + j] = v;
            }
        }
    }
}

/// Fills `yt` (`n × m`) splitting the weight rows into one chunk per thread.
fn rows_parallel<F: BlockFormat>(
    kernel: Kernel,
    w: &[u8],
    n: usize,
    k: usize,
    m: usize,
    act: &ActRows,
    yt: &mut [f32],
) {
    let row_bytes = (k / F::QK) * F::BYTES;
    let run = |first_row: usize, out: &mut [f32]| {
        let rows = out.len() / m;
        let w = &w[first_row * row_bytes..(first_row + rows) * row_bytes];
        rows_range::<F>(kernel, w, row_bytes, m, act, out);
    };
    let threads = rayon::current_num_threads().max(1);
    if threads == 1 || n * k * m < PARALLEL_MIN_WORK || n < 2 {
        run(0, yt);
    } else {
        let chunk_rows = n.div_ceil(threads * 4).max(1);
        yt.par_chunks_mut(chunk_rows * m)
            .enumerate()
            .for_each(|(i, out)| run(i * chunk_rows, out));
    }
}

/// Fills `out` (`rows × m`, weight-row-major) for the weight rows in `w`.
fn rows_range<F: BlockFormat>(
    kernel: Kernel,
    w: &[u8],
    row_bytes: usize,
    m: usize,
    act: &ActRows,
    out: &mut [f32],
) {
    let nb = act.k / F::QK;
    for (wrow, orow) in w.chunks_exact(row_bytes).zip(out.chunks_exact_mut(m)) {
        let mut r0 = 0;
        while r0 < m {
            let g = (m - r0).min(ROW_GROUP);
            let a = act.slice(r0, g);
            let o = &mut orow[r0..r0 + g];
            match kernel {
                Kernel::Scalar => F::dot_rows_scalar(wrow, nb, a, o),
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `Kernel::Avx2` is only selected after
                // `is_x86_feature_detected!` confirmed AVX2, FMA and F16C.
                Kernel::Avx2 => unsafe { F::dot_rows_avx2(wrow, nb, a, o) },
            }
            r0 += g;
        }
    }
}
