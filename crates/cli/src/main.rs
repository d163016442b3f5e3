//! `tuneup`: the command-line front end. Thin by design: every command
//! parses its arguments, calls the library crates and prints.

mod agent;
mod alloc;
mod args;
mod bench;
mod bench_train;
mod chat;
mod data;
mod eval;
mod feedback;
mod generate;
mod ladder;
mod merge;
mod model;
mod progress;
mod pull;
mod rag;
mod serve;
mod train;

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
    /// Serve the model over an OpenAI-compatible HTTP API.
    Serve(serve::ServeArgs),
    /// Work with the feedback the server collected.
    Feedback(feedback::FeedbackArgs),
    /// Climb a task's tuning ladder (prompting → verification → LoRA → full) and say which rung pays.
    Ladder(ladder::LadderArgs),
    /// Evaluate a model on a task (TOML); `eval compare RUN…` compares runs.
    Eval(eval::EvalArgs),
    /// Retrieval: ingest documents into an index, query it, measure it.
    Rag(rag::RagArgs),
    /// Fine-tune a model with LoRA / QLoRA (config TOML and flags).
    Train(Box<train::TrainArgs>),
    /// Fold a LoRA adapter into its base model (GGUF F16/Q8_0) and check it.
    Merge(merge::MergeArgs),
    /// Run a tool-using agent defined in a TOML file (interactive, or one answer with -p).
    Agent(agent::AgentArgs),
    /// Training data: `data prepare` cleans, deduplicates and splits chat/alpaca/ShareGPT/text-to-SQL files.
    Data(data::DataArgs),
}

impl Command {
    /// The `--threads` option of commands that run a model.
    fn threads(&self) -> Option<usize> {
        match self {
            Command::Chat(a) => a.model.threads,
            Command::Agent(a) => a.threads,
            Command::Generate(a) => a.model.threads,
            Command::Bench(a) => a.model.threads,
            Command::Info(a) => a.model.threads,
            Command::Serve(a) => a.model.threads,
            Command::Eval(a) => a.threads(),
            Command::Ladder(a) => a.threads,
            Command::Train(a) => a.threads(),
            Command::Merge(a) => a.threads,
            Command::Pull(_) | Command::Feedback(_) | Command::Rag(_) | Command::Data(_) => None,
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    model::init_threads(cli.command.threads());
    // The server runs its own async runtime and puts model work on a worker
    // of the compute pool itself.
    let command = match cli.command {
        Command::Serve(a) => return exit(serve::run(a)),
        other => other,
    };
    // Run on a worker of the compute pool: the kernels' parallel loops then
    // split work with this thread directly instead of waking it from outside.
    let result = rayon::scope(|_| match command {
        Command::Pull(a) => pull::run(a),
        Command::Chat(a) => chat::run(a),
        Command::Agent(a) => agent::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Info(a) => model::info(a),
        Command::Serve(a) => serve::run(a),
        Command::Feedback(a) => feedback::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Ladder(a) => ladder::run(a),
        Command::Rag(a) => rag::run(a),
        Command::Train(a) => train::run(*a),
        Command::Merge(a) => merge::run(a),
        Command::Data(a) => data::run(a),
    });
    exit(result)
}

fn exit(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
