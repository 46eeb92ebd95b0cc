//! The serving system, simulated: clients, a balancer, worker processes each with an event
//! loop, a threadpool and a lock, and processor-sharing CPU cores shared by every thread.
//!
//! ```text
//!  clients ─► balancer ─► worker 0: loop ─► pool (threads) ─► loop ─► reply
//!                     └─► worker 1: …        │  lock (none | mutex | gil)
//!                                            ▼
//!                        cores: processor sharing across every runnable thread
//! ```
//!
//! Semantics (see the scenario docs for each knob):
//! * every runnable thread of every worker progresses at `min(1, cores / runnable)`, so a
//!   lock holder slows down when other threads are runnable;
//! * locked work runs only while holding its worker's lock; the lock is handed FIFO to the
//!   next waiter, who pays `cost.handoff_us`; in `gil` mode a waiter that waited
//!   `worker.switch_interval_ms` with no hand-off makes the holder drop it — but not before
//!   the holder has paid its own hand-off and run one more interval, so every tenure does
//!   some work (CPython clears a drop request made while the woken thread takes the GIL);
//! * one event-loop thread per worker runs loop work in FIFO order; `async-blocking` runs
//!   the whole request there;
//! * the threadpool serves handlers FIFO.
//!
//! Runs are deterministic: the same scenario and seed give bit-identical results. Every run
//! ends: a replication that reaches `run.max_sim_s` (or the end of the u64 nanosecond
//! clock, where times saturate), `run.max_events`, or — an open system offered more than its
//! capacity bound — [`UNSTABLE_ARRIVALS_PER_REQUEST`] arrivals per request to measure stops
//! early and says why ([`Truncation`]).
//!
//! ```
//! use servesim::scenario::Scenario;
//! use std::path::Path;
//!
//! // M/M/1 at ρ = 0.5: mean response E[S]/(1-ρ) = 2 s.
//! let toml = r#"
//!     [worker]
//!     threads = 1
//!     [clients]
//!     kind = "open"
//!     rate_rps = 0.5
//!     [cost]
//!     request_free_ms = { dist = "exponential", mean = 1000 }
//!     [workload]
//!     new_tokens = 0
//!     [run]
//!     requests = 20000
//! "#;
//! let sc = Scenario::parse(toml, Path::new("mm1"), Path::new("."), &[])?;
//! let report = servesim::sim::simulate(&sc)?;
//! let mean_s = report.figures.latency_ms.mean / 1e3;
//! assert!((mean_s - 2.0).abs() < 0.2, "{mean_s}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod batch;
mod bounds;
mod clients;
mod cpu;
mod gil;
mod lock;
mod metrics;
mod request;
mod system;

pub use bounds::{Bottleneck, Stability, stability};

use crate::scenario::{ClientKind, Scenario};
use crate::stats::{LatencySummary, mean_ci95_fields};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// `x / y`, out of line and cold: for hot paths that skip a division in their common case
/// (a divisor of 1, whose quotient is `x` bit for bit), so that the compiler branches around
/// it rather than computing it on both paths and selecting.
#[cold]
#[inline(never)]
fn divide_cold(x: f64, y: f64) -> f64 {
    x / y
}

/// Why a scenario cannot be simulated.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The scenario asks for something the simulator does not model.
    #[error("{field}: {message}")]
    Unsupported {
        /// The field.
        field: &'static str,
        /// What is unsupported and what to do instead.
        message: String,
    },
}

/// Mean time waiting per request, by stage (ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Waits {
    /// Waiting for a threadpool thread.
    pub thread: f64,
    /// Waiting for the lock (all acquisitions).
    pub lock: f64,
    /// Waiting for the event-loop thread.
    pub event_loop: f64,
}

/// Busy fraction of each resource, time-averaged over the measurement window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Utilization {
    /// Core-time used / core-time available.
    pub cores: f64,
    /// Fraction of time each worker's lock is held (mean over workers; 0 without a lock).
    pub lock: f64,
    /// Busy threadpool threads / threads (0 for `async-blocking`, which uses none).
    pub threads: f64,
    /// Fraction of time each event-loop thread is busy (mean over workers).
    pub event_loop: f64,
}

/// The figures of one run — and, over replications, their means or CI half-widths.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Completed requests per second in the measurement window.
    pub throughput_rps: f64,
    /// Latency from the intended send time to the reply (ms).
    pub latency_ms: LatencySummary,
    /// Mean waits per request by stage (ms).
    pub waits_ms: Waits,
    /// Utilization of each resource.
    pub utilization: Utilization,
    /// Time-averaged number of requests in the system.
    pub mean_in_system: f64,
    /// `|L − X·R| / L`: how far the run is from Little's law (edge effects only).
    pub little_residual: f64,
    /// Mean sequences per batched step (0 without batching).
    pub mean_batch: f64,
}

