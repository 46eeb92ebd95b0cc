//! M/G/1 FIFO: Poisson arrivals, one server, any service distribution, by the
//! Pollaczek–Khinchine mean-value formula.
//!
//! Source: L. Kleinrock, *Queueing Systems*, vol. 1 (1975), ch. 5 (the queue M/G/1). With
//! `ρ = λ·E[S]` and `C² = Var[S]/E[S]²` the squared coefficient of variation (SCV):
//!
//! ```text
//! Wq = λ·E[S²] / (2(1 − ρ)) = ρ·E[S]·(1 + C²) / (2(1 − ρ)),   R = Wq + E[S]
//! ```
//!
//! M/M/1 is `C² = 1` (`R = E[S]/(1 − ρ)`), M/D/1 is `C² = 0` (half the M/M/1 wait).

use super::error::{AnalyticError, check, non_negative, positive};

/// The first two moments of a service time, validated.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ServiceTime {
    mean_s: f64,
    scv: f64,
}

impl ServiceTime {
    /// A service time of mean `mean_s` \[s\] and squared coefficient of variation `scv`
    /// (`Var[S]/E[S]²`: 1 for exponential, 0 for deterministic).
    pub fn from_scv(mean_s: f64, scv: f64) -> Result<Self, AnalyticError> {
        positive("mean service time E[S] [s]", mean_s)?;
        non_negative("squared coefficient of variation of service C²", scv)?;
        Ok(Self { mean_s, scv })
    }

    /// A service time of mean `mean_s` \[s\] and second moment `second_moment_s2` = `E[S²]`
    /// \[s²\], which must be at least `E[S]²`.
    pub fn from_second_moment(mean_s: f64, second_moment_s2: f64) -> Result<Self, AnalyticError> {
        positive("mean service time E[S] [s]", mean_s)?;
        let floor = mean_s * mean_s;
        let rule = format!("≥ E[S]² = {floor} s² (a variance is never negative)");
        check("second moment of service E[S²] [s²]", second_moment_s2, second_moment_s2 >= floor, &rule)?;
        Ok(Self { mean_s, scv: second_moment_s2 / floor - 1.0 })
    }

    /// An exponential service time of mean `mean_s` \[s\] (`C² = 1`).
    pub fn exponential(mean_s: f64) -> Result<Self, AnalyticError> {
        Self::from_scv(mean_s, 1.0)
    }

    /// A deterministic service time `mean_s` \[s\] (`C² = 0`).
    pub fn deterministic(mean_s: f64) -> Result<Self, AnalyticError> {
        Self::from_scv(mean_s, 0.0)
    }

    /// Mean `E[S]` \[s\].
    pub fn mean_s(&self) -> f64 {
        self.mean_s
    }

    /// Squared coefficient of variation `C² = Var[S]/E[S]²`.
    pub fn scv(&self) -> f64 {
        self.scv
    }

    /// Second moment `E[S²] = E[S]²·(1 + C²)` \[s²\].
    pub fn second_moment_s2(&self) -> f64 {
        self.mean_s * self.mean_s * (1.0 + self.scv)
    }
}

/// Steady-state means of M/G/1 FIFO.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Mg1Metrics {
    /// Utilization `ρ = λ·E[S]`.
    pub utilization: f64,
    /// Mean wait in queue `Wq` \[s\].
    pub mean_wait_s: f64,
    /// Mean response time `R = Wq + E[S]` \[s\].
    pub mean_response_s: f64,
    /// Mean number waiting `Lq = λ·Wq`.
    pub mean_in_queue: f64,
    /// Mean number in the system `L = λ·R`.
    pub mean_in_system: f64,
}

/// Checks `λ > 0` and returns `ρ = λ·E[S]`, failing when `ρ ≥ 1` (shared by M/G/1 FIFO and PS).
pub(crate) fn single_server_utilization(
    model: &'static str,
    arrival_rate_per_s: f64,
    mean_service_s: f64,
) -> Result<f64, AnalyticError> {
    positive("arrival rate λ [1/s]", arrival_rate_per_s)?;
    positive("mean service time E[S] [s]", mean_service_s)?;
    let rho = arrival_rate_per_s * mean_service_s;
    if rho >= 1.0 {
        return Err(AnalyticError::Unstable {
            model,
            rho,
            max_arrival_rate_per_s: 1.0 / mean_service_s,
            remedy: "shorten the mean service time",
        });
    }
    Ok(rho)
}

