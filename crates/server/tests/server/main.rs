//! The server driven over real HTTP: a tiny random model for the protocol
//! (shapes, streaming, errors, limits, queueing, cancellation, metrics,
//! feedback), the real SmolLM2 / Qwen2.5-Coder when their GGUF paths are set,
//! and the official `openai` Python SDK.

mod adapters;
mod common;
mod errors;
mod feedback;
mod limits;
mod network;
mod node;
mod protocol;
mod python;
mod queue;
mod real_models;
mod replicas;
mod worker;
