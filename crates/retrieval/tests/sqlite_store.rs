//! The embedded SQLite index with hand-made vectors: writes, replacement, removal, dense and BM25 search,
//! filters, reopening, and the stale-graph fallback that keeps search correct after an interrupted ingest.

use tuneup_retrieval::store::sqlite::SqliteStore;
use tuneup_retrieval::store::{
    ann::MIN_GRAPH_SIZE, ChunkRecord, FileRecord, Filter, IndexInfo, Store,
};
use tuneup_retrieval::Error;

fn info(dim: usize) -> IndexInfo {
    IndexInfo {
        embedder: "test-embedder".into(),
        dim,
    }
}

fn chunk(text: &str, embedding: Vec<f32>) -> ChunkRecord {
    ChunkRecord {
        text: text.into(),
        heading: None,
        line: 1,
        embedding,
    }
}

fn file(source: &str, tags: &[&str], chunks: Vec<ChunkRecord>) -> FileRecord {
    FileRecord {
        source: source.into(),
        hash: format!("hash-of-{source}"),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        chunks,
    }
}

fn sample_store(dir: &std::path::Path) -> SqliteStore {
    let mut store = SqliteStore::open(&dir.join("index.db")).unwrap();
    store.ensure_info(&info(3)).unwrap();
    store
        .upsert_file(&file(
            "/docs/guide/install.md",
            &["guide"],
            vec![
                chunk("Running the installer on Linux", vec![1.0, 0.0, 0.0]),
                chunk("Configure the proxy settings", vec![0.0, 1.0, 0.0]),
            ],
        ))
        .unwrap();
    store
        .upsert_file(&file(
            "/docs/api/errors.md",
            &["api", "reference"],
            vec![chunk(
                "Error codes returned by the API",
                vec![0.0, 0.0, 1.0],
            )],
        ))
        .unwrap();
    store.finish().unwrap();
    store
}

#[test]
fn dense_search_orders_by_cosine_and_keyword_search_stems() {
    let dir = tempfile::tempdir().unwrap();
    let store = sample_store(dir.path());
    let hits = store
        .dense(&[0.9, 0.1, 0.0], 3, &Filter::default())
        .unwrap();
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0].text, "Running the installer on Linux");
    assert!(hits[0].score > hits[1].score && hits[1].score >= hits[2].score);
    assert!((hits[0].score - 0.9 / (0.82f32).sqrt()).abs() < 1e-5);
    // "run" matches "Running" through the porter stemmer; punctuation is not query syntax.
    let hits = store
        .keyword("how do I run it? (installer)", 5, &Filter::default())
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].source, "/docs/guide/install.md");
    assert!(hits[0].score > 0.0);
    assert!(store
        .keyword("  ?! ", 5, &Filter::default())
        .unwrap()
        .is_empty());
    assert!(store
        .keyword("nothing matches this", 5, &Filter::default())
        .unwrap()
        .is_empty());
}

#[test]
fn filters_restrict_by_source_prefix_and_tags() {
    let dir = tempfile::tempdir().unwrap();
    let store = sample_store(dir.path());
    let by_prefix = Filter {
        source_prefix: Some("/docs/api/".into()),
        tags: vec![],
    };
    let hits = store.dense(&[1.0, 0.0, 0.0], 5, &by_prefix).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].source, "/docs/api/errors.md");
    let by_tags = Filter {
        source_prefix: None,
        tags: vec!["api".into(), "reference".into()],
    };
    assert_eq!(store.keyword("error codes", 5, &by_tags).unwrap().len(), 1);
    let no_match = Filter {
        source_prefix: None,
        tags: vec!["guide".into(), "api".into()],
    };
    assert!(store
        .dense(&[1.0, 0.0, 0.0], 5, &no_match)
        .unwrap()
        .is_empty());
    assert!(store.keyword("installer", 5, &no_match).unwrap().is_empty());
}

