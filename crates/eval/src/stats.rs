//! Summary statistics and significance tests for comparing two evaluation runs.
//!
//! * [`percentile`]: numpy's default (`method="linear"`) percentile — virtual index `(n - 1) * q / 100`,
//!   linear interpolation between its neighbours, computed as numpy's `_lerp` does (from the upper neighbour when
//!   the fraction is ≥ 0.5), so results are bit-for-bit numpy's.
//! * [`mcnemar_exact`]: McNemar's exact test: a two-sided binomial test of the discordant pairs, equal to
//!   `scipy.stats.binomtest(b, b + c, 0.5).pvalue`.
//! * [`paired_bootstrap`]: a seeded paired bootstrap of the difference in mean per-example score.

/// Errors from the statistics functions.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StatsError {
    /// No values.
    #[error("{what}: no values given")]
    Empty {
        /// The statistic that was asked for.
        what: &'static str,
    },
    /// A NaN or infinite value.
    #[error("{what}: value {index} is {value}, not a finite number")]
    NotFinite {
        /// The statistic that was asked for.
        what: &'static str,
        /// Position of the bad value.
        index: usize,
        /// The bad value.
        value: f64,
    },
    /// A percentile outside 0..=100.
    #[error("percentile: q = {0} is outside 0..=100")]
    BadPercentile(f64),
    /// Paired inputs of different lengths.
    #[error("{what}: run A has {a} examples but run B has {b}; paired tests need the same examples in both")]
    LengthMismatch {
        /// The test that was asked for.
        what: &'static str,
        /// Examples in run A.
        a: usize,
        /// Examples in run B.
        b: usize,
    },
    /// A bootstrap with zero resamples.
    #[error("paired bootstrap: resamples must be at least 1")]
    NoResamples,
}

fn check_finite(what: &'static str, values: &[f64]) -> Result<(), StatsError> {
    if values.is_empty() {
        return Err(StatsError::Empty { what });
    }
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(StatsError::NotFinite {
            what,
            index,
            value: values[index],
        }),
        None => Ok(()),
    }
}

/// Arithmetic mean (left-to-right sum divided by the count).
pub fn mean(values: &[f64]) -> Result<f64, StatsError> {
    check_finite("mean", values)?;
    Ok(values.iter().sum::<f64>() / values.len() as f64)
}

/// The `q`-th percentile (0..=100) with numpy's default linear interpolation; see the [module docs](self).
pub fn percentile(values: &[f64], q: f64) -> Result<f64, StatsError> {
    check_finite("percentile", values)?;
    if !(0.0..=100.0).contains(&q) {
        return Err(StatsError::BadPercentile(q));
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let last = sorted.len() - 1;
    let virtual_index = last as f64 * (q / 100.0);
    let below = virtual_index.floor();
    let gamma = virtual_index - below;
    let lower = sorted[(below as usize).min(last)];
    let upper = sorted[(below as usize + 1).min(last)];
    let diff = upper - lower;
    Ok(if gamma >= 0.5 {
        upper - diff * (1.0 - gamma)
    } else {
        lower + diff * gamma
    })
}

/// Latency summary in the units of the input.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LatencySummary {
    /// Number of measurements.
    pub count: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median ([`percentile`] 50).
    pub p50: f64,
    /// [`percentile`] 95.
    pub p95: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

/// Count, mean, p50, p95, min and max of latency measurements.
pub fn latency_summary(values: &[f64]) -> Result<LatencySummary, StatsError> {
    Ok(LatencySummary {
        count: values.len(),
        mean: mean(values)?,
        p50: percentile(values, 50.0)?,
        p95: percentile(values, 95.0)?,
        min: percentile(values, 0.0)?,
        max: percentile(values, 100.0)?,
    })
}

/// Result of [`mcnemar_exact`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct McNemar {
    /// Examples run A got right and run B got wrong.
    pub a_only: u64,
    /// Examples run B got right and run A got wrong.
    pub b_only: u64,
    /// Two-sided exact p-value (1 when there are no discordant pairs).
    pub p_value: f64,
}

