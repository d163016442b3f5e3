//! `tuneup feedback export`: the server's ratings as a preference dataset.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

/// Arguments of `tuneup feedback`.
#[derive(Debug, Args)]
pub struct FeedbackArgs {
    #[command(subcommand)]
    command: FeedbackCommand,
}

#[derive(Debug, Subcommand)]
enum FeedbackCommand {
    /// Write chosen/rejected pairs (JSONL) and a satisfaction summary (JSON).
    Export {
        /// The server's database: a SQLite file (default: $TUNEUP_HOME/feedback.sqlite) or a postgres:// URL.
        #[arg(long)]
        db: Option<PathBuf>,
        /// Output folder (preferences.jsonl, summary.json).
        #[arg(short, long, default_value = "feedback-export")]
        out: PathBuf,
    },
}

/// Runs the command.
pub fn run(args: FeedbackArgs) -> Result<()> {
    let FeedbackCommand::Export { db, out } = args.command;
    let db = match db {
        Some(p) => p,
        None => tuneup_hub::Cache::from_env()?
            .root()
            .join("feedback.sqlite"),
    };
    let postgres = tuneup_server::feedback::is_postgres_url(&db);
    anyhow::ensure!(
        postgres || db.exists(),
        "no feedback database at {}",
        db.display()
    );
    let store = tuneup_server::FeedbackStore::open(Some(&db), usize::MAX).with_context(|| {
        if postgres {
            "opening the PostgreSQL feedback database".to_string()
        } else {
            format!("opening {}", db.display())
        }
    })?;
    let records = store.export().context("reading feedback")?;
    let (pairs, summary) = tuneup_server::export::preferences(&records);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut f = std::io::BufWriter::new(std::fs::File::create(out.join("preferences.jsonl"))?);
    for p in &pairs {
        writeln!(f, "{p}")?;
    }
    f.flush()?;
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    eprintln!(
        "wrote {} pairs to {}",
        pairs.len(),
        out.join("preferences.jsonl").display()
    );
    Ok(())
}
