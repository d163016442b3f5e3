//! `PostgresStore` against a real PostgreSQL server with pgvector.
//!
//! Start one with `scripts/postgres.sh start DIR` and pass its URL in `TUNEUP_TEST_POSTGRES_URL`. Without it the
//! tests print a note and pass, unless `TUNEUP_REQUIRE_POSTGRES=1`. Every test uses its own index name (tables
//! `tuneup_rag_NAME_*`, dropped first), so they run in parallel on one database.

use std::collections::BTreeMap;

use tuneup_retrieval::store::postgres::PostgresStore;
use tuneup_retrieval::store::{ChunkRecord, FileRecord, Filter, IndexInfo, Store, StoreStats};
use tuneup_retrieval::Error;

use tuneup_test_utils::postgres_test_url as url;

/// A fresh, empty index called `name` (its tables dropped first, so reruns start clean).
fn fresh(url: &str, name: &str) -> PostgresStore {
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS tuneup_rag_{name}_chunks, tuneup_rag_{name}_files, tuneup_rag_{name}_info"
        ))
        .expect("drop old tables");
    PostgresStore::connect_named(url, name).expect("connect_named")
}

fn info(dim: usize) -> IndexInfo {
    IndexInfo {
        embedder: "test-embedder".into(),
        dim,
    }
}

fn unit(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / norm).collect()
}

fn chunk(text: &str, line: usize, embedding: &[f32]) -> ChunkRecord {
    ChunkRecord {
        text: text.into(),
        heading: None,
        line,
        embedding: unit(embedding),
    }
}

fn file(source: &str, hash: &str, tags: &[&str], chunks: Vec<ChunkRecord>) -> FileRecord {
    FileRecord {
        source: source.into(),
        hash: hash.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        chunks,
    }
}

/// Three files with 4-dimensional embeddings pointing along the axes.
fn sample(store: &mut PostgresStore) {
    store.ensure_info(&info(4)).unwrap();
    store
        .upsert_file(&file(
            "docs/guide.md",
            "h1",
            &["docs", "guide"],
            vec![
                ChunkRecord {
                    heading: Some("Guide > Running".into()),
                    ..chunk(
                        "The server can run in the background.",
                        1,
                        &[1.0, 0.0, 0.0, 0.0],
                    )
                },
                chunk(
                    "Configuration lives in a TOML file.",
                    10,
                    &[0.0, 1.0, 0.0, 0.0],
                ),
            ],
        ))
        .unwrap();
    store
        .upsert_file(&file(
            "docs/api.md",
            "h2",
            &["docs"],
            vec![chunk(
                "Every endpoint returns JSON and a status code.",
                3,
                &[0.0, 0.0, 1.0, 0.0],
            )],
        ))
        .unwrap();
    store
        .upsert_file(&file(
            "src/main.rs",
            "h3",
            &["code"],
            vec![chunk(
                "fn main() { start the server and wait }",
                1,
                &[0.7, 0.0, 0.0, 0.7],
            )],
        ))
        .unwrap();
    store.finish().unwrap();
}

fn sources(hits: &[tuneup_retrieval::store::Hit]) -> Vec<&str> {
    hits.iter().map(|h| h.source.as_str()).collect()
}

#[test]
fn ensure_info_records_and_rejects_a_different_embedder() {
    let Some(url) = url() else { return };
    let mut store = fresh(&url, "t_info");
    assert_eq!(store.info().unwrap(), None);
    assert_eq!(store.stats().unwrap(), StoreStats::default());
    store.ensure_info(&info(4)).unwrap();
    store.ensure_info(&info(4)).unwrap();
    assert_eq!(store.info().unwrap(), Some(info(4)));

    let other = IndexInfo {
        embedder: "other".into(),
        dim: 4,
    };
    let err = store.ensure_info(&other).unwrap_err();
    assert!(
        matches!(&err, Error::EmbedderMismatch { indexed, indexed_dim: 4, current, current_dim: 4, .. }
            if indexed == "test-embedder" && current == "other"),
        "{err}"
    );
    let err = store.ensure_info(&info(8)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::EmbedderMismatch {
                indexed_dim: 4,
                current_dim: 8,
                ..
            }
        ),
        "{err}"
    );
    // A second connection sees the same info.
    let again = PostgresStore::connect_named(&url, "t_info").unwrap();
    assert_eq!(again.info().unwrap(), Some(info(4)));
}

