//! Statistics shared by both backends: latency histograms, percentile summaries,
//! confidence intervals over replications and prediction-error metrics.
//!
//! The simulator and the real load generator both record latencies into a
//! [`LatencyHistogram`] (HdrHistogram, 3 significant digits) and report a
//! [`LatencySummary`], so a prediction and a measurement are summarized the same way.
//!
//! ```
//! use servesim::stats::{LatencyHistogram, mean_ci95, relative_error};
//!
//! /// Quantiles keep 3 significant digits: within 0.1% of the exact value.
//! const QUANTILE_TOL: f64 = 1e-3;
//! /// The mean comes from the exact sum, so only floating-point rounding separates it.
//! const MEAN_TOL: f64 = 1e-9;
//!
//! // Latencies of 1, 2, …, 1000 ms, recorded in nanoseconds.
//! let mut h = LatencyHistogram::new();
//! for ms in 1..=1000u64 {
//!     h.record(ms * 1_000_000);
//! }
//! let s = h.summary(); // in ms
//! assert!((s.mean - 500.5).abs() < MEAN_TOL);
//! for (got, want) in [(s.p50, 500.0), (s.p95, 950.0), (s.p99, 990.0)] {
//!     assert!((got - want).abs() / want < QUANTILE_TOL, "{got} vs {want}");
//! }
//!
//! // Five replications' means: x̄ ± t(0.975, 4)·s/√5 = 10 ± 2.776 × 0.158/2.236.
//! let est = mean_ci95(&[9.8, 10.1, 10.0, 9.9, 10.2]);
//! assert!((est.mean - 10.0).abs() < MEAN_TOL);
//! assert!((est.half_width - 0.1963).abs() < 1e-4, "{}", est.half_width);
//! assert!(est.contains(10.15) && !est.contains(10.25));
//!
//! // A prediction of 110 ms against a measured 100 ms is 10% high.
//! assert!((relative_error(110.0, 100.0) - 0.10).abs() < MEAN_TOL);
//! ```

mod ci;
mod histogram;
mod rounds;

pub use ci::{Estimate, mean_ci95, mean_ci95_fields, relative_error, student_t_975};
pub use histogram::{LatencyCounts, LatencyHistogram, LatencySummary, StageHistogram};
pub use rounds::{OUTLIER_FACTOR, Rounds};
