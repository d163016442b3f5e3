//! safetensors files: the header parser, candle's loader (adapters and optimiser state) and tuneup's
//! memory-mapped shard reader (HF model folders).
#![no_main]

#[path = "scratch.rs"]
mod scratch;

use candle_core::{DType, Device};
use libfuzzer_sys::fuzz_target;
use tuneup_models::SafetensorsWeights;

fuzz_target!(|data: &[u8]| {
    let _ = safetensors::SafeTensors::deserialize(data);
    let _ = candle_core::safetensors::load_buffer(data, &Device::Cpu);
    let path = scratch::scratch_file("model.safetensors", data);
    let _ = SafetensorsWeights::open(&[path], &Device::Cpu, DType::F32);
});
