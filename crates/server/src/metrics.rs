//! Prometheus metrics, served as text at `GET /metrics`.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
};

/// All series of the server.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// `tuneup_requests_total{route,status}`.
    pub requests: IntCounterVec,
    /// `tuneup_request_duration_seconds{route}`.
    pub latency: HistogramVec,
    /// `tuneup_time_to_first_token_seconds` (queue wait included).
    pub ttft: Histogram,
    /// `tuneup_prompt_tokens_total`.
    pub prompt_tokens: IntCounter,
    /// `tuneup_generated_tokens_total`.
    pub generated_tokens: IntCounter,
    /// `tuneup_tokens_per_second`: decode speed of the last generation.
    pub tokens_per_second: Gauge,
    /// `tuneup_queue_depth`: requests waiting for the model.
    pub queue_depth: IntGauge,
    /// `tuneup_requests_in_flight`: generations running (in the batch).
    pub in_flight: IntGauge,
    /// `tuneup_kv_reserved_bytes`: KV cache reserved by the generations in the batch.
    pub kv_reserved: IntGauge,
    /// `tuneup_decode_steps_total`: batched model steps.
    pub decode_steps: IntCounter,
    /// `tuneup_decode_rows_total`: tokens those steps computed (rows / steps = mean batch size).
    pub decode_rows: IntCounter,
    /// `tuneup_errors_total{type}`.
    pub errors: IntCounterVec,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

impl Metrics {
    /// Registers every series in a fresh registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("tuneup_requests_total", "HTTP requests by route and status"),
            &["route", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "tuneup_request_duration_seconds",
                "Time from request to the end of the response",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )
        .expect("valid metric");
        let ttft = Histogram::with_opts(
            HistogramOpts::new(
                "tuneup_time_to_first_token_seconds",
                "Time from request to the first generated token, queue wait included",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        let prompt_tokens =
            IntCounter::new("tuneup_prompt_tokens_total", "Prompt tokens processed")
                .expect("valid metric");
        let generated_tokens = IntCounter::new(
            "tuneup_generated_tokens_total",
            "Completion tokens generated",
        )
        .expect("valid metric");
        let tokens_per_second = Gauge::new(
            "tuneup_tokens_per_second",
            "Decode speed of the last finished generation (tokens/s)",
        )
        .expect("valid metric");
        let queue_depth = IntGauge::new("tuneup_queue_depth", "Requests waiting for the model")
            .expect("valid metric");
        let in_flight = IntGauge::new("tuneup_requests_in_flight", "Generations running now")
            .expect("valid metric");
        let kv_reserved = IntGauge::new(
            "tuneup_kv_reserved_bytes",
            "KV cache reserved by the running generations (prompt + max_tokens each)",
        )
        .expect("valid metric");
        let decode_steps = IntCounter::new(
            "tuneup_decode_steps_total",
            "Decoding steps (one model pass for every generation in the batch)",
        )
        .expect("valid metric");
        let decode_rows = IntCounter::new(
            "tuneup_decode_rows_total",
            "Tokens computed by decoding steps; divided by the steps, the mean batch size",
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new(
                "tuneup_errors_total",
                "Error responses and aborted generations by type",
            ),
            &["type"],
        )
        .expect("valid metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(ttft.clone()),
            Box::new(prompt_tokens.clone()),
            Box::new(generated_tokens.clone()),
            Box::new(tokens_per_second.clone()),
            Box::new(queue_depth.clone()),
            Box::new(in_flight.clone()),
            Box::new(kv_reserved.clone()),
            Box::new(decode_steps.clone()),
            Box::new(decode_rows.clone()),
            Box::new(errors.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Self {
            registry,
            requests,
            latency,
            ttft,
            prompt_tokens,
            generated_tokens,
            tokens_per_second,
            queue_depth,
            in_flight,
            kv_reserved,
            decode_steps,
            decode_rows,
            errors,
        }
    }

    /// Counts an error of `kind`.
    pub fn error(&self, kind: &str) {
        self.errors.with_label_values(&[kind]).inc();
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            tracing::warn!("encoding metrics: {e}");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
