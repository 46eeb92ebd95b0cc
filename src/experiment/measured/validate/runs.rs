//! Several runs of one validation judged together (`validate --from A --from B …`).
//!
//! On a shared machine one run cannot judge a model: the machine itself moves between runs
//! by more than the targets. Each run is predicted on its own — its own measurements, its
//! own calibration — and judged on its own; then every point is taken over the runs: the
//! median of what was measured and of what was predicted, with both ranges, and as its error
//! the median of the runs' own errors (each run's prediction against that run's
//! measurement). The targets are judged on those medians, and each run's own verdict is
//! shown beside them, so a verdict that holds in one run of three says so.
//!
//! ```text
//!  run 1: measured₁, calibration₁ ─► errors₁ ─► targets₁ ─┐
//!  run 2: measured₂, calibration₂ ─► errors₂ ─► targets₂ ─┼─► each point: median error over
//!  run 3: measured₃, calibration₃ ─► errors₃ ─► targets₃ ─┘   the runs ─► targets over the runs
//! ```

use super::present::csv_field;
use super::summary::{ErrorSummary, Target, summarize, targets};
use super::target::target_targets;
use super::{Compared, ValidateError, ValidatedPoint, Validation};
use crate::experiment::report::Staged;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One figure of one point over the runs that measured it cleanly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct OverRuns {
    /// Runs counted.
    pub runs: usize,
    /// Median measured, and the range over the runs.
    pub measured: f64,
    /// Least measured.
    pub measured_min: f64,
    /// Most measured.
    pub measured_max: f64,
    /// Median predicted (each run predicted from its own calibration), and the range.
    pub predicted: f64,
    /// Least predicted.
    pub predicted_min: f64,
    /// Most predicted.
    pub predicted_max: f64,
    /// Median of the runs' own errors, (predicted − measured) / measured (%).
    pub error_pct: f64,
    /// Least of the runs' own errors (%).
    pub error_min_pct: f64,
    /// Most of the runs' own errors (%).
    pub error_max_pct: f64,
}

impl OverRuns {
    fn of(compared: &[&Compared]) -> Self {
        let pick = |f: fn(&Compared) -> f64| -> Vec<f64> {
            let mut v: Vec<f64> = compared.iter().map(|c| f(c)).filter(|x| x.is_finite()).collect();
            v.sort_by(f64::total_cmp);
            v
        };
        let (m, p, e) = (pick(|c| c.measured), pick(|c| c.predicted), pick(|c| c.error_pct));
        let first = |v: &[f64]| v.first().copied().unwrap_or(f64::NAN);
        let last = |v: &[f64]| v.last().copied().unwrap_or(f64::NAN);
        Self {
            runs: e.len(),
            measured: median(&m),
            measured_min: first(&m),
            measured_max: last(&m),
            predicted: median(&p),
            predicted_min: first(&p),
            predicted_max: last(&p),
            error_pct: median(&e),
            error_min_pct: first(&e),
            error_max_pct: last(&e),
        }
    }

    /// As a [`Compared`] for the targets: the medians, the error the runs' median, the
    /// measured range as the interval, and agreement when the two ranges overlap.
    fn compared(&self) -> Compared {
        Compared {
            predicted: self.predicted,
            predicted_ci95: 0.0,
            measured: self.measured,
            measured_lo: self.measured_min,
            measured_hi: self.measured_max,
            error_pct: self.error_pct,
            agrees: self.predicted_min <= self.measured_max && self.predicted_max >= self.measured_min,
        }
    }
}

/// The median of sorted `v` (NaN when empty).
fn median(v: &[f64]) -> f64 {
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// One point over the runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PooledPoint {
    /// The suite it belongs to.
    pub suite: String,
    /// `path=value` of every swept axis.
    pub params: Vec<(String, String)>,
    /// Saturated as the first run that judged it predicted.
    pub saturated: bool,
    /// A point a target's calibration measured (left out of the targets).
    pub used_by_fit: bool,
    /// Throughput (req/s).
    pub throughput_rps: OverRuns,
    /// Median latency (ms).
    pub p50_ms: OverRuns,
    /// 95th percentile latency (ms).
    pub p95_ms: OverRuns,
    /// 99th percentile latency (ms).
    pub p99_ms: OverRuns,
}

