//! `servesim validate`: every point of a sweep predicted by the simulator and measured on the
//! real server, side by side, with errors, plots and a summary against the targets.
//!
//! ```text
//!  calibration (once) ─► each point: scenario + point's --set + cost.calibration
//!        ├─► simulate: R replications → mean ± 95% CI
//!        └─► measure: the real server, one run per pass → figure ± 95% CI (batch means,
//!            order statistics)
//!  → table, CSV, JSON, plots (predicted band, measured error bars), report.md, summary
//! ```
//!
//! A closed-loop point is simulated long (`sim_requests` per replication) so that its
//! figure is the steady state; the real server runs it short (`requests`, after a warm-up
//! that grows with the number of users). An open-loop point is the same finite trace of
//! send times on both sides (see [`validate`]). No figure is fitted per point: every point
//! uses the same calibration.

mod present;
mod runs;
mod saved;
mod split;
mod spread;
mod stages;
mod summary;
mod target;

pub use runs::{OverRuns, PooledPoint, Runs, TargetOverRuns};
pub use saved::{MeasuredPoint, MeasuredRun, Measurements};
pub use split::{HashDraws, SplitCheck, SplitSource};
pub use spread::{BATCHES, Spread};
pub use stages::{PointLimits, StageCompared, StageDiff, StageMiss};
pub use summary::{ErrorSummary, Target};
pub use target::{default_axes as default_target_axes, target_axes, validate_target, winner_wrong_pct};

use super::measure::{MeasureError, MeasureOptions, MeasureReport, measure};
use crate::experiment::grid::{Axis, Grid, show};
use crate::experiment::report::WriteError;
use crate::experiment::{STEAL_LIMIT, least_stolen};
use crate::scenario::{ClientKind, LockKind, Override, Scenario, ScenarioError};
use crate::sim::{self, SimError};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use summary::{SUITE_LIMITS, summarize, targets};

/// Why a validation could not run.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// A point's scenario is invalid.
    #[error("point {point}: {source}")]
    Scenario {
        /// The point's label.
        point: String,
        /// Why.
        source: ScenarioError,
    },
    /// The simulator refused a point.
    #[error("point {point}: simulate: {source}")]
    Sim {
        /// The point's label.
        point: String,
        /// Why.
        source: SimError,
    },
    /// The real server could not measure a point.
    #[error("point {point}: measure: {source}")]
    Measure {
        /// The point's label.
        point: String,
        /// Why.
        source: MeasureError,
    },
    /// The sweep is malformed.
    #[error(transparent)]
    Grid(#[from] crate::experiment::grid::GridError),
    /// Outputs could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A plot could not be drawn.
    #[error("plot: {0}")]
    Plot(String),
    /// An option is out of its range.
    #[error("{0}")]
    Options(String),
    /// A file of kept measurements (`validate --from`) could not be read.
    #[error("validate --from {path}: {message}")]
    Saved {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// A `--set` of a field that `validate --target` sweeps by default (no `--sweep` given):
    /// every point would take the swept value.
    #[error(
        "--set {set}: validate --target sweeps {axis} by default, so every point would ignore the \
         --set; drop it, or give --sweep PATH=… for axes of your own"
    )]
    SetAndDefaultSwept {
        /// The `--set` argument (`clients.users=4`).
        set: String,
        /// The default axis that gives it (`clients.users`).
        axis: String,
    },
    /// The kept measurements do not have a point to predict again.
    #[error("validate --from: {0}")]
    Replay(String),
}

/// One sweep to validate: a scenario file, fixed overrides and the swept axes.
#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    /// Short name, used in file names (`plots/validation-{name}-…`).
    pub name: String,
    /// The scenario file.
    pub file: PathBuf,
    /// Overrides applied to every point.
    pub fixed: Vec<Override>,
    /// The swept axes (their product is the set of points).
    pub axes: Vec<Axis>,
}

