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

/// Sub-buckets per power of two of HdrHistogram at [`SIGNIFICANT_DIGITS`] digits (the upper
/// half of its 2 × 1024, the smallest power of two of at least 2 × 10³).
const HDR_SUB: u32 = 1024;

/// The counter of value `v` in HdrHistogram's log-linear layout with `sub` (a power of two)
/// sub-buckets per power of two: values below `2 sub` count exactly, a larger one in the
/// bucket of its bits beyond the first `log2(sub) + 1`, sub-bucket `v >> bucket`.
#[inline]
fn log_linear_index(v: u64, sub: u32) -> usize {
    if v < u64::from(2 * sub) {
        return v as usize;
    }
    let shift = 63 - v.leading_zeros() - sub.trailing_zeros();
    (shift * sub) as usize + (v >> shift) as usize
}

/// The lowest value counted by counter `i` of [`log_linear_index`]'s layout, and the log2 of
/// its width.
fn log_linear_low(i: usize, sub: u32) -> (u64, u32) {
    let sub = sub as usize;
    if i < 2 * sub {
        return (i as u64, 0);
    }
    let shift = (i / sub - 1) as u32;
    (((i - shift as usize * sub) as u64) << shift, shift)
}

/// Latencies counted in [`LatencyHistogram`]'s buckets, cheaply: one index and one
/// increment a value, where HdrHistogram's `record` also checks, tracks its extremes and
/// may grow. [`LatencyCounts::histogram`] turns the counts into the [`LatencyHistogram`]
/// that recording every value would have made: the same counts in the same buckets, the
/// same extremes to the bucket and the same exact sum — so the same summary, bit for bit.
#[derive(Debug, Clone)]
pub struct LatencyCounts {
    /// Every counter but the last (see `top`).
    counts: Vec<u64>,
    /// The last counter, from 2047 × 2⁵³ to `u64::MAX`, kept apart: HdrHistogram's
    /// maximum of a bucket is its highest value, except in this one, which ends at the
    /// clock's end and is reported as `u64::MAX` only if that very value was recorded.
    top: u64,
    /// Whether `u64::MAX` was.
    saw_max: bool,
    sum_ns: u128,
}

impl Default for LatencyCounts {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyCounts {
    /// No values yet.
    pub fn new() -> Self {
        // Values up to 2^36 ns (69 s) without growing: 224 KiB, zeroed by the allocator.
        Self { counts: vec![0; Self::index(1 << 36) + 1], top: 0, saw_max: false, sum_ns: 0 }
    }

    /// HdrHistogram's counter of value `v` (≥ 1): bucket `b` = the bits of `v` beyond the
    /// first 11, sub-bucket `v >> b`.
    #[inline]
    fn index(v: u64) -> usize {
        log_linear_index(v, HDR_SUB)
    }

    /// The lowest value of counter `i`.
    fn lowest(i: usize) -> u64 {
        log_linear_low(i, HDR_SUB).0
    }

    /// Records one latency (ns), clamped to at least 1 ns as [`LatencyHistogram::record`]
    /// does.
    #[inline]
    pub fn record(&mut self, latency_ns: u64) {
        let v = latency_ns.max(1);
        let i = Self::index(v);
        match self.counts.get_mut(i) {
            Some(c) => *c += 1,
            None => self.grow_to(i, v),
        }
        self.sum_ns += u128::from(v);
    }

    /// Counts value `v` of counter `i`, beyond the counters so far.
    #[cold]
    fn grow_to(&mut self, i: usize, v: u64) {
        if i == Self::index(u64::MAX) {
            self.top += 1;
            self.saw_max |= v == u64::MAX;
            return;
        }
        self.counts.resize(i + 1, 0);
        self.counts[i] = 1;
    }

