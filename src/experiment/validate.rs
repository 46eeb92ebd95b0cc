//! `servesim validate`: every point of a sweep predicted by the simulator and measured on the
//! real server, side by side, with errors, plots and a summary against the targets.
//!
//! ```text
//!  calibration (once) ─► each point: scenario + point's --set + cost.calibration
//!        ├─► simulate: long steady-state run, R replications → mean ± 95% CI
//!        └─► measure: the real server, K repeats → mean, min..max
//!  → table, CSV, JSON, plots (predicted band, measured error bars), report.md, summary
//! ```
//!
//! The simulator runs each point long (`sim_requests` per replication) so that its figure
//! is the steady state; the real server runs it short (`requests` per repeat, after a
//! warm-up that grows with the number of users) and repeats it to show its spread. No
//! figure is fitted per point: every point uses the same calibration.

use super::grid::{Axis, Grid, show};
use super::measure::{MeasureError, MeasureOptions, MeasureReport, measure};
use super::report::{WriteError, write_all};
use crate::plot::{Chart, Point, Series, SeriesKind};
use crate::scenario::{ClientKind, Override, Scenario, ScenarioError};
use crate::sim::{self, SimError};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

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
    Grid(#[from] super::grid::GridError),
    /// Outputs could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A plot could not be drawn.
    #[error("plot: {0}")]
    Plot(String),
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
}

impl Default for ValidateOptions {
    fn default() -> Self {
        Self {
            measure: MeasureOptions::default(),
            calibration: None,
            requests: 200,
            repeats: 2,
            sim_requests: 4000,
        }
    }
}

/// A figure predicted with its CI and measured with its spread, and the relative error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Compared {
    /// Predicted (mean of replications).
    pub predicted: f64,
    /// Half-width of the prediction's 95% CI.
    pub predicted_ci95: f64,
    /// Measured (mean of repeats).
    pub measured: f64,
    /// Smallest measured repeat.
    pub measured_min: f64,
    /// Largest measured repeat.
    pub measured_max: f64,
    /// (predicted − measured) / measured [%].
    pub error_pct: f64,
}

impl Compared {
    fn new(predicted: f64, ci: f64, measured: &[f64]) -> Self {
        let m = measured.iter().sum::<f64>() / measured.len().max(1) as f64;
        let min = measured.iter().copied().fold(f64::INFINITY, f64::min);
        let max = measured.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Self {
            predicted,
            predicted_ci95: ci,
            measured: m,
            measured_min: min,
            measured_max: max,
            error_pct: if m > 0.0 { 100.0 * (predicted - m) / m } else { f64::NAN },
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
    /// Whether the prediction is within 10% of the capacity bound (saturated).
    pub saturated: bool,
    /// Whether an open system is offered at least its capacity bound: queues grow for as
    /// long as the run lasts, so latencies depend on its length and are not compared.
    #[serde(default)]
    pub unstable: bool,
    /// The simulator's capacity bound [req/s].
    pub capacity_rps: f64,
    /// Throughput [req/s].
    pub throughput_rps: Compared,
    /// Median latency [ms].
    pub p50_ms: Compared,
    /// 95th percentile latency [ms].
    pub p95_ms: Compared,
    /// 99th percentile latency [ms].
    pub p99_ms: Compared,
}

impl ValidatedPoint {
    /// ` *` when saturated, ` !` when unstable, else nothing.
    fn mark(&self) -> &'static str {
        match (self.unstable, self.saturated) {
            (true, _) => " !",
            (false, true) => " *",
            _ => "",
        }
    }

    /// `a=1 b=x`.
    pub fn label(&self) -> String {
        self.params.iter().map(|(k, v)| format!("{}={v}", short(k))).collect::<Vec<_>>().join(" ")
    }

    fn metrics(&self) -> [(&'static str, &Compared); 4] {
        [
            ("throughput", &self.throughput_rps),
            ("p50", &self.p50_ms),
            ("p95", &self.p95_ms),
            ("p99", &self.p99_ms),
        ]
    }
}

fn short(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// Median and largest |error| of one metric.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorSummary {
    /// Points counted.
    pub points: usize,
    /// Median |error| [%].
    pub median_abs_pct: f64,
    /// Largest |error| [%].
    pub max_abs_pct: f64,
}

impl ErrorSummary {
    fn of(errors: impl Iterator<Item = f64>) -> Self {
        let mut e: Vec<f64> = errors.filter(|x| x.is_finite()).map(f64::abs).collect();
        e.sort_by(f64::total_cmp);
        let median = match e.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => e[n / 2],
            n => (e[n / 2 - 1] + e[n / 2]) / 2.0,
        };
        Self { points: e.len(), median_abs_pct: median, max_abs_pct: e.last().copied().unwrap_or(f64::NAN) }
    }
}

/// A target and whether it was met.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// What is compared.
    pub name: String,
    /// The limit [%].
    pub limit_pct: f64,
    /// The value reached [%].
    pub value_pct: f64,
    /// `value ≤ limit`.
    pub met: bool,
}

