//! Reading real files of every supported kind (and broken ones) and chunking them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use tuneup_retrieval::chunk::{chunk_document, Chunk, ChunkOptions};
use tuneup_retrieval::read::{discover, read_document, DocKind, Document, MAX_LINE_BYTES};
use tuneup_retrieval::Error;

fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

fn write(dir: &Path, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    path
}

fn read_error(path: &Path) -> String {
    match read_document(path) {
        Err(Error::Read { path: p, message }) => {
            assert_eq!(p, path);
            message
        }
        other => panic!("{}: expected a read error, got {other:?}", path.display()),
    }
}

/// A one-page PDF with one line of Helvetica text, written object by object with a correct xref table.
fn tiny_pdf(text: &str) -> Vec<u8> {
    pdf_with_content(&format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET"))
}

/// A one-page PDF with the given content stream.
fn pdf_with_content(content: &str) -> Vec<u8> {
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_string(),
        format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
            .to_string(),
    ];
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, obj) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend(format!("{} 0 obj\n{obj}\nendobj\n", i + 1).bytes());
    }
    let xref = pdf.len();
    pdf.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).bytes());
    for o in offsets {
        pdf.extend(format!("{o:010} 00000 n \n").bytes());
    }
    pdf.extend(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .bytes(),
    );
    pdf
}

/// The invariants every chunking must keep.
fn check_chunks(doc: &Document, chunks: &[Chunk], opts: ChunkOptions) {
    assert!(!chunks.is_empty());
    let lines: Vec<&str> = doc.text.lines().collect();
    for c in chunks {
        assert!(
            words(&c.text) <= opts.max_tokens,
            "{} words > {}:\n{}",
            words(&c.text),
            opts.max_tokens,
            c.text
        );
        assert!(!c.text.trim().is_empty());
        let body = match &c.heading {
            Some(h) if c.text.starts_with(&format!("{h}\n\n")) => &c.text[h.len() + 2..],
            _ => c.text.as_str(),
        };
        // `line` points at the line where the body starts (a reopened fence points at its first code line).
        let first_word = body.split_whitespace().next().unwrap();
        if !first_word.starts_with("```") && body != c.heading.as_deref().unwrap_or("") {
            assert!(
                lines[c.line - 1].contains(first_word),
                "line {} lacks {first_word:?}",
                c.line
            );
        }
    }
    assert_eq!(
        chunk_document(doc, opts, &words),
        chunks,
        "not deterministic"
    );
}

/// Every word of `text` occurs in some chunk.
fn check_coverage(text: &str, chunks: &[Chunk]) {
    let chunk_words: BTreeSet<&str> = chunks
        .iter()
        .flat_map(|c| c.text.split_whitespace())
        .collect();
    for w in text.split_whitespace().filter(|w| !w.starts_with('#')) {
        assert!(chunk_words.contains(w), "word {w:?} lost");
    }
}

/// Some chunk starts (after the heading) with a tail of the chunk before it in the same section.
fn has_overlap(chunks: &[Chunk]) -> bool {
    let body = |c: &Chunk| -> Vec<String> {
        let text = c.heading.as_ref().map_or(c.text.clone(), |h| {
            c.text.replacen(&format!("{h}\n\n"), "", 1)
        });
        text.split_whitespace().map(String::from).collect()
    };
    chunks.windows(2).any(|w| {
        let (a, b) = (body(&w[0]), body(&w[1]));
        w[0].heading == w[1].heading && (1..b.len()).any(|k| a.ends_with(&b[..k]))
    })
}

fn prose(n: usize, tag: &str) -> String {
    (0..n)
        .map(|i| format!("{tag}{i} word{i} here. "))
        .collect::<String>()
        .trim_end()
        .to_string()
}

