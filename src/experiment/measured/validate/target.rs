//! `servesim validate --target`: the same predicted-vs-measured report against a service of
//! your own, calibrated from outside; the points the calibration used are marked and left
//! out of the targets.
//!
//! ```text
//!  calibrated scenario (costs + [target]) ─► sweep: system.workers 1, 2 (when the target
//!     takes it) × worker.handler (when it takes it) × clients.users 1…64
//!  ─► validate (restarting the service through target.start when a knob changes)
//!  ─► points at the calibration's knobs and ramp users marked `used_by_fit`
//!  ─► summary and targets over the held-out points: throughput median ≤ 10%, p95
//!     median ≤ 15%, the winning handler right at every concurrency ≥ 2
//! ```

use super::split::balancer_said;
use super::summary::{ErrorSummary, Target, metric, summarize};
use super::{PointLimits, Suite, ValidateError, ValidateOptions, ValidatedPoint, Validation, validate};
use crate::experiment::grid::{Axis, Grid, GridError};
use crate::experiment::measured::target::{ServiceGuard, TargetCalibration};
use crate::load::PID_HEADER;
use crate::scenario::{Balancer, Override, Scenario, ScenarioError};
use std::collections::BTreeMap;
use std::path::Path;

/// Users of the default sweep.
pub const DEFAULT_USERS: &str = "clients.users=1,2,4,8,16,32,64";

/// The default sweep over what the target can set: the handler (its route), the users,
/// and the workers.
pub fn default_axes(sc: &Scenario) -> Vec<Axis> {
    let knobs = sc.target.as_ref().map(|t| t.knobs()).unwrap_or_default();
    let axis = |s: &str| s.parse::<Axis>().expect("the default axes parse");
    // Workers outermost: the service restarts only when they change.
    let mut out = Vec::new();
    if knobs.iter().any(|k| k == "system.workers") {
        out.push(axis("system.workers=1,2"));
    }
    if knobs.iter().any(|k| k == "worker.handler") {
        out.push(axis("worker.handler=sync,async-blocking,async-offload"));
    }
    out.push(axis(DEFAULT_USERS));
    out
}

/// The axes `validate --target` sweeps: `axes`, or [`default_axes`] when none is given;
/// refused if an override of `fixed` (`--set`) gives a field they sweep, which every point
/// would ignore.
pub fn target_axes(sc: &Scenario, axes: &[Axis], fixed: &[Override]) -> Result<Vec<Axis>, ValidateError> {
    if !axes.is_empty() {
        Grid::new(axes.to_vec())?.check_fixed(fixed)?;
        return Ok(axes.to_vec());
    }
    let axes = default_axes(sc);
    match Grid::new(axes.clone())?.check_fixed(fixed) {
        Err(GridError::SetAndSwept { set, axis }) => Err(ValidateError::SetAndDefaultSwept { set, axis }),
        other => other.map(|()| axes).map_err(ValidateError::from),
    }
}

/// Validates the calibrated target scenario `file` over `axes` (default: [`default_axes`]).
pub fn validate_target(
    file: &Path,
    fixed: &[Override],
    axes: &[Axis],
    cal: Option<&TargetCalibration>,
    opts: &ValidateOptions,
    progress: impl FnMut(usize, usize, &str),
) -> Result<Validation, ValidateError> {
    let scenario_err = |source: ScenarioError| ValidateError::Scenario { point: "the target".into(), source };
    let sc = Scenario::load(file, fixed).map_err(scenario_err)?;
    let Some(spec) = sc.target.clone() else {
        return Err(scenario_err(ScenarioError::invalid(
            "target",
            "is missing: validate --target needs a scenario with a [target] section",
        )));
    };
    let axes = target_axes(&sc, axes, fixed)?;
    for a in &axes {
        spec.check_settable(&a.path).map_err(scenario_err)?;
    }
    let suite = Suite {
        // A name for file names: `x.calibrated.toml` → `x-calibrated`.
        name: file.file_stem().map_or_else(|| "target".into(), |s| s.to_string_lossy().replace('.', "-")),
        file: file.to_owned(),
        fixed: fixed.to_vec(),
        axes,
    };
    let _guard = ServiceGuard;
    let mut v = validate(&[suite], &ValidateOptions { calibration: None, ..opts.clone() }, progress)?;
    if let Some(cal) = cal {
        let steps: Vec<(String, String)> =
            cal.ramp.iter().map(|r| (r.users.to_string(), r.cores.to_string())).collect();
        for p in &mut v.points {
            p.used_by_fit = is_calibration_point(p, &sc, &cal.knobs, &steps);
        }
        v.calibration = Some(format!("target calibration of {} ({})", cal.scenario, cal.machine.date));
    }
    super::stages::name_misses(&mut v.points, TARGET_LIMITS);
    for p in v.points.iter_mut().filter(|p| p.used_by_fit) {
        p.miss = None;
    }
    let held_out: Vec<ValidatedPoint> =
        v.points.iter().filter(|p| !p.used_by_fit && !p.stolen()).cloned().collect();
    v.summary = summarize(&held_out);
    if held_out.is_empty() {
        v.targets.clear();
        v.notes.push(NO_HELD_OUT.into());
    } else {
        v.targets = target_targets(&v.summary, &held_out);
    }
    v.notes.extend(worker_notes(&sc, &v.points));
    Ok(v)
}

