//! Shared by the train crate's tests: a batch for the gradient tests (LoRA and full fine-tuning), SQL-like
//! records and an observer that keeps the trainer's messages.
#![allow(dead_code)] // each test binary uses a part

use candle_core::Device;
use tuneup_train::examples::{Batch, Example};

/// Two sequences of different lengths (one padded), targets on a suffix of each.
pub fn batch() -> Batch {
    let a = Example {
        ids: vec![5, 17, 42, 99, 3, 250, 7, 7, 128],
        target: vec![false, false, false, true, true, true, true, true, true],
        boundaries: Vec::new(),
    };
    let b = Example {
        ids: vec![9, 8, 7, 6, 5],
        target: vec![false, true, true, true, true],
        boundaries: Vec::new(),
    };
    Batch::new(&[&a, &b], 0, &Device::Cpu).unwrap()
}

/// `n` chat records (`count table i` → `SELECT count(*) FROM ti`), numbered from `offset`.
pub fn records(n: usize, offset: usize) -> Vec<tuneup_train::TrainRecord> {
    (offset..offset + n)
        .map(|i| tuneup_train::TrainRecord {
            messages: vec![
                serde_json::json!({"role": "user", "content": format!("count table {i}")}),
                serde_json::json!({"role": "assistant", "content": format!("SELECT count(*) FROM t{i}")}),
            ],
            tools: None,
        })
        .collect()
}

/// Keeps the trainer's messages.
#[derive(Default)]
pub struct Log(pub Vec<String>);

impl tuneup_train::Observer for Log {
    fn message(&mut self, text: &str) {
        self.0.push(text.to_string());
    }
}
