//! Incremental ingestion: find files, skip the unchanged ones by content hash, read, chunk, embed and store the
//! rest, and remove files that disappeared from the ingested folders.
//!
//! Files are written one transaction each, so an ingest that is killed part-way leaves a usable index: the files
//! done so far are new, the others old, and the next run picks up where it stopped. A file that cannot be read is
//! reported and skipped; if an older version of it is indexed, that version stays.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::chunk::{chunk_document, Chunk, ChunkOptions};
use crate::embed::Embedder;
use crate::read::{discover, read_document};
use crate::store::{ChunkRecord, FileRecord, IndexInfo, Store};
use crate::{Error, Result};

/// Chunks embedded together (across small files) before they are written.
const EMBED_GROUP: usize = 64;

/// Options for [`ingest`].
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    /// Chunk size and overlap.
    pub chunk: ChunkOptions,
    /// Tags recorded on every file of this ingest (for filters).
    pub tags: Vec<String>,
}

/// What an ingest did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Files indexed for the first time.
    pub added: usize,
    /// Files whose content changed and were re-indexed.
    pub updated: usize,
    /// Files skipped because their hash is unchanged.
    pub unchanged: usize,
    /// Files removed from the index because they no longer exist under the inputs.
    pub removed: usize,
    /// Chunks written.
    pub chunks: usize,
    /// Files that could not be read, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Receives progress from [`ingest`] (the CLI draws a progress bar from it).
pub trait IngestProgress {
    /// The number of files found.
    fn start(&mut self, files: usize);
    /// One file handled (indexed, unchanged or skipped).
    fn file_done(&mut self, path: &Path);
    /// A file could not be read and was skipped.
    fn skipped(&mut self, path: &Path, reason: &str);
}

/// Ignores progress.
pub struct NoProgress;

impl IngestProgress for NoProgress {
    fn start(&mut self, _: usize) {}
    fn file_done(&mut self, _: &Path) {}
    fn skipped(&mut self, _: &Path, _: &str) {}
}

struct Pending {
    path: PathBuf,
    record: FileRecord,
    is_new: bool,
}

/// Ingests the files and folders `inputs` into `store` with `embedder`.
pub fn ingest(
    inputs: &[PathBuf],
    store: &mut dyn Store,
    embedder: &Embedder,
    opts: &IngestOptions,
    progress: &mut dyn IngestProgress,
) -> Result<IngestReport> {
    store.ensure_info(&IndexInfo {
        embedder: embedder.name().to_string(),
        dim: embedder.dim(),
    })?;
    let discovered = discover(inputs);
    let mut report = IngestReport::default();
    for (path, reason) in discovered.skipped {
        progress.skipped(&path, &reason);
        report.skipped.push((path, reason));
    }
    let existing = store.file_hashes()?;
    progress.start(discovered.files.len());
    let mut seen = BTreeSet::new();
    let mut pending: Vec<Pending> = Vec::new();
    for path in &discovered.files {
        let source = source_key(path);
        seen.insert(source.clone());
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        });
        let hash = match bytes {
            Ok(bytes) => hex(&Sha256::digest(&bytes)),
            Err(e) => {
                skip(&mut report, progress, path, e.to_string());
                continue;
            }
        };
        if existing.get(&source) == Some(&hash) {
            report.unchanged += 1;
            progress.file_done(path);
            continue;
        }
        let doc = match read_document(path) {
            Ok(doc) => doc,
            Err(e) => {
                skip(&mut report, progress, path, e.to_string());
                continue;
            }
        };
        let chunks = chunk_document(&doc, opts.chunk, &|t: &str| embedder.count_tokens(t));
        pending.push(Pending {
            path: path.clone(),
            is_new: !existing.contains_key(&source),
            record: unembedded_record(source, hash, opts.tags.clone(), chunks),
        });
        if pending.iter().map(|p| p.record.chunks.len()).sum::<usize>() >= EMBED_GROUP {
            flush(&mut pending, store, embedder, &mut report, progress)?;
        }
    }
    flush(&mut pending, store, embedder, &mut report, progress)?;

    let roots: Vec<String> = inputs.iter().map(|p| source_key(p)).collect();
    for source in existing.keys() {
        let under_inputs = roots
            .iter()
            .any(|root| source == root || source.starts_with(&format!("{root}/")));
        if under_inputs && !seen.contains(source) {
            store.remove_file(source)?;
            report.removed += 1;
        }
    }
    store.finish()?;
    Ok(report)
}

/// Reports a file that could not be read and moves on.
fn skip(report: &mut IngestReport, progress: &mut dyn IngestProgress, path: &Path, reason: String) {
    progress.skipped(path, &reason);
    report.skipped.push((path.to_path_buf(), reason));
    progress.file_done(path);
}

/// A file's record with its chunks' embeddings still empty (filled in batches later).
pub(crate) fn unembedded_record(
    source: String,
    hash: String,
    tags: Vec<String>,
    chunks: Vec<Chunk>,
) -> FileRecord {
    FileRecord {
        source,
        hash,
        tags,
        chunks: chunks
            .into_iter()
            .map(|c| ChunkRecord {
                text: c.text,
                heading: c.heading,
                line: c.line,
                embedding: Vec::new(),
            })
            .collect(),
    }
}

/// Embeds the chunks of the pending files together and writes each file.
fn flush(
    pending: &mut Vec<Pending>,
    store: &mut dyn Store,
    embedder: &Embedder,
    report: &mut IngestReport,
    progress: &mut dyn IngestProgress,
) -> Result<()> {
    let texts: Vec<&str> = pending
        .iter()
        .flat_map(|p| p.record.chunks.iter().map(|c| c.text.as_str()))
        .collect();
    let mut vectors = embedder.embed(&texts)?.into_iter();
    for mut p in pending.drain(..) {
        for chunk in &mut p.record.chunks {
            chunk.embedding = vectors.next().expect("one vector per chunk");
        }
        store.upsert_file(&p.record)?;
        report.chunks += p.record.chunks.len();
        if p.is_new {
            report.added += 1;
        } else {
            report.updated += 1;
        }
        progress.file_done(&p.path);
    }
    Ok(())
}

/// The key a file is stored under: its absolute path with symlinks resolved (the path as given if that fails).
pub fn source_key(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
