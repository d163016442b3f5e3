//! HTML to Markdown-like text: headings become `#` headings, `pre` blocks fenced code blocks, list items `- `
//! lines; scripts, styles, navigation and other non-content elements are dropped.

use ego_tree::iter::Edge;
use scraper::{ElementRef, Html, Node};

/// Elements whose whole content is dropped.
const DROPPED: &[&str] = &[
    "head", "script", "style", "nav", "noscript", "template", "svg", "iframe", "object", "canvas",
    "button", "select",
];

/// Elements that start and end a paragraph.
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "aside",
    "blockquote",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "table",
    "thead",
    "tbody",
    "tr",
    "figure",
    "figcaption",
    "hr",
    "address",
    "details",
    "summary",
    "form",
    "fieldset",
];

/// Converts an HTML page (or fragment) into Markdown-like text.
pub(super) fn to_markdown(html: &str) -> String {
    let doc = Html::parse_document(html);
    let mut w = Writer::default();
    let mut dropped_depth = 0usize;
    for edge in doc.root_element().traverse() {
        match edge {
            Edge::Open(node) => match node.value() {
                Node::Element(el) => {
                    let name = el.name();
                    if dropped_depth > 0 || DROPPED.contains(&name) || el.attr("hidden").is_some() {
                        dropped_depth += 1;
                    } else if let Some(el) = ElementRef::wrap(node) {
                        w.open(el);
                    }
                }
                Node::Text(t) if dropped_depth == 0 => w.text(t),
                _ => {}
            },
            Edge::Close(node) => {
                if let Node::Element(el) = node.value() {
                    if dropped_depth > 0 {
                        dropped_depth -= 1;
                    } else {
                        w.close(el.name());
                    }
                }
            }
        }
    }
    w.out
}

/// Accumulates the output.
#[derive(Default)]
struct Writer {
    out: String,
    /// Inside `pre`: its text so far and the code language.
    pre: Option<(String, String)>,
    /// Nesting of `pre` elements (a `pre` inside a `pre` is just text).
    pre_depth: usize,
    /// Inside `code` (outside `pre`).
    inline_code: usize,
}

impl Writer {
    fn open(&mut self, el: ElementRef<'_>) {
        let name = el.value().name();
        if self.pre.is_some() {
            if name == "pre" {
                self.pre_depth += 1;
            } else if name == "br" {
                self.text("\n");
            }
            return;
        }
        match name {
            "pre" => {
                self.paragraph();
                self.pre = Some((String::new(), code_language(el)));
                self.pre_depth = 1;
            }
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                self.paragraph();
                let level = usize::from(name.as_bytes()[1] - b'0');
                self.out.push_str(&"#".repeat(level));
                self.out.push(' ');
            }
            "br" => self.line(),
            "li" => {
                self.line();
                self.out.push_str("- ");
            }
            "td" | "th" => self.space(),
            "code" => {
                self.inline_code += 1;
                self.space_if_word_before();
                self.out.push('`');
            }
            _ if BLOCKS.contains(&name) => self.paragraph(),
            _ => {}
        }
    }

    fn close(&mut self, name: &str) {
        if let Some((code, lang)) = &self.pre {
            if name != "pre" {
                return;
            }
            self.pre_depth -= 1;
            if self.pre_depth > 0 {
                return;
            }
            let code = code.trim_matches('\n');
            let fence = if code.contains("```") { "~~~~" } else { "```" };
            let block = format!("{fence}{lang}\n{code}\n{fence}");
            self.pre = None;
            self.out.push_str(&block);
            self.paragraph();
            return;
        }
        match name {
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => self.paragraph(),
            "code" if self.inline_code > 0 => {
                self.inline_code -= 1;
                let trimmed = self.out.trim_end().len();
                self.out.truncate(trimmed);
                if self.out.ends_with('`') {
                    self.out.pop(); // empty inline code
                } else {
                    self.out.push('`');
                }
            }
            "li" => self.line(),
            _ if BLOCKS.contains(&name) => self.paragraph(),
            _ => {}
        }
    }

    /// Appends text: verbatim inside `pre`, whitespace-collapsed elsewhere.
    fn text(&mut self, t: &str) {
        if let Some((code, _)) = &mut self.pre {
            code.push_str(t);
            return;
        }
        let starts_ws = t.starts_with(char::is_whitespace);
        for (i, word) in t.split_whitespace().enumerate() {
            if i > 0 || starts_ws {
                self.space();
            }
            self.out.push_str(word);
        }
        if t.ends_with(char::is_whitespace) && !t.trim().is_empty() {
            self.space();
        }
    }

    /// A space unless at the start of a line or after one.
    fn space(&mut self) {
        if !(self.out.is_empty() || self.out.ends_with(' ') || self.out.ends_with('\n')) {
            self.out.push(' ');
        }
    }

    fn space_if_word_before(&mut self) {
        if self.out.ends_with(|c: char| !c.is_whitespace()) {
            self.out.push(' ');
        }
    }

    /// Ends the current line.
    fn line(&mut self) {
        self.trim_trailing_spaces();
        if !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.push('\n');
        }
    }

    /// Ends the current paragraph (a blank line).
    fn paragraph(&mut self) {
        self.line();
        if !self.out.is_empty() && !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
    }

    fn trim_trailing_spaces(&mut self) {
        let len = self.out.trim_end_matches(' ').len();
        self.out.truncate(len);
    }
}

/// The language of a `pre` block from a `language-x` / `lang-x` class on it or its `code` child.
fn code_language(pre: ElementRef<'_>) -> String {
    let code_child = pre.child_elements().find(|c| c.value().name() == "code");
    [Some(pre), code_child]
        .into_iter()
        .flatten()
        .flat_map(|el| el.value().classes())
        .find_map(|c| {
            c.strip_prefix("language-")
                .or_else(|| c.strip_prefix("lang-"))
        })
        .unwrap_or("")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_structure_and_drops_noise() {
        let html = r#"<html><head><title>T</title><style>body{color:red}</style></head><body>
            <nav><a href="/">Home</a> | <a href="/docs">Docs</a></nav>
            <h1>Guide</h1><p>Intro   text with <b>bold</b> and <code>inline()</code>.</p>
            <script>var x = 1;</script>
            <h2>Install</h2><ul><li>one</li><li>two</li></ul>
            <pre><code class="language-rust">fn main() {
    println!("hi");
}</code></pre><p>After&nbsp;code.</p></body></html>"#;
        let md = to_markdown(html);
        assert!(
            !md.contains("Home") && !md.contains("color") && !md.contains("var x"),
            "{md}"
        );
        assert!(
            md.contains("# Guide\n\nIntro text with bold and `inline()`."),
            "{md}"
        );
        assert!(md.contains("## Install\n\n- one\n- two"), "{md}");
        assert!(
            md.contains("```rust\nfn main() {\n    println!(\"hi\");\n}\n```"),
            "{md}"
        );
        assert!(md.contains("After"), "{md}");
    }
}
