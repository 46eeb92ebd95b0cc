//! Experiments: the commands users run, as library calls, and their reports — on the
//! simulator: simulate, sweep, merge, capacity and fit-usl; on a measured backend (a private
//! module compiled with the `server` and `load` features, its items re-exported here):
//! measure, calibrate and validate.

mod capacity;
pub mod grid;
pub use grid::Axis;
mod host;
#[cfg(all(feature = "server", feature = "load"))]
mod measured;
mod merge;
pub mod report;
mod simulate;
pub mod slice;
mod sweep;
mod sweep_output;
mod usl;

pub use capacity::{
    Answer, CapacityError, CapacityQuery, CapacityReport, Config, Evaluation, Knee, MAX_CORES, Planner, Slo,
    SloMetric, Verdict, parse_memory_mb,
};
pub use host::{CpuTicks, STEAL_LIMIT, least_stolen, machine, no_steal, stolen_since, utc_now};
#[cfg(all(feature = "server", feature = "load"))]
pub use measured::*;
pub use merge::{MergeError, merge};
pub use simulate::{SimulateOutput, simulate};
pub use sweep::{PointResult, SweepError, SweepInfo, SweepOutput, SweepPlan, default_out, label};
pub use usl::{UslError, UslReport, fit_usl_csv, read_csv};
