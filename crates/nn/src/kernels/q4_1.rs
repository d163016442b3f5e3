//! GGUF Q4_1 × Q8_1 matrix multiplication on the CPU.
//!
//! A Q4_1 block (ggml's `block_q4_1`, 20 bytes) holds 32 weights as
//! `d: f16, m: f16, qs: [u8; 16]`: weight `j` (0..16) is `d * (qs[j] & 0xF) + m`
//! and weight `j + 16` is `d * (qs[j] >> 4) + m`.
//!
//! The activations are quantized once per row into Q8_1-style blocks of 32
//! (`d = max|x| / 127`, `q = round(x / d)`, `s = d * Σq`), exactly like ggml's
//! `quantize_row_q8_1` except that `d` and `s` stay in f32. The dot product of
//! one weight block with one activation block is then
//! `d_w * d_x * Σ(q_w * q_x) + m_w * s_x`, where the integer sum runs on
//! `_mm256_maddubs_epi16` when the CPU has AVX2 and FMA.

use std::fmt;
use std::sync::Arc;

use rayon::prelude::*;

/// Weights per Q4_1 (and Q8_1) block.
pub const QK: usize = 32;
/// Bytes per Q4_1 block: two f16 scales and 16 bytes of nibbles.
pub const BLOCK_BYTES: usize = 20;

/// Below this many multiply-adds per call the work runs on the calling thread:
/// splitting it would cost more than it saves.
const PARALLEL_MIN_WORK: usize = 1 << 16;

/// Activation rows processed together against one weight row, so that the
/// unpacked weight nibbles are reused from registers during prefill.
const ROW_GROUP: usize = 4;

/// Raw GGUF Q4_1 blocks of an `(n, k)` weight matrix, row-major, kept in
/// memory for [`matmul_q4_1`].
#[derive(Clone)]
pub struct Q4_1Weights {
    data: Arc<[u8]>,
    n: usize,
    k: usize,
}

impl Q4_1Weights {
    /// Wraps the raw block bytes of an `(n, k)` Q4_1 matrix.
    ///
    /// Fails when `k` is not a multiple of 32 or `data` has the wrong length.
    pub fn new(data: impl Into<Arc<[u8]>>, n: usize, k: usize) -> candle_core::Result<Self> {
        let data = data.into();
        if !k.is_multiple_of(QK) {
            candle_core::bail!("Q4_1: row length {k} is not a multiple of {QK}");
        }
        let want = n * (k / QK) * BLOCK_BYTES;
        if data.len() != want {
            candle_core::bail!(
                "Q4_1: {} bytes given for a ({n}, {k}) matrix, expected {want}",
                data.len()
            );
        }
        Ok(Self { data, n, k })
    }

    /// Number of output rows.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Length of each row (the input width).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Computes `y = x Wᵀ` for `x` of shape `(m, k)` into `y` of shape `(m, n)`.
    pub fn matmul(&self, x: &[f32], y: &mut [f32]) {
        matmul_q4_1(&self.data, self.n, self.k, x, y);
    }
}

impl fmt::Debug for Q4_1Weights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Q4_1Weights")
            .field("n", &self.n)
            .field("k", &self.k)
            .field("bytes", &self.data.len())
            .finish()
    }
}

/// Activations quantized into Q8_1-style blocks: `qs` holds `m * k` signed
/// bytes; `d` and `s` hold one scale and one `d * Σq` per block.
struct QuantizedRows {
    qs: Vec<i8>,
    d: Vec<f32>,
    s: Vec<f32>,
}

/// Quantizes each row of `x` (`m` rows of `k`) like ggml's `quantize_row_q8_1`.
fn quantize_rows_q8_1(x: &[f32], m: usize, k: usize) -> QuantizedRows {
    let nb = m * k / QK;
    let mut qs = vec![0i8; m * k];
    let mut d = vec![0f32; nb];
    let mut s = vec![0f32; nb];
    for (((xb, qb), db), sb) in x
        .chunks_exact(QK)
        .zip(qs.chunks_exact_mut(QK))
        .zip(d.iter_mut())
        .zip(s.iter_mut())
    {
        let amax = xb.iter().fold(0f32, |a, v| a.max(v.abs()));
        let scale = amax / 127.0;
        let inv = if scale != 0.0 { 1.0 / scale } else { 0.0 };
        let mut sum = 0i32;
        for (q, &v) in qb.iter_mut().zip(xb) {
            let r = (v * inv).round() as i8;
            *q = r;
            sum += r as i32;
        }
        // As ggml's quantize_row_q8_1: quantize with the exact scale, store
        // the scale and the scaled sum rounded to f16.
        *db = half::f16::from_f32(scale).to_f32();
        *sb = half::f16::from_f32(scale * sum as f32).to_f32();
    }
    QuantizedRows { qs, d, s }
}

