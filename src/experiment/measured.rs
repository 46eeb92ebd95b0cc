//! The measured backend: commands that run a scenario against a real HTTP service and
//! measure what it does, where the rest of `experiment` predicts it with the simulator.
//!
//! The service is this crate's own server (`src/server`), started with the scenario's
//! knobs on a loopback port and driven by the load generator (`src/load`) — or, when the
//! scenario has a `[target]` section, any HTTP service, started and stopped through its
//! `start` command or measured as it runs (module `target`).
//!
//! ```text
//!  measure    one scenario on the real server (or the target) → the figures `simulate`
//!             prints, measured
//!  calibrate  the real server's own costs on this machine → a calibration file;
//!             --target: a service's costs from outside, fitted with the simulator
//!  validate   a sweep predicted and measured, side by side → errors, plots, report
//! ```
//!
//! Everything here needs the `server` and `load` features; `calibrate` and `validate` also
//! need `plot`.

#[cfg(feature = "plot")]
mod calibrate;
mod measure;
pub mod target;
#[cfg(feature = "plot")]
mod validate;

#[cfg(feature = "plot")]
pub use calibrate::{
    CalibrateError, CalibrateOptions, Wake, calibrate, calibration_at, wake_costs, write_calibration,
};
pub use measure::{MAX_WALL_S, MeasureError, MeasureOptions, MeasureReport, Window, WorkerReport, measure};
#[cfg(feature = "plot")]
pub use validate::{
    Compared, ErrorSummary, HashDraws, MeasuredPoint, MeasuredRun, Measurements, OverRuns, PointLimits,
    PooledPoint, Runs, SplitCheck, SplitSource, StageCompared, StageDiff, StageMiss, Suite, Target,
    TargetOverRuns, ValidateError, ValidateOptions, ValidatedPoint, Validation, default_suites,
    default_target_axes, target_axes, validate, validate_target, winner_wrong_pct,
};
