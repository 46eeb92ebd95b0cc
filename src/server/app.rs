//! One worker's shared state, and the life of a `/correct` request on its event loop.
//!
//! ```text
//!  loop thread: parse ─ admit ─ loop_in_free ─ [lock] loop_in [unlock] ─┐
//!     sync / async-offload: await a pool thread (FIFO) ─ handler ───────┤
//!     async-blocking: await the loop's turn (FIFO) ─ handler inline ────┤
//!     batching (static / continuous): queue for the scheduler thread ───┤
//!  loop thread: [lock] loop_out [unlock] ─ loop_out_free ─ serialize ◄──┘
//! ```
//!
//! Admission holds in every mode: a worker holds at most `worker.queue_limit` admitted
//! requests — waiting or running — and answers any more with 503 and `Retry-After`. In
//! `async-blocking` the loop reads what has arrived between two handlers (admitting or
//! shedding it, answering `/healthz`), as an asyncio loop polls its sockets between
//! callbacks; admitted requests wait their turn on the loop in arrival order.
//!
//! An admitted request is answered, or cancelled when its client leaves first (see `peer`:
//! a reset, or a FIN while it still waits); one cancelled before it started never runs.
//!
//! `sync` is the framework running a blocking (`def`) handler on its threadpool;
//! `async-offload` is an async handler awaiting `to_thread`. Both come down to the same
//! thing — the loop hands the handler to the pool and awaits it — so they share this path,
//! as the lesson says they behave alike. In `async-blocking` the handler runs inside the
//! async function: the loop thread computes, and nothing else on this worker moves.
//!
//! With `batching.mode` other than `none` every request goes to the worker's batch
//! scheduler (see `batch`), whatever the handler mode, and no threadpool is started.
//!
//! Loop work that holds the lock blocks the loop thread while it waits — as a Python event
//! loop cannot run a line without the GIL.

use super::api::{self, ApiError, CorrectRequest, CorrectResponse, Rules, Timing};
use super::batch::{BatchError, BatchStats, Batcher, SchedulerParts};
use super::busy::{NoSwitch, spin, thread_cpu_ns};
use super::config::ServerConfig;
use super::gil::{Gil, LockStats};
use super::handler::{self, HandlerError, HandlerOutput};
use super::metrics;
use super::peer::Peer;
use super::pool::{Pool, PoolError, PoolStats};
use super::procfs;
use super::session::LockSession;
use super::stats::{Completed, Counters, WorkerStats};
use super::ticket::Ticket;
use super::work::{CostSampler, StepSampler, Work};
use crate::gpt::Model;
use crate::scenario::{Handler, LockKind};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The header that carries the answering worker's process id.
pub const PID_HEADER: &str = "x-worker-pid";
/// The optional request header with the client's send time [µs since the UNIX epoch].
pub const START_HEADER: &str = "x-request-start";

/// A worker's state, shared by the loop and the pool threads.
pub struct App {
    /// The plan.
    pub config: ServerConfig,
    /// This worker's index.
    pub index: u32,
    /// This worker's own copy of the weights (shared with its batch scheduler).
    pub model: Arc<Model>,
    /// The process-wide lock (`None` for `worker.lock = "none"`).
    pub gil: Option<Arc<Gil>>,
    /// The threadpool (`None` in `async-blocking` and with batching).
    pub pool: Option<Pool>,
    /// The batch scheduler (`None` without batching).
    pub batcher: Option<Batcher>,
    /// Emulated-work draws.
    pub costs: CostSampler,
    /// Live counters.
    pub counters: Counters,
    /// Request validation rules.
    pub rules: Rules,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Per-request metric handles.
    recorders: metrics::Recorders,
    /// The event loop's turn (`async-blocking`): one handler at a time, in arrival order.
    turn: tokio::sync::Semaphore,
    /// When the worker started serving.
    pub started: Instant,
    pid: HeaderValue,
}

