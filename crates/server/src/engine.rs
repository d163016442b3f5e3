//! The model worker: one thread owns the model and serves jobs from a bounded
//! queue with continuous batching (several generations share each decoding
//! step), each on the base model or the adapter it names.

use std::ops::ControlFlow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tuneup_generate::{
    ChatModel, FinishReason, GenerateParams, GenerationStats, GrammarCompiler, Sequence, TokenSink,
};
use tuneup_models::DecoderState;

use crate::adapters::Adapter;
use crate::metrics::Metrics;

/// What the worker reports about one job.
#[derive(Debug)]
pub enum Event {
    /// Generated text (may arrive in many pieces).
    Text(String),
    /// The generation ended.
    Done(Finished),
    /// The generation failed.
    Failed(String),
}

/// The end of a generation.
#[derive(Debug, Clone)]
pub struct Finished {
    /// All generated text.
    pub text: String,
    /// Counts and timings.
    pub stats: GenerationStats,
    /// The per-request timeout stopped it.
    pub timed_out: bool,
    /// Time spent waiting in the queue.
    pub queue_wait: Duration,
}

impl Finished {
    /// OpenAI's `finish_reason` (`stop` or `length`).
    pub fn finish_reason(&self) -> &'static str {
        match self.stats.finish_reason {
            FinishReason::Stop => "stop",
            FinishReason::Length | FinishReason::Cancelled => "length",
        }
    }
}

/// One generation to run.
#[derive(Debug)]
pub struct Job {
    /// The adapter to generate with (`None` = the base model).
    pub adapter: Option<Adapter>,
    /// Prompt token ids (template applied).
    pub prompt: Vec<u32>,
    /// Sampling and limits.
    pub params: GenerateParams,
    /// Where events go; when the receiver is dropped (client gone) the
    /// generation is cancelled.
    pub events: mpsc::UnboundedSender<Event>,
    /// Stop at this instant.
    pub deadline: Option<Instant>,
    /// When it was queued.
    pub enqueued: Instant,
    /// KV cache bytes it may use (prompt + max_tokens, as the cache grows); the worker
    /// starts it only while the batch's reservations stay within the KV budget.
    pub kv_bytes: u64,
}

/// Why a job was not queued.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The queue is full.
    #[error("the server is busy: {0} requests are already queued; retry later")]
    QueueFull(usize),
    /// The worker has stopped.
    #[error("the model worker has stopped")]
    Stopped,
    /// The job alone needs more KV cache than the whole budget.
    #[error("this request may need {need_mib} MiB of KV cache (prompt + max_tokens) but the server's KV budget is {budget_mib} MiB; lower max_tokens or shorten the prompt")]
    OverBudget {
        /// What the job needs, in MiB.
        need_mib: u64,
        /// The budget, in MiB.
        budget_mib: u64,
    },
}

/// Panics the worker survived, or the one it did not.
#[derive(Debug, Default)]
pub struct WorkerHealth {
    restarts: AtomicU64,
    dead: AtomicBool,
    last_panic: Mutex<Option<String>>,
    /// Signalled once when the worker gives up (too many panics in a row).
    pub died: tokio::sync::Notify,
}

/// Panics within [`PANIC_WINDOW`] after which the worker is not restarted again.
const MAX_PANICS: usize = 3;
/// See [`MAX_PANICS`].
const PANIC_WINDOW: Duration = Duration::from_secs(60);

