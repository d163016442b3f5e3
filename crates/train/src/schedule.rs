//! Learning-rate schedules: linear warm-up, then cosine or linear decay.

use serde::{Deserialize, Serialize};

/// The decay after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Decay {
    /// Half a cosine wave down to `min_lr_ratio · lr`.
    #[default]
    Cosine,
    /// A straight line down to `min_lr_ratio · lr`.
    Linear,
    /// Constant after warm-up.
    Constant,
}

/// A schedule over `total_steps` optimiser steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Peak learning rate.
    pub lr: f64,
    /// Steps of linear warm-up from 0.
    pub warmup_steps: u64,
    /// All optimiser steps of the run.
    pub total_steps: u64,
    /// The decay shape.
    pub decay: Decay,
    /// Floor as a fraction of `lr`.
    pub min_lr_ratio: f64,
}

impl Schedule {
    /// Learning rate of optimiser step `step` (0-based), as
    /// `transformers`' `get_cosine_schedule_with_warmup` computes it.
    pub fn lr_at(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
        let floor = self.min_lr_ratio;
        let factor = match self.decay {
            Decay::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
            Decay::Linear => 1.0 - progress,
            Decay::Constant => 1.0,
        };
        self.lr * (floor + (1.0 - floor) * factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine() {
        let s = Schedule {
            lr: 1e-3,
            warmup_steps: 10,
            total_steps: 110,
            decay: Decay::Cosine,
            min_lr_ratio: 0.0,
        };
        assert!((s.lr_at(0) - 1e-4).abs() < 1e-12);
        assert!((s.lr_at(9) - 1e-3).abs() < 1e-12);
        assert!((s.lr_at(10) - 1e-3).abs() < 1e-12);
        assert!((s.lr_at(60) - 5e-4).abs() < 1e-9);
        assert!(s.lr_at(109) < 1e-6);
        let l = Schedule {
            decay: Decay::Linear,
            ..s
        };
        assert!((l.lr_at(60) - 5e-4).abs() < 1e-9);
    }
}
