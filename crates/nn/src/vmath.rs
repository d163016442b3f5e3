//! Element-wise math written to vectorize: a run-time choice of AVX2 + FMA
//! for plain loops ([`dispatch!`](crate::dispatch)), a branch-free `exp`,
//! and row reductions over independent lanes. Shared by the training ops
//! (softmax, cross-entropy, SwiGLU) and the sentence encoder's kernels.

/// Defines `[VIS] fn NAME(ARGS) [-> RET]` from a body written as plain loops: the body is compiled once for
/// the build's baseline and once with AVX2 + FMA enabled, and the second is called when the CPU has them. A
/// portable binary thus still gets 8-wide fused arithmetic where LLVM vectorizes the loops.
#[macro_export]
macro_rules! dispatch {
    ($(#[$doc:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? $body:block) => {
        $(#[$doc])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn generic($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    generic($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU supports the features `avx2` was compiled for (checked just above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            generic($($arg),*)
        }
    };
}

/// Independent partials in the reductions (two AVX registers): a single
/// running float sum or maximum would have to stay in order and not
/// vectorize.
const LANES: usize = 16;

/// The dot product of two slices (over the shorter length).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Independent partial sums (four AVX registers) let the loop vectorize and hide the add latency.
    const DOT_LANES: usize = 32;
    let mut acc = [0f32; DOT_LANES];
    let (ca, cb) = (a.chunks_exact(DOT_LANES), b.chunks_exact(DOT_LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        acc.iter_mut()
            .zip(x.iter().zip(y))
            .for_each(|(s, (x, y))| *s += x * y);
    }
    acc.iter().sum::<f32>() + tail
}

/// `eˣ` for `x ≤ 88` (larger values saturate there; below −87 it returns
/// e⁻⁸⁷ ≈ 1.6·10⁻³⁸): `2ⁿ · p(r)` with a degree-6 polynomial on
/// `|r| ≤ ln2/2`, relative error below 2·10⁻⁷.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2²³: adding it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // The low mantissa bits of `shifted` hold n (two's complement); put n + 127 in the exponent field.
    let scale = f32::from_bits((shifted.to_bits().wrapping_add(127) & 0x1ff) << 23);
    p * scale
}

/// `1 / (1 + e⁻ˣ)`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// The largest value of `row` (−∞ for an empty row).
#[inline(always)]
pub fn max(row: &[f32]) -> f32 {
    let mut maxes = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        maxes
            .iter_mut()
            .zip(chunk)
            .for_each(|(m, v)| *m = m.max(*v));
    }
    chunks
        .remainder()
        .iter()
        .chain(&maxes)
        .fold(f32::NEG_INFINITY, |m, v| m.max(*v))
}

/// `Σ exp(x − shift)` over `row`.
#[inline(always)]
pub fn sum_exp(row: &[f32], shift: f32) -> f32 {
    let mut sums = [0f32; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        sums.iter_mut()
            .zip(chunk)
            .for_each(|(s, v)| *s += exp(*v - shift));
    }
    let tail: f32 = chunks.remainder().iter().map(|v| exp(*v - shift)).sum();
    sums.iter().sum::<f32>() + tail
}

/// `row ← exp((row − max)·scale)`; returns the sum of the new values.
#[inline(always)]
pub fn exp_in_place(row: &mut [f32], max: f32, scale: f32) -> f32 {
    let mut sums = [0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        sums.iter_mut().zip(chunk).for_each(|(s, v)| {
            *v = exp((*v - max) * scale);
            *s += *v;
        });
    }
    let mut sum: f32 = sums.iter().sum();
    for v in chunks.into_remainder() {
        *v = exp((*v - max) * scale);
        sum += *v;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate_over_the_softmax_range() {
        for i in 0..=2000 {
            let x = -80.0 + i as f32 * 0.08;
            let want = (x as f64).exp();
            let rel = ((exp(x) as f64 - want) / want).abs();
            assert!(rel < 3e-7, "exp({x}): relative error {rel}");
        }
        assert!(exp(-1000.0) < 1e-37 && exp(-1000.0) >= 0.0);
        assert!(exp(f32::NEG_INFINITY) < 1e-37);
        assert!(exp(200.0).is_finite());
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-7);
        assert!(sigmoid(-200.0) < 1e-37 && sigmoid(200.0) == 1.0);
    }

    crate::dispatch! {
        fn reduce(row: &mut [f32]) -> (f32, f32, f32) {
            let m = max(row);
            let s = sum_exp(row, m);
            (m, s, exp_in_place(row, m, 0.5))
        }
    }

    #[test]
    fn reductions_match_their_definitions() {
        for n in [0usize, 1, 15, 16, 17, 100] {
            let row: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 23) as f32 - 11.0) / 3.0)
                .collect();
            let want_max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let want_sum: f64 = row.iter().map(|&v| ((v - want_max) as f64).exp()).sum();
            let want_half: f64 = row
                .iter()
                .map(|&v| (((v - want_max) * 0.5) as f64).exp())
                .sum();
            let mut r = row.clone();
            let (m, s, h) = reduce(&mut r);
            assert_eq!(m, want_max, "n {n}");
            assert!(
                (s as f64 - want_sum).abs() <= 1e-5 * want_sum.max(1.0),
                "n {n}"
            );
            assert!(
                (h as f64 - want_half).abs() <= 1e-5 * want_half.max(1.0),
                "n {n}"
            );
            for (got, v) in r.iter().zip(&row) {
                let want = (((v - want_max) * 0.5) as f64).exp();
                assert!(
                    (*got as f64 - want).abs() <= 1e-6 * want.max(1e-30),
                    "n {n}"
                );
            }
        }
    }
}