/// How to validate.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidateOptions {
    /// How to measure (binary, model, wall cap).
    pub measure: MeasureOptions,
    /// The calibration file every point uses (`cost.calibration`); none: the scenario's own.
    pub calibration: Option<PathBuf>,
    /// Measured requests per repeat (after the warm-up).
    pub requests: u64,
    /// Repeats of each measurement.
    pub repeats: u32,
    /// Requests per simulated replication.
    pub sim_requests: u64,
    /// Measurements a validation kept (`measurements.json`): its points are predicted again
    /// and compared with them, and nothing is measured. Their runs per point and measured
    /// requests take the place of `repeats` and `requests`.
    pub from: Option<Measurements>,
}

/// The most measured requests per repeat ([`ValidateOptions::requests`]): an open-loop
/// point's send times are drawn up front, and a million take hours to send.
pub const MAX_REQUESTS: u64 = 1_000_000;

/// The most repeats of each measurement ([`ValidateOptions::repeats`]).
pub const MAX_REPEATS: u32 = 1_000;

impl ValidateOptions {
    /// Checks the counts before anything runs: `requests` in 1..=`MAX_REQUESTS` (a million)
    /// and `repeats` in 1..=`MAX_REPEATS` (a thousand); the error names the flag that sets
    /// each.
    pub fn check(&self) -> Result<(), ValidateError> {
        if !(1..=MAX_REQUESTS).contains(&self.requests) {
            return Err(ValidateError::Options(format!(
                "--requests must be between 1 and {MAX_REQUESTS} per repeat, got {}",
                self.requests
            )));
        }
        if !(1..=MAX_REPEATS).contains(&self.repeats) {
            return Err(ValidateError::Options(format!(
                "--repeats must be between 1 and {MAX_REPEATS}, got {}",
                self.repeats
            )));
        }
        Ok(())
    }
}

impl Default for ValidateOptions {
    fn default() -> Self {
        Self {
            measure: MeasureOptions::default(),
            calibration: None,
            requests: 200,
            repeats: 1,
            sim_requests: 4000,
            from: None,
        }
    }
}

/// A figure predicted with its CI and measured with its CI, and the relative error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Compared {
    /// Predicted (mean of replications).
    pub predicted: f64,
    /// Half-width of the prediction's 95% CI.
    pub predicted_ci95: f64,
    /// Measured.
    pub measured: f64,
    /// Lower end of the measurement's 95% CI (see `Spread`).
    pub measured_lo: f64,
    /// Upper end of the measurement's 95% CI.
    pub measured_hi: f64,
    /// (predicted − measured) / measured (%).
    pub error_pct: f64,
    /// Whether the two intervals overlap: the difference is within the noise of the runs.
    pub agrees: bool,
}

impl Compared {
    fn new(predicted: f64, ci: f64, measured: Spread) -> Self {
        let m = measured.value;
        Self {
            predicted,
            predicted_ci95: ci,
            measured: m,
            measured_lo: measured.lo,
            measured_hi: measured.hi,
            error_pct: if m > 0.0 { 100.0 * (predicted - m) / m } else { f64::NAN },
            agrees: predicted - ci <= measured.hi && predicted + ci >= measured.lo,
        }
    }
}

/// One validated point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidatedPoint {
    /// The suite it belongs to.
    pub suite: String,
    /// `path=value` of every swept axis.
    pub params: Vec<(String, String)>,
    /// Whether the point is saturated, as predicted: its throughput within 10% of the
    /// capacity bound, or a resource (cores, lock, threads, event loop) at least 90% busy.
    pub saturated: bool,
    /// Whether an open system is offered at least its capacity bound: the queue grows for
    /// as long as arrivals last, so latencies depend on the trace's length (the same on
    /// both sides).
    #[serde(default)]
    pub unstable: bool,
    /// The simulator's capacity bound (req/s).
    pub capacity_rps: f64,
    /// Throughput (req/s).
    pub throughput_rps: Compared,
    /// Median latency (ms).
    pub p50_ms: Compared,
    /// 95th percentile latency (ms).
    pub p95_ms: Compared,
    /// 99th percentile latency (ms).
    pub p99_ms: Compared,
    /// Whether a target's calibration measured this point (it fitted on it): left out of
    /// the summary and the targets.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub used_by_fit: bool,
    /// Closed loops on several workers, balanced by the kernel's hash or served by a
    /// `[target]`: how the measured runs split their users, and the prediction given those
    /// splits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<SplitCheck>,
    /// Why such a point has no [`split`](Self::split): its runs' users per worker are not
    /// known (e.g. a target that does not name the answering worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_unknown: Option<String>,
    /// Each stage of a request as the server's `Server-Timing` reports it, predicted and
    /// measured (none when the server sends no such header).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageCompared>,
    /// When the point misses its end-to-end target (throughput or p95 beyond its limit,
    /// beyond the noise): the stage that differs most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub miss: Option<StageMiss>,
    /// The most that a virtual machine's host stole of the CPUs' ready time during any of
    /// the point's measured runs (%; see [`MeasureReport::host_steal_pct`]; left out of the JSON when 0).
    #[serde(default, skip_serializing_if = "crate::experiment::no_steal")]
    pub host_steal_pct: f64,
}