/// A target over the runs: each run's own value and the value over the runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetOverRuns {
    /// What is compared.
    pub name: String,
    /// The limit (%).
    pub limit_pct: f64,
    /// Each run's own value (%), `None` where that run judged no such target.
    pub runs_pct: Vec<Option<f64>>,
    /// The value over the runs: the target computed on each point's median error (%).
    pub value_pct: f64,
    /// Whether the value over the runs is within the limit.
    pub met: bool,
    /// In how many runs the run's own value was within the limit.
    pub met_in_runs: usize,
}

/// Several runs of one validation, judged together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Runs {
    /// Where each run's measurements came from, in order.
    pub sources: Vec<String>,
    /// Each run's machine and date.
    pub machines: Vec<String>,
    /// Every point, over the runs that measured it without the host stealing from it.
    pub points: Vec<PooledPoint>,
    /// |error| of each metric over the points, from each point's median error.
    #[serde(with = "super::summary::by_metric")]
    pub summary: Vec<(String, ErrorSummary)>,
    /// The targets over the runs, with each run's own value.
    pub targets: Vec<TargetOverRuns>,
}

impl Runs {
    /// Judges `runs` (each a whole validation of the same points, from `sources`) together.
    /// `held_out` judges as `validate --target` does — the points a calibration measured left
    /// out, the handler's winner checked — else as the default suite does.
    pub fn pool(runs: &[Validation], sources: &[String], held_out: bool) -> Result<Self, ValidateError> {
        let refuse = |message: String| ValidateError::Saved { path: sources.join(", "), message };
        let Some(first) = runs.first() else {
            return Err(refuse("no run to judge".into()));
        };
        let same_point = |p: &ValidatedPoint, q: &ValidatedPoint| p.suite == q.suite && p.params == q.params;
        let missing = |from: &Validation, inn: &Validation| {
            from.points.iter().find(|p| !inn.points.iter().any(|q| same_point(p, q))).cloned()
        };
        for (i, r) in runs.iter().enumerate().skip(1) {
            if let Some(p) = missing(first, r).or_else(|| missing(r, first)) {
                return Err(refuse(format!(
                    "the runs validated different points: `{} {}` is in one of runs 1 and {} and not in the \
                     other; give runs of the same suites and sweeps",
                    p.suite,
                    p.label(),
                    i + 1
                )));
            }
        }
        let mut points = Vec::new();
        let mut judged = Vec::new();
        for p in &first.points {
            let same: Vec<&ValidatedPoint> = runs
                .iter()
                .filter_map(|r| r.points.iter().find(|q| same_point(q, p)))
                .filter(|q| !q.stolen())
                .collect();
            let over = |f: fn(&ValidatedPoint) -> &Compared| {
                OverRuns::of(&same.iter().map(|q| f(q)).collect::<Vec<_>>())
            };
            let pooled = PooledPoint {
                suite: p.suite.clone(),
                params: p.params.clone(),
                saturated: same.first().map_or(p.saturated, |q| q.saturated),
                used_by_fit: p.used_by_fit,
                throughput_rps: over(|q| &q.throughput_rps),
                p50_ms: over(|q| &q.p50_ms),
                p95_ms: over(|q| &q.p95_ms),
                p99_ms: over(|q| &q.p99_ms),
            };
            let left_out = held_out && p.used_by_fit;
            if !same.is_empty() && !left_out {
                judged.push(ValidatedPoint {
                    saturated: pooled.saturated,
                    throughput_rps: pooled.throughput_rps.compared(),
                    p50_ms: pooled.p50_ms.compared(),
                    p95_ms: pooled.p95_ms.compared(),
                    p99_ms: pooled.p99_ms.compared(),
                    host_steal_pct: 0.0,
                    ..p.clone()
                });
            }
            points.push(pooled);
        }
        let summary = summarize(&judged);
        let over: Vec<Target> = match held_out {
            true if judged.is_empty() => Vec::new(),
            true => target_targets(&summary, &judged),
            false => targets(&summary),
        };
        let targets = over
            .into_iter()
            .map(|t| {
                let runs_pct: Vec<Option<f64>> = runs
                    .iter()
                    .map(|r| r.targets.iter().find(|x| x.name == t.name).map(|x| x.value_pct))
                    .collect();
                TargetOverRuns {
                    met_in_runs: runs_pct.iter().flatten().filter(|v| **v <= t.limit_pct).count(),
                    name: t.name,
                    limit_pct: t.limit_pct,
                    runs_pct,
                    value_pct: t.value_pct,
                    met: t.met,
                }
            })
            .collect();
        Ok(Self {
            sources: sources.to_vec(),
            machines: runs
                .iter()
                .map(|r| format!("{} on `{}` ({})", r.machine.date, r.machine.hostname, r.machine.cpu_model))
                .collect(),
            points,
            summary,
            targets,
        })
    }