#[test]
fn dense_search_orders_by_cosine_similarity() {
    let Some(url) = url() else { return };
    let mut store = fresh(&url, "t_dense");
    sample(&mut store);

    let hits = store
        .dense(&unit(&[1.0, 0.0, 0.0, 0.1]), 10, &Filter::default())
        .unwrap();
    assert_eq!(hits.len(), 4);
    assert_eq!(
        sources(&hits),
        [
            "docs/guide.md",
            "src/main.rs",
            "docs/guide.md",
            "docs/api.md"
        ]
    );
    let first = &hits[0];
    assert_eq!(first.text, "The server can run in the background.");
    assert_eq!(first.heading.as_deref(), Some("Guide > Running"));
    assert_eq!(first.line, 1);
    let expected = unit(&[1.0, 0.0, 0.0, 0.1])[0];
    assert!((first.score - expected).abs() < 1e-4, "{}", first.score);
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    assert!(hits[3].score.abs() < 1e-4, "orthogonal: {}", hits[3].score);

    let top2 = store
        .dense(&unit(&[0.0, 0.0, 1.0, 0.0]), 2, &Filter::default())
        .unwrap();
    assert_eq!(top2.len(), 2);
    assert_eq!(top2[0].source, "docs/api.md");
    assert!((top2[0].score - 1.0).abs() < 1e-4);

    // Chunk ids are stable and distinct.
    let mut ids: Vec<i64> = hits.iter().map(|h| h.chunk_id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4);

    let err = store.dense(&[1.0, 0.0], 3, &Filter::default()).unwrap_err();
    assert!(err.to_string().contains("dimension"), "{err}");
}

#[test]
fn upsert_replaces_a_files_chunks_and_remove_deletes_them() {
    let Some(url) = url() else { return };
    let mut store = fresh(&url, "t_replace");
    sample(&mut store);
    assert_eq!(
        store.stats().unwrap(),
        StoreStats {
            files: 3,
            chunks: 4
        }
    );

    store
        .upsert_file(&file(
            "docs/guide.md",
            "h1-new",
            &["guide"],
            vec![chunk(
                "Completely rewritten guide.",
                5,
                &[0.0, 1.0, 0.0, 0.0],
            )],
        ))
        .unwrap();
    store.finish().unwrap();
    assert_eq!(
        store.stats().unwrap(),
        StoreStats {
            files: 3,
            chunks: 3
        }
    );
    let hits = store
        .dense(&[0.0, 1.0, 0.0, 0.0], 10, &Filter::default())
        .unwrap();
    let guide: Vec<_> = hits
        .iter()
        .filter(|h| h.source == "docs/guide.md")
        .collect();
    assert_eq!(guide.len(), 1);
    assert_eq!(guide[0].text, "Completely rewritten guide.");
    assert_eq!(guide[0].line, 5);
    assert!(store
        .keyword("background", 10, &Filter::default())
        .unwrap()
        .is_empty());
    // The new tags replaced the old ones.
    let docs = Filter {
        tags: vec!["docs".into()],
        ..Filter::default()
    };
    assert_eq!(
        sources(&store.dense(&[0.0, 1.0, 0.0, 0.0], 10, &docs).unwrap()),
        ["docs/api.md"]
    );

    let hashes = store.file_hashes().unwrap();
    assert_eq!(
        hashes,
        BTreeMap::from([
            ("docs/api.md".to_string(), "h2".to_string()),
            ("docs/guide.md".to_string(), "h1-new".to_string()),
            ("src/main.rs".to_string(), "h3".to_string()),
        ])
    );

    store.remove_file("docs/guide.md").unwrap();
    store.remove_file("not/indexed.md").unwrap();
    store.finish().unwrap();
    assert_eq!(
        store.stats().unwrap(),
        StoreStats {
            files: 2,
            chunks: 2
        }
    );
    assert!(!store.file_hashes().unwrap().contains_key("docs/guide.md"));
    assert!(store
        .dense(&[0.0, 1.0, 0.0, 0.0], 10, &Filter::default())
        .unwrap()
        .iter()
        .all(|h| h.source != "docs/guide.md"));

    // A file with no chunks is still recorded (its hash lets ingest skip it next time).
    store
        .upsert_file(&file("empty.md", "h0", &[], Vec::new()))
        .unwrap();
    assert_eq!(
        store.stats().unwrap(),
        StoreStats {
            files: 3,
            chunks: 2
        }
    );

    // A wrong-sized embedding is refused before anything is written.
    let err = store
        .upsert_file(&file("bad.md", "hb", &[], vec![chunk("x", 1, &[1.0, 0.0])]))
        .unwrap_err();
    assert!(err.to_string().contains("dimension"), "{err}");
    assert!(!store.file_hashes().unwrap().contains_key("bad.md"));
}

