//! `tuneup bench train`: training tokens/s and peak memory, with the
//! Hugging Face PEFT anchor measured side by side when a Python with torch,
//! transformers and peft is given.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;
use tuneup_models::ModelFiles;
use tuneup_train::{bench_training, BenchConfig, Method};

use crate::model::{device, init_threads, resolve_files};
use crate::train::parse_precision;

/// Arguments of `tuneup bench train`.
#[derive(Debug, Args)]
pub struct TrainBenchArgs {
    /// Model (alias, GGUF file, HF folder).
    #[arg(short = 'm', long, default_value = "smollm2-135m")]
    pub model: String,
    /// Sequences per step.
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 256)]
    pub seq: usize,
    /// LoRA rank.
    #[arg(long, default_value_t = 16)]
    pub rank: usize,
    /// Timed steps (after one warm-up step).
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// `qlora` or `lora`.
    #[arg(long, default_value = "qlora", value_parser = ["qlora", "lora"])]
    pub method: String,
    /// Keep activations instead of recomputing them.
    #[arg(long)]
    pub no_gradient_checkpointing: bool,
    /// With recomputation: the first N layers keep their activations.
    #[arg(long, default_value_t = 0)]
    pub keep_layers: usize,
    /// Products with the frozen base: `auto` (bf16 where the CPU has
    /// AVX512-BF16), `bf16` or `f32`.
    #[arg(long, default_value = "auto", value_parser = ["auto", "bf16", "f32"])]
    pub precision: String,
    /// Python with torch, transformers and peft: runs
    /// scripts/bench_train_peft.py on the same model and shapes first.
    #[arg(long)]
    pub anchor_python: Option<PathBuf>,
    /// CPU threads.
    #[arg(short = 't', long, default_value_t = 2)]
    pub threads: usize,
    /// Train on the first CUDA GPU (needs a build with `--features cuda`);
    /// the anchor then runs on the GPU too.
    #[arg(long)]
    pub gpu: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn anchor(python: &PathBuf, model: &PathBuf, a: &TrainBenchArgs) -> Result<serde_json::Value> {
    // The checkout's script: from the current folder, else where this binary was built.
    let script = [
        PathBuf::from("scripts/bench_train_peft.py"),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench_train_peft.py"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .context("scripts/bench_train_peft.py not found: run from the tuneup checkout")?;
    let mut cmd = Command::new(python);
    cmd.arg(&script)
        .arg(model)
        .args(["--batch", &a.batch.to_string(), "--seq", &a.seq.to_string()])
        .args([
            "--rank",
            &a.rank.to_string(),
            "--steps",
            &a.steps.to_string(),
        ])
        .args(["--threads", &a.threads.to_string()])
        .args(["--device", if a.gpu { "cuda" } else { "cpu" }]);
    let jemalloc = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";
    if std::path::Path::new(jemalloc).exists() {
        cmd.env("LD_PRELOAD", jemalloc);
    }
    let out = cmd
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "the PEFT anchor failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("reading the anchor's output: {line}"))
}

/// Runs `tuneup bench train`.
pub fn run(a: TrainBenchArgs) -> Result<()> {
    crate::alloc::keep_freed_memory();
    init_threads(Some(a.threads));
    let files = resolve_files(&a.model)?;
    // Opened before the anchor runs, so a missing GPU is said at once.
    let device = device(a.gpu)?;
    let peft = match (&a.anchor_python, &files) {
        (Some(py), ModelFiles::Gguf(path) | ModelFiles::HfFolder(path)) => {
            Some(anchor(py, path, &a)?)
        }
        (None, _) => None,
    };
    let cfg = BenchConfig {
        batch: a.batch,
        seq: a.seq,
        rank: a.rank,
        steps: a.steps.max(1),
        method: if a.method == "lora" {
            Method::Lora
        } else {
            Method::Qlora
        },
        gradient_checkpointing: !a.no_gradient_checkpointing,
        keep_layers: a.keep_layers,
        precision: parse_precision(&a.precision),
        device,
    };
    let precision = cfg.precision.effective();
    let r = bench_training(&files, &cfg)?;
    let ratio = peft.as_ref().and_then(|p| {
        Some((
            r.tokens_per_s / p["tokens_per_s"].as_f64()?,
            r.peak_rss_mib / p["peak_rss_mib"].as_f64()?,
        ))
    });
    if a.json {
        println!(
            "{}",
            serde_json::json!({"tuneup": r, "peft": peft, "speed_ratio": ratio.map(|x| x.0), "memory_ratio": ratio.map(|x| x.1),
                "model": a.model, "batch": a.batch, "seq": a.seq, "rank": a.rank, "threads": a.threads, "method": a.method,
                "gradient_checkpointing": cfg.gradient_checkpointing, "keep_layers": cfg.keep_layers, "precision": precision})
        );
        return Ok(());
    }
    println!(
        "model {}  batch {}×{}  LoRA r={} on q,k,v,o,gate,up,down  {} threads  {} ({precision} base products){}",
        a.model,
        a.batch,
        a.seq,
        a.rank,
        a.threads,
        a.method,
        match (cfg.gradient_checkpointing, cfg.keep_layers) {
            (false, _) => String::new(),
            (true, 0) => " + recomputation".into(),
            (true, n) => format!(" + recomputation after the first {n} layers"),
        }
    );
    println!("| trainer | tokens/s | s/step | peak RSS (MiB) |");
    println!("|---|---:|---:|---:|");
    println!(
        "| tuneup | {:.1} | {:.2} | {:.0} |",
        r.tokens_per_s, r.step_s, r.peak_rss_mib
    );
    if let Some(p) = &peft {
        println!(
            "| {} | {:.1} | {:.2} | {:.0} |",
            p["framework"].as_str().unwrap_or("peft"),
            p["tokens_per_s"].as_f64().unwrap_or(0.0),
            p["step_s"].as_f64().unwrap_or(0.0),
            p["peak_rss_mib"].as_f64().unwrap_or(0.0)
        );
    }
    if let Some((s, m)) = ratio {
        println!("tuneup / PEFT: speed {s:.2}×, peak memory {m:.2}×");
    }
    Ok(())
}
