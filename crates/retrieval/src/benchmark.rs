//! Retrieval benchmarks.