#[test]
fn keyword_search_stems_and_ranks() {
    let Some(url) = url() else { return };
    let mut store = fresh(&url, "t_keyword");
    sample(&mut store);

    // "running" → "run"; the heading counts too.
    let hits = store.keyword("running", 10, &Filter::default()).unwrap();
    assert_eq!(sources(&hits), ["docs/guide.md"]);
    assert_eq!(hits[0].text, "The server can run in the background.");
    assert!(hits[0].score > 0.0);

    // Any of the words matches; more matching words rank higher.
    let hits = store
        .keyword("servers running quietly", 10, &Filter::default())
        .unwrap();
    assert_eq!(sources(&hits), ["docs/guide.md", "src/main.rs"]);
    assert!(hits[0].score > hits[1].score);

    assert!(store
        .keyword("endpoints", 10, &Filter::default())
        .unwrap()
        .iter()
        .any(|h| h.source == "docs/api.md"));
    assert_eq!(
        store
            .keyword("server", 1, &Filter::default())
            .unwrap()
            .len(),
        1
    );
    assert!(store
        .keyword("nonexistentword", 10, &Filter::default())
        .unwrap()
        .is_empty());
}

#[test]
fn empty_or_odd_keyword_queries_return_no_hits_not_errors() {
    let Some(url) = url() else { return };
    let mut store = fresh(&url, "t_odd_queries");
    sample(&mut store);
    for query in ["", "   ", "the and of", "!!! ??? :: &|", "'", "\\"] {
        let hits = store.keyword(query, 10, &Filter::default()).unwrap();
        assert!(hits.is_empty(), "{query:?}: {hits:?}");
    }
    // Quotes, operators and backslashes are plain text, never tsquery syntax.
    for query in [
        "o'reilly's \"run\" -x server & | ! (",
        "C:\\path\\to\\file.rs run:*",
        "toml-file background's",
    ] {
        let hits = store.keyword(query, 10, &Filter::default()).unwrap();
        assert!(!hits.is_empty(), "{query:?}");
    }
}

