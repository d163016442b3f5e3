//! Splitting documents into token-bounded, overlapping chunks.
//!
//! Structure first: Markdown and HTML are split at headings, and every chunk of a section starts with the
//! section's heading path (`Install > Linux`) so the embedding sees the context. Within a section, chunks are
//! filled with whole blocks (paragraphs, fenced code blocks, blank-line-separated groups of code lines); a block
//! too long for one chunk is split into sentences, then words, then characters (prose), into line groups that
//! each reopen the fence (fenced code), or into lines (source code).
//!
//! Consecutive chunks of a section overlap by up to [`ChunkOptions::overlap`] tokens: the next chunk starts with
//! the last words (or, for code, lines) of the previous one. Overlap never reaches into a fenced code block, and
//! shrinks when the next block would not fit with it.

mod blocks;
mod split;

use std::collections::VecDeque;

use blocks::{Block, BlockKind, Section};
use split::{Piece, Sep, Unit};

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

/// Splits `doc` into chunks of at most `opts.max_tokens` tokens as counted by `counter`, heading prefix included
/// (a `max_tokens` of 0 is taken as 1).
///
/// Chunks come in document order; none is empty; the result depends only on the inputs. A heading path longer
/// than half of `max_tokens` is left out of the chunk text (it stays in [`Chunk::heading`]). A heading with no
/// content and no subheadings becomes a chunk of its own. `line` is the line where the chunk's text starts
/// (overlap included; for a reopened fence, its first code line).
pub fn chunk_document(
    doc: &Document,
    opts: ChunkOptions,
    counter: &dyn TokenCounter,
) -> Vec<Chunk> {
    let max = opts.max_tokens.max(1);
    let sections = blocks::sections(doc);
    let mut chunks = Vec::new();
    for (i, section) in sections.iter().enumerate() {
        let mut prefix = section
            .heading
            .as_ref()
            .map(|h| (format!("{h}\n\n"), counter.count(h)));
        if prefix.as_ref().is_some_and(|(_, tokens)| tokens * 2 > max) {
            prefix = None;
        }
        let mut owned_blocks = Vec::new();
        let section_blocks = if section.blocks.is_empty() {
            let is_leaf = sections
                .get(i + 1)
                .is_none_or(|next| next.depth <= section.depth);
            match &section.heading {
                Some(h) if is_leaf => {
                    prefix = None;
                    owned_blocks.push(Block {
                        text: h.clone(),
                        line: section.line,
                        kind: BlockKind::Prose,
                    });
                    &owned_blocks
                }
                _ => continue,
            }
        } else {
            &section.blocks
        };
        let budget = max - prefix.as_ref().map_or(0, |(_, t)| *t);
        let pieces: Vec<Piece> = section_blocks
            .iter()
            .flat_map(|b| split::block_pieces(b, budget, counter))
            .collect();
        let packer = Packer {
            section,
            prefix: prefix.as_ref(),
            max,
            overlap: opts.overlap,
            counter,
        };
        packer.pack(pieces, &mut chunks);
    }
    chunks
}

/// Fills chunks of one section with pieces.
struct Packer<'a> {
    section: &'a Section,
    /// The heading line(s) every chunk starts with, and its token count.
    prefix: Option<&'a (String, usize)>,
    max: usize,
    overlap: usize,
    counter: &'a dyn TokenCounter,
}

impl Packer<'_> {
    fn pack(&self, pieces: Vec<Piece>, chunks: &mut Vec<Chunk>) {
        let prefix_tokens = self.prefix.map_or(0, |(_, t)| *t);
        let budget = self.max - prefix_tokens;
        let mut queue: VecDeque<Piece> = pieces.into();
        let mut prev: Vec<Piece> = Vec::new();
        'chunks: while let Some(first) = queue.pop_front() {
            let room = self.max.saturating_sub(prefix_tokens + first.tokens);
            let mut cur = self.overlap_of(&prev, self.overlap.min(room));
            let mut carried = cur.len();
            let mut used =
                prefix_tokens + cur.iter().map(|p| p.tokens).sum::<usize>() + first.tokens;
            cur.push(first);
            while let Some(next) = queue.front() {
                if used + next.tokens > self.max {
                    break;
                }
                used += next.tokens;
                cur.extend(queue.pop_front());
            }
            // Token counts of pieces need not add up exactly: check the real text, and give back what is over.
            let text = loop {
                let text = self.render(&cur);
                if self.counter.count(&text) <= self.max {
                    break text;
                }
                if cur.len() > carried + 1 {
                    queue.push_front(cur.pop().expect("more than one piece"));
                } else if carried > 0 {
                    cur.drain(..carried);
                    carried = 0;
                } else {
                    let piece = cur.pop().expect("one piece");
                    let parts =
                        split::hard(&piece.text, piece.line, budget, piece.sep, self.counter);
                    if parts.len() > 1 {
                        for part in parts.into_iter().rev() {
                            queue.push_front(part);
                        }
                        prev.clear();
                        continue 'chunks;
                    }
                    cur.push(piece);
                    break self.render(&cur); // one character over the limit: nothing smaller to give
                }
            };
            chunks.push(Chunk {
                text,
                heading: self.section.heading.clone(),
                line: cur[0].line,
            });
            prev = cur;
        }
    }

    /// The chunk text: the heading prefix and the pieces with their separators.
    fn render(&self, pieces: &[Piece]) -> String {
        let mut text = self.prefix.map_or_else(String::new, |(p, _)| p.clone());
        for (i, p) in pieces.iter().enumerate() {
            if i > 0 {
                text.push_str(p.sep.as_str());
            }
            text.push_str(&p.text);
        }
        text
    }

    /// The longest tail of `prev` of at most `limit` tokens, cut at a word (or code line) start and stopping
    /// before fenced code.
    fn overlap_of(&self, prev: &[Piece], limit: usize) -> Vec<Piece> {
        if limit == 0 {
            return Vec::new();
        }
        let mut tokens = 0;
        let mut start = None;
        'pieces: for (idx, piece) in prev.iter().enumerate().rev() {
            let cuts: Vec<usize> = match piece.unit {
                Unit::Words => split::word_spans(&piece.text)
                    .into_iter()
                    .map(|(s, _)| s)
                    .collect(),
                Unit::Lines => std::iter::once(0)
                    .chain(piece.text.match_indices('\n').map(|(i, _)| i + 1))
                    .collect(),
                Unit::Never => break,
            };
            let mut end = piece.text.len();
            for &cut in cuts.iter().rev() {
                let t = self.counter.count(&piece.text[cut..end]);
                if tokens + t > limit {
                    break 'pieces;
                }
                tokens += t;
                start = Some((idx, cut));
                end = cut;
            }
        }
        let Some((idx, cut)) = start else {
            return Vec::new();
        };
        let first = &prev[idx];
        let text = first.text[cut..].to_string();
        let line = first.line + first.text[..cut].matches('\n').count();
        let tokens = self.counter.count(&text);
        let mut out = vec![Piece {
            text,
            line,
            sep: Sep::Para,
            tokens,
            unit: first.unit,
        }];
        out.extend(prev[idx + 1..].iter().cloned());
        out
    }
}
