//! Open-loop send times, fixed in advance from an absolute start: the i-th request is due
//! at `start + t_i` whatever happened to the others, so a slow server cannot slow the
//! sender down and hide its own queue (no coordinated omission).

use super::{Mode, Stop};
use rand::SeedableRng;
use rand_distr::{Distribution, Exp1};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::time::Duration;

/// Send times of an open-loop or trace run, as offsets from the start, ascending.
#[derive(Debug, Clone)]
pub struct Schedule {
    gaps: Gaps,
    sent: u64,
    /// Stop after this many.
    max_count: Option<u64>,
    /// Stop at the first time at or after this.
    end: Option<Duration>,
}

#[derive(Debug, Clone)]
enum Gaps {
    /// t_i = i / rate (computed from i, so no rounding accumulates).
    Constant { rate_rps: f64 },
    /// t_i = sum of i + 1 exponential gaps with mean 1 / rate.
    Poisson { rate_rps: f64, t_s: f64, rng: Box<Xoshiro256PlusPlus> },
    /// Given times, sorted.
    Trace { at: Vec<Duration> },
}

impl Schedule {
    /// The schedule of `mode`, or `None` for closed loops and bursts. With
    /// [`Stop::Duration`] it covers `warmup + duration`.
    pub fn new(mode: &Mode, stop: Stop, warmup: Duration, seed: u64) -> Option<Schedule> {
        let gaps = match mode {
            Mode::Open { rate_rps, poisson: false } => Gaps::Constant { rate_rps: *rate_rps },
            Mode::Open { rate_rps, poisson: true } => {
                let rng = Box::new(Xoshiro256PlusPlus::seed_from_u64(seed));
                Gaps::Poisson { rate_rps: *rate_rps, t_s: 0.0, rng }
            }
            Mode::Trace { at_ms } => {
                let mut at: Vec<Duration> =
                    at_ms.iter().map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1e3)).collect();
                at.sort();
                Gaps::Trace { at }
            }
            Mode::Closed { .. } | Mode::Burst { .. } => return None,
        };
        let (max_count, end) = match stop {
            Stop::Requests(n) => (Some(n), None),
            Stop::Duration(d) => (None, Some(warmup + d)),
        };
        Some(Schedule { gaps, sent: 0, max_count, end })
    }

    fn next_time(&mut self) -> Option<Duration> {
        let i = self.sent;
        let secs = match &mut self.gaps {
            Gaps::Constant { rate_rps } => i as f64 / *rate_rps,
            Gaps::Poisson { rate_rps, t_s, rng } => {
                let e: f64 = Exp1.sample(rng.as_mut());
                *t_s += e / *rate_rps;
                *t_s
            }
            Gaps::Trace { at } => return at.get(i as usize).copied(),
        };
        Duration::try_from_secs_f64(secs).ok()
    }
}

impl Iterator for Schedule {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.max_count.is_some_and(|n| self.sent >= n) {
            return None;
        }
        let t = self.next_time()?;
        if self.end.is_some_and(|end| t >= end) {
            return None;
        }
        self.sent += 1;
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn open(rate_rps: f64, poisson: bool) -> Mode {
        Mode::Open { rate_rps, poisson }
    }

    #[test]
    fn constant_gaps_from_zero() {
        let s: Vec<Duration> =
            Schedule::new(&open(100.0, false), Stop::Requests(4), Duration::ZERO, 1).unwrap().collect();
        assert_eq!(s, [Duration::ZERO, 10 * MS, 20 * MS, 30 * MS]);
    }

    #[test]
    fn duration_covers_warmup_plus_window() {
        let stop = Stop::Duration(Duration::from_secs(1));
        let n = Schedule::new(&open(100.0, false), stop, Duration::from_millis(500), 1).unwrap().count();
        assert_eq!(n, 150);
    }

    #[test]
    fn poisson_is_seeded_and_has_the_right_mean_gap() {
        let make =
            |seed| Schedule::new(&open(1000.0, true), Stop::Requests(20_000), Duration::ZERO, seed).unwrap();
        let a: Vec<Duration> = make(7).collect();
        assert_eq!(a, make(7).collect::<Vec<_>>());
        assert_ne!(a, make(8).collect::<Vec<_>>());
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
        // Mean of 20,000 exponential gaps: standard error 1/sqrt(20,000) ≈ 0.7% of the mean.
        const REL_TOL: f64 = 0.03;
        let mean_gap_s = a.last().unwrap().as_secs_f64() / a.len() as f64;
        assert!((mean_gap_s - 1e-3).abs() / 1e-3 < REL_TOL, "{mean_gap_s}");
    }

    #[test]
    fn trace_is_sorted_and_cut() {
        let mode = Mode::Trace { at_ms: vec![30.0, 10.0, 20.0, 5000.0] };
        let s: Vec<Duration> =
            Schedule::new(&mode, Stop::Duration(Duration::from_secs(1)), Duration::ZERO, 1)
                .unwrap()
                .collect();
        assert_eq!(s, [10 * MS, 20 * MS, 30 * MS]);
        let s: Vec<Duration> = Schedule::new(&mode, Stop::Requests(2), Duration::ZERO, 1).unwrap().collect();
        assert_eq!(s, [10 * MS, 20 * MS]);
    }

    #[test]
    fn closed_and_burst_have_no_schedule() {
        let closed = Mode::Closed { users: 1, think_ms: crate::workload::Dist::Const(0.0) };
        assert!(Schedule::new(&closed, Stop::Requests(1), Duration::ZERO, 1).is_none());
        assert!(Schedule::new(&Mode::Burst { n: 1 }, Stop::Requests(1), Duration::ZERO, 1).is_none());
    }
}