    /// The verdict as text: each target in each run and over the runs.
    pub fn table(&self) -> String {
        let n = self.sources.len();
        let mut s = format!(
            "\nover {n} runs (each point: the median of its runs' own errors, each run predicted from its \
             own calibration):\n"
        );
        for (i, (src, m)) in self.sources.iter().zip(&self.machines).enumerate() {
            let _ = writeln!(s, "  run {}: {src} — measured {m}", i + 1);
        }
        let _ = write!(s, "\n{:<56} {:>7}", "target", "limit");
        for i in 0..n {
            let _ = write!(s, " {:>8}", format!("run {}", i + 1));
        }
        let _ = writeln!(s, " {:>10}  verdict over the runs", "over runs");
        for t in &self.targets {
            let _ = write!(s, "{:<56} {:>7}", t.name, format!("≤ {}%", t.limit_pct));
            for v in &t.runs_pct {
                let _ = write!(s, " {:>8}", v.map_or_else(|| "–".to_string(), |v| format!("{v:.1}%")));
            }
            let _ = writeln!(
                s,
                " {:>10}  {} (met in {} of {n} runs)",
                format!("{:.1}%", t.value_pct),
                if t.met { "met" } else { "MISSED" },
                t.met_in_runs
            );
        }
        if self.targets.is_empty() {
            s.push_str("no target judged: no point is judged in any run\n");
        }
        s
    }

    /// One row a point: each figure's median, range and error over the runs.
    pub fn csv(&self) -> String {
        let metrics = ["throughput_rps", "p50_ms", "p95_ms", "p99_ms"];
        let mut s = String::from("suite,point,saturated,used_by_fit");
        for m in metrics {
            for c in [
                "runs",
                "measured",
                "measured_min",
                "measured_max",
                "predicted",
                "predicted_min",
                "predicted_max",
                "error_pct",
                "error_min_pct",
                "error_max_pct",
            ] {
                let _ = write!(s, ",{m}_{c}");
            }
        }
        s.push('\n');
        for p in &self.points {
            let (suite, point) = (csv_field(&p.suite), csv_field(&super::label_of(&p.params)));
            let _ = write!(s, "{suite},{point},{},{}", p.saturated, p.used_by_fit);
            for o in [&p.throughput_rps, &p.p50_ms, &p.p95_ms, &p.p99_ms] {
                let _ = write!(
                    s,
                    ",{},{},{},{},{},{},{},{},{},{}",
                    o.runs,
                    o.measured,
                    o.measured_min,
                    o.measured_max,
                    o.predicted,
                    o.predicted_min,
                    o.predicted_max,
                    o.error_pct,
                    o.error_min_pct,
                    o.error_max_pct
                );
            }
            s.push('\n');
        }
        s
    }

