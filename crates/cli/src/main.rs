//! `tuneup`: the command-line front end. Thin by design: every command
//! parses its arguments, calls the library crates and prints.

mod args;
mod bench;
mod chat;
mod eval;
mod generate;
mod model;
mod progress;
mod pull;

use clap::{Parser, Subcommand};

/// Make a small open LLM good at one job, on hardware you already own.
#[derive(Debug, Parser)]
#[command(name = "tuneup", version, about, long_about = None)]
struct Cli {
    /// Log level filter (e.g. `info`, `tuneup=debug`); also `RUST_LOG`.
    #[arg(long, global = true, env = "TUNEUP_LOG", default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fetch a model into the local cache and print the path of its file.
    Pull(pull::PullArgs),
    /// Chat with a model (interactive, or one answer with -p).
    Chat(chat::ChatArgs),
    /// Raw completion of a prompt, no chat template.
    Generate(generate::GenerateArgs),
    /// Measure prompt-processing and generation speed, like llama-bench.
    Bench(bench::BenchArgs),
    /// Show what a model file holds.
    Info(model::InfoArgs),
    /// Evaluate a model on a task (TOML); `eval compare RUN…` compares runs.
    Eval(eval::EvalArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Pull(a) => pull::run(a),
        Command::Chat(a) => chat::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Info(a) => model::info(a),
        Command::Eval(a) => eval::run(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
