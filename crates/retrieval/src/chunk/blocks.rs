//! A document's structure: sections under headings, made of paragraphs, fenced code blocks and code blocks.

use crate::read::{DocKind, Document};

/// A run of blocks under one heading path.
#[derive(Debug)]
pub(super) struct Section {
    /// The heading path, e.g. `Install > Linux`; `None` before the first heading and for unstructured documents.
    pub heading: Option<String>,
    /// 1-based line of the heading (1 when there is none).
    pub line: usize,
    /// How many headings deep the section is (0 for none).
    pub depth: usize,
    /// Its content in order.
    pub blocks: Vec<Block>,
}

/// A paragraph, fenced code block, or blank-line-separated group of code lines.
#[derive(Debug)]
pub(super) struct Block {
    pub text: String,
    /// 1-based first line.
    pub line: usize,
    pub kind: BlockKind,
}

/// How a block is split when it is too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BlockKind {
    /// Prose: sentences, then words.
    Prose,
    /// A Markdown fenced code block: whole if it fits, else lines with the fence reopened.
    Fence,
    /// Source code: lines.
    Code,
}

/// The sections of `doc`: Markdown and HTML (converted to Markdown) by headings, everything else one section.
pub(super) fn sections(doc: &Document) -> Vec<Section> {
    let kind = match doc.kind {
        DocKind::Markdown | DocKind::Html => return markdown_sections(&doc.text),
        DocKind::Code(_) => BlockKind::Code,
        DocKind::Text | DocKind::Pdf => BlockKind::Prose,
    };
    let mut blocks = Vec::new();
    let mut para = Paragraph::default();
    for (i, line) in doc.text.lines().enumerate() {
        para.add(line, i + 1, kind, &mut blocks);
    }
    para.flush(kind, &mut blocks);
    vec![Section {
        heading: None,
        line: 1,
        depth: 0,
        blocks,
    }]
}

fn markdown_sections(text: &str) -> Vec<Section> {
    let mut sections = vec![Section {
        heading: None,
        line: 1,
        depth: 0,
        blocks: Vec::new(),
    }];
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut para = Paragraph::default();
    let mut fence: Option<OpenFence> = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let blocks = &mut sections.last_mut().expect("never empty").blocks;
        if let Some(f) = &mut fence {
            f.lines.push(line);
            if f.closed_by(line) {
                blocks.push(f.block());
                fence = None;
            }
        } else if let Some((ch, len)) = fence_open(line) {
            para.flush(BlockKind::Prose, blocks);
            fence = Some(OpenFence {
                ch,
                len,
                line: n,
                lines: vec![line],
            });
        } else if let Some((level, title)) = heading(line) {
            para.flush(BlockKind::Prose, blocks);
            while stack.last().is_some_and(|(l, _)| *l >= level) {
                stack.pop();
            }
            stack.push((level, title.to_string()));
            let path: Vec<&str> = stack
                .iter()
                .map(|(_, t)| t.as_str())
                .filter(|t| !t.is_empty())
                .collect();
            let heading = (!path.is_empty()).then(|| path.join(" > "));
            sections.push(Section {
                heading,
                line: n,
                depth: stack.len(),
                blocks: Vec::new(),
            });
        } else {
            para.add(line, n, BlockKind::Prose, blocks);
        }
    }
    let blocks = &mut sections.last_mut().expect("never empty").blocks;
    if let Some(f) = fence {
        blocks.push(f.block()); // unclosed at the end of the document
    }
    para.flush(BlockKind::Prose, blocks);
    if sections[0].blocks.is_empty() {
        sections.remove(0);
    }
    sections
}

/// Consecutive non-blank lines.
#[derive(Default)]
struct Paragraph<'a> {
    lines: Vec<&'a str>,
    line: usize,
}

impl<'a> Paragraph<'a> {
    fn add(&mut self, line: &'a str, n: usize, kind: BlockKind, blocks: &mut Vec<Block>) {
        if line.trim().is_empty() {
            self.flush(kind, blocks);
        } else {
            if self.lines.is_empty() {
                self.line = n;
            }
            self.lines.push(line);
        }
    }

    fn flush(&mut self, kind: BlockKind, blocks: &mut Vec<Block>) {
        if !self.lines.is_empty() {
            blocks.push(Block {
                text: self.lines.join("\n"),
                line: self.line,
                kind,
            });
            self.lines.clear();
        }
    }
}

struct OpenFence<'a> {
    ch: char,
    len: usize,
    line: usize,
    lines: Vec<&'a str>,
}

impl OpenFence<'_> {
    fn closed_by(&self, line: &str) -> bool {
        let t = line.trim();
        self.lines.len() > 1 && t.len() >= self.len && t.chars().all(|c| c == self.ch)
    }

    fn block(&self) -> Block {
        Block {
            text: self.lines.join("\n"),
            line: self.line,
            kind: BlockKind::Fence,
        }
    }
}

/// Strips up to three leading spaces (Markdown's limit for block syntax).
fn unindent(line: &str) -> Option<&str> {
    let t = line.trim_start_matches(' ');
    (line.len() - t.len() <= 3).then_some(t)
}

/// A fence opening line: its character and length.
fn fence_open(line: &str) -> Option<(char, usize)> {
    let t = unindent(line)?;
    let ch = t.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let len = t.chars().take_while(|c| *c == ch).count();
    let info = &t[len..];
    (len >= 3 && !(ch == '`' && info.contains('`'))).then_some((ch, len))
}

/// An ATX heading line: its level and title.
fn heading(line: &str) -> Option<(usize, &str)> {
    let t = unindent(line)?;
    let level = t.chars().take_while(|c| *c == '#').count();
    let rest = &t[level..];
    if !(1..=6).contains(&level) || !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    Some((level, rest.trim().trim_end_matches('#').trim_end()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(text: &str) -> Vec<Section> {
        let doc = Document {
            path: "x.md".into(),
            kind: DocKind::Markdown,
            text: text.into(),
        };
        sections(&doc)
    }

    #[test]
    fn headings_make_paths_and_fences_hide_headings() {
        let s = md("intro\n\n# Install\n## Linux\ntext\n```sh\n# not a heading\n```\n## Mac ##\nmore\n# Use\n");
        let got: Vec<_> = s
            .iter()
            .map(|s| (s.heading.as_deref(), s.line, s.depth, s.blocks.len()))
            .collect();
        assert_eq!(
            got,
            [
                (None, 1, 0, 1),
                (Some("Install"), 3, 1, 0),
                (Some("Install > Linux"), 4, 2, 2),
                (Some("Install > Mac"), 9, 2, 1),
                (Some("Use"), 11, 1, 0)
            ]
        );
        assert_eq!(s[2].blocks[1].kind, BlockKind::Fence);
        assert_eq!(s[2].blocks[1].text, "```sh\n# not a heading\n```");
        assert_eq!(s[2].blocks[1].line, 6);
    }

    #[test]
    fn not_headings() {
        assert_eq!(heading("#hashtag"), None);
        assert_eq!(heading("####### seven"), None);
        assert_eq!(heading("    # indented code"), None);
        assert_eq!(heading("### Title ###"), Some((3, "Title")));
    }
}
