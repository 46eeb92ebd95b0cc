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
mod cores;
mod cpu;
mod event;
mod gil;
mod loadgen;
mod lock;
mod metrics;
mod report;
mod request;
mod slice;
mod stages;
mod system;

pub use bounds::{Bottleneck, Stability, stability};
pub use report::{
    Figures, GilThreads, Replication, SimReport, Stage, StageTimes, Truncation,
    UNSTABLE_ARRIVALS_PER_REQUEST, Utilization, Waits, aggregate,
};

use crate::scenario::{ClientKind, Scenario};
use rayon::prelude::*;

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

/// Checks that the scenario is one the simulator models.
pub fn check_supported(sc: &Scenario) -> Result<(), SimError> {
    let b = stability(sc);
    let instant = b.demand_ms == 0.0 && sc.clients.think_ms.mean() == 0.0 && sc.cost.rtt_ms.mean() == 0.0;
    if instant && sc.clients.kind == ClientKind::Closed {
        return Err(SimError::Unsupported {
            field: "cost",
            message: format!(
                "every request costs nothing and users do not think, so infinitely many requests \
                 complete at t = 0; give a cost, cost.rtt_ms or clients.think_ms{}",
                if sc.target.is_some() {
                    " — or, as this scenario describes a [target], measure its costs with `servesim \
                     calibrate --target FILE` and simulate the FILE.calibrated.toml it writes"
                } else {
                    ""
                }
            ),
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