    /// Writes `dir/runs.csv` and `dir/runs.json`, both or neither; returns the paths.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, ValidateError> {
        let mut staged = Staged::new();
        staged.add(&dir.join("runs.csv"), self.csv().as_bytes())?;
        staged.add(&dir.join("runs.json"), &serde_json::to_vec_pretty(self).unwrap_or_default())?;
        Ok(staged.commit()?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::committed;
    use super::*;

    /// `v` with every point's errors shifted by `by` percentage points.
    fn shifted(v: &Validation, by: f64) -> Validation {
        let mut v = v.clone();
        for p in &mut v.points {
            for c in [&mut p.throughput_rps, &mut p.p50_ms, &mut p.p95_ms, &mut p.p99_ms] {
                c.error_pct += by;
                c.predicted = c.measured * (1.0 + c.error_pct / 100.0);
            }
        }
        v
    }

    fn sources(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("run{i}/measurements.json")).collect()
    }

    #[test]
    fn one_run_judged_alone_gives_its_own_verdict() {
        let v = committed();
        let runs = Runs::pool(std::slice::from_ref(&v), &sources(1), false).expect("pools");
        assert_eq!(runs.targets.len(), v.targets.len());
        for (t, own) in runs.targets.iter().zip(&v.targets) {
            assert_eq!(t.name, own.name);
            assert!(
                (t.value_pct - own.value_pct).abs() < 1e-9,
                "{}: {} vs {}",
                t.name,
                t.value_pct,
                own.value_pct
            );
            assert_eq!(t.met, own.met);
            assert_eq!(t.met_in_runs, usize::from(own.met));
        }
    }

    #[test]
    fn each_point_takes_the_median_of_its_runs_errors() {
        let v = committed();
        // Three runs: the committed one, and the same with every error 10 points higher and
        // 2 points lower: each point's median error is the committed run's own.
        let all = [shifted(&v, 10.0), v.clone(), shifted(&v, -2.0)];
        let runs = Runs::pool(&all, &sources(3), false).expect("pools");
        for (p, own) in runs.points.iter().zip(&v.points) {
            if own.stolen() || !own.throughput_rps.error_pct.is_finite() {
                continue;
            }
            let t = &p.throughput_rps;
            assert_eq!(t.runs, 3);
            assert!((t.error_pct - own.throughput_rps.error_pct).abs() < 1e-9);
            assert!((t.error_max_pct - t.error_min_pct - 12.0).abs() < 1e-9, "{t:?}");
        }
        // The verdict over the runs is the middle run's; each run's own value is shown.
        let median = runs.targets.iter().find(|t| t.name == "median |error| throughput").expect("target");
        let own = v.targets.iter().find(|t| t.name == median.name).expect("target");
        assert!((median.value_pct - own.value_pct).abs() < 1e-9);
        assert_eq!(median.runs_pct.len(), 3);
        let table = runs.table();
        assert!(table.contains("over 3 runs") && table.contains("median |error| throughput"), "{table}");
        assert!(table.contains("run 3: run3/measurements.json"), "{table}");
        // One row a point in the CSV, with every figure's range; a point whose label holds
        // commas (an empirical distribution's samples) is one quoted field.
        let csv = runs.csv();
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let header = reader.headers().expect("a header").clone();
        assert!(header.iter().any(|h| h == "p95_ms_error_max_pct"), "{header:?}");
        let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("a row")).collect();
        assert_eq!(rows.len(), v.points.len());
        assert!(rows.iter().any(|r| r[1].contains("samples = [2, 38]")), "{csv}");
        for (r, p) in rows.iter().zip(&runs.points) {
            assert_eq!(r.len(), header.len(), "{r:?}");
            assert_eq!(&r[1], super::super::label_of(&p.params));
        }
    }

    #[test]
    fn runs_of_different_points_are_refused_by_name() {
        let v = committed();
        let mut other = v.clone();
        other.points.pop();
        let e = Runs::pool(&[v, other], &sources(2), false).unwrap_err().to_string();
        assert!(e.contains("the runs validated different points") && e.contains("runs 1 and 2"), "{e}");
        assert!(e.contains("give runs of the same suites and sweeps"), "{e}");
    }
}
