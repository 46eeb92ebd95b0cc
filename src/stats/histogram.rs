//! Latency recording: an HdrHistogram plus the exact sum, for exact means.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Significant decimal digits kept by the histogram (relative error ≤ 0.1%).
const SIGNIFICANT_DIGITS: u8 = 3;

/// Latencies in nanoseconds: quantiles from an HdrHistogram, mean from the exact sum.
///
/// Values are clamped to at least 1 ns (HdrHistogram's lowest value); the histogram
/// grows as needed, so no value is ever dropped.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    hist: Histogram<u64>,
    sum_ns: u128,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        let hist = Histogram::new(SIGNIFICANT_DIGITS).expect("3 significant digits is valid");
        Self { hist, sum_ns: 0 }
    }

    /// Records one latency (ns).
    pub fn record(&mut self, latency_ns: u64) {
        let v = latency_ns.max(1);
        // `record` grows the histogram; it only fails beyond u64 range, where we saturate.
        if self.hist.record(v).is_err() {
            self.hist.saturating_record(v);
        }
        self.sum_ns += u128::from(v);
    }

    /// Adds every value recorded in `other`.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        // Auto-resizing histograms with equal precision always merge.
        let _ = self.hist.add(&other.hist);
        self.sum_ns += other.sum_ns;
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Exact mean (ns), or 0 when empty.
    pub fn mean_ns(&self) -> f64 {
        match self.count() {
            0 => 0.0,
            n => self.sum_ns as f64 / n as f64,
        }
    }

    /// The value at quantile `q` in [0, 1] (ns), or 0 when empty.
    pub fn quantile_ns(&self, q: f64) -> u64 {
        if self.count() == 0 {
            return 0;
        }
        self.hist.value_at_quantile(q.clamp(0.0, 1.0))
    }

    /// Largest recorded value (ns), or 0 when empty.
    pub fn max_ns(&self) -> u64 {
        self.hist.max()
    }

    /// Mean, p50, p95, p99 and max, in milliseconds.
    pub fn summary(&self) -> LatencySummary {
        let ms = |ns: f64| ns / 1e6;
        LatencySummary {
            mean: ms(self.mean_ns()),
            p50: ms(self.quantile_ns(0.50) as f64),
            p95: ms(self.quantile_ns(0.95) as f64),
            p99: ms(self.quantile_ns(0.99) as f64),
            max: ms(self.max_ns() as f64),
        }
    }
}

/// A latency distribution summarized in milliseconds — the `latency_ms` object of every
/// JSON report, predicted or measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Mean (ms).
    pub mean: f64,
    /// Median (ms).
    pub p50: f64,
    /// 95th percentile (ms).
    pub p95: f64,
    /// 99th percentile (ms).
    pub p99: f64,
    /// Maximum (ms).
    pub max: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HdrHistogram with 3 digits keeps quantiles within 0.1%.
    const REL_TOL: f64 = 1e-3;

    #[test]
    fn quantiles_of_uniform_values() {
        let mut h = LatencyHistogram::new();
        for v in 1..=10_000u64 {
            h.record(v * 1_000);
        }
        assert_eq!(h.count(), 10_000);
        assert!((h.mean_ns() - 5_000_500.0).abs() < 1e-6);
        for (q, want) in [(0.5, 5_000_000.0), (0.95, 9_500_000.0), (0.99, 9_900_000.0)] {
            let got = h.quantile_ns(q) as f64;
            assert!((got - want).abs() / want <= REL_TOL, "q{q}: {got} vs {want}");
        }
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        let h = LatencyHistogram::new();
        assert_eq!(h.summary(), LatencySummary::default());
    }

    #[test]
    fn merge_adds_counts_and_sums() {
        let mut a = LatencyHistogram::new();
        let mut b = LatencyHistogram::new();
        a.record(1_000);
        b.record(3_000);
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert!((a.mean_ns() - 2_000.0).abs() < 1e-9);
    }
}