/// A whole validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    /// Where and when it ran.
    pub machine: crate::scenario::Machine,
    /// The calibration used, if one was given.
    pub calibration: Option<String>,
    /// Requests per measured repeat, repeats, requests per simulated replication.
    pub method: String,
    /// Every point.
    pub points: Vec<ValidatedPoint>,
    /// |error| of each metric over every point.
    pub summary: Vec<(String, ErrorSummary)>,
    /// The targets.
    pub targets: Vec<Target>,
    /// Wall time [s].
    pub wall_s: f64,
}

/// Validates every point of every suite; `progress(done, total, label)` after each
/// measurement.
///
/// Every point is simulated first; then the measurements run in `repeats` passes over all
/// points, so that a slow drift of the machine (another tenant, the clock) spreads over
/// every point's repeats instead of biasing whichever points ran during it.
pub fn validate(
    suites: &[Suite],
    opts: &ValidateOptions,
    mut progress: impl FnMut(usize, usize, &str),
) -> Result<Validation, ValidateError> {
    let t0 = std::time::Instant::now();
    let grids: Vec<Grid> = suites.iter().map(|s| Grid::new(s.axes.clone())).collect::<Result<_, _>>()?;
    let mut todo = Vec::new();
    for (suite, grid) in suites.iter().zip(&grids) {
        for i in 0..grid.len() {
            todo.push((suite, grid.point(i)));
        }
    }
    let repeats = opts.repeats.max(1) as usize;
    let total = todo.len() * repeats;
    progress(0, total, "simulating every point");
    // The simulations, in parallel: each is deterministic, whatever the order.
    let planned: Vec<Planned> = todo
        .par_iter()
        .map(|(suite, point)| {
            let params: Vec<(String, String)> =
                point.iter().map(|o| (o.path.clone(), show(&o.value))).collect();
            let label = params.iter().map(|(k, v)| format!("{}={v}", short(k))).collect::<Vec<_>>().join(" ");
            plan_point(suite, point, params, opts, &label)
        })
        .collect::<Result<_, _>>()?;
    let mut measured: Vec<Vec<MeasureReport>> = vec![Vec::with_capacity(repeats); planned.len()];
    for r in 0..repeats {
        for (i, p) in planned.iter().enumerate() {
            progress(r * planned.len() + i, total, &format!("{} {}", p.suite, p.label));
            let mut sc = p.measured.clone();
            sc.run.seed = sc.run.seed.wrapping_add(r as u64);
            measured[i].push(
                measure(&sc, &opts.measure)
                    .map_err(|source| ValidateError::Measure { point: p.label.clone(), source })?,
            );
        }
    }
    progress(total, total, "done");
    let points: Vec<ValidatedPoint> = planned.into_iter().zip(&measured).map(|(p, m)| p.compare(m)).collect();
    let summary = summarize(&points);
    let targets = targets(&points, &summary);
    Ok(Validation {
        machine: super::calibrate::machine(),
        calibration: opts.calibration.as_ref().map(|p| p.display().to_string()),
        method: format!(
            "measured: {} passes over the points, {} requests per point and pass after a warm-up of \
             20 + 2 × users; simulated: replications of {} requests after a warm-up of 200 + 4 × users",
            opts.repeats, opts.requests, opts.sim_requests
        ),
        points,
        summary,
        targets,
        wall_s: t0.elapsed().as_secs_f64(),
    })
}

