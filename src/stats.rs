//! Statistics shared by both backends: latency histograms, percentile summaries,
//! confidence intervals over replications and prediction-error metrics.
//!
//! The simulator and the real load generator both record latencies into a
//! [`LatencyHistogram`] (HdrHistogram, 3 significant digits) and report a
//! [`LatencySummary`], so a prediction and a measurement are summarized the same way.

mod ci;
mod histogram;
mod rounds;

pub use ci::{Estimate, mean_ci95, mean_ci95_fields, relative_error, student_t_975};
pub use histogram::{LatencyHistogram, LatencySummary};
pub use rounds::{OUTLIER_FACTOR, Rounds};