/// `ln(n choose k)` by summing logs; exact enough for p-values to ~1e-12 relative.
fn ln_choose(n: u64, k: u64) -> f64 {
    let k = k.min(n - k);
    (1..=k)
        .map(|i| ((n - k + i) as f64).ln() - (i as f64).ln())
        .sum()
}

/// `P(X <= k)` for `X ~ Binomial(n, 1/2)`, summed in log space so large `n` does not underflow.
fn binomial_half_cdf(k: u64, n: u64) -> f64 {
    let log_terms: Vec<f64> = (0..=k)
        .map(|i| ln_choose(n, i) - n as f64 * std::f64::consts::LN_2)
        .collect();
    let max = log_terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    max.exp() * log_terms.iter().map(|t| (t - max).exp()).sum::<f64>()
}

/// Two-sided exact binomial test of `successes` out of `trials` against p = 1/2 (1 when `trials` is 0).
pub fn binomial_test_half(successes: u64, trials: u64) -> f64 {
    if trials == 0 || 2 * successes == trials {
        return 1.0;
    }
    let smaller = successes.min(trials - successes);
    (2.0 * binomial_half_cdf(smaller, trials)).min(1.0)
}

/// Wilson score interval (95 %, z = 1.96) of a proportion `successes / trials`; `(0, 1)` for no trials.
pub fn wilson_interval(successes: u64, trials: u64) -> (f64, f64) {
    if trials == 0 {
        return (0.0, 1.0);
    }
    let (n, z) = (trials as f64, 1.959_963_984_540_054);
    let p = successes as f64 / n;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// McNemar's exact test on per-example correctness of two runs over the same examples.
pub fn mcnemar_exact(a_correct: &[bool], b_correct: &[bool]) -> Result<McNemar, StatsError> {
    if a_correct.len() != b_correct.len() {
        return Err(StatsError::LengthMismatch {
            what: "McNemar",
            a: a_correct.len(),
            b: b_correct.len(),
        });
    }
    if a_correct.is_empty() {
        return Err(StatsError::Empty { what: "McNemar" });
    }
    let a_only = a_correct
        .iter()
        .zip(b_correct)
        .filter(|&(&a, &b)| a && !b)
        .count() as u64;
    let b_only = a_correct
        .iter()
        .zip(b_correct)
        .filter(|&(&a, &b)| !a && b)
        .count() as u64;
    Ok(McNemar {
        a_only,
        b_only,
        p_value: binomial_test_half(a_only, a_only + b_only),
    })
}

/// Result of [`paired_bootstrap`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PairedBootstrap {
    /// `mean(b) - mean(a)` on the real data.
    pub delta: f64,
    /// 2.5th percentile of the resampled deltas.
    pub ci_low: f64,
    /// 97.5th percentile of the resampled deltas.
    pub ci_high: f64,
    /// Two-sided p-value: `min(1, 2 * min(share of deltas <= 0, share of deltas >= 0))`.
    pub p_value: f64,
    /// Number of resamples.
    pub resamples: usize,
}

/// SplitMix64: a small, fully specified generator so results are identical across platforms and crate versions.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform index in `0..n` (Lemire's multiply-shift; bias below 2^-40 for realistic `n`).
    fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// Paired bootstrap of `mean(b) - mean(a)` over per-example scores (e.g. 0/1 correctness or sentence BLEU).
