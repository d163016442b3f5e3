//! The model worker: one thread owns the generator (and its prompt cache) and
//! serves jobs from a bounded queue, one at a time, each on the base model or
//! the adapter it names. Continuous batching is a
//! later step; the queue and event protocol stay the same when it comes.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tuneup_generate::{
    ChatModel, FinishReason, GenerateParams, GenerationStats, Generator, GrammarCompiler,
};

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
}

/// A handle to the model worker (cheap to clone).
#[derive(Debug, Clone)]
pub struct Engine {
    tx: mpsc::Sender<Job>,
    capacity: usize,
    /// The model (for tokenizing and templates on request threads).
    pub model: Arc<ChatModel>,
    /// Grammar compiler for constrained decoding (`None` when the vocabulary cannot be
    /// indexed; JSON formats and forced tool calls are then best effort).
    pub grammar: Option<GrammarCompiler>,
    metrics: Metrics,
}

impl Engine {
    /// Starts the worker thread with a queue of `capacity` waiting jobs.
    pub fn start(
        model: Arc<ChatModel>,
        capacity: usize,
        metrics: Metrics,
    ) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        let capacity = capacity.max(1);
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
        let handle = std::thread::Builder::new()
            .name("tuneup-model".into())
            // Run on a worker of the compute pool, as the CLI does: the
            // kernels' parallel loops then share work with this thread.
            .spawn(move || rayon::scope(|_| worker(&worker_model, rx, &worker_metrics)))?;
        Ok((
            Self {
                tx,
                capacity,
                model,
                grammar,
                metrics,
            },
            handle,
        ))
    }

    /// Queues a job, or says why not (never waits).
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
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
}

fn worker(model: &ChatModel, mut rx: mpsc::Receiver<Job>, metrics: &Metrics) {
    let mut next = rx.blocking_recv();
    // One generator (and prompt cache) per run of jobs for the same model:
    // consecutive requests to one adapter, or to the base, keep their cache.
    while let Some(first) = next.take() {
        let adapter = first.adapter.clone();
        let decoder = adapter
            .as_ref()
            .map_or(&model.model.decoder, |a| a.decoder.as_ref());
        let mut generator = Generator::new(decoder, &model.tokenizer);
        let mut job = first;
        loop {
            run(&mut generator, job, metrics);
            match rx.blocking_recv() {
                Some(j) if same_adapter(&j.adapter, &adapter) => job = j,
                other => {
                    next = other;
                    break;
                }
            }
        }
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

/// Runs one job to its end, reporting on its event channel.
fn run(generator: &mut Generator<'_>, mut job: Job, metrics: &Metrics) {
    metrics.queue_depth.dec();
    let queue_wait = job.enqueued.elapsed();
    if job.events.is_closed() {
        metrics.error("client_disconnected");
        return;
    }
    if job.deadline.is_some_and(|d| Instant::now() >= d) {
        metrics.error("timeout");
        let _ = job.events.send(Event::Done(Finished {
            text: String::new(),
            stats: empty_stats(job.prompt.len()),
            timed_out: true,
            queue_wait,
        }));
        return;
    }
    metrics.in_flight.inc();
    let mut timed_out = false;
    let events = job.events.clone();
    let deadline = job.deadline;
    let mut sink = |_id: u32, text: &str| {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            timed_out = true;
            return ControlFlow::Break(());
        }
        let gone = if text.is_empty() {
            events.is_closed()
        } else {
            events.send(Event::Text(text.to_string())).is_err()
        };
        if gone {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let result = generator.generate(&job.prompt, &mut job.params, &mut sink);
    metrics.in_flight.dec();
    match result {
        Ok(out) => {
            let s = &out.stats;
            metrics.prompt_tokens.inc_by(s.prompt_tokens as u64);
            metrics.generated_tokens.inc_by(s.completion_tokens as u64);
            if s.completion_tokens > 1 {
                metrics.tokens_per_second.set(s.decode_tokens_per_second());
            }
            if s.completion_tokens > 0 {
                metrics
                    .ttft
                    .observe((queue_wait + s.time_to_first_token).as_secs_f64());
            }
            if timed_out {
                metrics.error("timeout");
            } else if s.finish_reason == FinishReason::Cancelled {
                metrics.error("client_disconnected");
            }
            let _ = job.events.send(Event::Done(Finished {
                text: out.text,
                stats: out.stats,
                timed_out,
                queue_wait,
            }));
        }
        Err(e) => {
            // A failed pass may leave the cache half-written.
            generator.reset();
            metrics.error("generation_failed");
            tracing::error!("generation failed: {e}");
            let _ = job.events.send(Event::Failed(e.to_string()));
        }
    }
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