impl ValidatedPoint {
    /// ` c` when the calibration used it, ` s` when the host stole from its measurement,
    /// ` !` when unstable, ` *` when saturated (the first that holds), else nothing.
    pub(crate) fn mark(&self) -> &'static str {
        match (self.used_by_fit, self.stolen(), self.unstable, self.saturated) {
            (true, _, _, _) => " c",
            (false, true, _, _) => " s",
            (false, false, true, _) => " !",
            (false, false, false, true) => " *",
            _ => "",
        }
    }

    /// Whether a virtual machine's host stole more than [`STEAL_LIMIT`] of the CPUs' ready
    /// time while the point was measured, even after measuring it again: shown, but left out
    /// of the summary and the targets.
    pub fn stolen(&self) -> bool {
        self.host_steal_pct > STEAL_LIMIT * 100.0
    }

    /// `a=1 b=x`.
    pub fn label(&self) -> String {
        label_of(&self.params)
    }

    pub(crate) fn metrics(&self) -> [(&'static str, &Compared); 4] {
        [
            ("throughput", &self.throughput_rps),
            ("p50", &self.p50_ms),
            ("p95", &self.p95_ms),
            ("p99", &self.p99_ms),
        ]
    }
}

pub(crate) fn short(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// A point's swept values, `a=1 b=x` (each path by its last part).
pub(crate) fn label_of(params: &[(String, String)]) -> String {
    params.iter().map(|(k, v)| format!("{}={v}", short(k))).collect::<Vec<_>>().join(" ")
}

/// A whole validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    /// Where and when it ran.
    pub machine: crate::scenario::Machine,
    /// The calibration used, if one was given.
    pub calibration: Option<String>,
    /// The calibrated constants whose rounds disagreed (empty: the calibration is stable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calibration_unstable: Vec<String>,
    /// Requests per measured repeat, repeats, requests per simulated replication.
    pub method: String,
    /// Every point.
    pub points: Vec<ValidatedPoint>,
    /// |error| of each metric over every point, in the order throughput, p50, p95, p99,
    /// throughput below saturation; in JSON, an object keyed by metric name.
    #[serde(with = "summary::by_metric")]
    pub summary: Vec<(String, ErrorSummary)>,
    /// The targets.
    pub targets: Vec<Target>,
    /// What to know when reading the verdict (e.g. why no target was judged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Wall time (s).
    pub wall_s: f64,
    /// The measured runs, written beside the report (`measurements.json`) so that they can be
    /// predicted again (`validate --from`).
    #[serde(skip)]
    pub measurements: Option<Measurements>,
}

