//! Text generation on a [`tuneup_models::Decoder`]: llama.cpp-compatible
//! sampling, stop rules, a streaming token sink, prompt-prefix reuse and
//! speculative decoding (prompt lookup or a draft model) whose drafts are
//! checked against the model's own greedy choice, and grammar-constrained
//! decoding (JSON schema, Lark) through llguidance.

pub mod bundle;
pub mod draft;
mod draft_budget;
mod emit;
pub mod error;
pub mod generator;
pub mod grammar;
pub mod lookup;
pub mod sampling;
pub mod sequence;
pub mod stop;

pub use bundle::ChatModel;
pub use draft::DraftModel;
pub use error::{Error, Result};
pub use generator::{
    FinishReason, GenerateParams, GenerationOutput, GenerationStats, Generator, NullSink,
    Speculation, TokenSink,
};
pub use grammar::{Grammar, GrammarCompiler, GrammarConstraint};
pub use lookup::PromptLookup;
pub use sampling::{argmax, Sampler, SamplingParams};
pub use sequence::Sequence;
pub use stop::StopMatcher;