#[test]
fn filters_by_source_prefix_and_tags() {
    let Some(url) = url() else { return };
    let mut store = fresh(&url, "t_filters");
    sample(&mut store);
    store.ensure_info(&info(4)).unwrap();
    store
        .upsert_file(&file(
            "docs_old/x.md",
            "h4",
            &["docs"],
            vec![chunk("An old server page.", 1, &[1.0, 0.0, 0.0, 0.0])],
        ))
        .unwrap();
    store
        .upsert_file(&file(
            "100%/y.md",
            "h5",
            &[],
            vec![chunk("A percent server page.", 1, &[1.0, 0.0, 0.0, 0.0])],
        ))
        .unwrap();
    let q = [1.0, 0.0, 0.0, 0.0];

    let prefix = |p: &str| Filter {
        source_prefix: Some(p.into()),
        tags: Vec::new(),
    };
    let mut docs = sources(&store.dense(&q, 10, &prefix("docs/")).unwrap())
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    docs.sort();
    docs.dedup();
    assert_eq!(docs, ["docs/api.md", "docs/guide.md"]);
    // `_` and `%` in the prefix are literal.
    assert_eq!(
        sources(&store.dense(&q, 10, &prefix("docs_")).unwrap()),
        ["docs_old/x.md"]
    );
    assert_eq!(
        sources(&store.dense(&q, 10, &prefix("100%")).unwrap()),
        ["100%/y.md"]
    );
    assert!(store.dense(&q, 10, &prefix("1%")).unwrap().is_empty());
    assert!(store.dense(&q, 10, &prefix("nothing/")).unwrap().is_empty());

    let tags = |t: &[&str]| Filter {
        source_prefix: None,
        tags: t.iter().map(|s| s.to_string()).collect(),
    };
    assert_eq!(
        sources(&store.keyword("server", 10, &tags(&["code"])).unwrap()),
        ["src/main.rs"]
    );
    // Every tag must be present.
    let both = store.dense(&q, 10, &tags(&["docs", "guide"])).unwrap();
    assert!(both.iter().all(|h| h.source == "docs/guide.md") && both.len() == 2);
    assert!(store
        .dense(&q, 10, &tags(&["docs", "code"]))
        .unwrap()
        .is_empty());

    // Prefix and tags together, on keyword search.
    let f = Filter {
        source_prefix: Some("docs".into()),
        tags: vec!["docs".into()],
    };
    let mut hits = sources(&store.keyword("server page", 10, &f).unwrap())
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    hits.sort();
    assert_eq!(hits, ["docs/guide.md", "docs_old/x.md"]);
}

#[test]
fn named_indexes_in_one_database_are_separate() {
    let Some(url) = url() else { return };
    let mut a = fresh(&url, "t_sep_a");
    let mut b = fresh(&url, "t_sep_b");
    sample(&mut a);
    b.ensure_info(&IndexInfo {
        embedder: "another".into(),
        dim: 3,
    })
    .unwrap();
    b.upsert_file(&file(
        "b-only.md",
        "hb",
        &[],
        vec![ChunkRecord {
            text: "Only in b, about servers.".into(),
            heading: None,
            line: 1,
            embedding: vec![1.0, 0.0, 0.0],
        }],
    ))
    .unwrap();

    assert_eq!(
        a.stats().unwrap(),
        StoreStats {
            files: 3,
            chunks: 4
        }
    );
    assert_eq!(
        b.stats().unwrap(),
        StoreStats {
            files: 1,
            chunks: 1
        }
    );
    assert_eq!(a.info().unwrap(), Some(info(4)));
    assert_eq!(b.info().unwrap().unwrap().dim, 3);
    assert!(a
        .keyword("servers", 10, &Filter::default())
        .unwrap()
        .iter()
        .all(|h| h.source != "b-only.md"));
    assert_eq!(
        sources(&b.keyword("servers", 10, &Filter::default()).unwrap()),
        ["b-only.md"]
    );
    assert_ne!(a.table_prefix(), b.table_prefix());
    assert!(a.location().contains("t_sep_a"));
}

#[test]
fn reconnecting_sees_the_data() {
    let Some(url) = url() else { return };
    {
        let mut store = fresh(&url, "t_reconnect");
        sample(&mut store);
    }
    let store = PostgresStore::connect_named(&url, "t_reconnect").unwrap();
    assert_eq!(store.info().unwrap(), Some(info(4)));
    assert_eq!(
        store.stats().unwrap(),
        StoreStats {
            files: 3,
            chunks: 4
        }
    );
    assert_eq!(store.file_hashes().unwrap().len(), 3);
    let hits = store
        .dense(&[0.0, 0.0, 1.0, 0.0], 1, &Filter::default())
        .unwrap();
    assert_eq!(sources(&hits), ["docs/api.md"]);

    // Through the entry point the CLI and eval use, by name.
    let generic =
        tuneup_retrieval::store::open_index(std::path::Path::new(&url), "t_reconnect").unwrap();
    assert!(generic.location().starts_with("postgres"));
    assert_eq!(generic.stats().unwrap().chunks, 4);
}