/// Validates every point of every suite; `progress(done, total, label)` after each
/// measurement. A suite's fixed override that its grid also sweeps is refused
/// ([`Grid::check_fixed`]).
///
/// Every point is simulated first; then the measurements run in `repeats` passes over all
/// points, so that a slow drift of the machine (another tenant, the clock) spreads over
/// every point's repeats instead of biasing whichever points ran during it.
///
/// An open-loop point is played as a trace on both sides: each pass draws its send times
/// from the scenario's arrival process (seeded), the load generator sends at exactly those
/// times, and the simulator is given the same times. Two short runs of a Poisson process
/// differ by about 1/√n in their arrival rate (7% for 200 requests); sharing the arrivals
/// (common random numbers across the two backends) leaves only what the server does with
/// them to compare.
pub fn validate(
    suites: &[Suite],
    opts: &ValidateOptions,
    mut progress: impl FnMut(usize, usize, &str),
) -> Result<Validation, ValidateError> {
    let t0 = std::time::Instant::now();
    let saved = opts.from.as_ref();
    if saved.is_none() {
        opts.check()?;
    }
    let replay;
    let opts = match saved {
        // The kept runs decide the passes and, for open loops, the traces' length.
        Some(m) => {
            replay = ValidateOptions {
                measure: opts.measure.clone(),
                calibration: opts.calibration.clone(),
                requests: m.requests,
                repeats: m.repeats,
                sim_requests: opts.sim_requests,
                from: None,
            };
            &replay
        }
        None => opts,
    };
    let grids: Vec<Grid> = suites.iter().map(|s| Grid::new(s.axes.clone())).collect::<Result<_, _>>()?;
    for (suite, grid) in suites.iter().zip(&grids) {
        grid.check_fixed(&suite.fixed)?;
    }
    let mut todo = Vec::new();
    for (suite, grid) in suites.iter().zip(&grids) {
        for i in 0..grid.len() {
            todo.push((suite, grid.point(i)));
        }
    }
    let repeats = opts.repeats.max(1) as usize;
    // The progress: the measurements, or, predicting kept measurements again, the points.
    let total = if saved.is_some() { todo.len() } else { todo.len() * repeats };
    progress(0, total, "simulating every point");
    // The simulations, in parallel (each is deterministic, whatever the order); each one
    // done is reported from this thread.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<String>();
    let (points, todo) = (todo.len(), &todo);
    let planned: Vec<Planned> = std::thread::scope(|scope| {
        let sims = scope.spawn(move || {
            todo.par_iter()
                .map(|(suite, point)| {
                    let params: Vec<(String, String)> =
                        point.iter().map(|o| (o.path.clone(), show(&o.value))).collect();
                    let label = label_of(&params);
                    let planned = plan_point(suite, point, params, opts, &label);
                    let _ = done_tx.send(format!("{} {label}", suite.name));
                    planned
                })
                .collect::<Result<Vec<_>, _>>()
        });
        for (k, label) in done_rx.iter().enumerate() {
            let at = if saved.is_some() { k + 1 } else { 0 };
            progress(at, total, &format!("simulated {} of {points} points ({label})", k + 1));
        }
        sims.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })?;
    let mut measured: Vec<Vec<MeasureReport>> = vec![Vec::with_capacity(repeats); planned.len()];
    if let Some(m) = saved {
        for (i, p) in planned.iter().enumerate() {
            measured[i] = m.runs(&p.suite, &p.params).map_err(ValidateError::Replay)?;
        }
    }
    // Kept measurements are not measured again: no pass.
    let passes = if saved.is_some() { 0 } else { repeats };
    for r in 0..passes {
        for (i, p) in planned.iter().enumerate() {
            progress(r * planned.len() + i, total, &format!("{} {}", p.suite, p.label));
            // A run the host stole from measured the host: measured again, up to
            // STOLEN_RETRIES times, and the least stolen kept.
            let m = least_stolen(
                STOLEN_RETRIES,
                |again| {
                    if let Some(stolen) = again {
                        progress(
                            r * planned.len() + i,
                            total,
                            &format!(
                                "{} {}: the host stole {:.1}% of the CPUs' time, measuring again",
                                p.suite,
                                p.label,
                                stolen * 100.0
                            ),
                        );
                    }
                    measure(&p.passes[r], &opts.measure)
                        .map_err(|source| ValidateError::Measure { point: p.label.clone(), source })
                },
                |m| m.host_steal_pct / 100.0,
            )?;
            measured[i].push(m);
        }
    }
    progress(total, total, "done");
    let cores = cores_model(planned.iter().flat_map(|p| &p.passes));
    let locks: Vec<LockKind> = planned.iter().flat_map(|p| &p.passes).map(|s| s.worker.lock).collect();
    let calibration = opts.calibration.as_ref().map(|p| p.display().to_string());
    let measurements = match saved {
        Some(m) => Measurements { calibration: calibration.clone(), ..m.clone() },
        None => Measurements::new(
            opts.requests,
            repeats as u32,
            calibration.clone(),
            planned.iter().zip(&measured).map(|(p, m)| (p.suite.clone(), p.params.clone(), m.clone())),
        ),
    };
    let mut points: Vec<ValidatedPoint> =
        planned.into_iter().zip(&measured).map(|(p, m)| p.compare(m)).collect();
    stages::name_misses(&mut points, SUITE_LIMITS);
    // A point the host stole from even when measured again is shown, but not judged.
    let judged: Vec<ValidatedPoint> = points.iter().filter(|p| !p.stolen()).cloned().collect();
    let summary = summarize(&judged);
    let targets = targets(&summary);
    Ok(Validation {
        notes: steal_notes(&points),
        machine: measurements.machine.clone(),
        calibration,
        calibration_unstable: opts
            .calibration
            .as_deref()
            .and_then(|p| crate::scenario::Calibration::read(p).ok())
            .map(|c| c.unstable.into_iter().filter(|k| used_by(k, &locks)).collect())
            .unwrap_or_default(),
        method: format!(
            "measured: {} pass(es) over the points; closed loops: {} requests per point and pass \
             after a warm-up of 20 + users; open loops: {} requests, played as the same trace \
             on both sides; 95% CIs from {} batch means per pass (throughput) and from order \
             statistics (percentiles); simulated: closed loops, replications of {} requests after \
             a warm-up of 200 + 4 × users; {cores}{replayed}",
            repeats,
            opts.requests,
            opts.requests,
            BATCHES,
            opts.sim_requests,
            replayed = match saved {
                Some(m) => format!(
                    "; predicted again against the measurements of {} on `{}` ({}), which were kept \
                     (validate --from)",
                    m.machine.date, m.machine.hostname, m.machine.cpu_model
                ),
                None => String::new(),
            }
        ),
        points,
        summary,
        targets,
        wall_s: t0.elapsed().as_secs_f64(),
        measurements: Some(measurements),
    })
}