impl WorkerHealth {
    /// Times the worker was restarted after a panic.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::SeqCst)
    }

    /// Whether the worker has stopped for good after panicking.
    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    /// The message of the last panic.
    pub fn last_panic(&self) -> Option<String> {
        self.last_panic
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Test-only fault injection: the worker panics when it starts a job with this many
/// `max_tokens`. No request can make the worker panic otherwise (that is the point), so
/// the recovery tests need this; it cannot be set from the command line.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default)]
pub struct PanicOnMaxTokens(pub Option<usize>);

/// A handle to the model worker (cheap to clone).
#[derive(Debug, Clone)]
pub struct Engine {
    tx: mpsc::Sender<Job>,
    capacity: usize,
    kv: KvBudget,
    /// Whether the worker runs, and the panics it recovered from.
    pub health: Arc<WorkerHealth>,
    /// The model (for tokenizing and templates on request threads).
    pub model: Arc<ChatModel>,
    /// Grammar compiler for constrained decoding (`None` when the vocabulary cannot be
    /// indexed; JSON formats and forced tool calls are then best effort).
    pub grammar: Option<GrammarCompiler>,
    metrics: Metrics,
}

impl Engine {
    /// Starts the worker thread with a queue of `capacity` waiting jobs, decoding up
    /// to `max_batch` generations together whose KV reservations stay within
    /// `kv_budget_bytes` (`None`: half the memory available now).
    pub fn start(
        model: Arc<ChatModel>,
        capacity: usize,
        max_batch: usize,
        kv_budget_bytes: Option<u64>,
        fault: PanicOnMaxTokens,
        metrics: Metrics,
    ) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        let capacity = capacity.max(1);
        let max_batch = max_batch.max(1);
        let kv = KvBudget::new(&model, kv_budget_bytes);
        tracing::info!(
            "KV budget {} MiB ({} bytes per position)",
            kv.budget >> 20,
            kv.per_token
        );
        let grammar = match GrammarCompiler::new(&model.tokenizer) {
            Ok(g) => Some(g),
            Err(e) => {
                tracing::warn!("constrained decoding is off: {e}");
                None
            }
        };
        let (tx, rx) = mpsc::channel(capacity);
        let worker_model = Arc::clone(&model);
        let worker_metrics = metrics.clone();
        let budget = kv.budget;
        let health = Arc::new(WorkerHealth::default());
        let worker_health = Arc::clone(&health);
        let handle = std::thread::Builder::new()
            .name("tuneup-model".into())
            // Run on a worker of the compute pool, as the CLI does: the
            // kernels' parallel loops then share work with this thread.
            .spawn(move || {
                rayon::scope(|_| {
                    supervise(
                        &worker_health,
                        &worker_metrics,
                        |rx| worker(&worker_model, rx, &worker_metrics, max_batch, budget, fault),
                        rx,
                    )
                })
            })?;
        Ok((
            Self {
                tx,
                capacity,
                kv,
                health,
                model,
                grammar,
                metrics,
            },
            handle,
        ))
    }

    /// Queues a job, or says why not (never waits).
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        if job.kv_bytes > self.kv.budget {
            return Err(SubmitError::OverBudget {
                need_mib: job.kv_bytes.div_ceil(1 << 20),
                budget_mib: self.kv.budget >> 20,
            });
        }
        // Counted before sending so the worker never sees a negative depth.
        self.metrics.queue_depth.inc();
        let result = self.tx.try_send(job);
        if result.is_err() {
            self.metrics.queue_depth.dec();
        }
        match result {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(SubmitError::QueueFull(self.capacity)),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SubmitError::Stopped),
        }
    }

    /// Context window of the model, in tokens.
    pub fn context_length(&self) -> usize {
        self.model.model.decoder.context_length()
    }

    /// The KV cache a generation of `prompt` + `max_tokens` positions may allocate.
    pub fn kv_bytes(&self, prompt: usize, max_tokens: usize) -> u64 {
        self.kv
            .reservation(prompt, prompt + max_tokens, self.context_length())
    }
}

/// The worker's KV cache budget.
#[derive(Debug, Clone, Copy)]
struct KvBudget {
    /// Bytes of one cached position over all layers (keys and values, f32).
    per_token: u64,
    /// Bytes the running generations may reserve together.
    budget: u64,
}

/// Share of the memory available at start-up that the KV caches may use by default.
const DEFAULT_KV_SHARE: f64 = 0.5;
/// Budget when the available memory cannot be read.
const FALLBACK_KV_BUDGET: u64 = 4 << 30;

