//! `tuneup rag` driven as a user would, with the real all-MiniLM-L6-v2 (`TUNEUP_MINILM_DIR`; skipped without
//! it unless `TUNEUP_REQUIRE_MODELS=1`): ingest a folder of real files (Markdown, HTML, code, text, a broken PDF,
//! an empty file), query in every mode with filters, re-ingest incrementally, survive a killed ingest, and the
//! same against PostgreSQL + pgvector when `TUNEUP_TEST_POSTGRES_URL` is set.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{ok, tuneup};

fn minilm() -> Option<String> {
    tuneup_test_utils::minilm_dir().map(|p| p.to_string_lossy().into_owned())
}

fn write_docs(dir: &Path) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("guide.md"),
        "# Setup guide\n\n## Proxy\n\nTo configure the HTTP proxy, set `proxy_url` in settings.toml and restart the \
         service.\n\n## Backups\n\nBackups run nightly at 02:00 and are kept for 30 days.\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("faq.html"),
        "<html><head><style>body{}</style><script>var x = 1;</script></head><body><h1>FAQ</h1>\
         <p>Refunds are issued within 14 days of a return being received.</p></body></html>",
    )
    .unwrap();
    std::fs::write(
        dir.join("src/billing.rs"),
        "/// Computes the invoice total including VAT.\npub fn invoice_total(net: f64, vat: f64) -> f64 {\n    net * (1.0 + vat)\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("notes.txt"),
        "The office cat is called Miso and likes tuna.\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("broken.pdf"),
        b"%PDF-1.4\nthis is not really a pdf",
    )
    .unwrap();
    std::fs::write(dir.join("empty.md"), "").unwrap();
}

