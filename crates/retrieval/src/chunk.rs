//! Splitting documents into token-bounded, overlapping chunks.

use crate::read::Document;

/// How to chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkOptions {
    /// Maximum tokens per chunk (the embedder's token counter decides), heading prefix included.
    pub max_tokens: usize,
    /// Tokens repeated from the end of one chunk at the start of the next.
    pub overlap: usize,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions {
            max_tokens: 256,
            overlap: 32,
        }
    }
}

/// One chunk of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The text to embed and show (starts with the heading path when the document has headings).
    pub text: String,
    /// The heading path the chunk sits under, e.g. `Install > Linux`.
    pub heading: Option<String>,
    /// 1-based line in the document where the chunk starts.
    pub line: usize,
}

/// Counts tokens the way the embedder will.
pub trait TokenCounter {
    /// Number of tokens in `text` (without special tokens).
    fn count(&self, text: &str) -> usize;
}

impl<F: Fn(&str) -> usize> TokenCounter for F {
    fn count(&self, text: &str) -> usize {
        self(text)
    }
}

/// Splits `doc` into chunks of at most `opts.max_tokens` tokens.
pub fn chunk_document(doc: &Document, opts: ChunkOptions, counter: &dyn TokenCounter) -> Vec<Chunk> {
    let _ = (doc, opts, counter);
    todo!("chunk: chunk_document")
}
