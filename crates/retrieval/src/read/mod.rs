//! Finding documents and turning them into plain text.
//!
//! [`discover`] walks files and folders; [`read_document`] reads one file by its kind. Anything that cannot be
//! read (unsupported, binary, empty, too big, unreadable PDF, undecodable text) is an
//! [`Error::Read`](crate::Error::Read) naming the file and saying why, so ingestion reports it and goes on.
//!
//! Limits: files over [`MAX_FILE_BYTES`] are rejected. Lines longer than [`MAX_LINE_BYTES`] are kept but broken
//! into several lines (at whitespace where possible), so line numbers after such a line are shifted.

mod discover;
mod html;
mod pdf;
mod text;

use std::path::{Path, PathBuf};

use crate::{Error, Result};

pub use discover::{discover, Discovered};

/// Files bigger than this (50 MiB) are rejected.
pub const MAX_FILE_BYTES: u64 = 50 * 1024 * 1024;

/// Lines longer than this (1 MiB) are broken into several lines.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// What kind of document a file is, decided by its extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocKind {
    /// `.md`, `.markdown`: headings (`#`) and fenced code blocks are kept as structure for chunking.
    Markdown,
    /// `.txt`, `.text`, `.rst` plain text.
    Text,
    /// `.html`, `.htm`: scripts, styles and navigation removed; headings become Markdown headings and `pre`
    /// blocks fenced code blocks.
    Html,
    /// Source code; the language name (e.g. `rust`, `kotlin`, `sql`).
    Code(String),
    /// `.pdf`: the text layer.
    Pdf,
}

/// A document read into text.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The file it came from.
    pub path: PathBuf,
    /// Its kind.
    pub kind: DocKind,
    /// Its text (Markdown-like for Markdown and HTML, raw for code and text), `\n` line ends, never blank.
    pub text: String,
}

/// Source-code extensions and their language names.
const CODE_EXTENSIONS: &[(&str, &str)] = &[
    ("rs", "rust"),
    ("py", "python"),
    ("java", "java"),
    ("kt", "kotlin"),
    ("kts", "kotlin"),
    ("go", "go"),
    ("js", "javascript"),
    ("mjs", "javascript"),
    ("ts", "typescript"),
    ("c", "c"),
    ("h", "c"),
    ("cpp", "cpp"),
    ("cc", "cpp"),
    ("hpp", "cpp"),
    ("cs", "csharp"),
    ("rb", "ruby"),
    ("php", "php"),
    ("sql", "sql"),
    ("sh", "shell"),
    ("bash", "shell"),
    ("toml", "toml"),
    ("yaml", "yaml"),
    ("yml", "yaml"),
    ("json", "json"),
];

/// The kind of `path` by extension (case-insensitive), or `None` when it is not a supported document.
pub fn kind_of(path: &Path) -> Option<DocKind> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    let kind = match ext.as_str() {
        "md" | "markdown" => DocKind::Markdown,
        "txt" | "text" | "rst" => DocKind::Text,
        "html" | "htm" => DocKind::Html,
        "pdf" => DocKind::Pdf,
        other => {
            let (_, lang) = CODE_EXTENSIONS.iter().find(|(e, _)| *e == other)?;
            DocKind::Code((*lang).to_string())
        }
    };
    Some(kind)
}

/// Reads one file into a [`Document`].
///
/// Errors ([`Error::Read`]) for: an unsupported extension, an unreadable or missing file, a file over
/// [`MAX_FILE_BYTES`], binary content (NUL bytes in the first 8 KiB, or not UTF-8 with 1% or more invalid
/// characters), a PDF without an extractable text layer (broken, encrypted, scanned), and a document with no text.
pub fn read_document(path: &Path) -> Result<Document> {
    let fail = |message: String| Error::Read {
        path: path.to_path_buf(),
        message,
    };
    let kind = kind_of(path).ok_or_else(|| fail("unsupported file type".into()))?;
    let meta = fs_err::metadata(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(fail(format!(
            "file is {} MiB, over the {} MiB limit",
            meta.len() / (1024 * 1024),
            MAX_FILE_BYTES / (1024 * 1024)
        )));
    }
    if meta.len() == 0 {
        return Err(fail("empty file".into()));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let raw = match kind {
        DocKind::Pdf => pdf::extract_text(&bytes).map_err(fail)?,
        _ => text::decode(&bytes).map_err(fail)?,
    };
    let raw = match kind {
        DocKind::Html => html::to_markdown(&raw),
        _ => raw,
    };
    let text = text::normalize(&raw, MAX_LINE_BYTES);
    if text.trim().is_empty() {
        let why = if kind == DocKind::Pdf {
            "PDF has no text layer (scanned or image-only?)"
        } else {
            "no text (blank document)"
        };
        return Err(fail(why.into()));
    }
    Ok(Document {
        path: path.to_path_buf(),
        kind,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_extension() {
        assert_eq!(kind_of(Path::new("a/README.MD")), Some(DocKind::Markdown));
        assert_eq!(kind_of(Path::new("notes.rst")), Some(DocKind::Text));
        assert_eq!(kind_of(Path::new("page.htm")), Some(DocKind::Html));
        assert_eq!(kind_of(Path::new("paper.pdf")), Some(DocKind::Pdf));
        assert_eq!(
            kind_of(Path::new("build.gradle.kts")),
            Some(DocKind::Code("kotlin".into()))
        );
        assert_eq!(
            kind_of(Path::new("lib.rs")),
            Some(DocKind::Code("rust".into()))
        );
        assert_eq!(kind_of(Path::new("image.png")), None);
        assert_eq!(kind_of(Path::new("Makefile")), None);
    }
}
