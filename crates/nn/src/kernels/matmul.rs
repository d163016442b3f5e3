//! The shared driver of the quantized kernels: quantize the activations once,
//! split the weight rows over threads, and hand each kernel one weight row at
//! a time together with up to [`ROW_GROUP`] (VNNI kernels: [`WIDE_ROW_GROUP`])
//! activation rows.

use std::fmt;
use std::sync::Arc;

use candle_core::quantized::GgmlDType;
use rayon::prelude::*;

use super::activations::{ActKind, ActRows, ActSlice};
use super::symmetric::{Symmetric, SymmetricBlock};
#[cfg(target_arch = "x86_64")]
use super::tiled;
use super::{q4_0, q4_1, q4_k, q5_0, q6_k, q8_0};

/// Below this many multiply-adds per call the work runs on the calling thread:
/// splitting it would cost more than it saves.
const PARALLEL_MIN_WORK: usize = 1 << 16;

/// Activation rows processed together against one weight row, so that the
/// unpacked weights are reused from registers during prefill.
pub(crate) const ROW_GROUP: usize = 4;

/// Activation rows per weight row for the VNNI kernels of the 32-weight
/// formats: AVX-512VL's 32 vector registers hold eight rows' accumulators,
/// so each weight block is decoded once for eight rows.
pub(crate) const WIDE_ROW_GROUP: usize = 8;

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
    /// Whether the VNNI kernel takes [`WIDE_ROW_GROUP`] rows per call.
    const WIDE_VNNI: bool = false;
    /// Activation rows the kernel takes per call.
    fn row_group(kernel: Kernel) -> usize {
        match kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::Vnni if Self::WIDE_VNNI => WIDE_ROW_GROUP,
            _ => ROW_GROUP,
        }
    }
    /// AVX-512 VNNI kernel, same contract but for up to
    /// `Self::row_group(Kernel::Vnni)` rows; formats without one run the
    /// AVX2 kernel.
    ///
    /// # Safety
    ///
    /// The CPU must support AVX2, FMA, F16C, AVX512-VNNI and AVX512-VL.
    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_rows_vnni(wrow: &[u8], nb: usize, act: ActSlice<'_>, out: &mut [f32]) {
        // SAFETY: the caller's guarantee includes AVX2, FMA and F16C.
        unsafe { Self::dot_rows_avx2(wrow, nb, act, out) }
    }
}

/// The GGUF block types with a kernel of our own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockType {
    /// `block_q4_0`: 32 weights, f16 scale, 4-bit values centred on 8.
    Q4_0,
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
            GgmlDType::Q4_0 => Self::Q4_0,
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
            Self::Q4_0 => (32, <q4_0::Q4_0 as SymmetricBlock>::BYTES),
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
            BlockType::Q4_0 => matmul_symmetric::<q4_0::Q4_0>(kernel, w, n, k, x, y),
            BlockType::Q5_0 => matmul_symmetric::<q5_0::Q5_0>(kernel, w, n, k, x, y),
            BlockType::Q8_0 => matmul_symmetric::<q8_0::Q8_0>(kernel, w, n, k, x, y),
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
    /// AVX2 with the byte dot products in AVX-512 VNNI (`vpdpbusd`).
    #[cfg(target_arch = "x86_64")]
    Vnni,
}

impl Kernel {
    /// Every kernel this CPU runs, slowest first.
    pub(crate) fn supported() -> Vec<Kernel> {
        #[allow(unused_mut)]
        let mut kernels = vec![Kernel::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
            {
                kernels.push(Kernel::Avx2);
                if is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl") {
                    kernels.push(Kernel::Vnni);
                }
            }
        }
        kernels
    }
}

/// The fastest kernel this CPU runs, unless `TUNEUP_KERNEL` (`scalar`,
/// `avx2` or `vnni`) names a slower one it also runs (for A/B benchmarks).
pub(crate) fn select_kernel() -> Kernel {
    static SELECTED: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
    *SELECTED.get_or_init(|| {
        let supported = Kernel::supported();
        let wanted = std::env::var("TUNEUP_KERNEL").ok();
        wanted
            .and_then(|name| {
                supported
                    .iter()
                    .copied()
                    .find(|k| format!("{k:?}").eq_ignore_ascii_case(name.trim()))
            })
            .unwrap_or(supported[supported.len() - 1])
    })
}

/// [`matmul`] for a symmetric 32-weight format: long prefills on AVX-512
/// VNNI take the tiled GEMM ([`tiled`]), everything else the per-row kernels.
fn matmul_symmetric<B: SymmetricBlock>(
    kernel: Kernel,
    w: &[u8],
    n: usize,
    k: usize,
    x: &[f32],
    y: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if kernel == Kernel::Vnni
        && x.len().is_multiple_of(k)
        && x.len() / k >= tiled::MIN_ROWS
        && n >= tiled::STRIP
        && y.len() == (x.len() / k) * n
    {
        return matmul_tiled::<B>(w, n, k, x, y);
    }
    matmul::<Symmetric<B>>(kernel, w, n, k, x, y)
}

