//! The LoRA dropout mask made on a CUDA GPU, element for element the same as
//! [`Dropout::value`] on the CPU (the same splitmix64 of `(seed, index)`), so a
//! run on the GPU sees the CPU's masks and nothing crosses the bus: a LoRA
//! step needs masks of hundreds of millions of elements.

use std::sync::OnceLock;

use candle_core::cuda::cudarc::driver::{LaunchConfig, PushKernelArg};
use candle_core::cuda::{CudaDevice, CudaStorage};
use candle_core::op::BackpropOp;
use candle_core::{Storage, Tensor};

use crate::frozen_lora::Dropout;
use crate::Result;

const MODULE: &str = "tuneup_lora_dropout";
const KERNEL: &str = "lora_dropout_mask";

/// CUDA C of the mask: must stay the twin of [`Dropout::value`].
const SOURCE: &str = r#"
extern "C" __global__ void lora_dropout_mask(float* out, unsigned long long seed, float keep,
                                             unsigned long long n) {
    unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    unsigned long long z = seed + (i + 1ULL) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    float uniform = (float)(z >> 40) / 16777216.0f;
    out[i] = uniform < keep ? 1.0f / keep : 0.0f;
}
"#;

fn ptx() -> Result<&'static str> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    PTX.get_or_init(|| {
        candle_core::cuda::cudarc::nvrtc::compile_ptx(SOURCE)
            .map(|p| p.to_src())
            .map_err(|e| format!("compiling the LoRA dropout kernel with NVRTC: {e}"))
    })
    .as_deref()
    .map_err(|e| candle_core::Error::Msg(e.clone()))
}

fn cuda_error(e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("LoRA dropout mask on the GPU: {e}"))
}

/// The `(rows, cols)` mask of `dropout` on `device`.
pub fn mask(dropout: &Dropout, rows: usize, cols: usize, device: &CudaDevice) -> Result<Tensor> {
    let n = rows * cols;
    let func = device.get_or_load_custom_func(KERNEL, MODULE, ptx()?)?;
    // SAFETY: the kernel writes every one of the `n` elements before any read.
    let mut out = unsafe { device.alloc::<f32>(n)? };
    let stream = device.cuda_stream();
    let mut launch = stream.launch_builder(&func);
    let (seed, keep, count) = (dropout.seed, dropout.keep, n as u64);
    launch.arg(&mut out).arg(&seed).arg(&keep).arg(&count);
    let blocks = u32::try_from(n.div_ceil(256)).map_err(cuda_error)?;
    let config = LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: the arguments match the kernel's signature, `out` holds `n` floats.
    unsafe { launch.launch(config) }.map_err(cuda_error)?;
    let storage = CudaStorage::wrap_cuda_slice(out, device.clone());
    Ok(Tensor::from_storage(
        Storage::Cuda(storage),
        (rows, cols),
        BackpropOp::none(),
        false,
    ))
}