/// A point simulated and ready to measure.
struct Planned {
    suite: String,
    params: Vec<(String, String)>,
    label: String,
    predicted: sim::SimReport,
    measured: Scenario,
}

impl Planned {
    fn compare(self, measured: &[MeasureReport]) -> ValidatedPoint {
        let (f, ci) = (&self.predicted.figures, &self.predicted.ci95);
        let m = |g: fn(&MeasureReport) -> f64| measured.iter().map(g).collect::<Vec<_>>();
        let capacity = self.predicted.stability.capacity_rps;
        ValidatedPoint {
            suite: self.suite,
            params: self.params,
            saturated: f.throughput_rps >= 0.9 * capacity || self.predicted.stability.unstable,
            unstable: self.predicted.stability.unstable,
            capacity_rps: capacity,
            throughput_rps: Compared::new(f.throughput_rps, ci.throughput_rps, &m(|r| r.throughput_rps)),
            p50_ms: Compared::new(f.latency_ms.p50, ci.latency_ms.p50, &m(|r| r.latency_ms.p50)),
            p95_ms: Compared::new(f.latency_ms.p95, ci.latency_ms.p95, &m(|r| r.latency_ms.p95)),
            p99_ms: Compared::new(f.latency_ms.p99, ci.latency_ms.p99, &m(|r| r.latency_ms.p99)),
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
    Override { path: path.into(), value: value.into() }
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
    let users = match base.clients.kind {
        ClientKind::Closed => i64::from(base.clients.users),
        _ => 0,
    };
    let mut sim_extra = extra.clone();
    sim_extra.push(set("run.requests", opts.sim_requests as i64));
    sim_extra.push(set("run.warmup_requests", 200 + 4 * users));
    let sim_sc = load(suite, point, &sim_extra, label)?;
    let predicted =
        sim::simulate(&sim_sc).map_err(|source| ValidateError::Sim { point: label.into(), source })?;
    let mut meas_extra = extra;
    meas_extra.push(set("run.requests", opts.requests as i64));
    meas_extra.push(set("run.warmup_requests", 20 + 2 * users));
    let measured = load(suite, point, &meas_extra, label)?;
    Ok(Planned { suite: suite.name.clone(), params, label: label.into(), predicted, measured })
}

fn summarize(points: &[ValidatedPoint]) -> Vec<(String, ErrorSummary)> {
    let mut out = Vec::new();
    for (i, name) in ["throughput", "p50", "p95", "p99"].iter().enumerate() {
        let stable = points.iter().filter(|p| !p.unstable);
        out.push((name.to_string(), ErrorSummary::of(stable.map(|p| p.metrics()[i].1.error_pct))));
    }
    out.push((
        "throughput below saturation".into(),
        ErrorSummary::of(points.iter().filter(|p| !p.saturated).map(|p| p.throughput_rps.error_pct)),
    ));
    out
}

fn targets(points: &[ValidatedPoint], summary: &[(String, ErrorSummary)]) -> Vec<Target> {
    let get = |n: &str| summary.iter().find(|(k, _)| k == n).map(|(_, s)| *s).unwrap_or_default();
    let t = |name: &str, limit: f64, value: f64| Target {
        name: name.into(),
        limit_pct: limit,
        value_pct: value,
        met: value <= limit,
    };
    let _ = points;
    vec![
        t("median |error| throughput", 3.0, get("throughput").median_abs_pct),
        t("median |error| p95", 8.0, get("p95").median_abs_pct),
        t("max |error| throughput below saturation", 10.0, get("throughput below saturation").max_abs_pct),
    ]
}

impl Validation {
    /// The table and summary, as text.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<44} {:>22} {:>22} {:>22} {:>22}",
            "point", "throughput req/s", "p50 ms", "p95 ms", "p99 ms"
        );
        let _ = writeln!(s, "{:<44} {:>22} {:>22} {:>22} {:>22}", "", "pred / meas / err", "", "", "");
        for p in &self.points {
            let _ = write!(s, "{:<44}", format!("{} {}{}", p.suite, p.label(), p.mark()));
            for (_, c) in p.metrics() {
                let _ = write!(
                    s,
                    " {:>22}",
                    format!("{:.1}/{:.1}/{:+.1}%", c.predicted, c.measured, c.error_pct)
                );
            }
            s.push('\n');
        }
        let _ = writeln!(
            s,
            "(* saturated: predicted throughput ≥ 90% of the capacity bound; ! unstable: offered \
             load ≥ the capacity bound, queues grow with the run's length, not in the summary)\n"
        );
        s.push_str(&self.summary_text());
        s
    }

