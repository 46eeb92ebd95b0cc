//! A point's stages, predicted and measured: where a request's time goes on each side — the
//! simulator's stage times ([`crate::sim::StageTimes`]) against the server's `Server-Timing`
//! headers ([`crate::server_timing`]) — and, for a point that misses its end-to-end target,
//! the stage that differs most.
//!
//! ```text
//!  point ─► per stage (queue, lock, held, free, loop): mean and p95, predicted and measured
//!        └► misses its target (throughput or p95 beyond the limit and beyond the noise)?
//!             ─► the stage whose mean (a throughput miss) or p95 (a p95 miss) differs most,
//!                in ms, of queue, lock, held and free
//! ```
//!
//! `loop` is left out of the naming: it is a part of `held` + `free`, which account for its
//! time already — and the server times only the loop work a scenario emulates, while the
//! simulated loop also runs the loop's own work that the calibration measured.

use super::{Compared, ValidatedPoint};
use crate::experiment::MeasureReport;
use crate::server_timing::Stages;
use crate::sim::{SimReport, Stage, StageTimes};
use serde::{Deserialize, Serialize};

/// One statistic of one stage, predicted and measured (ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StageDiff {
    /// Predicted (mean over replications).
    pub predicted: f64,
    /// Half-width of the prediction's 95% CI.
    pub predicted_ci95: f64,
    /// Measured (mean over the measured passes).
    pub measured: f64,
    /// predicted − measured (ms).
    pub error_ms: f64,
}

impl StageDiff {
    fn new(predicted: f64, predicted_ci95: f64, measured: f64) -> Self {
        Self { predicted, predicted_ci95, measured, error_ms: predicted - measured }
    }
}

/// One stage of a point: its mean and its p95 per request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageCompared {
    /// The stage: `queue`, `lock`, `held`, `free` or `loop`.
    pub stage: String,
    /// Mean per request (ms).
    pub mean_ms: StageDiff,
    /// 95th percentile per request (ms).
    pub p95_ms: StageDiff,
}

/// Why a point misses its end-to-end target, and the stage that differs most.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageMiss {
    /// The figures that miss: `throughput`, `p95`, or both (`throughput, p95`).
    pub metrics: String,
    /// The statistic the stages are compared by: `p95` for a p95 miss, else `mean`.
    pub statistic: String,
    /// The stage with the largest |predicted − measured| in that statistic, of the four
    /// that add up to a request's time on the server: queue, lock, held, free.
    pub stage: String,
    /// Its predicted − measured (ms).
    pub error_ms: f64,
}

/// The limits a point is held to (%), from its validation's median targets: a point
/// misses when its |error| passes one beyond the noise (the two 95% intervals apart).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointLimits {
    /// On throughput.
    pub throughput_pct: f64,
    /// On p95 latency.
    pub p95_pct: f64,
}

