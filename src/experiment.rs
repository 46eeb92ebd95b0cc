//! Experiments: the commands users run, as library calls — simulate, sweep and merge, and
//! (with the real backend) measure, calibrate and validate — and their reports.

mod capacity;
pub mod grid;
pub use grid::Axis;
mod host;
mod merge;
// --- measure (real backend) ---
#[cfg(all(feature = "server", feature = "load", feature = "plot"))]
mod calibrate;
#[cfg(all(feature = "server", feature = "load"))]
mod measure;
#[cfg(all(feature = "server", feature = "load", feature = "plot"))]
mod validate;
// --- end measure ---
pub mod report;
mod simulate;
mod sweep;
mod sweep_output;
mod usl;

pub use capacity::{
    Answer, CapacityError, CapacityQuery, CapacityReport, Config, Evaluation, Knee, Planner, Slo, SloMetric,
    Verdict, parse_memory_mb,
};
// --- measure (real backend) ---
#[cfg(all(feature = "server", feature = "load", feature = "plot"))]
pub use calibrate::{
    CalibrateError, CalibrateOptions, Wake, calibrate, calibration_at, wake_costs, write_calibration,
};
#[cfg(all(feature = "server", feature = "load"))]
pub use measure::{MeasureError, MeasureOptions, MeasureReport, Window, WorkerReport, measure};
#[cfg(all(feature = "server", feature = "load", feature = "plot"))]
pub use validate::{
    Compared, ErrorSummary, Suite, Target, ValidateError, ValidateOptions, ValidatedPoint, Validation,
    default_suites, validate,
};
// --- end measure ---
pub use host::{machine, utc_now};
pub use merge::{MergeError, merge};
pub use simulate::{SimulateOutput, simulate};
pub use sweep::{PointResult, SweepError, SweepInfo, SweepOutput, SweepPlan, default_out, label};
pub use usl::{UslError, UslReport, fit_usl_csv};