    /// Median and max |error| per metric, and the targets.
    pub fn summary_text(&self) -> String {
        let mut s = String::new();
        let _ =
            writeln!(s, "{:<30} {:>7} {:>16} {:>14}", "metric", "points", "median |error|", "max |error|");
        for (name, e) in &self.summary {
            let _ = writeln!(
                s,
                "{name:<30} {:>7} {:>15.1}% {:>13.1}%",
                e.points, e.median_abs_pct, e.max_abs_pct
            );
        }
        for t in &self.targets {
            let _ = writeln!(
                s,
                "target: {:<42} ≤ {:>4.1}%  got {:>5.1}%  {}",
                t.name,
                t.limit_pct,
                t.value_pct,
                if t.met { "met" } else { "MISSED" }
            );
        }
        s
    }

    /// A markdown report: machine, method, summary, and the full table.
    pub fn markdown(&self, plots: &[PathBuf]) -> String {
        let m = &self.machine;
        let mut s = String::from("# servesim validation report\n\n");
        let _ = writeln!(
            s,
            "Run {} on `{}` ({}, {} CPUs, {}); {:.0} s.\n\n{}.\n",
            m.date, m.hostname, m.cpu_model, m.cpus, m.os, self.wall_s, self.method
        );
        if let Some(c) = &self.calibration {
            let _ = writeln!(s, "Calibration: `{c}`.\n");
        }
        let _ = writeln!(
            s,
            "## Summary\n\n| metric | points | median \\|error\\| | max \\|error\\| |\n|---|---:|---:|---:|"
        );
        for (name, e) in &self.summary {
            let _ =
                writeln!(s, "| {name} | {} | {:.1}% | {:.1}% |", e.points, e.median_abs_pct, e.max_abs_pct);
        }
        let _ = writeln!(s, "\n| target | limit | got | |\n|---|---:|---:|---|");
        for t in &self.targets {
            let _ = writeln!(
                s,
                "| {} | ≤ {:.0}% | {:.1}% | {} |",
                t.name,
                t.limit_pct,
                t.value_pct,
                if t.met { "met" } else { "missed" }
            );
        }
        if !plots.is_empty() {
            s.push_str("\n## Plots\n\n");
            for p in plots.iter().filter(|p| p.extension().is_some_and(|e| e == "svg")) {
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let _ = writeln!(s, "![{name}](../plots/{name})\n");
            }
        }
        s.push_str("\n## Every point\n\nPredicted ± 95% CI (simulator), measured mean [min, max] over repeats (real server), error = (predicted − measured) / measured. `*`: saturated; `!`: unstable (offered load ≥ capacity, so queues grow with the run's length; not in the summary).\n\n");
        s.push_str("| suite | point | throughput req/s | err | p50 ms | err | p95 ms | err | p99 ms | err |\n|---|---|---|---:|---|---:|---|---:|---|---:|\n");
        for p in &self.points {
            let _ = write!(s, "| {} | {}{} |", p.suite, p.label(), p.mark());
            for (_, c) in p.metrics() {
                let _ = write!(
                    s,
                    " {:.1} ± {:.1} vs {:.1} [{:.1}, {:.1}] | {:+.1}% |",
                    c.predicted, c.predicted_ci95, c.measured, c.measured_min, c.measured_max, c.error_pct
                );
            }
            s.push('\n');
        }
        s
    }

