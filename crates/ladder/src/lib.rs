//! `tuneup ladder`: climbs one task's tuning ladder on one held-out test set and says which rung pays.
//!
//! A [`LadderConfig`] names an eval task (`tuneup eval`'s format), a model, the data (one file split by a seeded
//! hash, or explicit train / validation / test files), success targets, a budget with a price table, and the
//! rungs to try. [`run_ladder`] climbs them in order — reference (the bar), baseline (zero-shot), prompting
//! (role, few-shot fixed/similar, chain of thought, schema renderings, grammar-constrained JSON), retrieval,
//! verification (votes by executed result / agreement, execution-feedback repair), LoRA and full fine-tuning
//! (checkpoints chosen by the validation metric) — each starting from the best configuration so far. The
//! validation split chooses; the test split only reports. Each rung's [`Row`] holds the metric with its
//! interval, significance against the baseline and the previous best, error types, latency, memory, size,
//! training cost, serving cost, return on investment and a recommendation. Finished rungs are stored under a
//! fingerprint of their inputs ([`store`]) and reused; the outputs are `ladder.json`, `report.html` and the
//! winning configuration in `winner/` ([`winner`]).

pub mod config;
pub mod error;
pub mod measure;
pub mod report;
pub mod row;
pub mod rung;
pub mod runner;
pub mod split;
pub mod store;
pub mod train_rung;
pub mod variant;
pub mod winner;

pub use config::{Budget, LadderConfig, LadderOverrides, Preset, Target};
pub use error::{Error, Result};
pub use row::{Advice, Row, Status};
pub use rung::RungKind;
pub use runner::{run_ladder, LadderOptions, LadderOutcome};
pub use split::Splits;
pub use variant::Variant;
pub use winner::{read_winner, Winner};
