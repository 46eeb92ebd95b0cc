//! M/G/1 processor sharing: one server shared equally by every job present, as cores are
//! shared by runnable threads.
//!
//! Source: L. Kleinrock, *Queueing Systems*, vol. 2 (1976), ch. 4 (processor sharing). The
//! means are insensitive to the service distribution beyond its mean: with `ρ = λ·E[S]`,
//!
//! ```text
//! R = E[S] / (1 − ρ),   L = ρ / (1 − ρ),   R(x) = x / (1 − ρ) for a job of size x
//! ```
//!
//! so every job is slowed by the same factor `1/(1 − ρ)` whatever its size.

use super::error::{AnalyticError, non_negative};
use super::mg1::single_server_utilization;

/// Steady-state means of M/G/1 processor sharing.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PsMetrics {
    /// Utilization `ρ = λ·E[S]`.
    pub utilization: f64,
    /// Slowdown `1/(1 − ρ)`: response time over size, the same for every job.
    pub slowdown: f64,
    /// Mean response time `E[S]/(1 − ρ)` \[s\].
    pub mean_response_s: f64,
    /// Mean number in the system `ρ/(1 − ρ)`.
    pub mean_in_system: f64,
}

impl PsMetrics {
    /// Mean response time \[s\] of a job needing `size_s` \[s\] of service alone:
    /// `x / (1 − ρ)`. Fails when `size_s` is negative or not finite.
    pub fn response_of_job_s(&self, size_s: f64) -> Result<f64, AnalyticError> {
        non_negative("job size x [s]", size_s)?;
        Ok(size_s * self.slowdown)
    }
}

/// Solves M/G/1-PS with arrival rate `arrival_rate_per_s` [1/s] and mean service time
/// `mean_service_s` \[s\]. Fails when an input is not finite and positive, or when `ρ ≥ 1`.
pub fn mg1_ps(arrival_rate_per_s: f64, mean_service_s: f64) -> Result<PsMetrics, AnalyticError> {
    let rho = single_server_utilization("M/G/1-PS", arrival_rate_per_s, mean_service_s)?;
    let slowdown = 1.0 / (1.0 - rho);
    Ok(PsMetrics {
        utilization: rho,
        slowdown,
        mean_response_s: mean_service_s * slowdown,
        mean_in_system: rho * slowdown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: f64 = 1e-12;

    #[test]
    fn hand_computed_cases() {
        // (λ, E[S], R, L): ρ = 0.5 → R = 2E[S], L = 1; ρ = 0.8 → R = 5E[S], L = 4;
        // ρ = 0.75 → R = 4E[S], L = 3.
        for (lambda, s, r, l) in [(0.5, 1.0, 2.0, 1.0), (8.0, 0.1, 0.5, 4.0), (3.0, 0.25, 1.0, 3.0)] {
            let m = mg1_ps(lambda, s).unwrap();
            assert!((m.mean_response_s - r).abs() < TOL && (m.mean_in_system - l).abs() < TOL, "{m:?}");
        }
    }

    #[test]
    fn a_job_is_slowed_in_proportion_to_its_size() {
        // ρ = 0.8: a 50 ms job takes 250 ms, a 2 s job 10 s, an empty job nothing.
        let m = mg1_ps(0.8, 1.0).unwrap();
        for (x, want) in [(0.05, 0.25), (2.0, 10.0), (0.0, 0.0)] {
            assert!((m.response_of_job_s(x).unwrap() - want).abs() < TOL);
        }
        assert!(m.response_of_job_s(-1.0).unwrap_err().to_string().contains("job size x [s]"));
    }

    #[test]
    fn overload_is_refused() {
        let e = mg1_ps(1.0, 1.5).unwrap_err().to_string();
        assert!(
            e.contains("ρ = 1.50 ≥ 1: the M/G/1-PS queue is unstable; lower the arrival rate below 0.667/s")
        );
    }
}