/// Times a point measured while the host stole more than [`STEAL_LIMIT`] of the CPUs' time
/// is measured again.
const STOLEN_RETRIES: usize = 2;

/// The points measured while the host stole more than [`STEAL_LIMIT`] of the CPUs' time,
/// even after measuring them again: one note naming them.
fn steal_notes(points: &[ValidatedPoint]) -> Vec<String> {
    let stolen: Vec<String> = points
        .iter()
        .filter(|p| p.stolen())
        .map(|p| format!("{} {} ({:.1}%)", p.suite, p.label(), p.host_steal_pct))
        .collect();
    if stolen.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "the host (a virtual machine's) stole over {:.0}% of the CPUs' time while measuring {}, each \
         measured {} times: their measurements are the host's as much as the server's, so they are \
         shown (marked s; column host_steal_pct) but left out of the summary and the targets",
        STEAL_LIMIT * 100.0,
        stolen.join(", "),
        STOLEN_RETRIES + 1
    )]
}

/// Which model of the cores the simulated side used, and why — for the report.
fn cores_model<'a>(scenarios: impl Iterator<Item = &'a Scenario>) -> String {
    let mut slices: Vec<f64> = Vec::new();
    let mut ps = false;
    for sc in scenarios {
        match sc.system.scheduler {
            crate::scenario::Scheduler::Ps => ps = true,
            crate::scenario::Scheduler::Slice => {
                if !slices.contains(&sc.system.slice_ms) {
                    slices.push(sc.system.slice_ms);
                }
            }
        }
    }
    let sliced = || slices.iter().map(|ms| format!("{ms:.2} ms")).collect::<Vec<_>>().join(", ");
    match (ps, slices.is_empty()) {
        (true, true) => "cores simulated as processor sharing (system.scheduler = \"ps\", as the \
                         scenarios say: the queueing formulas' model; \"slice\" runs them as the \
                         kernel's time slices)"
            .into(),
        (false, false) => format!(
            "cores simulated as the kernel's time slices of {} (system.scheduler = \"slice\", as the \
             scenarios say)",
            sliced()
        ),
        _ => format!(
            "cores simulated as processor sharing at some points and as time slices of {} at others \
             (system.scheduler, as each point's scenario says)",
            sliced()
        ),
    }
}