/// Reads the little-endian f16 at `b[0..2]` as f32.
#[inline(always)]
fn f16_at(b: &[u8]) -> f32 {
    half::f16::from_le_bytes([b[0], b[1]]).to_f32()
}

/// `y = x Wᵀ` with `W` an `(n, k)` GGUF Q4_1 matrix given as raw blocks
/// (row-major, `k % 32 == 0`), `x` of shape `(m, k)` and `y` of shape `(m, n)`.
///
/// Each activation row is quantized once to Q8_1; the output rows are split
/// into one contiguous chunk per rayon thread. Uses AVX2+FMA when the CPU has
/// them and a scalar loop otherwise.
///
/// # Panics
///
/// When `k` is not a multiple of 32 or a slice length does not match `n`, `k`
/// and `m = x.len() / k`.
pub fn matmul_q4_1(weights: &[u8], n: usize, k: usize, x: &[f32], y: &mut [f32]) {
    assert!(
        k > 0 && k.is_multiple_of(QK),
        "Q4_1: k = {k} is not a multiple of {QK}"
    );
    assert_eq!(
        weights.len(),
        n * (k / QK) * BLOCK_BYTES,
        "Q4_1: weight length"
    );
    assert!(
        x.len().is_multiple_of(k),
        "Q4_1: x length is not a multiple of k"
    );
    let m = x.len() / k;
    assert_eq!(y.len(), m * n, "Q4_1: y length");
    if m == 0 || n == 0 {
        return;
    }
    let xq = quantize_rows_q8_1(x, m, k);
    let kernel = select_kernel();
    matmul_with(kernel, weights, n, k, m, &xq, y);
}

/// Which inner loop to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