impl KvBudget {
    fn new(model: &ChatModel, budget: Option<u64>) -> Self {
        let c = model.model.decoder.config();
        let per_token = (c.num_layers * 2 * c.num_kv_heads * c.head_dim * 4) as u64;
        let budget = budget.unwrap_or_else(|| match available_memory() {
            Some(m) => (m as f64 * DEFAULT_KV_SHARE) as u64,
            None => FALLBACK_KV_BUDGET,
        });
        Self {
            per_token: per_token.max(1),
            budget,
        }
    }

    /// Bytes a cache holding up to `positions` positions may take, allocated as the
    /// cache grows: first the prompt (at least 256 positions), then doubling, never
    /// beyond the context.
    fn reservation(&self, prompt: usize, positions: usize, context: usize) -> u64 {
        let mut cap = prompt.max(256);
        while cap < positions {
            cap = cap.saturating_mul(2);
        }
        self.per_token * cap.min(context.max(positions)) as u64
    }
}

/// `MemAvailable` from `/proc/meminfo`, in bytes (Linux).
fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Runs the worker loop; when it panics, the jobs it was running fail (their clients
/// see the event channel close) and the loop starts again on the same queue, unless
/// it panicked [`MAX_PANICS`] times within [`PANIC_WINDOW`]: then the worker stops for
/// good and [`WorkerHealth::died`] is signalled (the server exits with an error).
fn supervise(
    health: &WorkerHealth,
    metrics: &Metrics,
    mut run: impl FnMut(&mut mpsc::Receiver<Job>),
    mut rx: mpsc::Receiver<Job>,
) {
    let mut recent: Vec<Instant> = Vec::new();
    loop {
        let Err(payload) = catch_unwind(AssertUnwindSafe(|| run(&mut rx))) else {
            return;
        };
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        tracing::error!("the model worker panicked: {message}");
        *health.last_panic.lock().unwrap_or_else(|p| p.into_inner()) = Some(message);
        metrics.error("worker_panic");
        metrics.in_flight.set(0);
        metrics.kv_reserved.set(0);
        recent.retain(|t| t.elapsed() < PANIC_WINDOW);
        recent.push(Instant::now());
        if recent.len() >= MAX_PANICS {
            tracing::error!(
                "the model worker panicked {MAX_PANICS} times within {} s: giving up",
                PANIC_WINDOW.as_secs()
            );
            health.dead.store(true, Ordering::SeqCst);
            rx.close();
            health.died.notify_one();
            return;
        }
        health.restarts.fetch_add(1, Ordering::SeqCst);
        tracing::warn!("restarting the model worker");
    }
}

/// Reports tokens to a job's client; stops the generation when the client is gone
/// or the deadline passed.
struct JobSink {
    events: mpsc::UnboundedSender<Event>,
    deadline: Option<Instant>,
    timed_out: bool,
}

impl TokenSink for JobSink {
    fn on_token(&mut self, _id: u32, text: &str) -> ControlFlow<()> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.timed_out = true;
            return ControlFlow::Break(());
        }
        let gone = if text.is_empty() {
            self.events.is_closed()
        } else {
            self.events.send(Event::Text(text.to_string())).is_err()
        };
        if gone {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

/// A generation in the running batch.
struct Slot<'t> {
    seq: Sequence<'t>,
    sink: JobSink,
    queue_wait: Duration,
    kv_bytes: u64,
}

/// The KV cache of the last finished generation, kept so that the next turn of a
/// conversation only computes what is new.
struct Spare {
    adapter: Option<Adapter>,
    state: DecoderState,
    tokens: Vec<u32>,
}

/// Continuous batching: up to `max_batch` generations (of one model: the base or
/// one adapter) advance together, one token each per model step; a new request
/// joins the batch as soon as there is room (its prompt is computed on its own,
/// then it decodes with the others), and a finished one leaves at once. A job joins
/// only while the batch's KV reservations stay within `kv_budget` (a job alone always
/// runs); otherwise it waits for generations to finish.
fn worker(
    model: &ChatModel,
    rx: &mut mpsc::Receiver<Job>,
    metrics: &Metrics,
    max_batch: usize,
    kv_budget: u64,
    fault: PanicOnMaxTokens,
) {
    let mut active: Vec<Slot<'_>> = Vec::new();
    // The model of the running batch, and a job for another one waiting for it to drain.
    let mut current: Option<Adapter> = None;
    let mut deferred: Option<Job> = None;
    let mut spare: Option<Spare> = None;
    let mut open = true;
    loop {
        // Admit jobs while there is room (blocking only when idle).
        while active.len() < max_batch {
            let reserved: u64 = active.iter().map(|s| s.kv_bytes).sum();
            metrics.kv_reserved.set(reserved as i64);
            let fits = |j: &Job| reserved + j.kv_bytes <= kv_budget;
            let job = if let Some(d) = deferred
                .take_if(|d| active.is_empty() || (same_adapter(&d.adapter, &current) && fits(d)))
            {
                Some(d)
            } else if deferred.is_some() || !open {
                None
            } else if active.is_empty() {
                rx.blocking_recv()
            } else {
                match rx.try_recv() {
                    Ok(j) => Some(j),
                    Err(mpsc::error::TryRecvError::Empty) => None,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        open = false;
                        None
                    }
                }
            };
            let Some(job) = job else {
                if active.is_empty() && deferred.is_none() {
                    open = false;
                }
                break;
            };
            if active.is_empty() {
                current = job.adapter.clone();
            } else if !same_adapter(&job.adapter, &current) || !fits(&job) {
                deferred = Some(job);
                break;
            }
            if fault.0 == Some(job.params.max_tokens) {
                metrics.queue_depth.dec();
                panic!(
                    "injected test fault: a job with max_tokens {}",
                    job.params.max_tokens
                );
            }
            if let Some(slot) = admit(model, &current, job, &mut spare, metrics) {
                if slot.seq.pending().is_some() {
                    active.push(slot);
                } else {
                    finish(slot, &current, &mut spare, metrics);
                }
            }
        }
        metrics
            .kv_reserved
            .set(active.iter().map(|s| s.kv_bytes).sum::<u64>() as i64);
        if active.is_empty() {
            if !open && deferred.is_none() {
                break;
            }
            continue;
        }
        let decoder = current
            .as_ref()
            .map_or(&model.model.decoder, |a| a.decoder.as_ref());
        let ids: Vec<u32> = active.iter().filter_map(|s| s.seq.pending()).collect();
        let mut states: Vec<&mut DecoderState> =
            active.iter_mut().map(|s| s.seq.state_mut()).collect();
        let step = decoder
            .forward_rows(&ids, &mut states)
            .and_then(|l| Ok(l.to_vec2::<f32>()?));
        metrics.decode_steps.inc();
        metrics.decode_rows.inc_by(ids.len() as u64);
        let rows = match step {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!("batched decoding step failed: {e}");
                for slot in active.drain(..) {
                    fail(slot.sink, &e.to_string(), metrics);
                }
                continue;
            }
        };
        let mut still = Vec::with_capacity(active.len());
        for (mut slot, mut row) in active.drain(..).zip(rows) {
            if let Err(e) = slot.seq.advance(&mut row, &mut slot.sink) {
                fail(slot.sink, &e.to_string(), metrics);
            } else if slot.seq.pending().is_some() {
                still.push(slot);
            } else {
                finish(slot, &current, &mut spare, metrics);
            }
        }
        active = still;
    }
    tracing::info!("model worker stopped");
}