    /// One CSV row per point: the swept parameters, then each metric's six columns.
    pub fn csv(&self) -> String {
        let mut keys: Vec<String> = Vec::new();
        for p in &self.points {
            for (k, _) in &p.params {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
        let mut s = String::from("suite,");
        for k in &keys {
            let _ = write!(s, "{k},");
        }
        s.push_str("saturated,unstable,capacity_rps");
        for m in ["throughput_rps", "p50_ms", "p95_ms", "p99_ms"] {
            for c in ["predicted", "predicted_ci95", "measured", "measured_min", "measured_max", "error_pct"]
            {
                let _ = write!(s, ",{m}_{c}");
            }
        }
        s.push('\n');
        for p in &self.points {
            let _ = write!(s, "{},", p.suite);
            for k in &keys {
                let v = p.params.iter().find(|(pk, _)| pk == k).map_or("", |(_, v)| v.as_str());
                let _ = write!(s, "{},", csv_field(v));
            }
            let _ = write!(s, "{},{},{}", p.saturated, p.unstable, p.capacity_rps);
            for (_, c) in p.metrics() {
                let _ = write!(
                    s,
                    ",{},{},{},{},{},{}",
                    c.predicted, c.predicted_ci95, c.measured, c.measured_min, c.measured_max, c.error_pct
                );
            }
            s.push('\n');
        }
        s
    }

    /// Throughput and p95 charts per suite: predicted curves with CI bands, measured points
    /// with min–max bars, one color per configuration. Returns `(stem, chart)` pairs.
    pub fn charts(&self, plot_dir: &Path) -> Vec<(PathBuf, Chart)> {
        let mut suites: Vec<&str> = Vec::new();
        for p in &self.points {
            if !suites.contains(&p.suite.as_str()) {
                suites.push(&p.suite);
            }
        }
        let mut out = Vec::new();
        for suite in suites {
            let pts: Vec<&ValidatedPoint> = self.points.iter().filter(|p| p.suite == suite).collect();
            let Some(x_key) = x_axis(&pts) else { continue };
            let metrics: [Metric; 2] = [
                ("throughput", "throughput [req/s]", |p| &p.throughput_rps),
                ("p95", "p95 latency [ms]", |p| &p.p95_ms),
            ];
            for (name, y_label, get) in metrics {
                let mut groups: Vec<(String, Vec<&ValidatedPoint>)> = Vec::new();
                for p in &pts {
                    let g = p
                        .params
                        .iter()
                        .filter(|(k, _)| *k != x_key)
                        .map(|(k, v)| format!("{}={v}", short(k)))
                        .collect::<Vec<_>>()
                        .join(" ");
                    match groups.iter_mut().find(|(k, _)| *k == g) {
                        Some((_, v)) => v.push(p),
                        None => groups.push((g, vec![p])),
                    }
                }
                let xs: Vec<f64> = pts.iter().filter_map(|p| x_of(p, &x_key)).collect();
                let (lo, hi) = xs.iter().fold((f64::INFINITY, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
                let mut chart = Chart {
                    title: format!("{suite}: {name}, predicted (band: 95% CI) vs measured (bars: min–max)"),
                    x_label: x_key.clone(),
                    y_label: y_label.into(),
                    log_x: lo > 0.0 && hi / lo >= 8.0,
                    series: Vec::new(),
                };
                for (color, (g, gp)) in groups.iter().enumerate() {
                    let mut gp = gp.clone();
                    gp.sort_by(|a, b| {
                        x_of(a, &x_key).unwrap_or(0.0).total_cmp(&x_of(b, &x_key).unwrap_or(0.0))
                    });
                    let label = if g.is_empty() { String::new() } else { format!("{g} ") };
                    chart.series.push(Series {
                        label: format!("{label}predicted"),
                        kind: SeriesKind::Band,
                        color,
                        points: gp
                            .iter()
                            .map(|p| {
                                let c = get(p);
                                Point::with_half_width(
                                    x_of(p, &x_key).unwrap_or(0.0),
                                    c.predicted,
                                    c.predicted_ci95,
                                )
                            })
                            .collect(),
                    });
                    chart.series.push(Series {
                        label: format!("{label}measured"),
                        kind: SeriesKind::Points,
                        color,
                        points: gp
                            .iter()
                            .map(|p| {
                                let c = get(p);
                                Point {
                                    x: x_of(p, &x_key).unwrap_or(0.0),
                                    y: c.measured,
                                    lo: c.measured_min,
                                    hi: c.measured_max,
                                }
                            })
                            .collect(),
                    });
                }
                out.push((plot_dir.join(format!("validation-{suite}-{name}")), chart));
            }
        }
        out
    }

    /// Writes `dir/validation.{csv,json}`, `dir/report.md` and the plots under `plot_dir`;
    /// returns every path written.
    pub fn write(&self, dir: &Path, plot_dir: &Path) -> Result<Vec<PathBuf>, ValidateError> {
        let mut plots = Vec::new();
        for (stem, chart) in self.charts(plot_dir) {
            plots.extend(chart.save(&stem).map_err(|e| ValidateError::Plot(e.to_string()))?);
        }
        let json = serde_json::to_vec_pretty(self).unwrap_or_default();
        let files = vec![
            (dir.join("validation.csv"), self.csv().into_bytes()),
            (dir.join("validation.json"), json),
            (dir.join("report.md"), self.markdown(&plots).into_bytes()),
        ];
        write_all(&files)?;
        Ok(files.into_iter().map(|(p, _)| p).chain(plots).collect())
    }
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
                axis("worker.lock=none,gil"),
                axis("clients.users=1,2,4,8,16,32,64"),
            ],
        },
        Suite {
            name: "workers".into(),
            file,
            fixed: vec![set("worker.handler", "sync"), set("worker.lock", "gil")],
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

fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n']) { format!("\"{}\"", v.replace('"', "\"\"")) } else { v.to_owned() }
}