#[test]
fn markdown_with_nested_headings_and_code() {
    let dir = tempfile::tempdir().unwrap();
    let code = "```rust\nfn main() {\n    println!(\"hello\");\n}\n```";
    let text = format!(
        "Preamble line.\n\n# Install\n\n## Linux\n\n{}\n\n{code}\n\n## Mac\n\nUse brew here.\n\n# Usage\n\n{}\n\n### Deep\n",
        prose(30, "lin"),
        prose(5, "use")
    );
    let path = write(dir.path(), "guide.md", &text);
    let doc = read_document(&path).unwrap();
    assert_eq!(doc.kind, DocKind::Markdown);
    let opts = ChunkOptions {
        max_tokens: 24,
        overlap: 4,
    };
    let chunks = chunk_document(&doc, opts, &words);
    check_chunks(&doc, &chunks, opts);
    check_coverage(&text, &chunks);
    let headings: BTreeSet<Option<&str>> = chunks.iter().map(|c| c.heading.as_deref()).collect();
    let expected = [
        None,
        Some("Install > Linux"),
        Some("Install > Mac"),
        Some("Usage"),
        Some("Usage > Deep"),
    ];
    assert_eq!(headings, expected.into_iter().collect());
    for c in chunks.iter().filter(|c| c.heading.is_some()) {
        assert!(
            c.text.starts_with(c.heading.as_deref().unwrap()),
            "{}",
            c.text
        );
    }
    assert_eq!(
        chunks.iter().filter(|c| c.text.contains(code)).count(),
        1,
        "code block kept whole"
    );
    let code_chunk = chunks.iter().find(|c| c.text.contains(code)).unwrap();
    assert_eq!(code_chunk.heading.as_deref(), Some("Install > Linux"));
    assert_eq!(chunks[0].line, 1);
    assert!(has_overlap(&chunks), "no overlap");
}

#[test]
fn long_fenced_block_is_split_and_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let body: Vec<String> = (0..40).map(|i| format!("let x{i} = {i};")).collect();
    let text = format!("# Code\n\n```rust\n{}\n```\n", body.join("\n"));
    let doc = read_document(&write(dir.path(), "code.md", &text)).unwrap();
    let opts = ChunkOptions {
        max_tokens: 30,
        overlap: 5,
    };
    let chunks = chunk_document(&doc, opts, &words);
    check_chunks(&doc, &chunks, opts);
    check_coverage(&text, &chunks);
    assert!(chunks.len() > 2);
    for c in &chunks {
        assert!(
            c.text.starts_with("Code\n\n```rust\n") && c.text.ends_with("\n```"),
            "{}",
            c.text
        );
    }
}

#[test]
fn html_page_loses_script_style_and_nav() {
    let dir = tempfile::tempdir().unwrap();
    let html = r#"<!DOCTYPE html><html><head><title>Doc</title><style>p { color: red }</style>
        <script>window.secret = "tracking";</script></head>
        <body><nav><a href="/">Home</a></nav>
        <h1>Manual</h1><p>First paragraph about the manual.</p>
        <h2>Setup</h2><p>Run the <code>setup</code> tool.</p>
        <pre><code class="language-sh">./setup --all
echo done</code></pre>
        <script>alert(1)</script></body></html>"#;
    let doc = read_document(&write(dir.path(), "page.html", html)).unwrap();
    assert_eq!(doc.kind, DocKind::Html);
    for gone in ["color", "secret", "alert", "Home", "<p>"] {
        assert!(!doc.text.contains(gone), "{gone} kept:\n{}", doc.text);
    }
    assert!(
        doc.text.contains("# Manual") && doc.text.contains("## Setup"),
        "{}",
        doc.text
    );
    assert!(
        doc.text.contains("```sh\n./setup --all\necho done\n```"),
        "{}",
        doc.text
    );
    let opts = ChunkOptions {
        max_tokens: 50,
        overlap: 5,
    };
    let chunks = chunk_document(&doc, opts, &words);
    check_chunks(&doc, &chunks, opts);
    let setup = chunks.iter().find(|c| c.text.contains("./setup")).unwrap();
    assert_eq!(setup.heading.as_deref(), Some("Manual > Setup"));
}

#[test]
fn pdf_text_layer() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "paper.pdf",
        tiny_pdf("Retrieval augmented generation works"),
    );
    let doc = read_document(&path).unwrap();
    assert_eq!(doc.kind, DocKind::Pdf);
    assert!(
        doc.text.contains("Retrieval augmented generation works"),
        "{:?}",
        doc.text
    );
    let chunks = chunk_document(&doc, ChunkOptions::default(), &words);
    assert_eq!(chunks.len(), 1);
}

#[test]
fn broken_inputs_are_read_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pdf = tiny_pdf("Some text");
    assert!(read_error(&write(
        d,
        "garbage.pdf",
        b"%PDF-1.4\nthis is not a pdf at all\n%%EOF"
    ))
    .contains("PDF"));
    assert!(read_error(&write(d, "truncated.pdf", &pdf[..pdf.len() / 2])).contains("PDF"));
    assert!(read_error(&write(d, "fake.pdf", b"hello")).contains("not a PDF"));
    assert!(
        read_error(&write(d, "blank.pdf", pdf_with_content("BT ET"))).contains("no text layer")
    );
    assert!(read_error(&write(d, "bin.txt", b"abc\0\x01\x02def")).contains("binary"));
    assert!(
        read_error(&write(d, "latin1.txt", [0xE9u8, 0xE8, 0xE0, b' ', 0xFC])).contains("not UTF-8")
    );
    assert!(read_error(&write(d, "empty.md", "")).contains("empty"));
    assert!(read_error(&write(d, "blank.txt", " \n\t\n  \n")).contains("no text"));
    assert!(read_error(&write(d, "only_script.html", "<script>x()</script>")).contains("no text"));
    assert!(read_error(&write(d, "image.png", b"\x89PNG")).contains("unsupported"));
    assert!(read_error(&d.join("missing.md")).contains("cannot read"));
}

