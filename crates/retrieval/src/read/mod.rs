//! Finding documents and turning them into plain text.
//!
//! [`discover`] walks files and folders; [`read_document`] reads one file by its kind. Anything that cannot be
//! read (binary, empty, unreadable PDF, undecodable text) is an [`Error::Read`](crate::Error::Read) naming the
//! file, so ingestion reports it and goes on.

use std::path::{Path, PathBuf};

use crate::Result;

/// What kind of document a file is, decided by its extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocKind {
    /// `.md`, `.markdown`: headings (`#`) and fenced code blocks are kept as structure for chunking.
    Markdown,
    /// `.txt`, `.rst` and other plain text.
    Text,
    /// `.html`, `.htm`: tags, scripts and styles removed; headings become Markdown headings.
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
    /// Its text (Markdown-like for Markdown and HTML, raw for code and text).
    pub text: String,
}

/// The kind of `path` by extension, or `None` when it is not a supported document.
pub fn kind_of(path: &Path) -> Option<DocKind> {
    let _ = path;
    todo!("read: kind_of")
}

/// What [`discover`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovered {
    /// Supported files, sorted, without duplicates.
    pub files: Vec<PathBuf>,
    /// Inputs that cannot be ingested, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Every supported file under `inputs` (files are taken as given; folders are walked recursively, hidden entries
/// and `target`/`node_modules`/`.git` skipped), sorted and without duplicates.
pub fn discover(inputs: &[PathBuf]) -> Result<Discovered> {
    let _ = inputs;
    todo!("read: discover")
}

/// Reads one file into a [`Document`].
pub fn read_document(path: &Path) -> Result<Document> {
    let _ = path;
    todo!("read: read_document")
}
