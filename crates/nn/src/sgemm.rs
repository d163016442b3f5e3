//! f32 matrix products on the CPU through `matrixmultiply`, split over the
//! rayon pool.
//!
//! candle's CPU matmul goes through the `gemm` crate, which on the AVX2 CPUs
//! we measure reaches about a quarter of what `matrixmultiply` (ndarray's
//! kernel) does on the same shapes (26 vs 98–122 GFLOP/s on one core). The
//! training products (frozen base weights, attention, the LM head) and large
//! inference products call [`matmul`] instead.

use rayon::prelude::*;

use crate::Result;

/// Rows (or columns) each parallel part gets at least: below this the
/// packing overhead of a part outweighs the split.
const MIN_PART: usize = 64;

/// A read-only f32 matrix view: element `(i, j)` is
/// `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major `rows × cols` matrix; an error when `data` is too short.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Result<Self> {
        Self::strided(data, rows, cols, cols, 1)
    }

    /// A view with explicit strides; an error when an element would fall
    /// outside `data`.
    pub fn strided(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Result<Self> {
        if rows > 0 && cols > 0 {
            let last = (rows - 1) * row_stride + (cols - 1) * col_stride;
            if last >= data.len() {
                candle_core::bail!(
                    "matrix view {rows}×{cols} (strides {row_stride}, {col_stride}) needs {} elements, has {}",
                    last + 1,
                    data.len()
                );
            }
        }
        Ok(Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        })
    }

    /// The elements the view reads from (from its first element on).
    pub fn data(&self) -> &'a [f32] {
        self.data
    }

    /// The transposed view (no copy).
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Rows `start..start + len` (no copy).
    fn rows(self, start: usize, len: usize) -> Self {
        Self {
            data: &self.data[(start * self.row_stride).min(self.data.len())..],
            rows: len,
            ..self
        }
    }

    /// Columns `start..start + len` (no copy).
    fn cols(self, start: usize, len: usize) -> Self {
        Self {
            data: &self.data[(start * self.col_stride).min(self.data.len())..],
            cols: len,
            ..self
        }
    }
}

/// `C = A·B` into the row-major `c` (`a.rows × b.cols`, overwritten),
/// split over the rayon pool by rows of `A` or, for few rows, columns of `B`.
pub fn matmul(a: MatRef<'_>, b: MatRef<'_>, c: &mut [f32]) -> Result<()> {
    gemm(1.0, a, b, 0.0, c)
}

/// `C = α·A·B + β·C` into the row-major `c` (`a.rows × b.cols`; with
/// `β = 0` its old values are ignored), split as [`matmul`].
pub fn gemm(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: &mut [f32]) -> Result<()> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if b.rows != k {
        candle_core::bail!("matmul: {m}×{k} by {}×{n}", b.rows);
    }
    if c.len() != m * n {
        candle_core::bail!("matmul: output has {} elements, want {m}×{n}", c.len());
    }
    let threads = rayon::current_num_threads().max(1);
    if m >= 2 * MIN_PART && threads > 1 {
        let part = m.div_ceil(threads).max(MIN_PART);
        c.par_chunks_mut(part * n).enumerate().for_each(|(i, c)| {
            let rows = c.len() / n.max(1);
            serial(alpha, a.rows(i * part, rows), b, beta, c, n);
        });
    } else if n >= 2 * MIN_PART && threads > 1 && m * k * n >= 1 << 18 {
        // Few rows: each part computes a block of columns into its own
        // buffer, copied into place after.
        let part = n.div_ceil(threads).max(MIN_PART);
        let blocks: Vec<(usize, Vec<f32>)> = (0..n.div_ceil(part))
            .into_par_iter()
            .map(|i| {
                let cols = part.min(n - i * part);
                let mut out = vec![0f32; m * cols];
                serial(alpha, a, b.cols(i * part, cols), 0.0, &mut out, cols);
                (i * part, out)
            })
            .collect();
        for (start, block) in blocks {
            let cols = block.len() / m.max(1);
            for (row, src) in block.chunks(cols.max(1)).enumerate() {
                let dst = &mut c[row * n + start..row * n + start + cols];
                if beta == 0.0 {
                    dst.copy_from_slice(src);
                } else {
                    dst.iter_mut()
                        .zip(src)
                        .for_each(|(d, s)| *d = beta * *d + s);
                }
            }
        }
    } else {
        serial(alpha, a, b, beta, c, n);
    }
    Ok(())
}

/// `C = A·B` on the calling thread (for callers that parallelise over
/// independent products themselves).
pub fn matmul_serial(a: MatRef<'_>, b: MatRef<'_>, c: &mut [f32]) -> Result<()> {
    gemm_serial(1.0, a, b, 0.0, c)
}

/// `C = α·A·B + β·C` on the calling thread (with `β = 0` the old values
/// of `c` are ignored).
pub fn gemm_serial(
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: &mut [f32],
) -> Result<()> {
    if b.rows != a.cols || c.len() != a.rows * b.cols {
        candle_core::bail!(
            "gemm: {}×{} by {}×{} into {} elements",
            a.rows,
            a.cols,
            b.rows,
            b.cols,
            c.len()
        );
    }
    serial(alpha, a, b, beta, c, b.cols);
    Ok(())
}