impl App {
    /// A worker's state: its lock, its pool or batch scheduler (started now) and its cost
    /// stream.
    pub fn new(
        config: ServerConfig,
        index: u32,
        model: Model,
        metrics: PrometheusHandle,
    ) -> std::io::Result<App> {
        let interval = Duration::from_secs_f64(config.switch_interval_ms / 1e3);
        let gil = match config.lock {
            LockKind::None => None,
            LockKind::Mutex => Some(Arc::new(Gil::new(None))),
            LockKind::FairGil => Some(Arc::new(Gil::new(Some(interval)))),
            LockKind::Gil => Some(Arc::new(Gil::cpython(interval))),
        };
        let pool = match config.handler {
            _ if config.batched() => None,
            Handler::AsyncBlocking => None,
            Handler::Sync | Handler::AsyncOffload => Some(Pool::new(config.threads as usize, "pool")?),
        };
        let model = Arc::new(model);
        let recorders = metrics::Recorders::new();
        let batcher = if config.batched() {
            let parts = SchedulerParts {
                model: Arc::clone(&model),
                gil: gil.clone(),
                steps: StepSampler::new(&config.batching, config.seed, index),
                sizes: recorders.batch_size(),
            };
            Some(Batcher::start(&config.batching, config.queue_limit as usize, parts)?)
        } else {
            None
        };
        let rules = Rules { context: model.config().context as u32 };
        Ok(App {
            costs: CostSampler::new(&config.cost, &config.new_tokens, config.seed, index),
            gil,
            pool,
            batcher,
            counters: Counters::default(),
            rules,
            metrics,
            recorders,
            turn: tokio::sync::Semaphore::new(1),
            started: Instant::now(),
            pid: HeaderValue::from(std::process::id()),
            model,
            index,
            config,
        })
    }

    /// The lock for loop work: the worker's lock when `cost.loop_lock`, else none.
    fn loop_gil(&self) -> Option<Arc<Gil>> {
        self.gil.clone().filter(|_| self.config.cost.loop_lock)
    }

    /// Adds the worker's pid header to a response.
    pub fn tag(&self, mut resp: Response) -> Response {
        resp.headers_mut().insert(PID_HEADER, self.pid.clone());
        resp
    }

    /// The `/stats` snapshot; `loop_cpu_ms` is the event-loop thread's CPU time.
    pub fn stats(&self, loop_cpu_ms: f64) -> WorkerStats {
        let pid = std::process::id();
        let c = &self.counters;
        let batch = self.batcher.as_ref().map(Batcher::stats);
        WorkerStats {
            pid,
            index: self.index,
            uptime_ms: self.started.elapsed().as_secs_f64() * 1e3,
            rss_kb: procfs::rss_kb(pid).unwrap_or(0),
            process_cpu_ms: procfs::cpu_ms(pid).unwrap_or(0.0),
            loop_cpu_ms,
            handler: kebab(&self.config.handler),
            lock: kebab(&self.config.lock),
            requests: c.counts(),
            connections: c.connections.load(std::sync::atomic::Ordering::Relaxed),
            in_flight: c.in_flight.get(),
            peak_in_flight: c.in_flight.peak(),
            inference_running: batch.as_ref().map_or(c.inference.get(), |b| b.running),
            peak_inference: batch.as_ref().map_or(c.inference.peak(), |b| b.peak_batch),
            pool: self.pool.as_ref().map_or(PoolStats::default(), Pool::stats),
            lock_stats: self.gil.as_ref().map_or(LockStats::default(), |g| g.stats()),
            sums: c.sums(),
            batch: batch.unwrap_or_else(|| BatchStats { mode: "none".into(), ..BatchStats::default() }),
        }
    }

    /// Handlers running now: pool or loop handlers, or the sequences of the batch.
    pub fn inference_now(&self) -> u64 {
        self.batcher.as_ref().map_or(self.counters.inference.get(), |b| b.stats().running)
    }

    /// Requests waiting for a pool thread or to join a batch.
    pub fn queued(&self) -> u64 {
        match (&self.pool, &self.batcher) {
            (Some(p), _) => p.stats().queued,
            (None, Some(b)) => b.stats().queued,
            (None, None) => 0,
        }
    }
}