/// Solves M/G/1 FIFO by Pollaczek–Khinchine: `Wq = ρ·E[S]·(1 + C²) / (2(1 − ρ))`.
///
/// Fails when `λ` is not finite and positive, or when `ρ = λ·E[S] ≥ 1`.
pub fn mg1(arrival_rate_per_s: f64, service: ServiceTime) -> Result<Mg1Metrics, AnalyticError> {
    let rho = single_server_utilization("M/G/1", arrival_rate_per_s, service.mean_s)?;
    let mean_wait_s = rho * service.mean_s * (1.0 + service.scv) / (2.0 * (1.0 - rho));
    let mean_response_s = mean_wait_s + service.mean_s;
    Ok(Mg1Metrics {
        utilization: rho,
        mean_wait_s,
        mean_response_s,
        mean_in_queue: arrival_rate_per_s * mean_wait_s,
        mean_in_system: arrival_rate_per_s * mean_response_s,
    })
}

/// M/M/1: [`mg1`] with exponential service, `R = E[S]/(1 − ρ)`.
pub fn mm1(arrival_rate_per_s: f64, mean_service_s: f64) -> Result<Mg1Metrics, AnalyticError> {
    mg1(arrival_rate_per_s, ServiceTime::exponential(mean_service_s)?)
}

/// M/D/1: [`mg1`] with deterministic service, `Wq = ρ·E[S] / (2(1 − ρ))`.
pub fn md1(arrival_rate_per_s: f64, mean_service_s: f64) -> Result<Mg1Metrics, AnalyticError> {
    mg1(arrival_rate_per_s, ServiceTime::deterministic(mean_service_s)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: f64 = 1e-12;

    #[test]
    fn mm1_and_md1_match_their_closed_forms() {
        // (λ, E[S]): M/M/1 R = E[S]/(1−ρ), L = ρ/(1−ρ); M/D/1 Lq = ρ²/(2(1−ρ)) (Kleinrock).
        for (lambda, s) in [(0.5, 1.0), (8.0, 0.1), (0.95, 1.0), (1.0, 0.999)] {
            let rho: f64 = lambda * s;
            let m = mm1(lambda, s).unwrap();
            assert!((m.mean_response_s - s / (1.0 - rho)).abs() < 1e-9, "{m:?}");
            assert!((m.mean_in_system - rho / (1.0 - rho)).abs() < 1e-9, "{m:?}");
            let d = md1(lambda, s).unwrap();
            assert!((d.mean_in_queue - rho * rho / (2.0 * (1.0 - rho))).abs() < 1e-9, "{d:?}");
            assert!((2.0 * d.mean_wait_s - m.mean_wait_s).abs() < 1e-9);
        }
    }

    #[test]
    fn hand_computed_hyperexponential_case() {
        // λ = 0.5/s, E[S] = 1 s, E[S²] = 5 s² (C² = 4): Wq = 0.5·5/(2·0.5) = 2.5 s, R = 3.5 s.
        let service = ServiceTime::from_second_moment(1.0, 5.0).unwrap();
        assert!((service.scv() - 4.0).abs() < TOL);
        let m = mg1(0.5, service).unwrap();
        assert!((m.mean_wait_s - 2.5).abs() < TOL && (m.mean_response_s - 3.5).abs() < TOL, "{m:?}");
        assert!((m.mean_in_queue - 1.25).abs() < TOL && (m.mean_in_system - 1.75).abs() < TOL, "{m:?}");
        let same = mg1(0.5, ServiceTime::from_scv(1.0, 4.0).unwrap()).unwrap();
        assert_eq!(m, same);
        assert!((service.second_moment_s2() - 5.0).abs() < TOL);
    }

    #[test]
    fn bad_inputs_name_the_parameter_and_the_fix() {
        let cases = [
            (md1(2.0, 0.5).unwrap_err(), "the M/G/1 queue is unstable; lower the arrival rate below 2.00/s"),
            (mm1(0.0, 1.0).unwrap_err(), "arrival rate λ [1/s] must be finite and > 0, got 0"),
            (ServiceTime::from_scv(1.0, -0.1).unwrap_err(), "C² must be finite and ≥ 0"),
            (
                ServiceTime::from_second_moment(2.0, 3.0).unwrap_err(),
                "E[S²] [s²] must be finite and ≥ E[S]² = 4",
            ),
            (ServiceTime::exponential(0.0).unwrap_err(), "E[S] [s] must be finite and > 0, got 0"),
        ];
        for (e, want) in cases {
            assert!(e.to_string().contains(want), "{e}");
        }
    }
}
