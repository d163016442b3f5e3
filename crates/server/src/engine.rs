//! The model worker: one thread owns the model and serves jobs from a bounded
//! queue with continuous batching (several generations share each decoding
//! step), each on the base model or the adapter it names.

use std::ops::ControlFlow;
use std::sync::Arc;
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
    /// Starts the worker thread with a queue of `capacity` waiting jobs, decoding up
    /// to `max_batch` generations together.
    pub fn start(
        model: Arc<ChatModel>,
        capacity: usize,
        max_batch: usize,
        metrics: Metrics,
    ) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        let capacity = capacity.max(1);
        let max_batch = max_batch.max(1);
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
            .spawn(move || {
                rayon::scope(|_| worker(&worker_model, rx, &worker_metrics, max_batch))
            })?;
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
/// then it decodes with the others), and a finished one leaves at once.
fn worker(model: &ChatModel, mut rx: mpsc::Receiver<Job>, metrics: &Metrics, max_batch: usize) {
    let mut active: Vec<Slot<'_>> = Vec::new();
    // The model of the running batch, and a job for another one waiting for it to drain.
    let mut current: Option<Adapter> = None;
    let mut deferred: Option<Job> = None;
    let mut spare: Option<Spare> = None;
    let mut open = true;
    loop {
        // Admit jobs while there is room (blocking only when idle).
        while active.len() < max_batch {
            let job = if active.is_empty() && deferred.is_some() {
                deferred.take()
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
            } else if !same_adapter(&job.adapter, &current) {
                deferred = Some(job);
                break;
            }
            if let Some(slot) = admit(model, &current, job, &mut spare, metrics) {
                if slot.seq.pending().is_some() {
                    active.push(slot);
                } else {
                    finish(slot, &current, &mut spare, metrics);
                }
            }
        }
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