/// The tiled VNNI GEMM: strips of eight weight rows over threads; the last
/// `n mod 8` rows run the per-row kernel.
#[cfg(target_arch = "x86_64")]
fn matmul_tiled<B: SymmetricBlock>(w: &[u8], n: usize, k: usize, x: &[f32], y: &mut [f32]) {
    let m = x.len() / k;
    let act = ActRows::quantize(ActKind::Q8_0, x, k);
    let xu = tiled::unsigned(&act.qs);
    let out = Output {
        y: y.as_mut_ptr(),
        n,
    };
    let (nb, row_bytes) = (k / 32, (k / 32) * B::BYTES);
    let strips = n / tiled::STRIP;
    let shared = &out; // the closure captures the whole `Sync` struct
    let run = |range: std::ops::Range<usize>| {
        let mut strip = tiled::Strip::new();
        for s in range {
            let j0 = s * tiled::STRIP;
            // SAFETY: `Kernel::Vnni` (checked by the caller) was only selected
            // after `is_x86_feature_detected!` confirmed AVX2, FMA, F16C,
            // AVX512-VNNI and AVX512-VL; rows `j0..j0 + 8` exist, and columns
            // `j0..j0 + 8` of every output row belong to this strip alone.
            unsafe {
                strip.decode::<B>(w, row_bytes, j0, nb);
                strip.multiply(&xu, &act.d, k, m, shared.y.add(j0), n);
            }
        }
    };
    split_over_threads(strips, strips < 2, run);
    let tail = strips * tiled::STRIP..n;
    if !tail.is_empty() {
        rows_range::<Symmetric<B>>(Kernel::Vnni, w, row_bytes, tail, &act, &out);
    }
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
    let out = Output {
        y: y.as_mut_ptr(),
        n,
    };
    let row_bytes = (k / F::QK) * F::BYTES;
    let run = |rows: std::ops::Range<usize>| {
        rows_range::<F>(kernel, w, row_bytes, rows, &act, &out);
    };
    split_over_threads(n, n * k * m < PARALLEL_MIN_WORK || n < 2, run);
}

/// Runs `run` over `0..count`, split into a few chunks per thread (so that a
/// slow thread does not hold up the others), or whole on this thread when
/// `serial` or there is one thread.
fn split_over_threads(count: usize, serial: bool, run: impl Fn(std::ops::Range<usize>) + Sync) {
    let threads = rayon::current_num_threads().max(1);
    if threads == 1 || serial {
        run(0..count);
    } else {
        let chunk = count.div_ceil(threads * 4).max(1);
        (0..count.div_ceil(chunk))
            .into_par_iter()
            .for_each(|c| run(c * chunk..((c + 1) * chunk).min(count)));
    }
}

/// The `(m, n)` output, written by several threads at disjoint columns.
struct Output {
    y: *mut f32,
    n: usize,
}

// SAFETY: threads write disjoint elements (each owns a range of columns), and
// `matmul` holds the exclusive borrow of `y` until they have all finished.
unsafe impl Sync for Output {}

/// Activation bytes kept hot in L1 while the weight rows stream past them.
const ACT_TILE_BYTES: usize = 16 * 1024;

/// Weight bytes kept in L2 while all the activation tiles pass over them.
const WEIGHT_CHUNK_BYTES: usize = 192 * 1024;

/// Computes columns `rows` (weight rows) of the output for every activation
/// row, in tiles of activation rows that stay in L1.
fn rows_range<F: BlockFormat>(
    kernel: Kernel,
    w: &[u8],
    row_bytes: usize,
    rows: std::ops::Range<usize>,
    act: &ActRows,
    out: &Output,
) {
    let (k, nb) = (act.k, act.k / F::QK);
    let m = act.qs.len() / k;
    let group = F::row_group(kernel);
    let tile = ((ACT_TILE_BYTES / k).max(group) / group) * group;
    let chunk = (WEIGHT_CHUNK_BYTES / row_bytes.max(1)).max(1);
    let mut o = [0f32; WIDE_ROW_GROUP];
    // Weight rows in chunks that stay in L2 while every activation tile
    // passes over them: each weight byte comes from memory once.
    for c0 in rows.clone().step_by(chunk) {
        let chunk_rows = c0..(c0 + chunk).min(rows.end);
        for t0 in (0..m).step_by(tile) {
            let t1 = (t0 + tile).min(m);
            for j in chunk_rows.clone() {
                let wrow = &w[j * row_bytes..(j + 1) * row_bytes];
                let mut r0 = t0;
                while r0 < t1 {
                    let g = (t1 - r0).min(group);
                    let a = act.slice(r0, g);
                    let o = &mut o[..g];
                    match kernel {
                        Kernel::Scalar => F::dot_rows_scalar(wrow, nb, a, o),
                        #[cfg(target_arch = "x86_64")]
                        // SAFETY: `Kernel::Avx2` is only selected after
                        // `is_x86_feature_detected!` confirmed AVX2, FMA and F16C.
                        Kernel::Avx2 => unsafe { F::dot_rows_avx2(wrow, nb, a, o) },
                        #[cfg(target_arch = "x86_64")]
                        // SAFETY: `Kernel::Vnni` is only selected after
                        // `is_x86_feature_detected!` confirmed AVX2, FMA, F16C,
                        // AVX512-VNNI and AVX512-VL.
                        Kernel::Vnni => unsafe { F::dot_rows_vnni(wrow, nb, a, o) },
                    }
                    for (i, &v) in o.iter().enumerate() {
                        // SAFETY: `r0 + i < m` and `j < n`, so the index lies in
                        // the `m · n` output; column `j` belongs to this thread.
                        unsafe { *out.y.add((r0 + i) * out.n + j) = v };
                    }
                    r0 += g;
                }
            }
        }
    }
}