fn kebab<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// When the request arrived: with `trust`, the `x-request-start` header if it is a past
/// time at most [`REQUEST_START_WINDOW`](super::config::REQUEST_START_WINDOW) ago; else now.
pub fn arrival(headers: &HeaderMap, trust: bool) -> Instant {
    let now = Instant::now();
    if !trust {
        return now;
    }
    let sent_us = headers
        .get(START_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().trim_start_matches("t="))
        .and_then(|v| v.parse::<u64>().ok());
    let Some(sent_us) = sent_us else { return now };
    let Ok(since_epoch) = SystemTime::now().duration_since(UNIX_EPOCH) else { return now };
    match since_epoch.checked_sub(Duration::from_micros(sent_us)) {
        Some(age) if age <= super::config::REQUEST_START_WINDOW => now.checked_sub(age).unwrap_or(now),
        _ => now,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Serves one `/correct` request arrived on `peer`'s connection; every outcome is counted
/// and becomes a response (an admitted request whose client leaves is counted cancelled).
pub async fn correct(
    app: Arc<App>,
    arrived: Instant,
    body: Result<Bytes, BytesRejection>,
    peer: Option<Peer>,
) -> Response {
    let resp = match serve(&app, arrived, body, peer).await {
        Ok(resp) => resp,
        Err(e) => {
            count_error(&app.counters, e.status);
            e.into_response()
        }
    };
    app.recorders.answered(resp.status().as_u16(), arrived.elapsed().as_secs_f64());
    app.tag(resp)
}

/// Answers a `/correct` request refused before its body was read — a declared
/// `Content-Length` over the limit — counted like any other refusal. The body is never
/// read, so a client that sent `Expect: 100-continue` gets the 413 instead of a go-ahead.
pub fn refuse_too_large(app: &App, arrived: Instant, length: u64) -> Response {
    let limit = app.config.limits.body_limit_bytes;
    let e = ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("body is larger than the limit of {limit} bytes (Content-Length {length})"),
    );
    refuse(app, arrived, e)
}

/// Answers a `/correct` request with `e` before its body is read (a body declared too
/// large, or not JSON), counted like any other refusal.
pub fn refuse(app: &App, arrived: Instant, e: ApiError) -> Response {
    count_error(&app.counters, e.status);
    let resp = e.into_response();
    app.recorders.answered(resp.status().as_u16(), arrived.elapsed().as_secs_f64());
    app.tag(resp)
}

/// Answers a `/correct` request whose body did not arrive within
/// `limits.body_read_timeout_ms`: a 408, counted like any other refusal, and the connection
/// is closed (the rest of the body would otherwise be read as the next request).
pub fn refuse_slow_body(app: &App, arrived: Instant) -> Response {
    let t = app.config.limits.body_read_timeout_ms;
    let e = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        format!("the request body did not arrive within the body read timeout of {t} ms"),
    );
    count_error(&app.counters, e.status);
    let mut resp = e.into_response();
    resp.headers_mut().insert(axum::http::header::CONNECTION, HeaderValue::from_static("close"));
    app.recorders.answered(resp.status().as_u16(), arrived.elapsed().as_secs_f64());
    app.tag(resp)
}

fn count_error(c: &Counters, status: StatusCode) {
    match status {
        CLIENT_LEFT => c.cancel(),
        StatusCode::SERVICE_UNAVAILABLE => c.reject(),
        StatusCode::GATEWAY_TIMEOUT => c.time_out(),
        s if s.is_client_error() => c.invalid(),
        _ => c.fail(),
    }
}

fn body_error(e: BytesRejection, limit: usize) -> ApiError {
    match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body is larger than the limit of {limit} bytes"),
        ),
        status => ApiError::new(status, format!("cannot read the body: {}", e.body_text())),
    }
}