fn select_kernel() -> Kernel {
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

/// Computes the `(m, n)` output with `kernel`, parallel over weight rows.
fn matmul_with(
    kernel: Kernel,
    weights: &[u8],
    n: usize,
    k: usize,
    m: usize,
    xq: &QuantizedRows,
    y: &mut [f32],
) {
    // Output laid out weight-row-major (n, m) so each chunk of weight rows
    // owns a contiguous slice; for m == 1 that is `y` itself.
    if m == 1 {
        matmul_transposed(kernel, weights, n, k, m, xq, y);
    } else {
        let mut yt = vec![0f32; n * m];
        matmul_transposed(kernel, weights, n, k, m, xq, &mut yt);
        for (j, col) in yt.chunks_exact(m).enumerate() {
            for (r, &v) in col.iter().enumerate() {
                y[r * n + j] = v;
            }
        }
    }
}

/// Computes the output transposed, `yt` of shape `(n, m)`.
fn matmul_transposed(
    kernel: Kernel,
    weights: &[u8],
    n: usize,
    k: usize,
    m: usize,
    xq: &QuantizedRows,
    yt: &mut [f32],
) {
    let row_bytes = (k / QK) * BLOCK_BYTES;
    let run = |first_row: usize, out: &mut [f32]| {
        let rows = out.len() / m;
        let w = &weights[first_row * row_bytes..(first_row + rows) * row_bytes];
        rows_range(kernel, w, k, m, xq, out);
    };
    let threads = rayon::current_num_threads().max(1);
    if threads == 1 || n * k * m < PARALLEL_MIN_WORK || n < 2 {
        run(0, yt);
    } else {
        let chunk_rows = n.div_ceil(threads);
        yt.par_chunks_mut(chunk_rows * m)
            .enumerate()
            .for_each(|(i, out)| run(i * chunk_rows, out));
    }
}

/// Fills `out` (`rows × m`, weight-row-major) for the weight rows in `w`.
fn rows_range(kernel: Kernel, w: &[u8], k: usize, m: usize, xq: &QuantizedRows, out: &mut [f32]) {
    let nb = k / QK;
    let row_bytes = nb * BLOCK_BYTES;
    for (wrow, orow) in w.chunks_exact(row_bytes).zip(out.chunks_exact_mut(m)) {
        let mut r0 = 0;
        while r0 < m {
            let g = (m - r0).min(ROW_GROUP);
            let xs = &xq.qs[r0 * k..(r0 + g) * k];
            let ds = &xq.d[r0 * nb..(r0 + g) * nb];
            let ss = &xq.s[r0 * nb..(r0 + g) * nb];
            let o = &mut orow[r0..r0 + g];
            match kernel {
                Kernel::Scalar => dot_rows_scalar(wrow, nb, xs, ds, ss, o),
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `Kernel::Avx2` is only selected after
                // `is_x86_feature_detected!` confirmed AVX2, FMA and F16C.
                Kernel::Avx2 => unsafe {
                    match g {
                        4 => avx2::dot_rows::<4>(wrow, nb, xs, ds, ss, o),
                        3 => avx2::dot_rows::<3>(wrow, nb, xs, ds, ss, o),
                        2 => avx2::dot_rows::<2>(wrow, nb, xs, ds, ss, o),
                        _ => avx2::dot_rows::<1>(wrow, nb, xs, ds, ss, o),
                    }
                },
            }
            r0 += g;
        }
    }
}

/// Dots one weight row (`nb` blocks) with `out.len()` quantized activation rows.
fn dot_rows_scalar(wrow: &[u8], nb: usize, xs: &[i8], ds: &[f32], ss: &[f32], out: &mut [f32]) {
    let k = nb * QK;
    for (r, o) in out.iter_mut().enumerate() {
        let mut sum = 0f32;
        for (b, blk) in wrow.chunks_exact(BLOCK_BYTES).enumerate() {
            let dw = f16_at(&blk[0..2]);
            let mw = f16_at(&blk[2..4]);
            let qs = &blk[4..20];
            let xb = &xs[r * k + b * QK..r * k + (b + 1) * QK];
            let mut sumi = 0i32;
            for j in 0..QK / 2 {
                let v0 = (qs[j] & 0x0F) as i32;
                let v1 = (qs[j] >> 4) as i32;
                sumi += v0 * xb[j] as i32 + v1 * xb[j + QK / 2] as i32;
            }
            sum += sumi as f32 * dw * ds[r * nb + b] + mw * ss[r * nb + b];
        }
        *o = sum;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{BLOCK_BYTES, QK};
    use std::arch::x86_64::*;

    /// Dots one Q4_1 weight row (`nb` blocks) with `R` quantized activation
    /// rows (`xs`: `R * nb * 32` bytes, `ds`/`ss`: `R * nb` scales), writing
    /// `out[0..R]`.
    ///
    /// # Safety
    ///
    /// The CPU must support AVX2, FMA and F16C. Slice lengths must be as described
    /// (checked by the asserts below, so a mismatch panics rather than reads
    /// out of bounds).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_rows<const R: usize>(
        wrow: &[u8],
        nb: usize,
        xs: &[i8],
        ds: &[f32],
        ss: &[f32],
        out: &mut [f32],
    ) {
        let k = nb * QK;
        assert!(wrow.len() >= nb * BLOCK_BYTES);
        assert!(xs.len() >= R * k && ds.len() >= R * nb && ss.len() >= R * nb);
        assert!(out.len() >= R);
        let mask = _mm_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_ps(); R]; 2];
        let mut accm = [[_mm_setzero_ps(); R]; 2];
        let wp = wrow.as_ptr();
        let xp = xs.as_ptr();
        let dp = ds.as_ptr();
        let sp = ss.as_ptr();
        // Accumulates block `b` into accumulator set `$set`; two sets over
        // alternate blocks shorten the FMA dependency chains.
        macro_rules! block {
            ($b:expr, $set:expr) => {{
                let b = $b;
                // SAFETY: block `b < nb` lies within `wrow` (asserted above),
                // so its 20 bytes at `b * 20` are readable; loads are unaligned.
                let (dm, w) = unsafe {
                    let blk = wp.add(b * BLOCK_BYTES);
                    // d and m are two consecutive little-endian f16 values.
                    let dm16 = _mm_cvtsi32_si128((blk as *const i32).read_unaligned());
                    let q = _mm_loadu_si128(blk.add(4) as *const __m128i);
                    let lo = _mm_and_si128(q, mask);
                    let hi = _mm_and_si128(_mm_srli_epi16(q, 4), mask);
                    // Low nibbles → lanes 0..15, high nibbles → lanes 16..31.
                    (_mm_cvtph_ps(dm16), _mm256_set_m128i(hi, lo))
                };
                let mw = _mm_movehdup_ps(dm);
                for r in 0..R {
                    let i = r * nb + b;
                    // SAFETY: `i < R * nb <= ds.len(), ss.len()` and
                    // `r * k + b * 32 + 32 <= R * k <= xs.len()` (asserted
                    // above); the loads are unaligned.
                    let (xv, dx, sx) = unsafe {
                        (
                            _mm256_loadu_si256(xp.add(r * k + b * QK) as *const __m256i),
                            _mm_load_ss(dp.add(i)),
                            _mm_load_ss(sp.add(i)),
                        )
                    };
                    // u8 (0..15) × i8 pairs summed to i16: at most 2·15·128,
                    // no saturation.
                    let p16 = _mm256_maddubs_epi16(w, xv);
                    let p32 = _mm256_madd_epi16(p16, ones);
                    let scale = _mm256_broadcastss_ps(_mm_mul_ss(dm, dx));
                    acc[$set][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p32), scale, acc[$set][r]);
                    accm[$set][r] = _mm_fmadd_ss(mw, sx, accm[$set][r]);
                }
            }};
        }
        let mut b = 0;
        while b + 1 < nb {
            block!(b, 0);
            block!(b + 1, 1);
            b += 2;
        }
        if b < nb {
            block!(b, 0);
        }
        for r in 0..R {
            let v = _mm256_add_ps(acc[0][r], acc[1][r]);
            let m = _mm_add_ss(accm[0][r], accm[1][r]);
            out[r] = hsum(v) + _mm_cvtss_f32(m);
        }
    }

    /// Horizontal sum of the eight lanes.
    #[target_feature(enable = "avx2,fma,f16c")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    fn setup(n: usize, k: usize, m: usize) -> (Vec<u8>, Vec<f32>, Vec<f32>) {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q4_1).unwrap();
        let bytes = q.data().unwrap().into_owned();
        let wd: Vec<f32> = q
            .dequantize(&dev)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let x: Vec<f32> = Tensor::randn(0f32, 1.0, (m, k), &dev)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        (bytes, wd, x)
    }

    fn dense(wd: &[f32], x: &[f32], n: usize, k: usize, m: usize) -> Vec<f32> {
        let mut y = vec![0f32; m * n];
        for r in 0..m {
            for j in 0..n {
                y[r * n + j] = (0..k).map(|i| x[r * k + i] * wd[j * k + i]).sum();
            }
        }
        y
    }

    fn rel_err(a: &[f32], b: &[f32]) -> f32 {
        let num: f32 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
        let den: f32 = b.iter().map(|y| y * y).sum();
        (num / den).sqrt()
    }

    #[test]
    fn matches_dequantized_matmul() {
        for &(n, k, m) in &[
            (97, 256, 1),
            (97, 256, 7),
            (97, 576, 1),
            (97, 576, 7),
            (1536, 576, 3),
        ] {
            let (bytes, wd, x) = setup(n, k, m);
            let mut y = vec![0f32; m * n];
            matmul_q4_1(&bytes, n, k, &x, &mut y);
            let want = dense(&wd, &x, n, k, m);
            let rel = rel_err(&y, &want);
            assert!(rel < 0.01, "n={n} k={k} m={m}: relative error {rel}");
        }
    }

    #[test]
    fn simd_matches_scalar() {
        if select_kernel() == Kernel::Scalar {
            return;
        }
        for &(n, k, m) in &[(97, 256, 1), (97, 576, 7), (33, 64, 5)] {
            let (bytes, _, x) = setup(n, k, m);
            let xq = quantize_rows_q8_1(&x, m, k);
            let mut ys = vec![0f32; m * n];
            let mut yv = vec![0f32; m * n];
            matmul_with(Kernel::Scalar, &bytes, n, k, m, &xq, &mut ys);
            matmul_with(select_kernel(), &bytes, n, k, m, &xq, &mut yv);
            let scale = ys.iter().fold(0f32, |a, v| a.max(v.abs()));
            for (a, b) in ys.iter().zip(&yv) {
                assert!((a - b).abs() <= 1e-5 * scale, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn weights_wrapper_checks_sizes() {
        assert!(Q4_1Weights::new(vec![0u8; 20], 1, 32).is_ok());
        assert!(Q4_1Weights::new(vec![0u8; 19], 1, 32).is_err());
        assert!(Q4_1Weights::new(vec![0u8; 20], 1, 16).is_err());
    }

    /// Rough timing: `cargo test -p tuneup-nn --release -- --ignored --nocapture timing`.
    #[test]
    #[ignore]
    fn timing_q4_1_decode_shape() {
        use candle_core::quantized::QMatMul;
        use candle_core::Module;
        use std::time::Instant;
        let (n, k) = (1536, 576);
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q4_1).unwrap();
        let bytes = q.data().unwrap().into_owned();
        let x = Tensor::randn(0f32, 1.0, (1, k), &dev).unwrap();
        let xv: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        let mut y = vec![0f32; n];
        let iters = 2000;
        for _ in 0..50 {
            matmul_q4_1(&bytes, n, k, &xv, &mut y);
        }
        let t = Instant::now();
        for _ in 0..iters {
            matmul_q4_1(&bytes, n, k, &xv, &mut y);
        }
        let ours = t.elapsed().as_nanos() / iters;
        let qm = QMatMul::from_qtensor(q).unwrap();
        let iters_c = 200;
        for _ in 0..5 {
            qm.forward(&x).unwrap();
        }
        let t = Instant::now();
        for _ in 0..iters_c {
            qm.forward(&x).unwrap();
        }
        let theirs = t.elapsed().as_nanos() / iters_c;
        println!(
            "n={n} k={k} m=1: matmul_q4_1 {ours} ns/call, candle QMatMul {theirs} ns/call ({:.1}x)",
            theirs as f64 / ours as f64
        );
    }
}
