//! Shared by the gradient tests (LoRA and full fine-tuning).

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