#[test]
fn replacing_and_removing_files_keeps_bm25_and_vectors_in_step() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = sample_store(dir.path());
    store
        .upsert_file(&file(
            "/docs/guide/install.md",
            &["guide"],
            vec![chunk(
                "Uninstalling is described elsewhere",
                vec![0.0, 1.0, 0.0],
            )],
        ))
        .unwrap();
    store.finish().unwrap();
    assert_eq!(store.stats().unwrap().chunks, 2);
    assert!(store
        .keyword("installer linux", 5, &Filter::default())
        .unwrap()
        .is_empty());
    // The best match for the old "installer" direction is now the other file's chunk.
    let best = &store
        .dense(&[1.0, 0.0, 0.1], 1, &Filter::default())
        .unwrap()[0];
    assert_eq!(best.source, "/docs/api/errors.md");
    store.remove_file("/docs/api/errors.md").unwrap();
    store.finish().unwrap();
    let stats = store.stats().unwrap();
    assert_eq!((stats.files, stats.chunks), (1, 1));
    assert!(store
        .keyword("error", 5, &Filter::default())
        .unwrap()
        .is_empty());
    assert_eq!(store.file_hashes().unwrap().len(), 1);
    drop(store);
    // Reopening sees the same data.
    let store = SqliteStore::open(&dir.path().join("index.db")).unwrap();
    assert_eq!(store.info().unwrap(), Some(info(3)));
    assert_eq!(
        store
            .dense(&[0.0, 1.0, 0.0], 5, &Filter::default())
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_different_embedder_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = sample_store(dir.path());
    let err = store.ensure_info(&info(384)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::EmbedderMismatch {
                indexed_dim: 3,
                current_dim: 384,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("test-embedder"));
    let bad = file("/x", &[], vec![chunk("wrong size", vec![1.0, 0.0])]);
    let err = store.upsert_file(&bad).unwrap_err();
    assert!(err.to_string().contains("2 dimensions"), "{err}");
    // The failed write left nothing behind.
    assert!(!store.file_hashes().unwrap().contains_key("/x"));
}

#[test]
fn not_an_index_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.db");
    std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
    let err = SqliteStore::open(&path)
        .err()
        .expect("garbage must not open");
    assert!(err.to_string().contains("garbage.db"), "{err}");
}

/// Unit vector `i` of a deterministic pseudo-random family.
fn vector(i: usize, dim: usize) -> Vec<f32> {
    let mut state = (i as u64 + 1).wrapping_mul(0x9E3779B97F4A7C15);
    (0..dim)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 2000) as f32 / 1000.0 - 1.0
        })
        .collect()
}

#[test]
fn large_index_uses_the_graph_and_a_stale_graph_is_never_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.db");
    let dim = 8;
    let mut store = SqliteStore::open(&path).unwrap();
    store.ensure_info(&info(dim)).unwrap();
    let per_file = 500;
    for f in 0..MIN_GRAPH_SIZE / per_file {
        let chunks = (0..per_file)
            .map(|c| {
                chunk(
                    &format!("chunk {c} of file {f}"),
                    vector(f * per_file + c, dim),
                )
            })
            .collect();
        store
            .upsert_file(&file(&format!("/big/{f}"), &[], chunks))
            .unwrap();
    }
    store.finish().unwrap();
    assert!(store.graph_path().is_file());
    let probe = vector(1234, dim);
    let hits = store.dense(&probe, 5, &Filter::default()).unwrap();
    assert_eq!(hits[0].text, "chunk 234 of file 2");
    // A write without `finish` (as when an ingest is killed before the rebuild): the graph is now stale and must
    // not hide the new chunk.
    let mut target = vector(999_999, dim);
    store
        .upsert_file(&file(
            "/big/new",
            &[],
            vec![chunk("the new chunk", target.clone())],
        ))
        .unwrap();
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    target.iter_mut().for_each(|x| *x *= 3.0); // scale does not matter for cosine
    let hits = store.dense(&target, 1, &Filter::default()).unwrap();
    assert_eq!(hits[0].text, "the new chunk");
}