/// The stages of a point: the predictions (one or one per pass) against the measured
/// passes' `Server-Timing`; empty when the server sent none. A stage the server does not
/// report is left out.
pub(super) fn compare(predicted: &[SimReport], measured: &[MeasureReport]) -> Vec<StageCompared> {
    let timed: Vec<_> = measured.iter().filter_map(|m| m.server_timing).collect();
    if timed.is_empty() || predicted.is_empty() {
        return Vec::new();
    }
    let n = predicted.len() as f64;
    let mut out = Vec::new();
    for (i, name) in StageTimes::NAMES.iter().enumerate() {
        let measured = |of: fn(&crate::server_timing::StageStats) -> Stages| {
            let v: Vec<f64> = timed.iter().filter_map(|t| of(t).values()[i]).collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        let (Some(mean), Some(p95)) = (measured(|t| t.mean), measured(|t| t.p95)) else { continue };
        let pred =
            |f: fn(&Stage) -> f64| predicted.iter().map(|r| f(&r.figures.stages_ms.get(i))).sum::<f64>() / n;
        // Independent predictions: the mean's half-width is √(Σ h²) / n.
        let half = |f: fn(&Stage) -> f64| {
            predicted.iter().map(|r| f(&r.ci95.stages_ms.get(i)).powi(2)).sum::<f64>().sqrt() / n
        };
        out.push(StageCompared {
            stage: (*name).into(),
            mean_ms: StageDiff::new(pred(|s| s.mean), half(|s| s.mean), mean),
            p95_ms: StageDiff::new(pred(|s| s.p95), half(|s| s.p95), p95),
        });
    }
    out
}

/// Whether `c` misses a limit of `limit_pct`: beyond it, and beyond the noise.
fn misses(c: &Compared, limit_pct: f64) -> bool {
    c.error_pct.abs() > limit_pct && !c.agrees
}

/// Names the stage of every point that misses `limits` (and clears it on the others).
pub(crate) fn name_misses(points: &mut [ValidatedPoint], limits: PointLimits) {
    for p in points {
        p.miss = miss_of(p, limits);
    }
}

fn miss_of(p: &ValidatedPoint, limits: PointLimits) -> Option<StageMiss> {
    let throughput = misses(&p.throughput_rps, limits.throughput_pct);
    let p95 = misses(&p.p95_ms, limits.p95_pct);
    let metrics = match (throughput, p95) {
        (false, false) => return None,
        (true, false) => "throughput",
        (false, true) => "p95",
        (true, true) => "throughput, p95",
    };
    let by_p95 = p95;
    let diff = |s: &StageCompared| if by_p95 { s.p95_ms.error_ms } else { s.mean_ms.error_ms };
    let worst = p
        .stages
        .iter()
        .filter(|s| s.stage != "loop")
        .max_by(|a, b| diff(a).abs().total_cmp(&diff(b).abs()))?;
    Some(StageMiss {
        metrics: metrics.into(),
        statistic: if by_p95 { "p95" } else { "mean" }.into(),
        stage: worst.stage.clone(),
        error_ms: diff(worst),
    })
}

/// `mean pred/meas · p95 pred/meas` of one stage (ms), for tables.
pub(super) fn cell(s: &StageCompared) -> String {
    let (m, q) = (&s.mean_ms, &s.p95_ms);
    format!("{:.2}/{:.2} · {:.2}/{:.2}", m.predicted, m.measured, q.predicted, q.measured)
}

/// `p95 +12.0% → lock (p95 +3.10 ms)`: a miss in a line.
pub(super) fn miss_line(p: &ValidatedPoint, m: &StageMiss) -> String {
    let errors: Vec<String> = [("throughput", &p.throughput_rps), ("p95", &p.p95_ms)]
        .iter()
        .filter(|(name, _)| m.metrics.contains(name))
        .map(|(name, c)| format!("{name} {:+.1}%", c.error_pct))
        .collect();
    format!("{} → {} ({} {:+.2} ms)", errors.join(", "), m.stage, m.statistic, m.error_ms)
}

/// How many missing points each stage carries, most first: `lock 12, queue 3`.
pub(super) fn misses_by_stage(points: &[ValidatedPoint]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for m in points.iter().filter(|p| !p.used_by_fit && !p.stolen()).filter_map(|p| p.miss.as_ref()) {
        match counts.iter_mut().find(|(s, _)| *s == m.stage) {
            Some((_, n)) => *n += 1,
            None => counts.push((m.stage.clone(), 1)),
        }
    }
    counts.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    counts.iter().map(|(s, n)| format!("{s} {n}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::super::Spread;
    use super::*;

    fn stage(name: &str, mean: (f64, f64), p95: (f64, f64)) -> StageCompared {
        StageCompared {
            stage: name.into(),
            mean_ms: StageDiff::new(mean.0, 0.0, mean.1),
            p95_ms: StageDiff::new(p95.0, 0.0, p95.1),
        }
    }

    fn point(throughput_err: f64, p95_err: f64) -> ValidatedPoint {
        let c = |err: f64| Compared::new(100.0 + err, 0.1, Spread { value: 100.0, lo: 99.0, hi: 101.0 });
        ValidatedPoint {
            suite: "s".into(),
            params: vec![("clients.users".into(), "8".into())],
            saturated: false,
            unstable: false,
            capacity_rps: 1.0,
            throughput_rps: c(throughput_err),
            p50_ms: c(0.0),
            p95_ms: c(p95_err),
            p99_ms: c(0.0),
            used_by_fit: false,
            split: None,
            split_unknown: None,
            host_steal_pct: 0.0,
            stages: vec![
                stage("queue", (5.0, 1.0), (9.0, 8.0)),
                stage("lock", (2.0, 3.0), (10.0, 4.0)),
                stage("held", (1.0, 1.0), (1.0, 1.0)),
                stage("loop", (30.0, 0.0), (30.0, 0.0)),
            ],
            miss: None,
        }
    }

    const LIMITS: PointLimits = PointLimits { throughput_pct: 3.0, p95_pct: 8.0 };

    #[test]
    fn a_miss_names_the_stage_that_differs_most_in_the_statistic_of_the_missed_figure() {
        let mut points = vec![point(5.0, 0.0), point(0.0, 12.0), point(-5.0, 12.0), point(2.0, 7.0)];
        name_misses(&mut points, LIMITS);
        let m = |i: usize| points[i].miss.clone();
        // A throughput miss: the means, queue +4 ms against lock −1 ms (the loop's work is a
        // part of held and free, and never named).
        let t = m(0).expect("a throughput miss");
        assert_eq!(
            (t.metrics.as_str(), t.statistic.as_str(), t.stage.as_str()),
            ("throughput", "mean", "queue")
        );
        assert_eq!(t.error_ms, 4.0);
        // A p95 miss: the p95s, lock +6 ms against queue +1 ms; with both, still the p95s.
        let q = m(1).expect("a p95 miss");
        assert_eq!((q.stage.as_str(), q.statistic.as_str(), q.error_ms), ("lock", "p95", 6.0));
        assert_eq!(m(2).expect("both").metrics, "throughput, p95");
        assert_eq!(m(3), None, "within the limits");
        assert_eq!(miss_line(&points[1], &q), "p95 +12.0% → lock (p95 +6.00 ms)");
        assert_eq!(misses_by_stage(&points), "lock 2, queue 1");
    }

    #[test]
    fn a_point_the_host_stole_from_is_marked_and_its_miss_not_counted() {
        let mut points = vec![point(0.0, 12.0), point(0.0, 12.0)];
        name_misses(&mut points, LIMITS);
        assert_eq!(misses_by_stage(&points), "lock 2");
        points[1].host_steal_pct = 12.0;
        assert!(points[1].stolen() && !points[0].stolen());
        assert_eq!(points[1].mark(), " s");
        assert_eq!(misses_by_stage(&points), "lock 1");
        // At the limit (5%) a point is still judged.
        points[1].host_steal_pct = 5.0;
        assert!(!points[1].stolen());
    }

    #[test]
    fn a_miss_within_the_noise_names_no_stage() {
        let mut p = point(0.0, 12.0);
        p.p95_ms.agrees = true;
        name_misses(std::slice::from_mut(&mut p), LIMITS);
        assert_eq!(p.miss, None);
    }
}
