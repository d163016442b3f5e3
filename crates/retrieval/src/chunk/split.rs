//! Splitting a block into pieces of at most a token budget: paragraphs into sentences, then words, then
//! characters; code into lines; fenced code into line groups, each reopening the fence.

use super::blocks::{Block, BlockKind};
use super::TokenCounter;

/// A unit of chunk content that is never split further while packing.
#[derive(Debug, Clone)]
pub(super) struct Piece {
    pub text: String,
    /// 1-based line where it starts.
    pub line: usize,
    /// What joins it to the piece before it in a chunk.
    pub sep: Sep,
    /// Its token count.
    pub tokens: usize,
    /// How overlap may cut it.
    pub unit: Unit,
}

/// What goes between two pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sep {
    /// A blank line (between blocks).
    Para,
    /// A line end (between code lines).
    Line,
    /// A space (between sentences or words of one paragraph).
    Space,
    /// Nothing (between parts of one over-long word).
    Join,
}

impl Sep {
    pub fn as_str(self) -> &'static str {
        match self {
            Sep::Para => "\n\n",
            Sep::Line => "\n",
            Sep::Space => " ",
            Sep::Join => "",
        }
    }
}

/// Where overlap may start inside a piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unit {
    /// At any word.
    Words,
    /// At a line start.
    Lines,
    /// Nowhere (fenced code: overlap stops before it).
    Never,
}

/// Splits `block` into pieces of at most `budget` tokens (a block that fits is one piece). The first piece's
/// separator is [`Sep::Para`].
pub(super) fn block_pieces(block: &Block, budget: usize, counter: &dyn TokenCounter) -> Vec<Piece> {
    let tokens = counter.count(&block.text);
    let mut pieces = if tokens <= budget {
        let unit = match block.kind {
            BlockKind::Prose => Unit::Words,
            BlockKind::Code => Unit::Lines,
            BlockKind::Fence => Unit::Never,
        };
        vec![Piece {
            text: block.text.clone(),
            line: block.line,
            sep: Sep::Para,
            tokens,
            unit,
        }]
    } else {
        match block.kind {
            BlockKind::Prose => sentences(&block.text, block.line, budget, counter),
            BlockKind::Code => lines(&block.text, block.line, budget, counter),
            BlockKind::Fence => fence(&block.text, block.line, budget, counter),
        }
    };
    if let Some(first) = pieces.first_mut() {
        first.sep = Sep::Para;
    }
    pieces
}

/// Prose into sentences; a sentence over the budget into words.
fn sentences(text: &str, line: usize, budget: usize, counter: &dyn TokenCounter) -> Vec<Piece> {
    let mut lines = LineTracker::new(text, line);
    let mut out = Vec::new();
    for (start, end) in sentence_spans(text) {
        let s = &text[start..end];
        let line = lines.line_at(start);
        let tokens = counter.count(s);
        if tokens <= budget {
            out.push(Piece {
                text: s.to_string(),
                line,
                sep: Sep::Space,
                tokens,
                unit: Unit::Words,
            });
        } else {
            out.extend(words(s, line, budget, Sep::Space, counter));
        }
    }
    out
}

/// Code into lines; a line over the budget into words.
fn lines(text: &str, line: usize, budget: usize, counter: &dyn TokenCounter) -> Vec<Piece> {
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let tokens = counter.count(l);
        if l.trim().is_empty() {
            continue;
        } else if tokens <= budget {
            out.push(Piece {
                text: l.to_string(),
                line: line + i,
                sep: Sep::Line,
                tokens,
                unit: Unit::Lines,
            });
        } else {
            out.extend(words(l, line + i, budget, Sep::Line, counter));
        }
    }
    out
}

/// A fenced block into groups of lines, each wrapped in the opening and closing fence lines.
fn fence(text: &str, line: usize, budget: usize, counter: &dyn TokenCounter) -> Vec<Piece> {
    let all: Vec<&str> = text.lines().collect();
    let open = all[0];
    let marker: String = open
        .trim_start()
        .chars()
        .take_while(|c| *c == '`' || *c == '~')
        .collect();
    let closed = all.len() > 1 && all[all.len() - 1].trim().starts_with(&marker);
    let (body, close) = if closed {
        (&all[1..all.len() - 1], all[all.len() - 1])
    } else {
        (&all[1..], marker.as_str())
    };
    let overhead = counter.count(open) + counter.count(close);
    if overhead * 2 > budget {
        return lines(text, line, budget, counter); // fences too long to repeat: plain lines
    }
    let room = budget - overhead;
    let mut out = Vec::new();
    let mut group: Vec<&str> = Vec::new();
    let mut group_line = line;
    let mut group_tokens = 0;
    let wrap = |body: &str, tokens: usize, line: usize, out: &mut Vec<Piece>| {
        let text = format!("{open}\n{body}\n{close}");
        out.push(Piece {
            text,
            line,
            sep: Sep::Para,
            tokens: tokens + overhead,
            unit: Unit::Never,
        });
    };
    for (i, l) in body.iter().enumerate() {
        let n = line + 1 + i;
        let tokens = counter.count(l);
        if !group.is_empty() && group_tokens + tokens > room {
            wrap(&group.join("\n"), group_tokens, group_line, &mut out);
            group.clear();
            group_tokens = 0;
        }
        if tokens > room {
            for p in words(l, n, room, Sep::Space, counter) {
                wrap(&p.text, p.tokens, n, &mut out);
            }
            continue;
        }
        if group.is_empty() {
            group_line = if out.is_empty() { line } else { n };
        }
        group.push(l);
        group_tokens += tokens;
    }
    if !group.is_empty() || out.is_empty() {
        wrap(&group.join("\n"), group_tokens, group_line, &mut out);
    }
    out
}

