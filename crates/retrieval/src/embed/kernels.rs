//! Element-wise kernels of the encoder: bias + activation, residual + layer norm, and scaled softmax.
//!
//! Each kernel is written once as plain loops that LLVM vectorizes, and compiled a second time for AVX2 + FMA
//! chosen at run time (`tuneup_nn::dispatch!`). `exp` (`tuneup_nn::vmath`) and `erf` are polynomial approximations
//! without branches (so they vectorize), accurate to a few parts in 10⁷ — well inside what a float32 encoder
//! distinguishes.

use tuneup_nn::dispatch;
use tuneup_nn::vmath::{self, exp};

/// The feed-forward activation a BERT config names in `hidden_act`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activation {
    /// `gelu`: the exact, erf-based GELU.
    Gelu,
    /// `gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`: the tanh approximation.
    GeluTanh,
    /// `relu`.
    Relu,
}

impl Activation {
    /// The activation for a `hidden_act` name; `None` for names this encoder does not implement.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            "gelu" => Some(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Activation::GeluTanh),
            "relu" => Some(Activation::Relu),
            _ => None,
        }
    }
}

dispatch! {
    /// `x ← act(x + bias)` for every row of `x` (rows of `bias.len()` values).
    pub(crate) fn bias_activation(x: &mut [f32], bias: &[f32], act: Activation) {
        for row in x.chunks_exact_mut(bias.len()) {
            match act {
                Activation::Gelu => row.iter_mut().zip(bias).for_each(|(v, b)| *v = gelu(*v + b)),
                Activation::GeluTanh => {
                    row.iter_mut().zip(bias).for_each(|(v, b)| *v = gelu_tanh(*v + b))
                }
                Activation::Relu => row.iter_mut().zip(bias).for_each(|(v, b)| *v = (*v + b).max(0.0)),
            }
        }
    }
}

dispatch! {
    /// `x ← LayerNorm(x + y + bias)` row by row (rows of `weight.len()` values; `y` is the sublayer's output
    /// before its bias).
    pub(crate) fn residual_layer_norm(x: &mut [f32], y: &[f32], bias: &[f32], weight: &[f32], shift: &[f32], eps: f32) {
        let h = weight.len();
        for (row, add) in x.chunks_exact_mut(h).zip(y.chunks_exact(h)) {
            row.iter_mut().zip(add).zip(bias).for_each(|((v, a), b)| *v += a + b);
            normalize_row(row, weight, shift, eps);
        }
    }
}

dispatch! {
    /// `x ← LayerNorm(x)` row by row (rows of `weight.len()` values).
    pub(crate) fn layer_norm(x: &mut [f32], weight: &[f32], shift: &[f32], eps: f32) {
        for row in x.chunks_exact_mut(weight.len()) {
            normalize_row(row, weight, shift, eps);
        }
    }
}

dispatch! {
    /// `x ← softmax(scale · x)` for every row of `width` values.
    pub(crate) fn scaled_softmax(x: &mut [f32], width: usize, scale: f32) {
        for row in x.chunks_exact_mut(width) {
            let max = vmath::max(row);
            let inv = 1.0 / vmath::exp_in_place(row, max, scale);
            row.iter_mut().for_each(|v| *v *= inv);
        }
    }
}

#[inline(always)]
fn normalize_row(row: &mut [f32], weight: &[f32], shift: &[f32], eps: f32) {
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let inv = 1.0 / (var + eps).sqrt();
    row.iter_mut()
        .zip(weight)
        .zip(shift)
        .for_each(|((v, w), b)| *v = (*v - mean) * inv * w + b);
}

/// `erf(x)` by Abramowitz & Stegun 7.1.28 (absolute error ≤ 3·10⁻⁷), without branches.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let t = x.abs();
    let p = 1.0
        + t * (0.070_523_08
            + t * (0.042_282_01
                + t * (0.009_270_527
                    + t * (0.000_152_014_3 + t * (0.000_276_567_2 + t * 0.000_043_063_8)))));
    let p2 = p * p;
    let p4 = p2 * p2;
    let p8 = p4 * p4;
    (1.0 - 1.0 / (p8 * p8)).copysign(x)
}