/// A point simulated and ready to measure.
struct Planned {
    suite: String,
    params: Vec<(String, String)>,
    label: String,
    /// The predictions: one for a closed loop, one per pass for an open loop (its trace).
    predicted: Vec<sim::SimReport>,
    /// The scenario each pass measures.
    passes: Vec<Scenario>,
    /// The open-loop scenario's stability (before it became a trace).
    stability: sim::Stability,
    /// A closed loop on several workers (see [`split::wanted`]): the simulated scenario, to
    /// predict again with each measured split.
    split_by: Option<Scenario>,
}

impl Planned {
    fn compare(self, measured: &[MeasureReport]) -> ValidatedPoint {
        let n = self.predicted.len().max(1) as f64;
        let mean = |g: fn(&sim::SimReport) -> f64| self.predicted.iter().map(g).sum::<f64>() / n;
        // Independent predictions: the mean's half-width is √(Σ h²) / n.
        let half = |g: fn(&sim::SimReport) -> f64| {
            self.predicted.iter().map(|r| g(r).powi(2)).sum::<f64>().sqrt() / n
        };
        let windows: Vec<&super::Window> = measured.iter().map(|r| &r.window).collect();
        let rates: Vec<(f64, &super::Window)> =
            measured.iter().map(|r| (r.throughput_rps, &r.window)).collect();
        let capacity = self.stability.capacity_rps;
        let throughput = mean(|r| r.figures.throughput_rps);
        let (split, split_unknown) =
            match self.split_by.as_ref().map(|sc| split::check(sc, measured, &rates, &windows)) {
                None => (None, None),
                Some(Ok(c)) => (Some(c), None),
                Some(Err(why)) => (None, Some(why)),
            };
        let busiest = mean(|r| {
            let u = &r.figures.utilization;
            u.cores.max(u.lock).max(u.threads).max(u.event_loop)
        });
        ValidatedPoint {
            suite: self.suite,
            params: self.params,
            saturated: throughput >= 0.9 * capacity || busiest >= 0.9 || self.stability.unstable,
            unstable: self.stability.unstable,
            capacity_rps: capacity,
            throughput_rps: Compared::new(
                throughput,
                half(|r| r.ci95.throughput_rps),
                spread::throughput(&rates),
            ),
            p50_ms: Compared::new(
                mean(|r| r.figures.latency_ms.p50),
                half(|r| r.ci95.latency_ms.p50),
                spread::quantile_ms(&windows, 0.50),
            ),
            p95_ms: Compared::new(
                mean(|r| r.figures.latency_ms.p95),
                half(|r| r.ci95.latency_ms.p95),
                spread::quantile_ms(&windows, 0.95),
            ),
            p99_ms: Compared::new(
                mean(|r| r.figures.latency_ms.p99),
                half(|r| r.ci95.latency_ms.p99),
                spread::quantile_ms(&windows, 0.99),
            ),
            used_by_fit: false,
            split,
            split_unknown,
            stages: stages::compare(&self.predicted, measured),
            miss: None,
            host_steal_pct: measured.iter().map(|m| m.host_steal_pct).fold(0.0, f64::max),
        }
    }
}

fn load(
    suite: &Suite,
    point: &[Override],
    extra: &[Override],
    label: &str,
) -> Result<Scenario, ValidateError> {
    let all: Vec<Override> = suite.fixed.iter().chain(point).chain(extra).cloned().collect();
    Scenario::load(&suite.file, &all)
        .map_err(|source| ValidateError::Scenario { point: label.into(), source })
}

fn set(path: &str, value: impl Into<toml::Value>) -> Override {
    Override::new(path, value)
}