    /// The histogram of the values recorded: each counter's count recorded at its lowest
    /// value, which HdrHistogram counts in the same bucket as every value of the counter.
    pub fn histogram(&self) -> LatencyHistogram {
        let mut h = LatencyHistogram::new();
        let mut add = |v: u64, c: u64| {
            if c > 0 && h.hist.record_n(v, c).is_err() {
                h.hist.saturating_record_n(v, c);
            }
        };
        for (i, &c) in self.counts.iter().enumerate() {
            add(Self::lowest(i), c);
        }
        let top = Self::index(u64::MAX);
        add(Self::lowest(top), self.top - u64::from(self.saw_max));
        add(u64::MAX, u64::from(self.saw_max));
        h.sum_ns = self.sum_ns;
        h
    }
}

/// Sub-buckets per power of two of a [`StageHistogram`] (the upper half of 2 × 128).
const STAGE_SUB: u32 = 128;

/// Durations that may be zero — the time a request spent in one stage (ns): quantiles from
/// a log-linear histogram, the mean from the exact sum.
///
/// The layout is HdrHistogram's with 256 sub-buckets: values below 256 ns are counted
/// exactly, and every larger value in a bucket 1/128 to 1/256 of its size wide, so a
/// quantile (reported as its bucket's middle) is within 0.4% of the value. A request records
/// up to five stages, so recording is kept to a handful of instructions: one bound, the
/// counters' length, which covers a minute at first and grows to the largest value seen.
#[derive(Debug, Clone)]
pub struct StageHistogram {
    counts: Vec<u64>,
    sum_ns: u128,
}

impl Default for StageHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl StageHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        // Values up to 2^36 ns (69 s) without growing: 32 KiB, zeroed by the allocator.
        Self { counts: vec![0; Self::index(1 << 36) + 1], sum_ns: 0 }
    }

    /// The counter of value `v`.
    #[inline]
    fn index(v: u64) -> usize {
        log_linear_index(v, STAGE_SUB)
    }

    /// The middle of the values counted by counter `i`.
    fn middle(i: usize) -> u64 {
        let (low, shift) = log_linear_low(i, STAGE_SUB);
        low + (1u64 << shift) / 2
    }

    /// Records one duration (ns); zero is a value like any other.
    #[inline]
    pub fn record(&mut self, ns: u64) {
        let i = Self::index(ns);
        match self.counts.get_mut(i) {
            Some(c) => *c += 1,
            None => self.grow_to(i),
        }
        self.sum_ns += u128::from(ns);
    }

    /// Counts a value of counter `i`, beyond the counters so far.
    #[cold]
    fn grow_to(&mut self, i: usize) {
        self.counts.resize(i + 1, 0);
        self.counts[i] = 1;
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Exact mean (ns), or 0 when empty.
    pub fn mean_ns(&self) -> f64 {
        match self.count() {
            0 => 0.0,
            n => self.sum_ns as f64 / n as f64,
        }
    }

    /// The value at quantile `q` in [0, 1] (ns): the smallest recorded value with at least
    /// `q` of them at or below it (as HdrHistogram's `value_at_quantile`), as its bucket's
    /// middle; 0 when empty.
    pub fn quantile_ns(&self, q: f64) -> u64 {
        let rank = ((q.clamp(0.0, 1.0) * self.count() as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::middle(i);
            }
        }
        0
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
    fn stage_histograms_keep_zeros_and_buckets_of_under_one_percent() {
        /// A bucket's middle is within 0.4% of any value it counts.
        const STAGE_TOL: f64 = 4e-3;
        let mut h = StageHistogram::new();
        assert_eq!((h.mean_ns(), h.quantile_ns(0.95)), (0.0, 0));
        for _ in 0..50 {
            h.record(0);
        }
        assert_eq!(h.quantile_ns(0.5), 0, "a zero is recorded as zero");
        for v in 1..=50u64 {
            h.record(v * 1_000_000);
        }
        assert_eq!(h.count(), 100);
        assert!((h.mean_ns() - 12_750_000.0).abs() < 1e-6, "the exact sum");
        let p95 = h.quantile_ns(0.95) as f64;
        assert!((p95 - 45e6).abs() / 45e6 <= STAGE_TOL, "{p95}");
        // Every value lands in a bucket whose middle is close, exact below 256 ns.
        for v in (0..300).chain([1_000, 123_456, 5_000_000, 1 << 40, u64::MAX / 3, u64::MAX]) {
            let m = StageHistogram::middle(StageHistogram::index(v)) as f64;
            let tol = if v < 256 { 0.0 } else { STAGE_TOL * v as f64 };
            assert!((m - v as f64).abs() <= tol, "{v}: {m}");
        }
    }

    /// Counting then converting gives what recording every value gives: the same summary,
    /// count, quantiles and maximum, bit for bit, for values in every bucket size.
    #[test]
    fn latency_counts_make_the_histogram_recording_makes() {
        use rand::{RngExt, SeedableRng};
        let mut rng = crate::des::StreamRng::seed_from_u64(9);
        let (mut counts, mut hist) = (LatencyCounts::new(), LatencyHistogram::new());
        let mut values: Vec<u64> =
            (0..5000).chain([u64::MAX, u64::MAX - 1, 1 << 36, (1 << 36) - 1]).collect();
        for _ in 0..200_000 {
            let bits = rng.random_range(0..64);
            values.push(rng.random::<u64>() >> bits);
        }
        for (k, &v) in values.iter().enumerate() {
            counts.record(v);
            hist.record(v);
            if k % 50_000 == 0 || k == values.len() - 1 {
                let got = counts.histogram();
                assert_eq!(got.summary(), hist.summary());
                assert_eq!((got.count(), got.max_ns()), (hist.count(), hist.max_ns()));
                assert_eq!(got.mean_ns().to_bits(), hist.mean_ns().to_bits());
                for q in [0.0, 1e-6, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
                    assert_eq!(got.quantile_ns(q), hist.quantile_ns(q), "q {q}");
                }
            }
        }
        for v in [1u64, 2047, 2048, 2049, 4095, 4096, 1 << 40, u64::MAX] {
            let i = LatencyCounts::index(v);
            assert!(
                LatencyCounts::lowest(i) <= v && LatencyCounts::index(LatencyCounts::lowest(i)) == i,
                "{v}"
            );
        }
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
