//! `tuneup data prepare`: turn chat, alpaca, ShareGPT or text-to-SQL files into a clean, deduplicated,
//! seeded train/validation/test split (see docs/data.md).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::Value;
use tuneup_data::clean::{approx_tokens, APPROX_TOKENS};
use tuneup_data::text2sql::{schema_from_tables_json, Schemas};
use tuneup_data::{ChatRecord, Format, PrepareOptions, ReadOptions, SplitRatios};
use tuneup_models::ModelFiles;
use tuneup_tokenize::{ChatTemplate, Tokenizer};

/// Arguments of `tuneup data`.
#[derive(Debug, Args)]
pub struct DataArgs {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Debug, Subcommand)]
enum DataCommand {
    /// Read, clean, deduplicate and split training data into OUT/{train,validation,test}.jsonl (OpenAI chat),
    /// with OUT/rejected.jsonl and OUT/stats.json.
    Prepare(PrepareArgs),
}

#[derive(Debug, Args)]
struct PrepareArgs {
    /// Input files: JSONL, or a JSON array of records.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output folder.
    #[arg(long, short = 'o')]
    out: PathBuf,
    /// auto (from each file's first record), chat, alpaca, sharegpt or text2sql.
    #[arg(long, default_value = "auto")]
    format: Format,
    /// Text-to-SQL schemas: a Spider tables.json.
    #[arg(long)]
    tables: Option<PathBuf>,
    /// Text-to-SQL schemas: SQLite databases at DIR/<db_id>/<db_id>.sqlite (used for databases not in --tables).
    #[arg(long)]
    db_dir: Option<PathBuf>,
    /// System prompt for records without one; for text-to-SQL `{schema}` stands for the DDL.
    #[arg(long)]
    system: Option<String>,
    /// Count tokens with this model's tokenizer and chat template (default: whitespace words × 1.3).
    #[arg(long, short = 'm')]
    model: Option<String>,
    /// Drop records with more tokens than this (0 = no limit).
    #[arg(long, default_value_t = 2048)]
    max_tokens: usize,
    /// Split seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Train, validation and test fractions.
    #[arg(long, default_value = "0.9,0.05,0.05")]
    split: SplitRatios,
    /// Records at or above this estimated Jaccard similarity (word 5-shingles) to an earlier one are dropped.
    #[arg(long, default_value_t = 0.9)]
    near_dup_threshold: f64,
    /// Keep each database's text-to-SQL questions in one split.
    #[arg(long, value_parser = ["db_id"])]
    group_by: Option<String>,
    /// Print stats.json to stdout instead of the summary.
    #[arg(long)]
    json: bool,
}

/// Runs the command.
pub fn run(args: DataArgs) -> Result<()> {
    match args.command {
        DataCommand::Prepare(a) => prepare(a),
    }
}

/// Rejected records printed on the terminal (all of them are in rejected.jsonl).
const SHOW_REJECTED: usize = 20;

fn prepare(a: PrepareArgs) -> Result<()> {
    let schemas = if a.tables.is_some() || a.db_dir.is_some() {
        let tables = match &a.tables {
            Some(p) => schema_from_tables_json(p)?,
            None => Default::default(),
        };
        Some(Schemas::new(tables, a.db_dir.clone()))
    } else {
        None
    };
    let counter = a.model.as_deref().map(ModelCounter::load).transpose()?;
    let opts = PrepareOptions {
        format: a.format,
        read: ReadOptions {
            system: a.system.clone(),
            schemas,
        },
        max_tokens: a.max_tokens,
        seed: a.seed,
        ratios: a.split,
        near_dup_threshold: a.near_dup_threshold,
        group_by_db: a.group_by.is_some(),
        token_counter: counter
            .as_ref()
            .map_or(APPROX_TOKENS.to_owned(), |c| c.describe()),
    };
    let prepared = match &counter {
        Some(c) => tuneup_data::prepare(&a.inputs, &opts, &|r| c.count(r))?,
        None => tuneup_data::prepare_approx(&a.inputs, &opts)?,
    };
    prepared
        .write(&a.out)
        .with_context(|| format!("writing {}", a.out.display()))?;
    let shown = prepared
        .rejected
        .iter()
        .filter(|r| {
            !matches!(
                r.kind,
                tuneup_data::RejectKind::ExactDuplicate | tuneup_data::RejectKind::NearDuplicate
            )
        })
        .collect::<Vec<_>>();
    for r in shown.iter().take(SHOW_REJECTED) {
        eprintln!("rejected {r}");
    }
    if shown.len() > SHOW_REJECTED {
        eprintln!("… and {} more", shown.len() - SHOW_REJECTED);
    }
    if let Some(c) = &counter {
        let failed = c.fallbacks.get();
        if failed > 0 {
            eprintln!("warning: the chat template failed on {failed} records; their contents were counted without it");
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&prepared.stats)?);
    } else {
        print!("{}", prepared.stats.render());
        println!(
            "wrote {} (train/validation/test.jsonl, rejected.jsonl, stats.json)",
            a.out.display()
        );
    }
    Ok(())
}

/// Counts a record's tokens as the model will see them: rendered with its chat template, then tokenized.
struct ModelCounter {
    name: String,
    tokenizer: Tokenizer,
    template: Option<ChatTemplate>,
    fallbacks: std::cell::Cell<usize>,
}

impl ModelCounter {
    /// Loads only the tokenizer (and template) of `name`: GGUF metadata, or an HF folder's tokenizer files.
    fn load(name: &str) -> Result<Self> {
        let files = crate::model::resolve_files(name)?;
        let tokenizer = match &files {
            ModelFiles::Gguf(p) => {
                let mut f =
                    std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
                let content = candle_core::quantized::gguf_file::Content::read(&mut f)
                    .with_context(|| format!("reading GGUF metadata of {}", p.display()))?;
                Tokenizer::from_gguf(&content.metadata)?
            }
            ModelFiles::HfFolder(dir) => Tokenizer::from_hf_dir(dir)?,
        };
        let template = ChatTemplate::from_tokenizer(&tokenizer)?;
        Ok(Self {
            name: name.to_owned(),
            tokenizer,
            template,
            fallbacks: std::cell::Cell::new(0),
        })
    }

    fn describe(&self) -> String {
        match self.template {
            Some(_) => format!("{} tokenizer, chat template", self.name),
            None => format!(
                "{} tokenizer, contents joined (no chat template)",
                self.name
            ),
        }
    }

    fn count(&self, r: &ChatRecord) -> usize {
        let rendered = self.template.as_ref().and_then(|t| {
            t.render(&r.messages, r.tools.as_deref(), false)
                .inspect_err(|_| self.fallbacks.set(self.fallbacks.get() + 1))
                .ok()
        });
        let text = rendered.unwrap_or_else(|| {
            r.messages
                .iter()
                .filter_map(|m| m.get("content").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n")
        });
        // As generation does: BOS when the vocabulary asks for it, unless the template wrote it.
        let has_bos = self
            .tokenizer
            .bos_token()
            .is_some_and(|b| !b.is_empty() && text.starts_with(b));
        self.tokenizer
            .encode(&text, !has_bos)
            .map_or_else(|_| approx_tokens(r), |ids| ids.len())
    }
}
