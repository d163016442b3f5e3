//! Measuring one configuration on one split: the loaded model (kept between measurements while it is the same),
//! the eval run with its outputs on disk, and the peak resident memory while it ran.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tuneup_eval_runner::backend::load_model;
use tuneup_eval_runner::{run_task, run_task_on, ExampleRecord, RunOptions, Summary, Task};
use tuneup_generate::ChatModel;

use crate::error::{Error, Result};

/// One finished measurement.
#[derive(Debug, Clone)]
pub struct Measured {
    /// The eval summary.
    pub summary: Summary,
    /// One record per example.
    pub records: Vec<ExampleRecord>,
    /// Peak resident memory of the process while it ran, MiB (Linux).
    pub peak_rss_mib: Option<f64>,
    /// Where the eval outputs are (`summary.json`, `examples.jsonl`, `report.html`).
    pub dir: PathBuf,
}

impl Measured {
    /// The primary metric's value.
    pub fn metric(&self) -> f64 {
        primary_value(&self.summary)
    }
}

/// The primary metric's value of a summary (0 when it is missing).
pub fn primary_value(s: &Summary) -> f64 {
    s.metrics.get(&s.primary_metric).copied().unwrap_or(0.0)
}

/// The model in memory: loaded on first use, kept while the next measurement asks for the same one.
#[derive(Default)]
pub struct Models {
    ctx_size: Option<usize>,
    loaded: Option<(String, Option<PathBuf>, ChatModel)>,
}

impl std::fmt::Debug for Models {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Models")
            .field("loaded", &self.loaded.as_ref().map(|l| (&l.0, &l.1)))
            .finish()
    }
}

impl Models {
    /// A model cache with this context size for every model.
    pub fn new(ctx_size: Option<usize>) -> Self {
        Self {
            ctx_size,
            loaded: None,
        }
    }

    /// The model `spec` with `adapter` attached, loading it unless it is the one in memory.
    pub fn get(&mut self, spec: &str, adapter: Option<&Path>) -> Result<&ChatModel> {
        let same = self
            .loaded
            .as_ref()
            .is_some_and(|(s, a, _)| s == spec && a.as_deref() == adapter);
        if !same {
            self.loaded = None;
            let m = load_model(spec, self.ctx_size, adapter)
                .map_err(|e| Error::Model(e.to_string()))?;
            self.loaded = Some((spec.to_owned(), adapter.map(Path::to_path_buf), m));
        }
        Ok(&self.loaded.as_ref().expect("loaded above").2)
    }

    /// Frees the model (before training loads its own copy).
    pub fn release(&mut self) {
        self.loaded = None;
    }
}

/// Runs `task` with `spec` (+ `adapter`) in-process — or on the task's endpoint when it names one — writing the
/// eval outputs into `out`.
pub fn measure(
    models: &mut Models,
    spec: &str,
    adapter: Option<&Path>,
    task: &Task,
    out: &Path,
    progress: bool,
) -> Result<Measured> {
    let opts = RunOptions {
        out: Some(out.to_path_buf()),
        progress,
    };
    let what = || format!("{} on {}", task.name, task.dataset.path.display());
    let sampler = RssSampler::start();
    let result = if task.model.endpoint.is_some() {
        run_task(task, &opts)
    } else {
        let model = models.get(spec, adapter)?;
        run_task_on(task, model, spec, &opts)
    }
    .map_err(|source| Error::Eval {
        what: what(),
        source,
    })?;
    Ok(Measured {
        summary: result.summary,
        records: result.records,
        peak_rss_mib: sampler.stop(),
        dir: out.to_path_buf(),
    })
}

/// Samples the process's resident memory every 50 ms on a thread and keeps the peak.
#[derive(Debug)]
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<Option<f64>>>,
}

impl RssSampler {
    /// Starts sampling.
    pub fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("rss-sampler".into())
            .spawn(move || {
                let mut peak: Option<f64> = None;
                loop {
                    if let Some(r) = rss_mib() {
                        peak = Some(peak.map_or(r, |p: f64| p.max(r)));
                    }
                    if flag.load(Ordering::Relaxed) {
                        return peak;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
            .ok();
        Self { stop, handle }
    }

    /// Stops sampling and returns the peak in MiB (`None` where /proc is unavailable).
    pub fn stop(mut self) -> Option<f64> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().and_then(|h| h.join().ok()).flatten()
    }
}

/// The resident memory of this process now, MiB (Linux `/proc/self/status`).
pub fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Bytes on disk of a file or of everything in a folder.
pub fn disk_bytes(path: &Path) -> u64 {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => m.len(),
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .map(|rd| rd.flatten().map(|e| disk_bytes(&e.path())).sum())
            .unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sampler_sees_memory_and_sizes_add_up() {
        let s = RssSampler::start();
        let block = vec![1u8; 64 << 20];
        std::thread::sleep(Duration::from_millis(120));
        let peak = s.stop();
        assert!(block.iter().all(|&b| b == 1));
        if cfg!(target_os = "linux") {
            assert!(peak.unwrap() > 64.0, "{peak:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), [0u8; 10]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b"), [0u8; 5]).unwrap();
        assert_eq!(disk_bytes(dir.path()), 15);
    }
}