#[test]
fn tls_connections_check_the_server_certificate() {
    // The TLS test server (scripts/postgres.sh start-tls) is Debian's PostgreSQL, without pgvector: a verified
    // connection gets as far as the extension check.
    let Some((url, root)) = tuneup_test_utils::postgres_tls_test_server() else {
        return;
    };
    let verified = format!("{url}?sslmode=verify-full&sslrootcert={root}");
    let err = PostgresStore::connect_named(&verified, "t_tls")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("vector") && !err.contains("cannot connect"),
        "{err}"
    );
    let wrong = format!("{url}?sslmode=verify-full&sslrootcert=system");
    let err = PostgresStore::connect_named(&wrong, "t_tls")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot connect") && err.contains("certificate"),
        "{err}"
    );
}

#[test]
fn location_hides_the_password_and_errors_are_clear() {
    let Some(url) = url() else { return };
    let store = fresh(&url, "t_location");
    assert!(store.location().contains("127.0.0.1") || store.location().contains("localhost"));
    assert!(store.location().ends_with("(index t_location)"));

    // Nothing listens on port 1: a clear connection error naming the place, without the password.
    let err = PostgresStore::connect("postgres://someone:hunter2@127.0.0.1:1/db").unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Store { .. }), "{text}");
    assert!(text.contains("cannot connect"), "{text}");
    assert!(text.contains("postgres://someone@127.0.0.1:1/db"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn many_chunks_in_one_file() {
    let Some(url) = url() else { return };
    let mut store = fresh(&url, "t_many");
    store.ensure_info(&info(4)).unwrap();
    let chunks: Vec<ChunkRecord> = (0..500)
        .map(|i| {
            let a = i as f32 / 500.0 * std::f32::consts::FRAC_PI_2;
            chunk(
                &format!("chunk number {i}"),
                i + 1,
                &[a.cos(), a.sin(), 0.0, 0.0],
            )
        })
        .collect();
    store
        .upsert_file(&file("big.md", "hbig", &["big"], chunks))
        .unwrap();
    store.finish().unwrap();
    assert_eq!(
        store.stats().unwrap(),
        StoreStats {
            files: 1,
            chunks: 500
        }
    );
    let hits = store
        .dense(&[1.0, 0.0, 0.0, 0.0], 50, &Filter::default())
        .unwrap();
    assert_eq!(hits.len(), 50);
    assert_eq!(hits[0].line, 1);
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    // k above the default ef_search with a filter still returns k rows.
    let tagged = Filter {
        tags: vec!["big".into()],
        ..Filter::default()
    };
    assert_eq!(
        store
            .dense(&[0.0, 1.0, 0.0, 0.0], 120, &tagged)
            .unwrap()
            .len(),
        120
    );
}

#[test]
fn a_database_without_the_extension_says_how_to_install_it() {
    let Some(url) = url() else { return };
    // A non-superuser in a fresh database cannot create the (untrusted) extension.
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    admin
        .batch_execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tuneup_plain') THEN \
             CREATE ROLE tuneup_plain LOGIN; END IF; END $$",
        )
        .unwrap();
    if admin
        .query_opt(
            "SELECT 1 FROM pg_database WHERE datname = 'tuneup_novector'",
            &[],
        )
        .unwrap()
        .is_none()
    {
        admin
            .batch_execute("CREATE DATABASE tuneup_novector OWNER tuneup_plain")
            .unwrap();
    }
    let config: postgres::Config = url.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        postgres::config::Host::Tcp(h) => h.clone(),
        #[allow(unreachable_patterns)]
        _ => "127.0.0.1".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let plain = format!("postgres://tuneup_plain:pw@{host}:{port}/tuneup_novector");
    let err = PostgresStore::connect(&plain).unwrap_err().to_string();
    eprintln!("{err}");
    assert!(err.contains("extension `vector`"), "{err}");
    assert!(err.contains("CREATE EXTENSION vector"), "{err}");
    assert!(!err.contains(":pw@"), "{err}");
}
