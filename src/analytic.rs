//! Closed forms the simulator is checked against, and that capacity planning uses to prune:
//!
//! * [`erlang`] — M/M/c (Erlang C) and M/G/1 (Pollaczek–Khinchine), M/G/1 processor sharing;
//! * [`mva`] — exact Mean Value Analysis of closed networks with think time, including
//!   load-dependent multi-server stations;
//! * [`bounds`] — asymptotic bottleneck bounds;
//! * [`usl`] — the Universal Scalability Law and its least-squares fit.
//!
//! Times are in seconds and rates in 1/s unless a name says otherwise. Every function
//! checks its inputs and returns an [`AnalyticError`] that names the parameter and the fix.

pub mod bounds;
pub mod erlang;
mod error;
pub mod mva;
pub mod usl;

pub use bounds::{Bounds, bounds};
pub use erlang::{MmcResult, erlang_b, erlang_c, mg1_ps, mg1_response, mmc};
pub use error::AnalyticError;
pub use mva::{MvaPoint, Station, StationKind, mva};
pub use usl::{UslFit, UslParams, fit_usl};
