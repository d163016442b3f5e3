//! `tuneup rag`: ingest documents into an index, query it, and measure retrieval.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tuneup_hub::Cache;
use tuneup_retrieval::benchmark::{self, BenchReport};
use tuneup_retrieval::chunk::ChunkOptions;
use tuneup_retrieval::embed::{Embedder, Precision};
use tuneup_retrieval::ingest::{ingest, IngestOptions, IngestProgress};
use tuneup_retrieval::search::{Mode, Retriever};
use tuneup_retrieval::store::{self, Filter, Store};

use crate::progress::BarProgress;

/// Arguments of `tuneup rag`.
#[derive(Debug, Args)]
pub struct RagArgs {
    #[command(subcommand)]
    command: RagCommand,
}

/// How documents are cut into chunks.
#[derive(Debug, Args)]
struct ChunkArgs {
    /// Maximum tokens per chunk.
    #[arg(long, default_value_t = 256)]
    chunk_tokens: usize,
    /// Tokens shared between consecutive chunks.
    #[arg(long, default_value_t = 32)]
    overlap: usize,
}

impl ChunkArgs {
    /// Fails on sizes the chunker cannot honour.
    fn check(&self) -> Result<()> {
        anyhow::ensure!(
            self.chunk_tokens >= 16,
            "--chunk-tokens must be at least 16"
        );
        anyhow::ensure!(
            self.overlap < self.chunk_tokens / 2,
            "--overlap must be less than half of --chunk-tokens"
        );
        Ok(())
    }

    /// The options, capped so that a chunk fits the embedder whole (its special tokens included).
    fn options(&self, embedder: &Embedder) -> ChunkOptions {
        ChunkOptions {
            max_tokens: self
                .chunk_tokens
                .min(embedder.max_tokens().saturating_sub(2)),
            overlap: self.overlap,
        }
    }
}

/// Where the index is and which embedder it uses.
#[derive(Debug, Args)]
struct IndexArgs {
    /// Index name: a SQLite file `$TUNEUP_HOME/rag/NAME.db` by default, or a table set in `--store`.
    #[arg(long, short = 'i', default_value = "default")]
    index: String,
    /// Where indexes live: a folder for SQLite files, a `.db` file path, or `postgres://USER@HOST/DB`
    /// (pgvector). Default `$TUNEUP_HOME/rag/`.
    #[arg(long, env = "TUNEUP_RAG_STORE")]
    store: Option<String>,
    /// Sentence-embedding model: `all-minilm-l6-v2`, `hf:ORG/NAME` or a sentence-transformers folder.
    #[arg(long, default_value = "all-minilm-l6-v2")]
    embedder: String,
    /// Texts per embedding batch.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
}

