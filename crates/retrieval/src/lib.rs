//! `tuneup-retrieval`: the RAG rung of the tuning ladder.
//!
//! The pipeline is `read` → `chunk` → `embed` → `store`, and queries go `embed` → `store` → [`search`]:
//!
//! | module | what it does |
//! |---|---|
//! | [`read`] | finds files under the inputs and turns Markdown, text, HTML, source code and PDF into plain text |
//! | [`chunk`] | splits a document into token-bounded, overlapping chunks that respect headings and code blocks |
//! | [`embed`] | sentence embeddings with a local BERT-family model in sentence-transformers layout |
//! | [`store`] | the index: embedded SQLite (FTS5 BM25 + persisted HNSW), or PostgreSQL with pgvector |
//! | [`ingest`] | incremental ingestion: unchanged files skipped by content hash, changed ones replaced, deleted ones removed |
//! | [`search`] | dense, BM25 and hybrid (reciprocal-rank fusion) search with metadata filters |
//! | [`benchmark`] | retrieval quality on BEIR-layout sets (nDCG@10, recall@k) and SQuAD-layout sets |

pub mod benchmark;
pub mod chunk;
pub mod embed;
mod error;
pub mod ingest;
pub mod read;
pub mod search;
pub mod store;

pub use error::{Error, Result};