/// Runs of words of at most a quarter of the budget (small, so that packing can fill chunks and keep overlap);
/// a word over the budget is split into characters ([`hard`]). The first piece gets `first_sep`.
pub(super) fn words(
    text: &str,
    line: usize,
    budget: usize,
    first_sep: Sep,
    counter: &dyn TokenCounter,
) -> Vec<Piece> {
    let target = (budget / 4).max(1);
    let mut lines = LineTracker::new(text, line);
    let mut out: Vec<Piece> = Vec::new();
    let mut run: Option<(usize, usize, usize)> = None; // (start, end, tokens)
    let flush =
        |run: &mut Option<(usize, usize, usize)>, out: &mut Vec<Piece>, lines: &mut LineTracker| {
            if let Some((s, e, tokens)) = run.take() {
                let sep = if out.is_empty() {
                    first_sep
                } else {
                    Sep::Space
                };
                out.push(Piece {
                    text: text[s..e].to_string(),
                    line: lines.line_at(s),
                    sep,
                    tokens,
                    unit: Unit::Words,
                });
            }
        };
    for (s, e) in word_spans(text) {
        let tokens = counter.count(&text[s..e]);
        if tokens > budget {
            flush(&mut run, &mut out, &mut lines);
            let sep = if out.is_empty() {
                first_sep
            } else {
                Sep::Space
            };
            out.extend(hard(&text[s..e], lines.line_at(s), budget, sep, counter));
            continue;
        }
        match &mut run {
            Some((_, end, t)) if *t + tokens <= target => {
                *end = e;
                *t += tokens;
            }
            _ => {
                flush(&mut run, &mut out, &mut lines);
                run = Some((s, e, tokens));
            }
        }
    }
    flush(&mut run, &mut out, &mut lines);
    out
}

/// Splits `word` at character boundaries into parts of at most `budget` tokens, joined with [`Sep::Join`].
pub(super) fn hard(
    word: &str,
    line: usize,
    budget: usize,
    first_sep: Sep,
    counter: &dyn TokenCounter,
) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut width = budget.max(1); // characters per part; a token covers at least one character
    let mut rest = word;
    while !rest.is_empty() {
        let end = rest
            .char_indices()
            .nth(width)
            .map_or(rest.len(), |(i, _)| i);
        let part = &rest[..end];
        let tokens = counter.count(part);
        if tokens > budget && width > 1 {
            width /= 2;
            continue;
        }
        let sep = if out.is_empty() { first_sep } else { Sep::Join };
        out.push(Piece {
            text: part.to_string(),
            line,
            sep,
            tokens,
            unit: Unit::Words,
        });
        rest = &rest[end..];
    }
    out
}

/// Byte spans of sentences: a sentence ends after `.`, `!` or `?` (and closing quotes or brackets) followed by
/// whitespace. Spans exclude surrounding whitespace.
fn sentence_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    let mut after_end_mark = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if after_end_mark {
                if let Some(s) = start.take() {
                    spans.push((s, i));
                }
            }
            after_end_mark = false;
            continue;
        }
        if start.is_none() {
            start = Some(i);
        }
        after_end_mark = matches!(c, '.' | '!' | '?')
            || (after_end_mark && matches!(c, '"' | '\'' | ')' | ']' | '”' | '’'));
    }
    if let Some(s) = start {
        spans.push((s, text.trim_end().len()));
    }
    spans
}

/// Byte spans of whitespace-separated words.
pub(super) fn word_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, text.len()));
    }
    spans
}

/// Line numbers of increasing byte offsets in a text, in linear time overall.
pub(super) struct LineTracker<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
}

impl<'a> LineTracker<'a> {
    pub fn new(text: &'a str, first_line: usize) -> Self {
        LineTracker {
            text,
            pos: 0,
            line: first_line,
        }
    }

    /// The line of byte `offset` (offsets must not decrease between calls).
    pub fn line_at(&mut self, offset: usize) -> usize {
        if offset > self.pos {
            self.line += self.text.as_bytes()[self.pos..offset]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            self.pos = offset;
        }
        self.line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words_count(t: &str) -> usize {
        t.split_whitespace().count()
    }

    #[test]
    fn sentences_split_after_end_marks() {
        let t = "One two. Three (four.) Five?\nSix";
        let got: Vec<&str> = sentence_spans(t)
            .into_iter()
            .map(|(s, e)| &t[s..e])
            .collect();
        assert_eq!(got, ["One two.", "Three (four.)", "Five?", "Six"]);
    }

    #[test]
    fn hard_split_respects_budget() {
        let chars = |t: &str| t.chars().count().div_ceil(3);
        let parts = hard("abcdefghijklmnopq", 7, 2, Sep::Space, &chars);
        assert!(parts.iter().all(|p| p.tokens <= 2 && p.line == 7));
        assert_eq!(
            parts.iter().map(|p| p.text.as_str()).collect::<String>(),
            "abcdefghijklmnopq"
        );
        assert_eq!(parts[0].sep, Sep::Space);
        assert_eq!(parts[1].sep, Sep::Join);
    }

    #[test]
    fn long_fence_reopens() {
        let block = Block {
            text: "```rust\na b\nc d\ne f\n```".into(),
            line: 10,
            kind: BlockKind::Fence,
        };
        let pieces = block_pieces(&block, 5, &words_count);
        let texts: Vec<&str> = pieces.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "```rust\na b\n```",
                "```rust\nc d\n```",
                "```rust\ne f\n```"
            ]
        );
        assert_eq!(
            pieces.iter().map(|p| p.line).collect::<Vec<_>>(),
            [10, 12, 13]
        );
    }
}