fn x_of(p: &ValidatedPoint, key: &str) -> Option<f64> {
    p.params.iter().find(|(k, _)| k == key).and_then(|(_, v)| v.parse().ok())
}

/// One plotted metric: file-name stem, axis label and accessor.
type Metric = (&'static str, &'static str, fn(&ValidatedPoint) -> &Compared);

/// The numeric axis with the most distinct values.
fn x_axis(points: &[&ValidatedPoint]) -> Option<String> {
    let first = points.first()?;
    first
        .params
        .iter()
        .map(|(k, _)| k)
        .filter(|k| points.iter().all(|p| x_of(p, k).is_some()))
        .max_by_key(|k| {
            let mut v: Vec<u64> = points.iter().filter_map(|p| x_of(p, k)).map(f64::to_bits).collect();
            v.sort_unstable();
            v.dedup();
            v.len()
        })
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_relative_to_the_measurement_and_summaries_use_absolute_values() {
        let c = Compared::new(110.0, 1.0, &[95.0, 105.0]);
        assert_eq!((c.measured, c.measured_min, c.measured_max), (100.0, 95.0, 105.0));
        assert!((c.error_pct - 10.0).abs() < 1e-12);
        let s = ErrorSummary::of([-4.0, 1.0, 2.0, f64::NAN].into_iter());
        assert_eq!((s.points, s.median_abs_pct, s.max_abs_pct), (3, 2.0, 4.0));
    }
}