/// `(source file name, hit)` of `query --json` lines.
fn query(
    home: &Path,
    index_args: &[&str],
    question: &str,
    extra: &[&str],
) -> Vec<serde_json::Value> {
    let mut args = vec!["rag", "query", question, "--json", "-k", "3"];
    args.extend_from_slice(index_args);
    args.extend_from_slice(extra);
    ok(&tuneup(home, &args))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn top_source(hits: &[serde_json::Value]) -> String {
    let source = hits.first().expect("at least one hit")["source"]
        .as_str()
        .unwrap();
    Path::new(source)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn full_cycle(home: &Path, docs: &Path, index_args: &[&str]) {
    let mut ingest_args = vec!["rag", "ingest", docs.to_str().unwrap(), "--tag", "handbook"];
    ingest_args.extend_from_slice(index_args);
    let out = tuneup(home, &ingest_args);
    let stdout = ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("4 added, 0 updated, 0 unchanged, 0 removed, 2 skipped"),
        "{stdout}"
    );
    assert!(
        stderr.contains("broken.pdf") && stderr.contains("empty.md"),
        "{stderr}"
    );

    for mode in ["dense", "bm25", "hybrid"] {
        let hits = query(
            home,
            index_args,
            "how do I configure the proxy?",
            &["--mode", mode],
        );
        assert_eq!(top_source(&hits), "guide.md", "{mode}: {hits:?}");
        assert!(
            hits[0]["text"].as_str().unwrap().contains("proxy_url"),
            "{mode}: {hits:?}"
        );
        assert_eq!(hits[0]["heading"], "Setup guide > Proxy", "{mode}");
    }
    // Meaning, not words: nothing in the question appears in the notes.
    let hits = query(
        home,
        index_args,
        "what is the name of our pet?",
        &["--mode", "dense"],
    );
    assert_eq!(top_source(&hits), "notes.txt", "{hits:?}");
    let hits = query(
        home,
        index_args,
        "money back after returning an item",
        &["--mode", "hybrid"],
    );
    assert_eq!(top_source(&hits), "faq.html", "{hits:?}");
    assert!(
        !hits[0]["text"].as_str().unwrap().contains("var x"),
        "scripts are dropped"
    );

    // Filters.
    let src = docs.join("src").canonicalize().unwrap();
    let hits = query(
        home,
        index_args,
        "proxy",
        &["--source", src.to_str().unwrap()],
    );
    assert!(
        hits.iter()
            .all(|h| h["source"].as_str().unwrap().ends_with("billing.rs")),
        "{hits:?}"
    );
    assert!(query(home, index_args, "proxy", &["--tag", "other"]).is_empty());
    assert!(!query(home, index_args, "proxy", &["--tag", "handbook"]).is_empty());

    // Incremental: nothing changed, then one change and one deletion.
    let stdout = ok(&tuneup(home, &ingest_args));
    assert!(
        stdout.contains("0 added, 0 updated, 4 unchanged, 0 removed"),
        "{stdout}"
    );
    std::fs::write(
        docs.join("notes.txt"),
        "The office dog is called Pixel and likes walks.\n",
    )
    .unwrap();
    std::fs::remove_file(docs.join("src/billing.rs")).unwrap();
    let stdout = ok(&tuneup(home, &ingest_args));
    assert!(
        stdout.contains("0 added, 1 updated, 2 unchanged, 1 removed"),
        "{stdout}"
    );
    let hits = query(
        home,
        index_args,
        "invoice total with VAT",
        &["--mode", "bm25"],
    );
    assert!(
        hits.iter()
            .all(|h| !h["source"].as_str().unwrap().ends_with("billing.rs")),
        "{hits:?}"
    );
    let hits = query(home, index_args, "which animal is in the office?", &[]);
    assert!(
        hits[0]["text"].as_str().unwrap().contains("Pixel"),
        "{hits:?}"
    );

    let mut stats_args = vec!["rag", "stats"];
    stats_args.extend_from_slice(index_args);
    let stats = ok(&tuneup(home, &stats_args));
    assert!(stats.contains("files      3"), "{stats}");
}

#[test]
fn ingest_query_and_reingest_on_sqlite() {
    let Some(model) = minilm() else { return };
    let home = tempfile::tempdir().unwrap();
    let docs = home.path().join("docs");
    write_docs(&docs);
    full_cycle(
        home.path(),
        &docs,
        &["--index", "handbook", "--embedder", &model],
    );
    assert!(home.path().join("rag/handbook.db").is_file());
    // A query with another embedder is refused with a clear message.
    let out = tuneup(home.path(), &["rag", "query", "x", "--index", "handbook"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("built with embedder"), "{stderr}");
}

#[test]
fn ingest_query_and_reingest_on_postgres() {
    let Some(model) = minilm() else { return };
    let Ok(url) = std::env::var("TUNEUP_TEST_POSTGRES_URL") else {
        assert!(std::env::var("TUNEUP_REQUIRE_POSTGRES").as_deref() != Ok("1"));
        eprintln!("skipped: set TUNEUP_TEST_POSTGRES_URL (scripts/postgres.sh start DIR)");
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let docs = home.path().join("docs");
    write_docs(&docs);
    let index = format!("cli_{}", std::process::id());
    full_cycle(
        home.path(),
        &docs,
        &["--index", &index, "--store", &url, "--embedder", &model],
    );
}

#[test]
fn a_killed_ingest_leaves_a_usable_index() {
    let Some(model) = minilm() else { return };
    let home = tempfile::tempdir().unwrap();
    let docs: PathBuf = home.path().join("many");
    std::fs::create_dir_all(&docs).unwrap();
    for i in 0..120 {
        let body: String = (0..12)
            .map(|j| format!("Paragraph {j} of document {i} about topic {}. ", i % 17))
            .collect();
        std::fs::write(
            docs.join(format!("doc{i:03}.md")),
            format!("# Document {i}\n\n{body}\n"),
        )
        .unwrap();
    }
    let args = [
        "rag",
        "ingest",
        docs.to_str().unwrap(),
        "--index",
        "killed",
        "--embedder",
        &model,
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_tuneup"))
        .args(args)
        .env("TUNEUP_HOME", home.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2000));
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    let _ = child.wait();
    // The index opens and answers; the next ingest finishes the job without redoing finished files.
    let stats = ok(&tuneup(home.path(), &["rag", "stats", "--index", "killed"]));
    let done: usize = stats
        .lines()
        .find_map(|l| l.strip_prefix("files"))
        .map(|n| n.trim().parse().unwrap())
        .unwrap();
    assert!(
        done < 120,
        "the ingest should have been killed part-way ({done} files)"
    );
    let stdout = ok(&tuneup(home.path(), &args));
    assert!(
        stdout.contains(&format!(
            "{} added, 0 updated, {done} unchanged",
            120 - done
        )),
        "{stdout}"
    );
    let hits = query(
        home.path(),
        &["--index", "killed", "--embedder", &model],
        "document 119 topic",
        &["--mode", "bm25"],
    );
    assert!(!hits.is_empty());
}