fn plan_point(
    suite: &Suite,
    point: &[Override],
    params: Vec<(String, String)>,
    opts: &ValidateOptions,
    label: &str,
) -> Result<Planned, ValidateError> {
    let mut extra = Vec::new();
    if let Some(cal) = &opts.calibration {
        let abs = std::path::absolute(cal).unwrap_or_else(|_| cal.clone());
        extra.push(set("cost.calibration", abs.display().to_string()));
    }
    let base = load(suite, point, &extra, label)?;
    // Where the load generator runs, as `measure` will place it: on CPUs of its own when
    // the machine has more than the point's cores, else among the server's.
    let shared = crate::affinity::allowed()
        .map(|allowed| crate::server::CpuPlan::split(&allowed, base.system.cores as usize).shared)
        .unwrap_or(true);
    extra.push(set("clients.shares_cores", shared));
    let base = load(suite, point, &extra, label)?;
    let stability = sim::stability(&base);
    let repeats = opts.repeats.max(1);
    let simulate = |sc: &Scenario| {
        sim::simulate(sc).map_err(|source| ValidateError::Sim { point: label.into(), source })
    };
    let (predicted, passes, split_by) = match base.clients.kind {
        ClientKind::Open => {
            let mut predicted = Vec::new();
            let mut passes = Vec::new();
            for r in 0..repeats {
                let sc = as_trace(&base, opts.requests, base.run.seed.wrapping_add(u64::from(r)))
                    .map_err(|source| ValidateError::Scenario { point: label.into(), source })?;
                predicted.push(simulate(&sc)?);
                passes.push(sc);
            }
            (predicted, passes, None)
        }
        _ => {
            let users = match base.clients.kind {
                ClientKind::Closed => i64::from(base.clients.users),
                _ => 0,
            };
            let mut sim_extra = extra.clone();
            sim_extra.push(set("run.requests", opts.sim_requests as i64));
            sim_extra.push(set("run.warmup_requests", 200 + 4 * users));
            let simulated = load(suite, point, &sim_extra, label)?;
            let predicted = vec![simulate(&simulated)?];
            let split_by = split::wanted(&simulated).then_some(simulated);
            let mut meas_extra = extra;
            meas_extra.push(set("run.requests", opts.requests as i64));
            meas_extra.push(set("run.warmup_requests", 20 + users));
            let measured = load(suite, point, &meas_extra, label)?;
            let passes = (0..repeats)
                .map(|r| {
                    let mut sc = measured.clone();
                    sc.run.seed = sc.run.seed.wrapping_add(u64::from(r));
                    sc
                })
                .collect();
            (predicted, passes, split_by)
        }
    };
    Ok(Planned {
        suite: suite.name.clone(),
        params,
        label: label.into(),
        predicted,
        passes,
        stability,
        split_by,
    })
}

/// The open-loop scenario `sc` as a trace of its first `n` send times, drawn as the load
/// generator draws them from `seed`; the trace is played whole on both sides.
fn as_trace(sc: &Scenario, n: u64, seed: u64) -> Result<Scenario, ScenarioError> {
    let mode = crate::load::Mode::Open {
        rate_rps: sc.clients.rate_rps,
        poisson: sc.clients.arrivals == crate::scenario::Arrivals::Poisson,
    };
    let times =
        crate::load::Schedule::new(&mode, crate::load::Stop::Requests(n), std::time::Duration::ZERO, seed)
            .map(|s| s.map(|t| t.as_secs_f64() * 1e3).collect())
            .unwrap_or_default();
    let seed = i64::try_from(seed)
        .map_err(|_| ScenarioError::invalid("run.seed", format!("must be ≤ {}, got {seed}", i64::MAX)))?;
    // The times are the trace's loaded data, as the loader fills them from a file.
    let mut with_times = sc.clone();
    with_times.clients.trace_ms = times;
    with_times.with(&[set("clients.kind", "trace"), set("run.seed", seed)])
}

