//! Seeded, order-independent train/validation/test assignment: each record's split is a function of its own
//! content (or its group, e.g. its database) and the seed only, so adding, removing or reordering other
//! records never moves it.

use std::str::FromStr;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::hash::{hash64, mix};

/// One of the three output splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Training data.
    Train,
    /// For choosing checkpoints and hyper-parameters.
    Validation,
    /// Held out for the final report.
    Test,
}

impl Split {
    /// The three, in file order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Validation, Split::Test];

    /// `train`, `validation` or `test` (also the file stem).
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::Test => "test",
        }
    }
}

/// The fractions of train, validation and test (non-negative, summing to 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SplitRatios {
    /// Train fraction.
    pub train: f64,
    /// Validation fraction.
    pub validation: f64,
    /// Test fraction.
    pub test: f64,
}

impl Default for SplitRatios {
    fn default() -> Self {
        Self {
            train: 0.9,
            validation: 0.05,
            test: 0.05,
        }
    }
}

impl FromStr for SplitRatios {
    type Err = Error;

    /// `TRAIN,VALIDATION,TEST`, e.g. `0.9,0.05,0.05` or `80,10,10` (scaled to sum to 1).
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::Invalid(format!("--split {s:?}: {why} (e.g. 0.9,0.05,0.05)"));
        let parts = s
            .split(',')
            .map(|p| p.trim().parse::<f64>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| bad("not numbers"))?;
        let [train, validation, test] = parts[..] else {
            return Err(bad("expected three numbers"));
        };
        if parts.iter().any(|p| !p.is_finite() || *p < 0.0) {
            return Err(bad("fractions must be non-negative"));
        }
        let sum = train + validation + test;
        if sum <= 0.0 {
            return Err(bad("fractions sum to 0"));
        }
        Ok(Self {
            train: train / sum,
            validation: validation / sum,
            test: test / sum,
        })
    }
}

impl std::fmt::Display for SplitRatios {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{},{},{}", self.train, self.validation, self.test)
    }
}

/// The split of the record whose identity is `key` (its normalised text, or its group): a seeded hash of the
/// key mapped to [0, 1) and cut at the ratios. The same key and seed always give the same split.
pub fn assign(key: &str, seed: u64, ratios: &SplitRatios) -> Split {
    let h = mix(hash64(key.as_bytes(), seed) ^ seed);
    let u = (h >> 11) as f64 / (1u64 << 53) as f64;
    if u < ratios.train {
        Split::Train
    } else if u < ratios.train + ratios.validation {
        Split::Validation
    } else {
        Split::Test
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ratios() {
        let r: SplitRatios = "80,10,10".parse().unwrap();
        assert!((r.train - 0.8).abs() < 1e-12 && (r.test - 0.1).abs() < 1e-12);
        assert_eq!(
            "0.9,0.05,0.05".parse::<SplitRatios>().unwrap(),
            SplitRatios::default()
        );
        for bad in ["0.9,0.1", "a,b,c", "-1,1,1", "0,0,0", "1,2,3,4"] {
            assert!(bad.parse::<SplitRatios>().is_err(), "{bad}");
        }
    }

    #[test]
    fn deterministic_and_close_to_the_ratios() {
        let ratios = SplitRatios::default();
        let keys: Vec<String> = (0..20_000).map(|i| format!("record {i}")).collect();
        let a: Vec<Split> = keys.iter().map(|k| assign(k, 42, &ratios)).collect();
        let b: Vec<Split> = keys.iter().rev().map(|k| assign(k, 42, &ratios)).collect();
        assert!(a.iter().eq(b.iter().rev()), "order does not matter");
        let count = |s: Split| a.iter().filter(|&&x| x == s).count() as f64 / a.len() as f64;
        assert!(
            (count(Split::Train) - 0.9).abs() < 0.01,
            "{}",
            count(Split::Train)
        );
        assert!((count(Split::Validation) - 0.05).abs() < 0.01);
        assert!((count(Split::Test) - 0.05).abs() < 0.01);
        let other: Vec<Split> = keys.iter().map(|k| assign(k, 7, &ratios)).collect();
        assert_ne!(a, other, "the seed matters");
        let all_train = SplitRatios {
            train: 1.0,
            validation: 0.0,
            test: 0.0,
        };
        assert!(keys
            .iter()
            .all(|k| assign(k, 1, &all_train) == Split::Train));
    }
}