/// Independent products `C_i = A_i·B_i` run in parallel, one per task
/// (batched attention); each `c_i` is row-major and overwritten.
pub fn matmul_each<'a>(
    products: impl IntoParallelIterator<Item = (MatRef<'a>, MatRef<'a>, &'a mut [f32])>,
) -> Result<()> {
    products
        .into_par_iter()
        .try_for_each(|(a, b, c)| matmul_serial(a, b, c))
}

/// One single-threaded `C = α·A·B + β·C` into `c` with row stride `ldc`.
/// The views were bounds-checked when made.
fn serial(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: &mut [f32], ldc: usize) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.iter_mut().for_each(|v| *v *= beta);
        return;
    }
    assert!(c.len() >= (m - 1) * ldc + n, "sgemm output too short");
    // SAFETY: every element the kernel reads lies inside `a.data`/`b.data`
    // (checked by `MatRef::strided`; `rows`/`cols` only shrink a view from
    // its start), every element it writes inside `c` (asserted above), and
    // `c` does not alias the inputs (it is a unique borrow).
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.data.as_ptr(),
            a.row_stride as isize,
            a.col_stride as isize,
            b.data.as_ptr(),
            b.row_stride as isize,
            b.col_stride as isize,
            beta,
            c.as_mut_ptr(),
            ldc as isize,
            1,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: MatRef<'_>, b: MatRef<'_>) -> Vec<f32> {
        let mut c = vec![0f32; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                let mut s = 0f64;
                for p in 0..a.cols {
                    s += a.data[i * a.row_stride + p * a.col_stride] as f64
                        * b.data[p * b.row_stride + j * b.col_stride] as f64;
                }
                c[i * b.cols + j] = s as f32;
            }
        }
        c
    }

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i * 7919 + seed * 104_729) % 2000) as f32 - 1000.0) / 997.0)
            .collect()
    }

    fn assert_close(got: &[f32], want: &[f32]) {
        let worst = got
            .iter()
            .zip(want)
            .map(|(g, w)| (g - w).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-3, "max abs diff {worst}");
    }

    #[test]
    fn all_layouts_and_splits_match_naive() -> Result<()> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        // (m, k, n): row split, column split, serial, empty inner dimension.
        for &(m, k, n) in &[(300, 40, 70), (3, 200, 1000), (5, 7, 9), (4, 0, 3)] {
            let a = values(m * k, 1);
            let b = values(k * n, 2);
            let bt = values(n * k, 3);
            let a_ref = MatRef::new(&a, m, k)?;
            // B row-major and B given transposed (x Wᵀ with W (n, k)).
            for b_ref in [MatRef::new(&b, k, n)?, MatRef::new(&bt, n, k)?.t()] {
                let mut c = vec![f32::NAN; m * n];
                pool.install(|| matmul(a_ref, b_ref, &mut c))?;
                assert_close(&c, &naive(a_ref, b_ref));
            }
        }
        Ok(())
    }

    #[test]
    fn gemm_scales_and_accumulates() -> Result<()> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        for &(m, k, n) in &[(200, 30, 20), (2, 30, 300), (3, 4, 5)] {
            let a = values(m * k, 6);
            let b = values(k * n, 7);
            let c0 = values(m * n, 8);
            let (ar, br) = (MatRef::new(&a, m, k)?, MatRef::new(&b, k, n)?);
            let mut c = c0.clone();
            pool.install(|| gemm(0.5, ar, br, 2.0, &mut c))?;
            let want: Vec<f32> = naive(ar, br)
                .iter()
                .zip(&c0)
                .map(|(p, c)| 0.5 * p + 2.0 * c)
                .collect();
            assert_close(&c, &want);
        }
        Ok(())
    }

    #[test]
    fn batched_products_match_naive() -> Result<()> {
        let a = values(2 * 6 * 4, 4);
        let b = values(2 * 4 * 5, 5);
        let mut c = vec![0f32; 2 * 6 * 5];
        let views: Vec<_> = c
            .chunks_mut(30)
            .enumerate()
            .map(|(i, c)| {
                let a = MatRef::new(&a[i * 24..(i + 1) * 24], 6, 4).unwrap();
                let b = MatRef::new(&b[i * 20..(i + 1) * 20], 4, 5).unwrap();
                (a, b, c)
            })
            .collect();
        let expect: Vec<f32> = views.iter().flat_map(|(a, b, _)| naive(*a, *b)).collect();
        matmul_each(views)?;
        assert_close(&c, &expect);
        Ok(())
    }

    #[test]
    fn bad_shapes_are_errors() {
        let a = vec![0f32; 6];
        assert!(MatRef::new(&a, 2, 4).is_err());
        let a = MatRef::new(&a, 2, 3).unwrap();
        let mut c = vec![0f32; 4];
        assert!(matmul(a, a, &mut c).is_err());
        let mut c = vec![0f32; 3];
        assert!(matmul(a, a.t(), &mut c).is_err());
    }
}
