//! `tuneup ladder`: climb a task's tuning ladder (see docs/ladder.md).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use tuneup_ladder::{
    run_ladder, rung, LadderConfig, LadderOptions, LadderOverrides, Preset, RungKind,
};

/// Arguments of `tuneup ladder`.
#[derive(Debug, Args)]
pub struct LadderArgs {
    /// The ladder file (TOML): task, model, data, targets, budget, rungs.
    pub file: PathBuf,
    /// Run folder (default: runs/ladder-NAME); re-running the same command resumes it.
    #[arg(short, long)]
    pub out: Option<PathBuf>,
    /// The model to tune (overrides the file).
    #[arg(short, long)]
    pub model: Option<String>,
    /// Quick budget: small validation/test slices, fewer candidates, short training.
    #[arg(long, conflicts_with = "full")]
    pub quick: bool,
    /// Full budget: whole splits, every candidate, full training.
    #[arg(long)]
    pub full: bool,
    /// Rungs to try, in climbing order (e.g. baseline,prompting,lora).
    #[arg(long)]
    pub rungs: Option<String>,
    /// Re-run only these rungs; the others are reused when finished.
    #[arg(long)]
    pub only: Option<String>,
    /// Re-run this rung and every later one.
    #[arg(long)]
    pub from: Option<RungKind>,
    /// Validation examples per candidate.
    #[arg(long)]
    pub validation_limit: Option<usize>,
    /// Test examples per rung.
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// Keep every Nth test example (a fixed stride of a large test set; `[data] test_every`).
    #[arg(long)]
    pub test_every: Option<usize>,
    /// Target of the primary metric (e.g. 0.6 for 60 % execution accuracy).
    #[arg(long)]
    pub target_metric: Option<f64>,
    /// Wall-clock minutes per rung.
    #[arg(long)]
    pub rung_minutes: Option<f64>,
    /// Optimiser steps of the trained rungs.
    #[arg(long)]
    pub train_steps: Option<u64>,
    /// CPU threads (default: all cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// No progress on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Runs the ladder and prints its table.
pub fn run(args: LadderArgs) -> Result<()> {
    let list = |s: &Option<String>, flag: &str| -> Result<Option<Vec<RungKind>>> {
        s.as_deref()
            .map(rung::parse_list)
            .transpose()
            .map_err(|e| anyhow::anyhow!("{flag}: {e}"))
    };
    let rungs = list(&args.rungs, "--rungs")?;
    let only = list(&args.only, "--only")?;
    let mut cfg = LadderConfig::load(&args.file)?;
    cfg.apply(&LadderOverrides {
        model: args.model.clone(),
        preset: match (args.quick, args.full) {
            (true, _) => Some(Preset::Quick),
            (_, true) => Some(Preset::Full),
            _ => None,
        },
        validation_limit: args.validation_limit,
        test_limit: args.test_limit,
        rungs,
        target_metric: args.target_metric,
        rung_minutes: args.rung_minutes,
        train_steps: args.train_steps,
        threads: args.threads,
        test_every: args.test_every,
    });
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(format!("ladder-{}", cfg.name)));
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("\nstopping: training writes a checkpoint, finished rungs are kept (Ctrl-C again to quit now)");
        })
        .context("installing the Ctrl-C handler")?;
    }
    let outcome = run_ladder(
        &cfg,
        &LadderOptions {
            out: out.clone(),
            only,
            from: args.from,
            progress: !args.quiet,
            stop,
        },
    )?;
    print!("{}", tuneup_ladder::report::terminal_table(&outcome.rows));
    println!("{}", outcome.advice);
    println!(
        "ladder: {} (rows), {} (report){}",
        out.join("ladder.json").display(),
        out.join("report.html").display(),
        if outcome.winner.is_some() {
            format!(
                "; serve the winner with `tuneup serve --ladder {}`",
                out.display()
            )
        } else {
            String::new()
        }
    );
    Ok(())
}