/// The default suite on the scenarios in `models`: the three handlers × lock `none` / `gil`
/// × users 1…64 (closed loop); workers 1 vs 2 (`sync`, GIL) at 8 and 32 users; and batching
/// `none` / `static` / `continuous` × output lengths of low and high variance (20 tokens, or
/// 2 or 38 with equal odds) × an open-loop offered load of 50, 100 and 200 req/s.
pub fn default_suites(models: &Path) -> Vec<Suite> {
    let axis = |s: &str| s.parse::<Axis>().expect("the default axes parse");
    let file = models.join("validate.toml");
    vec![
        Suite {
            name: "handlers".into(),
            file: file.clone(),
            fixed: Vec::new(),
            axes: vec![
                axis("worker.handler=sync,async-blocking,async-offload"),
                axis("worker.lock=none,fair-gil"),
                axis("clients.users=1,2,4,8,16,32,64"),
            ],
        },
        Suite {
            name: "workers".into(),
            file,
            fixed: vec![set("worker.handler", "sync"), set("worker.lock", "fair-gil")],
            axes: vec![axis("system.workers=1,2"), axis("clients.users=8,32")],
        },
        Suite {
            name: "batching".into(),
            file: models.join("validate-batching.toml"),
            fixed: Vec::new(),
            axes: vec![
                axis("batching.mode=none,static,continuous"),
                axis("workload.new_tokens=20,{dist=\"empirical\",samples=[2,38]}"),
                axis("clients.rate_rps=50,100,200"),
            ],
        },
    ]
}

/// Whether a calibrated constant enters the simulation of points with these locks: the
/// wake-up constants serve only CPython's GIL, the hand-off only the FIFO locks; the rest
/// serve every point.
fn used_by(constant: &str, locks: &[LockKind]) -> bool {
    match constant {
        "wake_us" | "wake_busy_us" | "signal_us" | "vain_wake_us" | "mutex_wake_us" => {
            locks.contains(&LockKind::Gil)
        }
        "handoff_us" | "switch_us" => locks.iter().any(|l| matches!(l, LockKind::Mutex | LockKind::FairGil)),
        _ => true,
    }
}

/// The committed validation (`validation/validation.json`), read back: a whole validation
/// for the tests of its presentation and of judging several runs.
#[cfg(test)]
pub(crate) fn committed() -> Validation {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("validation/validation.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("validation/validation.json"))
        .expect("a validation")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unstable_constant_marks_only_verdicts_that_use_it() {
        let fair = [LockKind::FairGil, LockKind::None];
        assert!(!used_by("wake_busy_us", &fair), "the wake-ups serve only CPython's GIL");
        assert!(used_by("handoff_us", &fair));
        assert!(used_by("vain_wake_us", &[LockKind::None, LockKind::Gil]));
        assert!(!used_by("handoff_us", &[LockKind::Gil]));
        assert!(used_by("switch_us", &fair) && !used_by("switch_us", &[LockKind::Gil]));
        assert!(used_by("rtt_ms", &[LockKind::None]));
    }

    #[test]
    fn an_open_loop_point_is_the_load_generators_own_schedule_as_a_trace() {
        let text = "[clients]\nkind = \"open\"\nrate_rps = 50\narrivals = \"poisson\"\n";
        let sc = Scenario::parse(text, Path::new("t.toml"), Path::new("."), &[]).expect("a scenario");
        let t = as_trace(&sc, 200, 7).expect("a trace");
        assert_eq!(t.clients.kind, ClientKind::Trace);
        let mode = crate::load::Mode::Open { rate_rps: 50.0, poisson: true };
        let sends: Vec<f64> =
            crate::load::Schedule::new(&mode, crate::load::Stop::Requests(200), std::time::Duration::ZERO, 7)
                .expect("an open schedule")
                .map(|d| d.as_secs_f64() * 1e3)
                .collect();
        assert_eq!(t.clients.trace_ms, sends);
        assert_ne!(
            as_trace(&sc, 200, 8).expect("a trace").clients.trace_ms,
            sends,
            "each pass draws its own arrivals"
        );
    }

    #[test]
    fn the_report_says_how_the_cores_were_simulated() {
        let ps = Scenario::defaults();
        let mut sliced = Scenario::defaults();
        sliced.system.scheduler = crate::scenario::Scheduler::Slice;
        sliced.system.slice_ms = 3.97;
        assert!(
            super::cores_model([&ps].into_iter()).contains("processor sharing (system.scheduler = \"ps\"")
        );
        assert!(super::cores_model([&sliced].into_iter()).contains("time slices of 3.97 ms"));
        let mixed = super::cores_model([&ps, &sliced].into_iter());
        assert!(mixed.contains("processor sharing at some points") && mixed.contains("3.97 ms"), "{mixed}");
    }
}
