//! Judging the record: windows of 100 ms, the baseline, one row per fault.

use super::cpu::{self, Sample};
use super::faults::Replaced;
use super::load::Rec;
use std::time::Duration;

/// The steady window the baseline is taken from, from the start of the load.
pub const BASELINE: (Duration, Duration) = (Duration::from_millis(500), Duration::from_millis(3_500));
/// The width of the windows recovery is judged on.
pub const BUCKET: Duration = Duration::from_millis(100);

/// Nearest-rank p99 of `v` (0 when empty).
pub fn p99(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * 0.99).ceil() as usize).clamp(1, v.len()) - 1]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The requests done within `[from, to)`: how many were answered, how many lost, p99.
pub fn done_within(recs: &[Rec], from: Duration, to: Duration) -> (usize, usize, f64) {
    let done: Vec<&Rec> = recs.iter().filter(|r| r.done >= from && r.done < to).collect();
    let answered: Vec<f64> = done.iter().filter(|r| r.status.is_some()).map(|r| r.latency_ms()).collect();
    (answered.len(), done.len() - answered.len(), p99(answered))
}

/// Medians over the baseline's 100 ms windows: answers, and p99 (ms).
pub struct Baseline {
    pub answers: f64,
    pub p99_ms: f64,
}

pub fn buckets(from: Duration, to: Duration) -> impl Iterator<Item = (Duration, Duration)> {
    let n = ((to.saturating_sub(from)).as_nanos() / BUCKET.as_nanos()) as u32;
    (0..n).map(move |k| (from + BUCKET * k, from + BUCKET * (k + 1)))
}

pub fn baseline(recs: &[Rec]) -> Baseline {
    let per: Vec<(usize, usize, f64)> =
        buckets(BASELINE.0, BASELINE.1).map(|(a, b)| done_within(recs, a, b)).collect();
    Baseline {
        answers: median(per.iter().map(|b| b.0 as f64).collect()),
        p99_ms: median(per.iter().map(|b| b.2).collect()),
    }
}

/// How a fault's window ended for the service.
pub enum Recovery {
    /// No fault: the baseline.
    None,
    /// Never degraded (zero), or degraded last in the 100 ms window ending this long after
    /// the fault.
    After(Duration),
    /// Still degraded at the window's end.
    Not,
    /// The server stopped this long after the signal.
    Stopped(Duration),
}

pub struct Row {
    pub name: String,
    pub requests: usize,
    pub answered: usize,
    pub lost: usize,
    pub status_5xx: usize,
    pub p99_ms: f64,
    pub recovery: Recovery,
    /// The share of the machine's CPU time other processes took meanwhile.
    pub others_cpu: Option<f64>,
}

pub fn recovery(recs: &[Rec], (from, to): (Duration, Duration), base: &Baseline) -> Recovery {
    let degraded = |&(a, b): &(Duration, Duration)| {
        let (answered, lost, p99_ms) = done_within(recs, a, b);
        (answered as f64) < base.answers / 2.0 || p99_ms > 2.0 * base.p99_ms || lost > 0
    };
    let all: Vec<(Duration, Duration)> = buckets(from, to).collect();
    match all.iter().rposition(degraded) {
        None => Recovery::After(Duration::ZERO),
        Some(k) if k + 1 == all.len() => Recovery::Not,
        Some(k) => Recovery::After(all[k].1 - from),
    }
}

pub fn row(
    name: &str,
    recs: &[Rec],
    (from, to): (Duration, Duration),
    recovery: Recovery,
    samples: &[Sample],
) -> Row {
    let within: Vec<&Rec> = recs.iter().filter(|r| r.done >= from && r.sent < to).collect();
    let answered: Vec<f64> = within.iter().filter(|r| r.status.is_some()).map(|r| r.latency_ms()).collect();
    Row {
        name: name.into(),
        requests: within.len(),
        answered: answered.len(),
        lost: within.len() - answered.len(),
        status_5xx: within.iter().filter(|r| r.status.is_some_and(|s| s >= 500)).count(),
        p99_ms: p99(answered),
        recovery,
        others_cpu: cpu::others_share(samples, from, to),
    }
}

/// Whether the faulted worker held `r`: sent on a connection it had answered on, before it
/// had exited, and not done before the fault.
fn held(r: &Rec, f: &Replaced) -> bool {
    r.conn_pid == f.victim && r.sent < f.exited && r.done >= f.at
}

/// Requests the faulted worker held, and requests lost in `window` it did not hold.
pub fn held_and_lost_elsewhere(
    recs: &[Rec],
    f: &Replaced,
    (from, to): (Duration, Duration),
) -> (usize, usize) {
    let lost = recs.iter().filter(|r| r.done >= from && r.sent < to && r.status.is_none());
    (recs.iter().filter(|r| held(r, f)).count(), lost.filter(|r| !held(r, f)).count())
}

/// The first answer by `pid`, from `at`.
pub fn first_answer(recs: &[Rec], pid: u32, at: Duration) -> Option<Duration> {
    recs.iter().filter(|r| r.pid == pid).map(|r| r.done.saturating_sub(at)).min()
}