/// 504: the request was still queued at its deadline; it never ran.
fn timed_out(app: &App) -> ApiError {
    let t = app.config.limits.request_timeout_ms;
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        format!("the request waited in a queue beyond the timeout of {t} ms"),
    )
}

/// 504: the deadline passed while the request was generating; it stopped at a token
/// boundary after `tokens` of its `asked`.
fn stopped(app: &App, tokens: u32, asked: u32) -> ApiError {
    let t = app.config.limits.request_timeout_ms;
    let msg = format!(
        "the request ran beyond the timeout of {t} ms: generation stopped after {tokens} of {asked} tokens"
    );
    ApiError { tokens: Some(tokens), ..ApiError::new(StatusCode::GATEWAY_TIMEOUT, msg) }
}

fn handler_error(app: &App, e: HandlerError) -> ApiError {
    match e {
        HandlerError::TimedOut { tokens, asked } => stopped(app, tokens, asked),
        e @ HandlerError::Model(_) => internal(e),
    }
}

/// 499 (nginx's "client closed request"): the client left before its request started. Its
/// connection is closing, so the answer is not seen; it only names the outcome.
const CLIENT_LEFT: StatusCode = match StatusCode::from_u16(499) {
    Ok(s) => s,
    Err(_) => StatusCode::BAD_REQUEST,
};

fn client_left() -> ApiError {
    ApiError::new(CLIENT_LEFT, "the client left before its request started")
}

/// 503: the worker holds `worker.queue_limit` requests (or its batch queue is full).
fn shed(app: &App) -> ApiError {
    let msg = format!("the worker holds its limit of {} requests; retry later", app.config.queue_limit);
    ApiError { retry_after_s: Some(1), ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, msg) }
}

fn internal(what: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("the handler failed: {what}"))
}

/// Emulated loop work: the free part, then the part that holds the lock when the loop locks.
fn loop_work(free_ns: u64, locked_ns: u64, lock: &mut LockSession, busy: &mut Duration, free_first: bool) {
    let free = || {
        let t = Instant::now();
        spin(free_ns, &mut NoSwitch);
        t.elapsed()
    };
    let locked = |lock: &mut LockSession| {
        if locked_ns == 0 {
            return Duration::ZERO;
        }
        lock.acquire();
        let t = Instant::now();
        spin(locked_ns, lock);
        let d = t.elapsed();
        lock.release();
        d
    };
    *busy += if free_first { free() + locked(lock) } else { locked(lock) + free() };
}

/// An admitted request: counted accepted now, and cancelled if it is dropped unanswered —
/// hyper drops a request whose client reset the connection or left while it waited.
struct Admitted<'a> {
    app: &'a App,
    answered: bool,
}

impl<'a> Admitted<'a> {
    fn new(app: &'a App) -> Self {
        app.counters.accept();
        app.recorders.accepted();
        Self { app, answered: false }
    }

    fn answered(mut self) {
        self.answered = true;
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.app.counters.cancel();
            self.app.recorders.cancelled();
        }
    }
}

async fn serve(
    app: &Arc<App>,
    arrived: Instant,
    body: Result<Bytes, BytesRejection>,
    peer: Option<Peer>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let body = body.map_err(|e| body_error(e, app.config.limits.body_limit_bytes))?;
    let req = api::parse(&body, &app.rules, app.costs.draw_tokens())?;
    let Some(_inside) = app.counters.in_flight.try_enter(u64::from(app.config.queue_limit)) else {
        return Err(shed(app));
    };
    let admitted = Admitted::new(app);
    let answer = serve_admitted(app, arrived, started, req, peer).await;
    admitted.answered();
    answer
}

