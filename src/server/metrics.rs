//! `GET /metrics`: Prometheus text through the `metrics` facade and
//! `metrics-exporter-prometheus`, with explicit histogram buckets.
//!
//! | metric | kind | meaning |
//! |---|---|---|
//! | `servesim_requests_total{status}` | counter | answered requests by HTTP status |
//! | `servesim_requests_accepted_total` | counter | requests admitted (past validation and the admission queue) |
//! | `servesim_requests_cancelled_total` | counter | admitted requests never answered: the client left (see [`super::RequestCounts::cancelled`]) |
//! | `servesim_tokens_total` | counter | tokens generated |
//! | `servesim_requests_in_flight` | gauge | admitted requests not yet answered |
//! | `servesim_inference_in_flight` | gauge | handlers running |
//! | `servesim_queue_depth` | gauge | requests waiting for a pool thread (or to join a batch) |
//! | `servesim_request_duration_seconds` | histogram | arrival to response |
//! | `servesim_lock_wait_seconds` | histogram | time a request waited for the lock |
//! | `servesim_batch_size` | histogram | sequences per batched step (batching only) |
//!
//! Every admitted request is answered (200, 500 or 504 in `servesim_requests_total`),
//! cancelled, or in flight: `accepted = answered after admission + cancelled + in flight`.
//! A worker's `/metrics` shows that worker; the supervisor's admin address serves every
//! worker's, labelled by worker, with the supervisor's own counters (see
//! [`super::supervisor`]).

use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Answered requests, labelled by status.
pub const REQUESTS: &str = "servesim_requests_total";
/// Admitted requests.
pub const ACCEPTED: &str = "servesim_requests_accepted_total";
/// Admitted requests whose client left before their answer.
pub const CANCELLED: &str = "servesim_requests_cancelled_total";
/// Tokens generated.
pub const TOKENS: &str = "servesim_tokens_total";
/// Admitted requests not yet answered.
pub const IN_FLIGHT: &str = "servesim_requests_in_flight";
/// Handlers running.
pub const INFERENCE: &str = "servesim_inference_in_flight";
/// Requests waiting for a pool thread.
pub const QUEUE_DEPTH: &str = "servesim_queue_depth";
/// Request latency (s).
pub const DURATION: &str = "servesim_request_duration_seconds";
/// Lock wait per request (s).
pub const LOCK_WAIT: &str = "servesim_lock_wait_seconds";
/// Sequences per batched step.
pub const BATCH_SIZE: &str = "servesim_batch_size";

/// Latency buckets (s): 1 ms to 30 s.
const DURATION_BUCKETS: [f64; 14] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Lock-wait buckets (s): 10 µs to 5 s.
const LOCK_BUCKETS: [f64; 12] = [1e-5, 1e-4, 5e-4, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0];
/// Batch-size buckets [sequences].
const BATCH_BUCKETS: [f64; 7] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// Installs the process-wide recorder and returns the handle that renders it. If a recorder
/// is already installed, the returned handle renders a recorder of its own, which nothing
/// records to.
pub fn install() -> PrometheusHandle {
    let builder = || {
        PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DURATION.into()), &DURATION_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(LOCK_WAIT.into()), &LOCK_BUCKETS))
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(BATCH_SIZE.into()), &BATCH_BUCKETS))
            .expect("bucket lists are non-empty")
    };
    match builder().install_recorder() {
        Ok(handle) => {
            describe();
            handle
        }
        Err(_) => builder().build_recorder().handle(),
    }
}

fn describe() {
    metrics::describe_counter!(REQUESTS, "Answered requests by HTTP status.");
    metrics::describe_counter!(ACCEPTED, "Requests admitted past validation and the admission queue.");
    metrics::describe_counter!(CANCELLED, "Admitted requests never answered because the client left.");
    metrics::describe_counter!(TOKENS, "Tokens generated.");
    metrics::describe_gauge!(IN_FLIGHT, "Admitted requests not yet answered.");
    metrics::describe_gauge!(INFERENCE, "Handlers running (inference in progress).");
    metrics::describe_gauge!(QUEUE_DEPTH, "Requests waiting for a threadpool thread or to join a batch.");
    metrics::describe_histogram!(DURATION, metrics::Unit::Seconds, "Arrival to response.");
    metrics::describe_histogram!(LOCK_WAIT, metrics::Unit::Seconds, "Time a request waited for the lock.");
    metrics::describe_histogram!(BATCH_SIZE, metrics::Unit::Count, "Sequences per batched step.");
}

/// Statuses whose counters are registered once, so that recording one is a few atomic
/// operations instead of a registry lookup.
const STATUSES: [u16; 9] = [200, 400, 404, 405, 413, 422, 500, 503, 504];

/// Handles to the per-request metrics, registered once (after [`install`]).
pub struct Recorders {
    by_status: [Counter; STATUSES.len()],
    accepted: Counter,
    cancelled: Counter,
    duration: Histogram,
    lock_wait: Histogram,
    tokens: Counter,
    batch_size: Histogram,
}

impl Recorders {
    /// Registers every per-request metric with the installed recorder.
    pub fn new() -> Self {
        Self {
            by_status: STATUSES.map(|s| metrics::counter!(REQUESTS, "status" => s.to_string())),
            accepted: metrics::counter!(ACCEPTED),
            cancelled: metrics::counter!(CANCELLED),
            duration: metrics::histogram!(DURATION),
            lock_wait: metrics::histogram!(LOCK_WAIT),
            tokens: metrics::counter!(TOKENS),
            batch_size: metrics::histogram!(BATCH_SIZE),
        }
    }

    /// Records an answered request.
    pub fn answered(&self, status: u16, total_s: f64) {
        match STATUSES.iter().position(|&s| s == status) {
            Some(i) => self.by_status[i].increment(1),
            None => metrics::counter!(REQUESTS, "status" => status.to_string()).increment(1),
        }
        self.duration.record(total_s);
    }

    /// Records an admitted request.
    pub fn accepted(&self) {
        self.accepted.increment(1);
    }

    /// Records an admitted request whose client left before its answer.
    pub fn cancelled(&self) {
        self.cancelled.increment(1);
    }

    /// Records a completed request's lock wait and tokens.
    pub fn completed(&self, lock_wait_s: f64, tokens: u64) {
        self.lock_wait.record(lock_wait_s);
        self.tokens.increment(tokens);
    }

    /// The batch-size histogram, for the batch scheduler to record each step's size.
    pub fn batch_size(&self) -> Histogram {
        self.batch_size.clone()
    }
}

impl Default for Recorders {
    fn default() -> Self {
        Self::new()
    }
}

/// Sets the gauges (at scrape time) and renders every metric.
pub fn render(handle: &PrometheusHandle, in_flight: u64, inference: u64, queued: u64) -> String {
    metrics::gauge!(IN_FLIGHT).set(in_flight as f64);
    metrics::gauge!(INFERENCE).set(inference as f64);
    metrics::gauge!(QUEUE_DEPTH).set(queued as f64);
    handle.render()
}