#[test]
fn huge_line_is_broken_and_chunked() {
    let dir = tempfile::tempdir().unwrap();
    let line: String = (0..300_000).map(|i| format!("w{i} ")).collect();
    assert!(line.len() > 2 * 1024 * 1024);
    let doc = read_document(&write(dir.path(), "huge.txt", &line)).unwrap();
    assert!(doc.text.lines().count() >= 3);
    assert!(doc.text.lines().all(|l| l.len() <= MAX_LINE_BYTES));
    assert_eq!(words(&doc.text), 300_000);
    let opts = ChunkOptions {
        max_tokens: 256,
        overlap: 32,
    };
    let chunks = chunk_document(&doc, opts, &words);
    check_chunks(&doc, &chunks, opts);
    check_coverage(&line, &chunks);
    assert!(has_overlap(&chunks));

    // One 2 MiB word: split hard, nothing over the limit.
    let word = "x".repeat(2 * 1024 * 1024 + 5);
    let doc = read_document(&write(dir.path(), "word.txt", &word)).unwrap();
    let chars = |t: &str| t.chars().filter(|c| !c.is_whitespace()).count().div_ceil(4);
    let chunks = chunk_document(&doc, opts, &chars);
    assert!(chunks.iter().all(|c| chars(&c.text) <= 256));
    assert!(
        chunks
            .iter()
            .map(|c| c.text.matches('x').count())
            .sum::<usize>()
            >= word.len()
    );
}

#[test]
fn code_chunks_follow_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut src = String::new();
    for f in 0..12 {
        src.push_str(&format!(
            "fn f{f}(a: u32) -> u32 {{\n    let b = a + {f};\n    b * 2\n}}\n\n"
        ));
    }
    let doc = read_document(&write(dir.path(), "lib.rs", &src)).unwrap();
    assert_eq!(doc.kind, DocKind::Code("rust".into()));
    let opts = ChunkOptions {
        max_tokens: 40,
        overlap: 6,
    };
    let chunks = chunk_document(&doc, opts, &words);
    check_chunks(&doc, &chunks, opts);
    check_coverage(&src, &chunks);
    assert!(chunks.len() > 2);
    for c in &chunks {
        assert!(c.heading.is_none());
        let first = c.text.lines().next().unwrap();
        assert_eq!(
            doc.text.lines().nth(c.line - 1).unwrap(),
            first,
            "line {}",
            c.line
        );
    }
}

#[test]
fn discover_walks_folders() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for f in [
        "a.md",
        "sub/b.txt",
        "sub/deep/c.rs",
        "sub/deep/page.html",
        "x.pdf",
    ] {
        write(d, f, "text");
    }
    for f in [
        ".hidden.md",
        ".git/config.md",
        "target/t.md",
        "node_modules/m.js",
        "sub/.cache/h.md",
        "img.png",
    ] {
        write(d, f, "skip");
    }
    let explicit_hidden = write(d, "other/.env.md", "x");
    let unsupported = write(d, "other/data.bin", "x");
    #[cfg(unix)]
    std::os::unix::fs::symlink(d.join("sub"), d.join("sub/deep/loop")).unwrap();
    let inputs = vec![
        d.to_path_buf(),
        d.join("a.md"),
        explicit_hidden.clone(),
        unsupported.clone(),
        d.join("nope"),
    ];
    let found = discover(&inputs);
    let rel: Vec<String> = found
        .files
        .iter()
        .map(|f| f.strip_prefix(d).unwrap().display().to_string())
        .collect();
    assert_eq!(
        rel,
        [
            "a.md",
            "other/.env.md",
            "sub/b.txt",
            "sub/deep/c.rs",
            "sub/deep/page.html",
            "x.pdf"
        ]
    );
    let skipped: Vec<&PathBuf> = found.skipped.iter().map(|(p, _)| p).collect();
    assert!(
        skipped.contains(&&unsupported) && skipped.contains(&&d.join("nope")),
        "{:?}",
        found.skipped
    );
    #[cfg(unix)]
    assert!(
        found.skipped.iter().any(|(_, why)| why.contains("loop")),
        "{:?}",
        found.skipped
    );
}