/// Runs an admitted request: loop work, the handler where the mode says, loop work.
async fn serve_admitted(
    app: &Arc<App>,
    arrived: Instant,
    started: Instant,
    req: CorrectRequest,
    peer: Option<Peer>,
) -> Result<Response, ApiError> {
    let deadline = arrived + Duration::from_secs_f64(app.config.limits.request_timeout_ms / 1e3);
    if Instant::now() >= deadline {
        return Err(timed_out(app));
    }
    // Batched steps draw their own work: a batched request has no per-token costs.
    let batched = app.batcher.is_some();
    let work = app.costs.draw(if batched { 0 } else { req.max_new_tokens });
    let (out_locked, out_free) = (work.loop_out_ns, work.loop_out_free_ns);
    let mut lp = LockSession::new(app.loop_gil());
    let mut loop_busy = Duration::ZERO;
    loop_work(work.loop_in_free_ns, work.loop_in_ns, &mut lp, &mut loop_busy, true);
    let ran = dispatch(app, req, work, deadline, peer).await?;
    let (thread_wait, out) = (ran.thread_wait, ran.out);
    loop_work(out_free, out_locked, &mut lp, &mut loop_busy, false);
    let t = &out.times;
    // In async-blocking the wait for the loop's turn is a wait for the loop.
    let loop_wait = started.saturating_duration_since(arrived) + ran.loop_wait;
    // With batching, the queue wait runs until the request joins a batch.
    let queue_wait = if batched { loop_wait + thread_wait } else { loop_wait };
    let timing = Timing {
        queue_wait_ms: ms(queue_wait),
        thread_wait_ms: ms(thread_wait),
        lock_wait_ms: ms(t.lock_wait + lp.wait),
        lock_held_ms: ms(t.lock_held + lp.held),
        compute_ms: ms(t.compute),
        total_ms: ms(arrived.elapsed()),
        matmul_ms: ms(t.matmul),
        model_other_ms: ms(t.model_other),
        busy_locked_ms: ms(t.busy_locked),
        busy_free_ms: ms(t.busy_free),
        loop_busy_ms: ms(loop_busy),
        tokens: out.tokens,
        kernels_per_token: app.model.config().kernels_per_token() as u32,
        cpu_ms: t.cpu_ns as f64 / 1e6,
    };
    let lock_wait = t.lock_wait + lp.wait;
    app.counters.complete(&Completed {
        queue_wait: loop_wait,
        thread_wait,
        lock_wait,
        lock_held: t.lock_held + lp.held,
        compute: t.compute,
        total: arrived.elapsed(),
        handler_cpu_ns: t.cpu_ns,
        tokens: u64::from(out.tokens),
    });
    app.recorders.completed(lock_wait.as_secs_f64(), u64::from(out.tokens));
    let header = server_timing(&timing, batched);
    let body = CorrectResponse { correction: out.text, tokens: out.tokens, timing };
    let mut resp = axum::Json(body).into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&header) {
        resp.headers_mut().insert("server-timing", v);
    }
    Ok(resp)
}

/// The `Server-Timing` header of a reply (see [`crate::server_timing`]): the wait before
/// the handler, the lock's wait, and the work held and free (the handler's and the event
/// loop's emulated work together).
fn server_timing(t: &Timing, batched: bool) -> String {
    let queue = if batched { t.queue_wait_ms } else { t.queue_wait_ms + t.thread_wait_ms };
    let work = t.compute_ms + t.loop_busy_ms;
    crate::server_timing::Stages {
        queue: Some(queue),
        lock: Some(t.lock_wait_ms),
        held: Some(t.lock_held_ms.min(work)),
        free: Some((work - t.lock_held_ms).max(0.0)),
        event_loop: Some(t.loop_busy_ms),
    }
    .header()
}

/// A handler's output and what it waited for.
struct Ran {
    /// For a pool thread, or to join a batch.
    thread_wait: Duration,
    /// For the loop's turn (`async-blocking`).
    loop_wait: Duration,
    out: HandlerOutput,
}