fn same_adapter(a: &Option<Adapter>, b: &Option<Adapter>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(&a.decoder, &b.decoder),
        _ => false,
    }
}

/// Starts a job: computes its prompt (reusing the spare cache when it is a prefix)
/// and draws its first token. `None` when the job ended before starting.
fn admit<'t>(
    model: &'t ChatModel,
    adapter: &Option<Adapter>,
    job: Job,
    spare: &mut Option<Spare>,
    metrics: &Metrics,
) -> Option<Slot<'t>> {
    metrics.queue_depth.dec();
    let queue_wait = job.enqueued.elapsed();
    let kv_bytes = job.kv_bytes;
    if job.events.is_closed() {
        metrics.error("client_disconnected");
        return None;
    }
    if job.deadline.is_some_and(|d| Instant::now() >= d) {
        metrics.error("timeout");
        let _ = job.events.send(Event::Done(Finished {
            text: String::new(),
            stats: empty_stats(job.prompt.len()),
            timed_out: true,
            queue_wait,
        }));
        return None;
    }
    let decoder = adapter
        .as_ref()
        .map_or(&model.model.decoder, |a| a.decoder.as_ref());
    let (state, cached) = match spare.take() {
        Some(s) if same_adapter(&s.adapter, adapter) => (s.state, s.tokens),
        _ => (decoder.new_state(), Vec::new()),
    };
    let mut sink = JobSink {
        events: job.events,
        deadline: job.deadline,
        timed_out: false,
    };
    metrics.in_flight.inc();
    match Sequence::start(
        decoder,
        &model.tokenizer,
        &job.prompt,
        job.params,
        state,
        cached,
        &mut sink,
    ) {
        Ok(seq) => Some(Slot {
            seq,
            sink,
            queue_wait,
            kv_bytes,
        }),
        Err(e) => {
            fail(sink, &e.to_string(), metrics);
            None
        }
    }
}