/// What the report must say of the points on several workers: how the simulated side
/// balanced them, and at which points the users per worker are unknown, and why.
fn worker_notes(sc: &Scenario, points: &[ValidatedPoint]) -> Vec<String> {
    let value = |p: &ValidatedPoint, k: &str| p.params.iter().find(|(pk, _)| pk == k).map(|(_, v)| v.clone());
    let several: Vec<&ValidatedPoint> = points
        .iter()
        .filter(|p| {
            value(p, "system.workers").and_then(|v| v.parse::<u32>().ok()).unwrap_or(sc.system.workers) > 1
        })
        .collect();
    if several.is_empty() {
        return Vec::new();
    }
    let (balancer, accept) = match value(several[0], "system.balancer") {
        Some(b) => (format!("system.balancer = {b}, as the point says"), b.contains("accept")),
        None => (
            format!("system.balancer = {}, as the scenario says", balancer_said(sc.system.balancer)),
            sc.system.balancer == Balancer::Accept,
        ),
    };
    let how = if accept {
        ""
    } else {
        ": servesim is not told how the service picks a worker (uvicorn's workers share one \
         listening socket, and whichever wakes first accepts a connection and answers all its \
         requests: system.balancer = \"accept\" says so)"
    };
    let mut out = vec![format!(
        "with system.workers > 1 the simulated side spreads the load by {balancer}{how}. Each \
         closed-loop point on several workers is also predicted with the users per worker its runs \
         had, read from the {PID_HEADER} header of each user's responses (see the workers section); \
         the hash's draws, which model SO_REUSEPORT, are not predicted for a target"
    )];
    let mut unknown: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for p in &several {
        if let Some(why) = &p.split_unknown {
            unknown.entry(why).or_default().push(p.label());
        }
    }
    if !unknown.is_empty() {
        let n: usize = unknown.values().map(Vec::len).sum();
        let why: Vec<String> =
            unknown.iter().map(|(why, at)| format!("{why} (at {})", at.join("; "))).collect();
        out.push(format!(
            "the users per worker are unknown at {n} of {} points on several workers, which are \
             predicted by the balancer alone: {}",
            several.len(),
            why.join("; ")
        ));
    }
    out
}

/// The verdict when every point was one the calibration measured.
pub(crate) const NO_HELD_OUT: &str = "no target judged: every point is one the calibration measured (marked c); \
     add points beyond its ramp, e.g. --sweep clients.users=3,6,12 or another handler";

/// Whether `p` ran with the calibration's knobs at one of its ramp's steps (users, cores).
fn is_calibration_point(
    p: &ValidatedPoint,
    sc: &Scenario,
    knobs: &BTreeMap<String, String>,
    steps: &[(String, String)],
) -> bool {
    let base = crate::experiment::measured::target::knobs_of(sc);
    let value = |k: &str| {
        p.params.iter().find(|(pk, _)| pk == k).map(|(_, v)| v.clone()).or_else(|| base.get(k).cloned())
    };
    let users = value("clients.users").unwrap_or_else(|| sc.clients.users.to_string());
    let cores = value("system.cores").unwrap_or_default();
    knobs.iter().filter(|(k, _)| *k != "system.cores").all(|(k, v)| value(k).as_ref() == Some(v))
        && steps.iter().any(|(u, c)| *u == users && *c == cores)
}

/// A target's limits on the median |error| of throughput and p95 over its held-out points
/// (%), which each held-out point is held to as well.
const TARGET_LIMITS: PointLimits = PointLimits { throughput_pct: 10.0, p95_pct: 15.0 };

/// The targets of a target's validation, over its held-out points.
pub(super) fn target_targets(summary: &[(String, ErrorSummary)], held_out: &[ValidatedPoint]) -> Vec<Target> {
    let get = |n: &str| metric(summary, n);
    let t = Target::check;
    let mut out = vec![
        t(
            "median |error| throughput (held out)",
            TARGET_LIMITS.throughput_pct,
            get("throughput").median_abs_pct,
        ),
        t("median |error| p95 (held out)", TARGET_LIMITS.p95_pct, get("p95").median_abs_pct),
    ];
    if let Some(wrong) = winner_wrong_pct(held_out) {
        out.push(t("handler winner wrong, users ≥ 2 (% of concurrencies)", 0.0, wrong));
    }
    out
}

/// Of the concurrencies ≥ 2 with several handlers measured, the share (%) where the
/// predicted fastest handler is not among the measured fastest — those whose measured
/// throughput CI reaches the best's — or `None` without a handler axis.
pub fn winner_wrong_pct(points: &[ValidatedPoint]) -> Option<f64> {
    let mut groups: BTreeMap<String, Vec<&ValidatedPoint>> = BTreeMap::new();
    for p in points {
        if !p.params.iter().any(|(k, _)| k == "worker.handler") {
            continue;
        }
        let users =
            p.params.iter().find(|(k, _)| k == "clients.users").and_then(|(_, v)| v.parse::<u32>().ok());
        if users.is_some_and(|u| u < 2) {
            continue;
        }
        let key: Vec<String> =
            p.params.iter().filter(|(k, _)| k != "worker.handler").map(|(k, v)| format!("{k}={v}")).collect();
        groups.entry(key.join(" ")).or_default().push(p);
    }
    let groups: Vec<&Vec<&ValidatedPoint>> = groups.values().filter(|g| g.len() >= 2).collect();
    if groups.is_empty() {
        return None;
    }
    let wrong = groups
        .iter()
        .filter(|g| {
            let best =
                g.iter().max_by(|a, b| a.throughput_rps.measured.total_cmp(&b.throughput_rps.measured));
            let pred =
                g.iter().max_by(|a, b| a.throughput_rps.predicted.total_cmp(&b.throughput_rps.predicted));
            match (best, pred) {
                (Some(b), Some(p)) => p.throughput_rps.measured_hi < b.throughput_rps.measured_lo,
                _ => false,
            }
        })
        .count();
    Some(100.0 * wrong as f64 / groups.len() as f64)
}
