//! `tuneup bench`: prompt-processing (`ppN`) and generation (`tgN`) speed,
//! measured the way llama-bench measures them, as a table or JSON.

use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use serde::Serialize;
use tuneup_models::LogitsFor;

use crate::args::ModelArgs;
use crate::model::load;

/// Arguments of `tuneup bench`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    /// `train`: training throughput instead of inference.
    #[command(subcommand)]
    pub what: Option<BenchWhat>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Prompt lengths to process (comma-separated; 0 skips).
    #[arg(
        short = 'p',
        long = "n-prompt",
        value_delimiter = ',',
        default_value = "512"
    )]
    n_prompt: Vec<usize>,
    /// Tokens to generate (comma-separated; 0 skips).
    #[arg(
        short = 'n',
        long = "n-gen",
        value_delimiter = ',',
        default_value = "128"
    )]
    n_gen: Vec<usize>,
    /// Repetitions of each test.
    #[arg(short = 'r', long, default_value_t = 5)]
    repetitions: usize,
    /// Prompt tokens per forward pass.
    #[arg(short = 'b', long, default_value_t = 512)]
    batch: usize,
    /// Sequences generated together, as the server's continuous batching runs them
    /// (comma-separated; like llama-batched-bench's -npl). Generation tests report
    /// the aggregate tokens/s of all sequences.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    parallel: Vec<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Benchmarks other than inference speed.
#[derive(Debug, clap::Subcommand)]
pub enum BenchWhat {
    /// Training tokens/s and peak memory (LoRA/QLoRA), optionally against HF PEFT.
    Train(crate::bench_train::TrainBenchArgs),
}

#[derive(Debug, Serialize)]
struct BenchResult {
    model: String,
    model_size_bytes: u64,
    threads: usize,
    test: String,
    n_prompt: usize,
    n_gen: usize,
    parallel: usize,
    repetitions: usize,
    avg_ts: f64,
    stddev_ts: f64,
    samples_ts: Vec<f64>,
}

fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// Runs the benchmark.
pub fn run(args: BenchArgs) -> Result<()> {
    if let Some(BenchWhat::Train(a)) = args.what {
        return crate::bench_train::run(a);
    }
    if args.repetitions == 0 {
        bail!("--repetitions must be at least 1");
    }
    let model = load(&args.model)?;
    let dec = &model.model.decoder;
    let vocab = dec.embedding().rows() as u32;
    let threads = args
        .model
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let size = match &model.model.files {
        tuneup_models::ModelFiles::Gguf(p) => std::fs::metadata(p).map_or(0, |m| m.len()),
        tuneup_models::ModelFiles::HfFolder(_) => 0,
    };
    // Deterministic pseudo-random tokens, as llama-bench uses random ids.
    let token = |i: usize| ((i as u64 * 2_654_435_761 + 12345) % vocab as u64) as u32;
    let mut results = Vec::new();
    let mut tests: Vec<(usize, usize, usize)> = args
        .n_prompt
        .iter()
        .filter(|&&p| p > 0)
        .map(|&p| (p, 0, 1))
        .collect();
    for &n in args.n_gen.iter().filter(|&&n| n > 0) {
        tests.extend(args.parallel.iter().filter(|&&p| p > 0).map(|&p| (0, n, p)));
    }
    for (np, ng, par) in tests {
        if np + ng + 1 > dec.context_length() {
            bail!(
                "test pp{np}/tg{ng} does not fit the context window of {}",
                dec.context_length()
            );
        }
        let mut samples = Vec::new();
        for rep in 0..=args.repetitions {
            let mut state = dec.new_state();
            let mut states: Vec<_> = (0..par).map(|_| dec.new_state()).collect();
            let t0 = Instant::now();
            if np > 0 {
                let ids: Vec<u32> = (0..np).map(token).collect();
                for chunk in ids.chunks(args.batch.max(1)) {
                    dec.forward(chunk, &mut state, LogitsFor::Last)?;
                }
            } else if par == 1 {
                for i in 0..ng {
                    dec.forward(&[token(i)], &mut state, LogitsFor::Last)?;
                }
            } else {
                for i in 0..ng {
                    let ids: Vec<u32> = (0..par).map(|s| token(i * par + s)).collect();
                    let mut refs: Vec<_> = states.iter_mut().collect();
                    dec.forward_rows(&ids, &mut refs)?;
                }
            }
            let secs = t0.elapsed().as_secs_f64();
            if rep > 0 {
                // The first run warms caches and is not counted.
                samples.push((np + ng * par) as f64 / secs);
            }
        }
        let (avg, std) = mean_std(&samples);
        let test = if np > 0 {
            format!("pp{np}")
        } else if par > 1 {
            format!("tg{ng} x{par}")
        } else {
            format!("tg{ng}")
        };
        results.push(BenchResult {
            model: args.model.model.clone(),
            model_size_bytes: size,
            threads,
            test,
            n_prompt: np,
            n_gen: ng,
            parallel: par,
            repetitions: args.repetitions,
            avg_ts: avg,
            stddev_ts: std,
            samples_ts: samples,
        });
        if !args.json {
            let r = results.last().expect("just pushed");
            if results.len() == 1 {
                println!("| model | size | threads | test | t/s |");
                println!("| ----- | ---: | ------: | ---: | --: |");
            }
            // A path is shown by its file name, as llama-bench shows a short
            // description; the JSON keeps what was given.
            let shown = std::path::Path::new(&r.model)
                .file_name()
                .map_or(r.model.clone(), |f| f.to_string_lossy().into_owned());
            println!(
                "| {} | {:.2} MiB | {} | {} | {:.2} ± {:.2} |",
                shown,
                r.model_size_bytes as f64 / (1024.0 * 1024.0),
                r.threads,
                r.test,
                r.avg_ts,
                r.stddev_ts
            );
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    Ok(())
}