///
/// Each resample draws `n` example indices with replacement (SplitMix64 seeded with `seed`) and recomputes the
/// delta on the same indices for both runs. The same seed always gives the same result.
pub fn paired_bootstrap(
    a: &[f64],
    b: &[f64],
    resamples: usize,
    seed: u64,
) -> Result<PairedBootstrap, StatsError> {
    if a.len() != b.len() {
        return Err(StatsError::LengthMismatch {
            what: "paired bootstrap",
            a: a.len(),
            b: b.len(),
        });
    }
    check_finite("paired bootstrap (run A)", a)?;
    check_finite("paired bootstrap (run B)", b)?;
    if resamples == 0 {
        return Err(StatsError::NoResamples);
    }
    let n = a.len();
    let differences: Vec<f64> = b.iter().zip(a).map(|(y, x)| y - x).collect();
    let delta = mean(b)? - mean(a)?;
    let mut rng = SplitMix64(seed);
    let deltas: Vec<f64> = (0..resamples)
        .map(|_| (0..n).map(|_| differences[rng.below(n)]).sum::<f64>() / n as f64)
        .collect();
    let at_most_zero = deltas.iter().filter(|&&d| d <= 0.0).count() as f64 / resamples as f64;
    let at_least_zero = deltas.iter().filter(|&&d| d >= 0.0).count() as f64 / resamples as f64;
    Ok(PairedBootstrap {
        delta,
        ci_low: percentile(&deltas, 2.5)?,
        ci_high: percentile(&deltas, 97.5)?,
        p_value: (2.0 * at_most_zero.min(at_least_zero)).min(1.0),
        resamples,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn wilson_matches_the_textbook_values() {
        // 81 of 263 (Wilson 1927 / statsmodels proportion_confint(method="wilson")): 0.2553, 0.3662.
        let (lo, hi) = super::wilson_interval(81, 263);
        assert!(
            (lo - 0.2553).abs() < 1e-3 && (hi - 0.3662).abs() < 1e-3,
            "{lo} {hi}"
        );
        assert_eq!(super::wilson_interval(0, 0), (0.0, 1.0));
        let (lo, hi) = super::wilson_interval(10, 10);
        assert!(hi > 0.9999 && (lo - 0.7225).abs() < 1e-3, "{lo} {hi}");
    }

    use super::*;

    #[test]
    fn percentile_interpolates_linearly() {
        let v = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(percentile(&v, 50.0).unwrap(), 2.5);
        assert_eq!(percentile(&v, 100.0).unwrap(), 4.0);
        assert_eq!(percentile(&[7.0], 95.0).unwrap(), 7.0);
        assert_eq!(percentile(&v, 101.0), Err(StatsError::BadPercentile(101.0)));
        assert!(matches!(
            percentile(&[1.0, f64::NAN], 5.0),
            Err(StatsError::NotFinite { index: 1, .. })
        ));
        assert_eq!(mean(&[]), Err(StatsError::Empty { what: "mean" }));
    }

    #[test]
    fn bootstrap_is_seeded_and_detects_clear_differences() {
        let a: Vec<f64> = (0..200).map(|i| f64::from(i % 2 == 0)).collect();
        let b: Vec<f64> = (0..200).map(|i| f64::from(i % 10 != 0)).collect();
        let first = paired_bootstrap(&a, &b, 2000, 7).unwrap();
        assert_eq!(first, paired_bootstrap(&a, &b, 2000, 7).unwrap());
        assert!((first.delta - 0.4).abs() < 1e-12);
        assert!(first.p_value < 0.001 && first.ci_low > 0.2 && first.ci_high < 0.6);
        let same = paired_bootstrap(&a, &a, 500, 1).unwrap();
        assert_eq!((same.delta, same.p_value), (0.0, 1.0));
        assert!(paired_bootstrap(&a, &b[..3], 10, 1).is_err());
        assert_eq!(paired_bootstrap(&a, &b, 0, 1), Err(StatsError::NoResamples));
    }

    #[test]
    fn mcnemar_counts_discordant_pairs() {
        let m = mcnemar_exact(&[true, true, false, true], &[false, true, true, false]).unwrap();
        assert_eq!((m.a_only, m.b_only), (2, 1));
        assert_eq!(mcnemar_exact(&[true], &[true]).unwrap().p_value, 1.0);
        assert!(mcnemar_exact(&[true], &[]).is_err());
    }
}