/// Reports a finished generation and keeps its cache as the spare.
fn finish(
    mut slot: Slot<'_>,
    adapter: &Option<Adapter>,
    spare: &mut Option<Spare>,
    metrics: &Metrics,
) {
    let (out, state, tokens) = match slot.seq.finish(&mut slot.sink) {
        Ok(done) => done,
        Err(e) => return fail(slot.sink, &e.to_string(), metrics),
    };
    metrics.in_flight.dec();
    *spare = Some(Spare {
        adapter: adapter.clone(),
        state,
        tokens,
    });
    let s = &out.stats;
    metrics.prompt_tokens.inc_by(s.prompt_tokens as u64);
    metrics.generated_tokens.inc_by(s.completion_tokens as u64);
    if s.completion_tokens > 1 {
        metrics.tokens_per_second.set(s.decode_tokens_per_second());
    }
    if s.completion_tokens > 0 {
        metrics
            .ttft
            .observe((slot.queue_wait + s.time_to_first_token).as_secs_f64());
    }
    if slot.sink.timed_out {
        metrics.error("timeout");
    } else if s.finish_reason == FinishReason::Cancelled {
        metrics.error("client_disconnected");
    }
    let _ = slot.sink.events.send(Event::Done(Finished {
        text: out.text,
        stats: out.stats,
        timed_out: slot.sink.timed_out,
        queue_wait: slot.queue_wait,
    }));
}

/// Reports a failed generation.
fn fail(sink: JobSink, msg: &str, metrics: &Metrics) {
    metrics.in_flight.dec();
    metrics.error("generation_failed");
    tracing::error!("generation failed: {msg}");
    let _ = sink.events.send(Event::Failed(msg.to_string()));
}

fn empty_stats(prompt_tokens: usize) -> GenerationStats {
    GenerationStats {
        prompt_tokens,
        cached_prompt_tokens: 0,
        completion_tokens: 0,
        prefill_time: Duration::ZERO,
        time_to_first_token: Duration::ZERO,
        decode_time: Duration::ZERO,
        decode_passes: 0,
        draft_proposed: 0,
        draft_accepted: 0,
        finish_reason: FinishReason::Cancelled,
    }
}
