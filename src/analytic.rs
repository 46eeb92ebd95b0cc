//! Closed-form queueing results: what the simulator is checked against, and what capacity
//! planning uses to prune before it simulates.
//!
//! ```text
//!  open queues                           closed networks (N users, think time Z)
//!  λ ──► [queue] ──► server(s) ──►       ┌── think Z ◄─────────────────────┐
//!                                        └──► station 1 ──► … ──► station K┘
//!  erlang  M/M/c (Erlang B and C)        network  stations, demands, bottleneck
//!  mg1     M/G/1 FIFO (P–K), M/M/1,      mva      exact MVA, multi-server stations
//!          M/D/1                         bounds   asymptotic and balanced job bounds
//!  ps      M/G/1 processor sharing       usl      Universal Scalability Law + fit
//! ```
//!
//! * `erlang` — [`mmc`], [`erlang_b`], [`erlang_c`] (Kleinrock vol. 1 §3.5, §3.7);
//! * `mg1` — [`mg1`], [`mm1`], [`md1`] by Pollaczek–Khinchine (Kleinrock vol. 1 ch. 5);
//! * `ps` — [`mg1_ps`]: `E[S]/(1 − ρ)`, and `x/(1 − ρ)` for a job of size x (Kleinrock
//!   vol. 2 ch. 4);
//! * `network` — [`Station`], [`ClosedNetwork`]: demands, bottleneck, knee;
//! * `mva` — [`mva`]: exact Mean Value Analysis for every population 1..=N, with queueing,
//!   delay and load-dependent multi-server stations (Lazowska et al., *Quantitative System
//!   Performance*, ch. 6 and 8; Reiser–Lavenberg 1980);
//! * `bounds` — [`asymptotic_bounds`], [`balanced_job_bounds`], [`open_bounds`]
//!   (Lazowska et al. ch. 5);
//! * `response_bound` — [`open_response_lower_bound`]: a lower bound on the mean response
//!   time of an open system from one resource's work, valid for any scheduling;
//! * `usl` — [`UslParams`], [`fit_usl`]: Gunther's Universal Scalability Law, fitted by
//!   nonlinear least squares with standard errors and 95% intervals;
//! * `error` — [`AnalyticError`]: every function checks its inputs (finite, positive,
//!   c ≥ 1, stable) and says which parameter is wrong and how to fix it. Nothing panics.
//!
//! Times are in seconds and rates in 1/s; names carry their unit (`mean_response_s`,
//! `arrival_rate_per_s`). Everything here is pure arithmetic: no I/O, no randomness.
//!
//! ```
//! use servesim::analytic::{ClosedNetwork, Station, mmc, mva};
//!
//! // Four servers of 1 s each, offered 3.6 requests per second: ρ = 0.9.
//! let q = mmc(3.6, 1.0, 4)?;
//! assert!((q.mean_response_s - 2.9694).abs() < 1e-4);
//!
//! // 64 users thinking 1 s between requests, a 20 ms event loop and a pool of 4 threads
//! // at 100 ms. The pool is the bottleneck (4 / 0.1 s = 40/s against 1 / 0.02 s = 50/s),
//! // and past the knee N* = (0.12 + 1)/0.025 ≈ 45 users it is nearly saturated.
//! let net = ClosedNetwork::new(
//!     vec![Station::queueing(0.020)?, Station::multi_server(4, 0.100)?],
//!     1.0,
//! )?;
//! assert_eq!(net.bottleneck(), Some(1));
//! let points = mva(&net, 64)?;
//! assert!((points[0].response_s - 0.12).abs() < 1e-12);
//! assert!((points[63].throughput_per_s - 39.836).abs() < 1e-3);
//! # Ok::<(), servesim::analytic::AnalyticError>(())
//! ```

mod bounds;
mod erlang;
mod error;
mod lsq;
mod mg1;
mod mva;
mod network;
mod ps;
mod response_bound;
mod usl;

pub use bounds::{ClosedBounds, OpenBounds, asymptotic_bounds, balanced_job_bounds, open_bounds};
pub use erlang::{MmcMetrics, erlang_b, erlang_c, mmc};
pub use error::AnalyticError;
pub use mg1::{Mg1Metrics, ServiceTime, md1, mg1, mm1};
pub use mva::{MAX_MULTI_SERVER_STATIONS, MAX_POPULATION, MvaPoint, mva};
pub use network::{ClosedNetwork, Station, StationKind};
pub use ps::{PsMetrics, mg1_ps};
pub use response_bound::open_response_lower_bound;
pub use usl::{UslFit, UslParams, fit_usl};
