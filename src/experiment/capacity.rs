//! `servesim capacity`: the cheapest configuration (fewest cores, then least memory) that
//! holds a target rate within a latency SLO, with evidence.
//!
//! Candidates (cores × workers × handler × threads) are visited cheapest first. Each is
//! pruned when a bound proves it cannot work, and otherwise confirmed by simulation at the
//! target rate plus headroom, with open Poisson arrivals: it meets the SLO when the
//! figure's 95% CI lies under the limit. The screens, in order:
//!
//! 1. memory over the cap;
//! 2. a capacity bound below the rate (bottleneck analysis,
//!    [`sim::stability`](crate::sim::stability));
//! 3. a request's own work over the SLO: latency is at least the work, so its quantile q
//!    is at least `μ − σ·√((1 − q)/q)` (Cantelli's inequality; `μ` for the mean);
//! 4. for a mean-latency SLO, an open-queueing lower bound on the mean at each resource
//!    (cores, lock, threadpool, event loop), [`crate::analytic::open_response_lower_bound`]:
//!    it holds whatever the scheduling, so it prunes only what cannot meet the SLO in
//!    steady state. No such bound exists for a percentile from the work alone, so
//!    percentile SLOs skip this screen.
//!
//! Every screen uses a lower bound on the mean work and an upper bound on its variance, so
//! rounding token counts or drawing from wide distributions never prunes a candidate that
//! could meet the SLO. Batched candidates get screens 1 and 2, and 3 for a mean SLO only
//! (the mean work of a batched request is bounded, its spread is not). Closed clients do
//! not arise: the search replaces the scenario's clients with open arrivals at the target
//! rate, so MVA, which solves closed networks, has no candidate to screen.
//!
//! The answer's knee — the highest rate that still meets the SLO — is found by bisection,
//! with an interval from the CI of the figure.

mod candidates;
mod query;
mod render;
mod report;
mod screen;
mod search;

pub use candidates::Config;
pub use query::{CapacityQuery, Slo, SloMetric, parse_memory_mb};
pub use report::{Answer, CapacityReport, Evaluation, Knee, Verdict};
pub use search::{MAX_CORES, Planner};

use crate::scenario::ScenarioError;
use crate::sim::SimError;

/// Why a capacity query is malformed or cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum CapacityError {
    /// A flag's value is malformed.
    #[error("{flag} {value}: {message}")]
    Flag {
        /// The flag.
        flag: &'static str,
        /// Its value.
        value: String,
        /// What is wrong and how to write it.
        message: String,
    },
    /// The scenario is invalid.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// A candidate cannot be simulated.
    #[error(transparent)]
    Sim(#[from] SimError),
}

fn flag_err(flag: &'static str, value: &str, message: &str) -> CapacityError {
    CapacityError::Flag { flag, value: value.into(), message: message.into() }
}