/// Why a replication stopped before it measured what it should.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Truncation {
    /// The next event lay beyond `run.max_sim_s`, or beyond the end of the u64 nanosecond
    /// clock (a heavy-tailed draw of a cost or a think time can exceed 584 years).
    MaxSimTime,
    /// `run.max_events` events were processed.
    MaxEvents,
    /// An open system offered more than its capacity bound ([`Stability::unstable`])
    /// received [`UNSTABLE_ARRIVALS_PER_REQUEST`] × (`run.requests` +
    /// `run.warmup_requests`) arrivals: its queues only grow, so simulating more arrivals
    /// adds refusals, not information.
    ArrivalCap,
}

impl std::fmt::Display for Truncation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Truncation::MaxSimTime => f.write_str("run.max_sim_s passed (or the clock's end)"),
            Truncation::MaxEvents => f.write_str("run.max_events events were processed"),
            Truncation::ArrivalCap => write!(
                f,
                "the unstable open system had {UNSTABLE_ARRIVALS_PER_REQUEST} × (run.requests + \
                 run.warmup_requests) arrivals"
            ),
        }
    }
}

/// An unstable open system stops after this many arrivals per request it must complete
/// (`run.requests + run.warmup_requests`). One offered up to about this multiple of what it
/// completes still measures every request, so a sweep past saturation (where the plotted
/// throughput is the saturated one) runs as it would without a cap; one offered more stops
/// early, truncated: at 1e6 req/s and the default 11,000 requests, after 110,000 arrivals.
pub const UNSTABLE_ARRIVALS_PER_REQUEST: u64 = 10;

/// The result of one replication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replication {
    /// Its figures.
    pub figures: Figures,
    /// Requests measured (after warm-up).
    pub completed: u64,
    /// Requests sent by clients, warm-up included.
    pub arrived: u64,
    /// Requests completed, warm-up included.
    pub finished: u64,
    /// Requests still in the system at the end.
    pub in_system: u64,
    /// Requests refused because a worker held `worker.queue_limit` requests.
    pub rejected: u64,
    /// Events processed.
    pub events: u64,
    /// Simulated time at the end (s).
    pub sim_time_s: f64,
    /// Whether the run stopped before it measured enough (see `truncation`).
    pub truncated: bool,
    /// What stopped it, when it was truncated.
    pub truncation: Option<Truncation>,
}

/// The result of all replications: means with 95% confidence intervals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimReport {
    /// Mean over replications.
    #[serde(flatten)]
    pub figures: Figures,
    /// Half-width of the 95% CI of every figure (Student t over replications).
    pub ci95: Figures,
    /// Requests measured, summed over replications.
    pub completed: u64,
    /// Requests refused, summed over replications.
    pub rejected: u64,
    /// Events processed, summed over replications.
    pub events: u64,
    /// Whether any replication stopped before it measured enough.
    pub truncated: bool,
    /// What stopped the truncated replications, each reason once, in [`Truncation`]'s
    /// order (empty, and absent from JSON, when none was).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub truncated_by: Vec<Truncation>,
    /// Capacity bound, bottleneck and whether the offered load exceeds it.
    pub stability: Stability,
    /// Replications run.
    pub replications: u32,
    /// Base seed.
    pub seed: u64,
}

/// Checks that the scenario is one the simulator models.
pub fn check_supported(sc: &Scenario) -> Result<(), SimError> {
    let b = stability(sc);
    let instant = b.demand_ms == 0.0 && sc.clients.think_ms.mean() == 0.0 && sc.cost.rtt_ms.mean() == 0.0;
    if instant && sc.clients.kind == ClientKind::Closed {
        return Err(SimError::Unsupported {
            field: "cost",
            message: "every request costs nothing and users do not think, so infinitely many \
                      requests complete at t = 0; give a cost, cost.rtt_ms or clients.think_ms"
                .into(),
        });
    }
    Ok(())
}

/// Runs replication `replication` (0-based) of a scenario.
pub fn run_replication(sc: &Scenario, replication: u32) -> Result<Replication, SimError> {
    check_supported(sc)?;
    Ok(system::System::new(sc, replication).run())
}

/// Runs `run.replications` independent replications (in parallel) and aggregates them.
pub fn simulate(sc: &Scenario) -> Result<SimReport, SimError> {
    check_supported(sc)?;
    let reps: Vec<Replication> =
        (0..sc.run.replications).into_par_iter().map(|r| system::System::new(sc, r).run()).collect();
    Ok(aggregate(sc, &reps))
}

/// Means and CI half-widths of replications' figures.
pub fn aggregate(sc: &Scenario, reps: &[Replication]) -> SimReport {
    let figures: Vec<Figures> = reps.iter().map(|r| r.figures).collect();
    let (mean, ci95) = mean_ci95_fields(&figures);
    SimReport {
        figures: mean,
        ci95,
        completed: reps.iter().map(|r| r.completed).sum(),
        rejected: reps.iter().map(|r| r.rejected).sum(),
        events: reps.iter().map(|r| r.events).sum(),
        truncated: reps.iter().any(|r| r.truncated),
        truncated_by: reps
            .iter()
            .filter_map(|r| r.truncation)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
        stability: stability(sc),
        replications: reps.len() as u32,
        seed: sc.run.seed,
    }
}