#[derive(Debug, Subcommand)]
enum RagCommand {
    /// Read, chunk, embed and index files and folders; unchanged files are skipped, deleted ones removed.
    Ingest {
        /// Files and folders (Markdown, text, HTML, source code, PDF).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        index: IndexArgs,
        /// Tag the files (repeatable) for `query --tag`.
        #[arg(long = "tag")]
        tags: Vec<String>,
        #[command(flatten)]
        chunking: ChunkArgs,
    },
    /// Search the index.
    Query {
        /// The question.
        question: String,
        #[command(flatten)]
        index: IndexArgs,
        /// Results to show.
        #[arg(short, default_value_t = 5)]
        k: usize,
        /// dense, bm25 or hybrid (reciprocal-rank fusion of both).
        #[arg(long, default_value = "hybrid")]
        mode: Mode,
        /// Only sources under this path prefix.
        #[arg(long)]
        source: Option<String>,
        /// Only sources with this tag (repeatable: all must match).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Print JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Files and chunks in the index.
    Stats {
        #[command(flatten)]
        index: IndexArgs,
    },
    /// Retrieval quality on a benchmark: BEIR folder (nDCG@10, recall@100) or SQuAD file (recall@1/5/20).
    Eval {
        /// BEIR-layout folder (corpus.jsonl, queries_SPLIT.jsonl, qrels_SPLIT.tsv), e.g. SciFact.
        #[arg(long, conflicts_with = "squad", required_unless_present = "squad")]
        beir: Option<PathBuf>,
        /// BEIR split to evaluate.
        #[arg(long, default_value = "validation")]
        split: String,
        /// SQuAD-layout JSON file (paragraphs are the documents), e.g. KorQuAD 1.0 dev.
        #[arg(long)]
        squad: Option<PathBuf>,
        /// Modes to evaluate.
        #[arg(long, value_delimiter = ',', default_value = "bm25,dense,hybrid")]
        modes: Vec<Mode>,
        /// Embedding model.
        #[arg(long, default_value = "all-minilm-l6-v2")]
        embedder: String,
        /// Index to build or reuse: a SQLite file, or a `postgres://` URL (pgvector; tables named `bench`).
        /// Default: a temporary SQLite file.
        #[arg(long)]
        index_file: Option<PathBuf>,
        #[command(flatten)]
        chunking: ChunkArgs,
        /// Evaluate at most this many queries (first N).
        #[arg(long)]
        limit: Option<usize>,
        /// Write the report as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Embedding throughput: embed the first N texts of a file (JSONL with `text`/`title` fields, or one text
    /// per line) and print chunks/s and tokens/s.
    Bench {
        /// The texts.
        file: PathBuf,
        /// How many texts.
        #[arg(short, default_value_t = 1000)]
        n: usize,
        /// Embedding model.
        #[arg(long, default_value = "all-minilm-l6-v2")]
        embedder: String,
        /// Texts per batch.
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        /// Repetitions (the best is reported).
        #[arg(short, default_value_t = 2)]
        reps: usize,
        /// Force f32 projections (default: bf16 products with f32 sums where the CPU has AVX512-BF16).
        #[arg(long)]
        f32: bool,
    },
}

/// Runs the command.
pub fn run(args: RagArgs) -> Result<()> {
    match args.command {
        RagCommand::Ingest {
            paths,
            index,
            tags,
            chunking,
        } => run_ingest(&paths, &index, tags, &chunking),
        RagCommand::Query {
            question,
            index,
            k,
            mode,
            source,
            tags,
            json,
        } => run_query(
            &question,
            &index,
            k,
            mode,
            Filter {
                source_prefix: source,
                tags,
            },
            json,
        ),
        RagCommand::Stats { index } => {
            let store = open_store(&index)?;
            let stats = store.stats()?;
            let info = store.info()?;
            println!("index      {}", store.location());
            if let Some(info) = info {
                println!("embedder   {} (dim {})", info.embedder, info.dim);
            }
            println!("files      {}", stats.files);
            println!("chunks     {}", stats.chunks);
            Ok(())
        }
        RagCommand::Eval {
            beir,
            split,
            squad,
            modes,
            embedder,
            index_file,
            chunking,
            limit,
            out,
        } => run_eval(
            beir, &split, squad, &modes, &embedder, index_file, &chunking, limit, out,
        ),
        RagCommand::Bench {
            file,
            n,
            embedder,
            batch_size,
            reps,
            f32,
        } => run_bench(&file, n, &embedder, batch_size, reps, f32),
    }
}

/// Loads the embedding model named `spec` (pulling a built-in alias when missing).
pub fn load_embedder(spec: &str, batch_size: usize) -> Result<Embedder> {
    Ok(Embedder::from_spec(spec, &mut BarProgress::new(false))?.with_batch_size(batch_size))
}

fn open_store(index: &IndexArgs) -> Result<Box<dyn Store>> {
    let location = match &index.store {
        Some(s) => PathBuf::from(s),
        None => Cache::from_env()?.root().join("rag"),
    };
    Ok(store::open_index(&location, &index.index)?)
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what} [{{bar:30}}] {{pos}}/{{len}} {{per_sec}} eta {{eta}} {{msg}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

struct BarIngest(Option<ProgressBar>);

impl IngestProgress for BarIngest {
    fn start(&mut self, files: usize) {
        self.0 = Some(bar(files as u64, "ingest"));
    }
    fn file_done(&mut self, path: &Path) {
        if let Some(b) = &self.0 {
            b.set_message(
                path.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            );
            b.inc(1);
        }
    }
    fn skipped(&mut self, path: &Path, reason: &str) {
        // `println` of a hidden bar (stderr not a terminal) prints nothing, so suspend it and print directly.
        let line = format!("skipped {}: {reason}", path.display());
        match &self.0 {
            Some(b) => b.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

fn run_ingest(
    paths: &[PathBuf],
    index: &IndexArgs,
    tags: Vec<String>,
    chunking: &ChunkArgs,
) -> Result<()> {
    chunking.check()?;
    for p in paths {
        anyhow::ensure!(p.exists(), "{}: no such file or folder", p.display());
    }
    let embedder = load_embedder(&index.embedder, index.batch_size)?;
    let mut store = open_store(index)?;
    let started = Instant::now();
    let mut progress = BarIngest(None);
    let opts = IngestOptions {
        chunk: chunking.options(&embedder),
        tags,
    };
    let report = ingest(paths, store.as_mut(), &embedder, &opts, &mut progress)?;
    if let Some(b) = &progress.0 {
        b.finish_and_clear();
    }
    println!(
        "{}: {} added, {} updated, {} unchanged, {} removed, {} skipped; {} chunks embedded in {:.1}s",
        store.location(),
        report.added,
        report.updated,
        report.unchanged,
        report.removed,
        report.skipped.len(),
        report.chunks,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn run_query(
    question: &str,
    index: &IndexArgs,
    k: usize,
    mode: Mode,
    filter: Filter,
    json: bool,
) -> Result<()> {
    let store = open_store(index)?;
    let embedder = load_embedder(&index.embedder, index.batch_size)?;
    let mut retriever = Retriever::new(store, embedder, k, mode)?;
    retriever.filter = filter;
    let hits = retriever.retrieve(question)?;
    for (rank, hit) in hits.iter().enumerate() {
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "rank": rank + 1, "score": hit.score, "source": hit.source, "line": hit.line,
                    "heading": hit.heading, "text": hit.text,
                })
            );
        } else {
            println!(
                "{}. [{:.4}] {}:{}",
                rank + 1,
                hit.score,
                hit.source,
                hit.line
            );
            for line in hit.text.lines().take(6) {
                println!("     {line}");
            }
        }
    }
    if hits.is_empty() && !json {
        println!("no results");
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn run_eval(
    beir: Option<PathBuf>,
    split: &str,
    squad: Option<PathBuf>,
    modes: &[Mode],
    embedder: &str,
    index_file: Option<PathBuf>,
    chunking: &ChunkArgs,
    limit: Option<usize>,
    out: Option<PathBuf>,
) -> Result<()> {
    chunking.check()?;
    let (mut set, cutoffs) = match (&beir, &squad) {
        (Some(dir), _) => (benchmark::load_beir(dir, split)?, vec![100]),
        (None, Some(file)) => (benchmark::load_squad(file)?, vec![1, 5, 20]),
        (None, None) => anyhow::bail!("pass --beir DIR or --squad FILE"),
    };
    if let Some(n) = limit {
        set.queries.truncate(n);
    }
    let embedder = load_embedder(embedder, 32)?;
    let temp = tempfile_dir()?;
    let index_path = index_file.unwrap_or_else(|| temp.join("bench.db"));
    let mut store = store::open_index(&index_path, "bench")?;
    let bar_docs = bar(set.docs.len() as u64, "index");
    let (chunks, rate) = benchmark::index_corpus(
        &set,
        store.as_mut(),
        &embedder,
        chunking.options(&embedder),
        &mut |done, _| bar_docs.set_position(done as u64),
    )?;
    bar_docs.finish_and_clear();
    let bar_queries = bar((set.queries.len() * modes.len()) as u64, "queries");
    let results = benchmark::evaluate(
        &set,
        store.as_ref(),
        &embedder,
        modes,
        &cutoffs,
        &mut |done, _| bar_queries.set_position(done as u64),
    )?;
    bar_queries.finish_and_clear();
    let report = BenchReport {
        dataset: set.name.clone(),
        docs: set.docs.len(),
        chunks: store.stats()?.chunks,
        queries: set.queries.len(),
        embed_chunks_per_s: rate,
        modes: results,
    };
    print_report(&report, chunks);
    if let Some(out) = out {
        std::fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", out.display()))?;
    }
    let _ = std::fs::remove_dir_all(&temp);
    Ok(())
}

fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("tuneup-rag-eval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn print_report(report: &BenchReport, embedded_now: usize) {
    println!(
        "{}: {} docs, {} chunks ({} embedded now at {:.1} chunks/s), {} queries",
        report.dataset,
        report.docs,
        report.chunks,
        embedded_now,
        report.embed_chunks_per_s,
        report.queries
    );
    let names: Vec<&str> = report
        .modes
        .first()
        .map(|m| m.metrics.iter().map(|(n, _)| n.as_str()).collect())
        .unwrap_or_default();
    print!("{:<8}", "mode");
    for n in &names {
        print!(" {n:>11}");
    }
    println!(" {:>9} {:>9}", "p50 ms", "p95 ms");
    for m in &report.modes {
        print!("{:<8}", m.mode);
        for (_, v) in &m.metrics {
            print!(" {v:>11.4}");
        }
        println!(" {:>9.2} {:>9.2}", m.latency_p50_ms, m.latency_p95_ms);
    }
}

/// Texts of a benchmark file: JSONL records (`title` + `text`) or plain lines.
fn bench_texts(file: &Path, n: usize) -> Result<Vec<String>> {
    let content =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let texts = content
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(n)
        .map(
            |line| match serde_json::from_str::<serde_json::Value>(line) {
                Ok(serde_json::Value::Object(record)) => {
                    let field = |k: &str| {
                        record
                            .get(k)
                            .and_then(|v| v.as_str())
                            .unwrap_or("")
                            .to_string()
                    };
                    let (title, text) = (field("title"), field("text"));
                    if title.is_empty() {
                        text
                    } else {
                        format!("{title}\n\n{text}")
                    }
                }
                _ => line.to_string(),
            },
        )
        .collect();
    Ok(texts)
}

fn run_bench(
    file: &Path,
    n: usize,
    embedder: &str,
    batch_size: usize,
    reps: usize,
    f32: bool,
) -> Result<()> {
    let texts = bench_texts(file, n)?;
    anyhow::ensure!(!texts.is_empty(), "{}: no texts", file.display());
    let precision = if f32 { Precision::F32 } else { Precision::Fast };
    let embedder = Embedder::from_spec_with(embedder, &mut BarProgress::new(false), precision)?
        .with_batch_size(batch_size);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let tokens: usize = refs
        .iter()
        .map(|t| (embedder.count_tokens(t) + 2).min(embedder.max_tokens()))
        .sum();
    let mut best = f64::MAX;
    for _ in 0..reps.max(1) {
        let started = Instant::now();
        let vectors = embedder.embed(&refs)?;
        best = best.min(started.elapsed().as_secs_f64());
        anyhow::ensure!(
            vectors.len() == refs.len(),
            "embedder returned {} vectors",
            vectors.len()
        );
    }
    println!(
        "embed {} ({} products): {} texts, {} tokens, batch {}, threads {}: {:.3}s = {:.1} texts/s, {:.0} tokens/s",
        embedder.name(),
        if embedder.uses_bf16() { "bf16" } else { "f32" },
        refs.len(),
        tokens,
        batch_size,
        rayon::current_num_threads(),
        best,
        refs.len() as f64 / best,
        tokens as f64 / best
    );
    Ok(())
}
