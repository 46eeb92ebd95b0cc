//! The spread of a measured point: a 95% confidence interval for its throughput from batch
//! means, and for its latency percentiles from order statistics.
//!
//! One measured run gives one figure; repeating the run to see its spread doubles the
//! wall time. Instead, each run's window is split into [`BATCHES`] consecutive batches of
//! completions, whose throughputs are nearly independent when a batch is much longer than
//! a request (the batch-means method; Law, *Simulation Modeling and Analysis*, 5th ed.,
//! §9.5.3). A percentile's interval comes from the ranks of the pooled latencies around it
//! (the distribution-free interval for a quantile; Conover, *Practical Nonparametric
//! Statistics*, 3rd ed., §3.2), which assumes independent latencies: queueing correlates
//! neighbours, so read it as a lower bound on the spread.

use crate::experiment::Window;
use crate::stats::mean_ci95;

/// Batches each run's window is split into.
pub const BATCHES: usize = 5;

/// z for a two-sided 95% interval.
const Z_975: f64 = 1.959_963_984_540_054;

/// A measured figure and its 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The figure.
    pub value: f64,
    /// Lower end of the interval.
    pub lo: f64,
    /// Upper end of the interval.
    pub hi: f64,
}

/// Throughput over every run: the mean of the runs' own figures, and an interval from the
/// batch means of all runs (Student t). A window too short to split gives `lo = hi = value`.
pub fn throughput(runs: &[(f64, &Window)]) -> Spread {
    let value = runs.iter().map(|(t, _)| t).sum::<f64>() / runs.len().max(1) as f64;
    let batches: Vec<f64> = runs.iter().flat_map(|(_, w)| batch_rates(w)).collect();
    let est = mean_ci95(&batches);
    if batches.len() < 2 || !est.half_width.is_finite() {
        return Spread { value, lo: value, hi: value };
    }
    Spread { value, lo: value - est.half_width, hi: value + est.half_width }
}

/// Completions per second of each of [`BATCHES`] consecutive batches of `w`; none when the
/// window has fewer than two completions per batch.
fn batch_rates(w: &Window) -> Vec<f64> {
    let n = w.done_us.len();
    if n < 2 * BATCHES {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(BATCHES);
    let mut from_us = w.start_us;
    for b in 0..BATCHES {
        let (lo, hi) = (b * n / BATCHES, (b + 1) * n / BATCHES);
        let to_us = w.done_us[hi - 1];
        if to_us > from_us {
            out.push((hi - lo) as f64 / ((to_us - from_us) as f64 / 1e6));
        }
        from_us = to_us;
    }
    out
}

/// The `q`-quantile of the pooled latencies of every run (ms) (nearest rank), with the
/// order statistics around it that bound it with 95% confidence.
pub fn quantile_ms(runs: &[&Window], q: f64) -> Spread {
    let mut all: Vec<u64> = runs.iter().flat_map(|w| w.latency_us.iter().copied()).collect();
    all.sort_unstable();
    let n = all.len();
    if n == 0 {
        return Spread { value: f64::NAN, lo: f64::NAN, hi: f64::NAN };
    }
    let nf = n as f64;
    let at = |rank: f64| all[(rank.clamp(1.0, nf) as usize) - 1] as f64 / 1e3;
    let half = Z_975 * (nf * q * (1.0 - q)).sqrt();
    Spread {
        value: at((nf * q).ceil()),
        lo: at((nf * q - half).floor()),
        hi: at((nf * q + half).ceil() + 1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(start_us: u64, done_us: Vec<u64>) -> Window {
        let latency_us = done_us.iter().map(|d| d - start_us).collect();
        Window { start_us, done_us, latency_us }
    }

    #[test]
    fn steady_completions_give_a_tight_throughput_interval() {
        // One completion every 10 ms: 100 req/s in every batch.
        let w = window(0, (1..=100).map(|i| i * 10_000).collect());
        let s = throughput(&[(100.0, &w)]);
        assert_eq!(s.value, 100.0);
        assert!((s.lo - 100.0).abs() < 1e-9 && (s.hi - 100.0).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn uneven_batches_widen_the_interval_around_the_run_figure() {
        // Two fast batches (5 ms apart) and three slow ones (20 ms apart).
        let mut done = Vec::new();
        let mut t = 0;
        for i in 0..100u64 {
            t += if i < 40 { 5_000 } else { 20_000 };
            done.push(t);
        }
        let w = window(0, done);
        let s = throughput(&[(80.0, &w)]);
        assert_eq!(s.value, 80.0);
        assert!(s.lo < 80.0 && s.hi > 80.0 && s.hi - s.lo > 50.0, "{s:?}");
    }

    #[test]
    fn a_window_too_short_to_split_has_no_spread() {
        let w = window(0, vec![10, 20, 30]);
        let s = throughput(&[(3.0, &w)]);
        assert_eq!((s.lo, s.hi), (3.0, 3.0));
    }

    #[test]
    fn quantile_interval_brackets_the_nearest_rank() {
        // Latencies 1..=1000 ms: p95 is the 950th, its 95% interval ranks 937..=965.
        let w = Window {
            start_us: 0,
            done_us: (1..=1000).collect(),
            latency_us: (1..=1000).map(|i| i * 1000).collect(),
        };
        let s = quantile_ms(&[&w], 0.95);
        assert_eq!(s.value, 950.0);
        assert_eq!((s.lo, s.hi), (936.0, 965.0));
        let empty = Window::default();
        assert!(quantile_ms(&[&empty], 0.5).value.is_nan());
    }
}
