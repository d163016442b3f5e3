//! Arguments shared by the commands that generate text.

use clap::Args;
use tuneup_generate::{GenerateParams, PromptLookup, SamplingParams, Speculation};

/// Which model and how to run it.
#[derive(Debug, Args, Clone)]
pub struct ModelArgs {
    /// Model: an alias (`qwen2.5-coder-0.5b`, `smollm2-135m`), a local GGUF
    /// file or HF folder, or `hf:ORG/NAME[:FILE]`.
    #[arg(
        short = 'm',
        long,
        default_value = "qwen2.5-coder-0.5b",
        env = "TUNEUP_MODEL"
    )]
    pub model: String,
    /// Threads for the CPU kernels (default: all cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Cap the context window (tokens) below the model's own.
    #[arg(short = 'c', long = "ctx-size")]
    pub ctx_size: Option<usize>,
    /// Run on the first CUDA GPU (needs a build with `--features cuda`).
    #[arg(long)]
    pub gpu: bool,
    /// A LoRA adapter folder in PEFT format (`tuneup train` output, or
    /// trained with Python `peft`) applied on top of the model.
    #[arg(long)]
    pub adapter: Option<std::path::PathBuf>,
}

/// Sampling and stopping, named as in llama.cpp.
#[derive(Debug, Args, Clone)]
pub struct SamplingArgs {
    /// Temperature; 0 = greedy.
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f32,
    /// Top-k (0 = off).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Top-p (1.0 = off).
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Min-p (0 = off).
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    /// Repetition penalty (1.0 = off).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// Tokens the repetition penalty looks back over (-1 = all).
    #[arg(long, default_value_t = 64, allow_negative_numbers = true)]
    pub repeat_last_n: i64,
    /// Random seed.
    #[arg(long, default_value_t = 0xFFFF_FFFF)]
    pub seed: u64,
    /// Most tokens to generate.
    #[arg(short = 'n', long = "max-tokens", default_value_t = 512)]
    pub max_tokens: usize,
    /// Stop string (repeatable).
    #[arg(long = "stop")]
    pub stop: Vec<String>,
    /// Keep generating past end-of-generation tokens.
    #[arg(long)]
    pub ignore_eos: bool,
    /// Speculative decoding with prompt-lookup drafts (greedy only; drafts are checked against
    /// the model's argmax).
    #[arg(long)]
    pub lookup: bool,
    /// Speculative decoding with a draft model sharing the tokenizer (greedy only).
    #[arg(long = "draft-model")]
    pub draft_model: Option<String>,
    /// Tokens drafted per step.
    #[arg(long, default_value_t = 8)]
    pub draft_max: usize,
}

impl SamplingArgs {
    /// The library's parameters (speculation is attached by the caller).
    pub fn params(&self) -> GenerateParams {
        GenerateParams {
            max_tokens: self.max_tokens,
            sampling: SamplingParams {
                temperature: self.temperature,
                top_k: self.top_k,
                top_p: self.top_p,
                min_p: self.min_p,
                repeat_penalty: self.repeat_penalty,
                repeat_last_n: self.repeat_last_n,
                seed: self.seed,
                ..SamplingParams::default()
            },
            stop: self.stop.clone(),
            ignore_eos: self.ignore_eos,
            speculation: if self.lookup {
                Speculation::PromptLookup(PromptLookup {
                    max_draft: self.draft_max,
                    ..PromptLookup::default()
                })
            } else {
                Speculation::Off
            },
            prefill_chunk: 512,
            constraint: None,
        }
    }
}
