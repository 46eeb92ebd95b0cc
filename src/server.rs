//! The real server: axum on tokio, serving the Mini-GPT, with every mechanism the simulator
//! models — a real event loop, a real bounded threadpool, a real process-wide lock, real
//! worker processes — under the scenario's knob names, so one scenario file runs on either
//! backend.
//!
//! ```text
//!            127.0.0.1:PORT  (SO_REUSEPORT: the kernel hashes connections to workers)
//!        ┌──────────┴───────────┐
//!   worker 0 (process)      worker 1 …        each: its own weights, lock, pool
//!   ┌───────────────────────────────────────────────────────────────────────┐
//!   │ event loop: ONE thread (tokio current_thread) — accept, I/O, parse,   │
//!   │   admission (worker.queue_limit → 503), cost.loop_* work, dispatch    │
//!   │      │ sync / async-offload                │ async-blocking           │
//!   │      ▼                                     ▼                          │
//!   │ pool: worker.threads threads, FIFO      handler inline on the loop    │
//!   │ handler: cost.request_* work, then the model; the lock (worker.lock)  │
//!   │   is held for interpreter work and the model's own compute, released │
//!   │   around every matmul kernel; `gil` drops it at a switch point once a │
//!   │   waiter has waited worker.switch_interval_ms                         │
//!   │ batching.mode = static | continuous: instead of the pool, ONE         │
//!   │   scheduler thread runs batched steps (bounded queue → 503 when full) │
//!   └───────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! * [`busy`] — emulated interpreter work: CPU time on the thread's own clock.
//! * [`gil`] — the lock (FIFO hand-off, drop deadline); `session` — one thread's use of it.
//! * `pool` — the bounded FIFO threadpool; `handler` — one request's work and the model;
//!   `batch` — the batch scheduler (`static`: Triton's dynamic batching; `continuous`:
//!   iteration-level, as Orca and vLLM), the simulator's semantics on the real model.
//! * `app`, `routes`, [`api`] — the request pipeline (admission in every handler mode), the
//!   routes, the JSON contract; `peer` — a connection's half-close or departure; `ticket` —
//!   a queued request's start-or-withdraw race.
//! * `conn` — serving connections with hyper: the header, body and keep-alive timeouts,
//!   request slots (`/healthz` needs none), shutdown that closes idle connections at once;
//!   each connection read through its `peer`.
//! * [`worker`], [`supervisor`], `listener`, `shutdown`, `heartbeat` — processes (replaced
//!   when they die or stop beating), sockets, signals; [`affinity`] — the crate's CPU lists,
//!   re-exported here; [`launch`], [`client`] — starting and querying the server from code.
//! * [`stats`], [`metrics`] — `/stats` (JSON counters) and `/metrics` (Prometheus).
//!
//! Timeouts (`limits.request_timeout_ms`, `serve --timeout-ms`, from the request's arrival):
//!
//! * a request still waiting for a pool thread or to join a batch at its deadline never
//!   runs and gets 504; so does one the loop reaches only after its deadline (with
//!   `--trust-request-start`, a proxy's `x-request-start` dates arrival; otherwise arrival
//!   is when the loop reads it);
//! * a running generation is stopped at its next token boundary — before the prefill, then
//!   before each token (for a batched sequence, at the next step boundary) — and gets 504
//!   with `"tokens"`, those it generated; the lock is released and the thread (or batch
//!   slot) freed at once;
//! * what runs between two boundaries cannot be interrupted: the per-request work
//!   (`cost.request_*`), the prefill's one forward pass, one token (its forward pass and
//!   `cost.token_*` work), one batched step, and the loop's `cost.loop_*` work. In
//!   `async-blocking` the handler runs on the loop thread, so it stops at the same token
//!   boundaries, but until then the loop cannot accept, read or answer anything else —
//!   nor time out the requests waiting behind it.
//!
//! Several workers: the shared port reaches one worker per connection, the one the
//! kernel's `SO_REUSEPORT` hash picks, so `/metrics` or `/stats` there shows that worker
//! only. Each worker also listens on a private admin address (`workers[].admin` on the
//! ready line, [`WorkerInfo::admin`]) serving the same routes; the supervisor's admin
//! address ([`ReadyLine::admin`]) serves every worker's `/metrics` at once, labelled by
//! worker, with its own restarts and watchdog kills ([`SupervisorStats`] on `/stats`).

pub mod api;
mod app;
mod batch;
pub mod busy;
pub mod client;
pub mod config;
mod conn;
pub mod gil;
mod handler;
mod heartbeat;
pub mod launch;
mod listener;
pub mod metrics;
mod peer;
mod pool;
mod procfs;
mod routes;
mod session;
mod shutdown;
pub mod stats;
pub mod supervisor;
mod ticket;
mod work;
pub mod worker;

pub use crate::affinity::{self, AffinityError, CpuList, CpuPlan};
pub use api::{CorrectRequest, CorrectResponse, ErrorBody, Timing};
pub use batch::BatchStats;
pub use config::{ConfigError, EmulatedCost, Limits, ServerConfig, resolve_model_dir};
pub use conn::{MAX_HEAD_BUFFER, MAX_HEAD_BYTES, MAX_TARGET_BYTES};
pub use gil::{Gil, LockStats};
pub use handler::{HandlerTimes, time_batched_step, time_prefill};
pub use launch::{LaunchError, LaunchOptions, ServerProcess, find_binary};
pub use pool::{PoolError, PoolStats};
pub use stats::{RequestCounts, Sums, WorkerStats};
pub use supervisor::{
    ReadyLine, RestartedLine, ServeOptions, StoppedLine, SupervisorStats, WorkerExit, WorkerInfo,
};

/// Why the server could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The scenario asks for something the real server does not do.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The model could not be loaded.
    #[error("cannot load the Mini-GPT: {0}")]
    Model(#[from] crate::gpt::GptError),
    /// CPU pinning failed.
    #[error(transparent)]
    Affinity(#[from] AffinityError),
    /// A system operation failed.
    #[error("cannot {what}: {source}")]
    Io {
        /// What was attempted.
        what: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A worker process was given a malformed spec.
    #[error("{0}")]
    Spec(String),
    /// A worker process failed.
    #[error("worker {index} {message}")]
    Worker {
        /// Worker index.
        index: u32,
        /// What happened.
        message: String,
    },
}

impl ServerError {
    pub(crate) fn io(what: &'static str, source: std::io::Error) -> Self {
        ServerError::Io { what, source }
    }
}