/// Runs the handler where the handler mode says: on the loop thread at its turn, or on a
/// pool thread the loop awaits — or, with batching, in a batch of the scheduler thread.
/// While it waits, the request's ticket is registered with its connection, which withdraws
/// it if the client leaves.
async fn dispatch(
    app: &Arc<App>,
    req: CorrectRequest,
    work: Work,
    deadline: Instant,
    peer: Option<Peer>,
) -> Result<Ran, ApiError> {
    let ticket = Ticket::new();
    let _waiting = peer.as_ref().map(|p| p.waiting(&ticket));
    let pooled = |(thread_wait, out)| Ran { thread_wait, loop_wait: Duration::ZERO, out };
    if let Some(batcher) = &app.batcher {
        return match batcher.run(ticket, req, work, deadline).await {
            Ok(b) => Ok(pooled((b.waited, b.out))),
            Err(BatchError::Full(_)) => Err(shed(app)),
            Err(BatchError::TimedOut) => Err(timed_out(app)),
            Err(BatchError::Stopped { tokens, asked }) => Err(stopped(app, tokens, asked)),
            Err(e) => Err(internal(e)),
        };
    }
    let Some(pool) = &app.pool else {
        return on_the_loop(app, ticket, req, work, deadline).await;
    };
    let a = Arc::clone(app);
    let job = move |waited: Duration| {
        let _running = a.counters.inference.enter();
        (waited, handler::run(&a.model, a.gil.clone(), &req, &work, Some(deadline)))
    };
    match pool.run(ticket, Some(deadline), job).await {
        Ok((waited, Ok(out))) => Ok(pooled((waited, out))),
        Ok((_, Err(e))) => Err(handler_error(app, e)),
        Err(PoolError::TimedOut) => Err(timed_out(app)),
        Err(e @ PoolError::Closed) => Err(internal(e)),
    }
}

/// `async-blocking`: waits for the loop's turn (FIFO; 504 if the deadline comes first), lets
/// the loop read what arrived meanwhile, then runs the handler on the loop thread itself —
/// nothing else on this worker moves until it returns, at the latest one token past the
/// deadline.
async fn on_the_loop(
    app: &Arc<App>,
    ticket: Ticket,
    req: CorrectRequest,
    work: Work,
    deadline: Instant,
) -> Result<Ran, ApiError> {
    let t0 = Instant::now();
    let _turn = match tokio::time::timeout_at(deadline.into(), app.turn.acquire()).await {
        Ok(Ok(turn)) => turn,
        Ok(Err(closed)) => return Err(internal(closed)),
        Err(_) => return Err(timed_out(app)),
    };
    // The first yield polls the sockets, so the requests that arrived during the previous
    // handler are read (admitted or shed) and new connections accepted; the second runs
    // the connections just accepted. Only then does the loop block again.
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
    if !ticket.start() {
        // Its client left while it waited (the connection is being dropped).
        return Err(client_left());
    }
    let loop_wait = t0.elapsed();
    if Instant::now() >= deadline {
        return Err(timed_out(app));
    }
    let _running = app.counters.inference.enter();
    let out = handler::run(&app.model, app.gil.clone(), &req, &work, Some(deadline))
        .map_err(|e| handler_error(app, e))?;
    Ok(Ran { thread_wait: Duration::ZERO, loop_wait, out })
}

/// The event loop's CPU time so far (ms) — call it on the loop thread.
pub fn loop_cpu_ms() -> f64 {
    thread_cpu_ns() as f64 / 1e6
}

#[cfg(test)]
mod arrival_tests {
    use super::*;

    fn headers(age: Duration) -> HeaderMap {
        let sent = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() - age;
        let mut h = HeaderMap::new();
        h.insert(START_HEADER, format!("t={}", sent.as_micros()).parse().unwrap());
        h
    }

    #[test]
    fn a_clients_request_start_is_ignored_unless_trusted_and_recent() {
        let aged = |h: &HeaderMap, trust| arrival(h, trust).elapsed();
        let recent = headers(Duration::from_secs(2));
        assert!(aged(&recent, false) < Duration::from_secs(1), "untrusted: arrival is now");
        assert!(aged(&recent, true) >= Duration::from_secs(2), "trusted and recent: dated by the header");
        let old = headers(Duration::from_secs(1800));
        assert!(aged(&old, true) < Duration::from_secs(1), "older than the window: arrival is now");
    }
}