/// Exact GELU: `x · Φ(x) = ½x(1 + erf(x/√2))`.
#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// Tanh-approximated GELU, `tanh(u) = 1 − 2/(e^{2u} + 1)`.
#[inline(always)]
fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    let u = SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x);
    let tanh = 1.0 - 2.0 / (exp(2.0 * u) + 1.0);
    0.5 * x * (1.0 + tanh)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (x, exact GELU, tanh GELU) from Python's `math.erf` / `math.tanh`.
    const GELU: [(f32, f64, f64); 12] = [
        (-6.0, -5.919525869479969e-09, -8.43964897967453e-11),
        (-3.5, -0.0008142017766243903, -0.0006161976553737403),
        (-1.2, -0.13808360426605, -0.13829723086213508),
        (-0.3, -0.1146265733433142, -0.11462907645724074),
        (-0.01, -0.004960106436853684, -0.0049601064401444276),
        (0.0, 0.0, 0.0),
        (0.02, 0.010159566274338038, 0.010159566221697091),
        (0.5, 0.34573123063700656, 0.34571400982514394),
        (1.0, 0.8413447460685429, 0.8411919906082768),
        (2.2, 2.1694124154703034, 2.1696785270380117),
        (4.0, 3.9998733150326675, 3.9999297540518075),
        (9.0, 9.0, 9.0),
    ];

    #[test]
    fn activations_match_python() {
        for act in [Activation::Gelu, Activation::GeluTanh] {
            let mut x: Vec<f32> = GELU.iter().map(|g| g.0).collect();
            bias_activation(&mut x, &[0.0; 12], act);
            for (got, (input, exact, tanh)) in x.iter().zip(GELU) {
                let want = if act == Activation::Gelu { exact } else { tanh };
                let err = (*got as f64 - want).abs();
                assert!(
                    err < 1e-6 * (1.0 + want.abs()),
                    "{act:?}({input}) = {got}, want {want}"
                );
            }
        }
        let mut x = vec![-1.0, 2.0];
        bias_activation(&mut x, &[0.5, -3.0], Activation::Relu);
        assert_eq!(x, vec![0.0, 0.0]);
    }

    #[test]
    fn softmax_and_layer_norm_match_their_definitions() {
        let mut x = vec![1.0, 2.0, 3.0, -1.0, 0.0, 1000.0];
        scaled_softmax(&mut x, 3, 0.5);
        let e: Vec<f64> = [0.5f64, 1.0, 1.5].iter().map(|v| v.exp()).collect();
        let s: f64 = e.iter().sum();
        for (got, want) in x[..3].iter().zip(&e) {
            assert!((*got as f64 - want / s).abs() < 1e-6);
        }
        assert!((x[5] - 1.0).abs() < 1e-6 && x[3] < 1e-30);

        let mut x = vec![1.0, 2.0, 3.0, 4.0];
        residual_layer_norm(
            &mut x,
            &[1.0, 1.0, 1.0, 1.0],
            &[0.0, 0.0, 0.0, -1.0],
            &[2.0; 4],
            &[0.5; 4],
            0.0,
        );
        // x + y + bias = [2, 3, 4, 4]: mean 3.25, variance 0.6875.
        let inv = 1.0 / 0.6875f64.sqrt();
        for (got, v) in x.iter().zip([2.0, 3.0, 4.0, 4.0]) {
            let want = (v - 3.25) * inv * 2.0 + 0.5;
            assert!((*got as f64 - want).abs() < 1e-5, "{got} vs {want}");
        }
        let mut y = vec![5.0, 5.0, 7.0, 7.0];
        layer_norm(&mut y, &[1.0; 2], &[0.0; 2], 1e-12);
        assert_eq!(y, vec![0.0, 0.0, 0.0, 0.0]);
    }
}
