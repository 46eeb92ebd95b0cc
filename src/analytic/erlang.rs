//! M/M/c: Poisson arrivals, exponential service, `c` identical FIFO servers (Erlang C).
//!
//! Source: L. Kleinrock, *Queueing Systems*, vol. 1 (1975), §3.5 (M/M/m) and §3.7 (M/M/m/m,
//! Erlang's loss formula). With offered load `a = λ·E[S]` \[Erlangs\] and utilization
//! `ρ = a/c`:
//!
//! ```text
//! Erlang B:  B(0) = 1,  B(k) = a·B(k−1) / (k + a·B(k−1))      (blocking of M/M/c/c)
//! Erlang C:  C = B(c) / (1 − ρ·(1 − B(c)))                     (P(wait) in M/M/c)
//! Wq = C·E[S] / (c·(1 − ρ)),  R = Wq + E[S],  Lq = λ·Wq,  L = λ·R   (Little)
//! ```
//!
//! The recursion never forms `a^c/c!`, so it neither overflows nor cancels for thousands of
//! servers, unlike the textbook sum.

use super::error::{AnalyticError, non_negative, positive, servers};

/// Erlang's B formula: the blocking probability of M/M/c/c with `servers_c` servers and
/// `offered_load_erlangs` = `λ·E[S]`, by the stable recursion
/// `B(k) = a·B(k−1) / (k + a·B(k−1))` (Kleinrock vol. 1, §3.7).
pub fn erlang_b(servers_c: u32, offered_load_erlangs: f64) -> Result<f64, AnalyticError> {
    servers("servers c", servers_c)?;
    non_negative("offered load a = λ·E[S] [Erlangs]", offered_load_erlangs)?;
    let a = offered_load_erlangs;
    Ok((1..=servers_c).fold(1.0, |b, k| a * b / (f64::from(k) + a * b)))
}

/// Erlang's C formula: the probability that an arrival waits in M/M/c,
/// `C = B / (1 − ρ(1 − B))` with `B` Erlang B and `ρ = a/c` (Kleinrock vol. 1, §3.5).
/// Fails when `ρ ≥ 1`: no steady state exists.
pub fn erlang_c(servers_c: u32, offered_load_erlangs: f64) -> Result<f64, AnalyticError> {
    let b = erlang_b(servers_c, offered_load_erlangs)?;
    let rho = offered_load_erlangs / f64::from(servers_c);
    if rho >= 1.0 {
        return Err(AnalyticError::Param {
            param: "offered load a = λ·E[S] [Erlangs]",
            rule: format!("< c = {servers_c} for the M/M/c queue to be stable"),
            got: offered_load_erlangs,
        });
    }
    Ok(b / (1.0 - rho * (1.0 - b)))
}

/// Steady-state means of M/M/c.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MmcMetrics {
    /// Servers c.
    pub servers: u32,
    /// Offered load `a = λ·E[S]` \[Erlangs\]: the mean number of busy servers.
    pub offered_load_erlangs: f64,
    /// Utilization of each server, `ρ = a/c`.
    pub utilization: f64,
    /// Probability that an arrival waits (Erlang C).
    pub p_wait: f64,
    /// Mean wait in queue `Wq` \[s\].
    pub mean_wait_s: f64,
    /// Mean response time `R = Wq + E[S]` \[s\].
    pub mean_response_s: f64,
    /// Mean number waiting `Lq = λ·Wq`.
    pub mean_in_queue: f64,
    /// Mean number in the system `L = λ·R`.
    pub mean_in_system: f64,
}

/// Solves M/M/c with arrival rate `arrival_rate_per_s` [1/s], mean service time
/// `mean_service_s` \[s\] and `servers_c` servers.
///
/// Fails when an input is not finite or not positive, when `c = 0`, or when
/// `ρ = λ·E[S]/c ≥ 1` (the error gives the largest stable rate, `c/E[S]`).
pub fn mmc(
    arrival_rate_per_s: f64,
    mean_service_s: f64,
    servers_c: u32,
) -> Result<MmcMetrics, AnalyticError> {
    positive("arrival rate λ [1/s]", arrival_rate_per_s)?;
    positive("mean service time E[S] [s]", mean_service_s)?;
    servers("servers c", servers_c)?;
    let c = f64::from(servers_c);
    let a = arrival_rate_per_s * mean_service_s;
    let rho = a / c;
    if rho >= 1.0 {
        return Err(AnalyticError::Unstable {
            model: "M/M/c",
            rho,
            max_arrival_rate_per_s: c / mean_service_s,
            remedy: "add servers",
        });
    }
    let p_wait = erlang_c(servers_c, a)?;
    let mean_wait_s = p_wait * mean_service_s / (c * (1.0 - rho));
    let mean_response_s = mean_wait_s + mean_service_s;
    Ok(MmcMetrics {
        servers: servers_c,
        offered_load_erlangs: a,
        utilization: rho,
        p_wait,
        mean_wait_s,
        mean_response_s,
        mean_in_queue: arrival_rate_per_s * mean_wait_s,
        mean_in_system: arrival_rate_per_s * mean_response_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Agreement with values computed in exact rational arithmetic.
    const TOL: f64 = 1e-12;

    #[test]
    fn erlang_b_matches_the_direct_sum_and_published_tables() {
        // (c, a, B): `(a^c/c!) / Σ_{k≤c} a^k/k!` in exact fractions; the (5, 2), (10, 5) and
        // (10, 10) rows are the 0.0367, 0.0184 and 0.2146 of the usual Erlang B tables.
        let table = [
            (1, 0.5, 1.0 / 3.0),
            (2, 1.0, 0.2),
            (3, 2.5, 0.282_167_042_889_390_54),
            (4, 3.6, 0.270_685_067_145_244_15),
            (5, 2.0, 0.036_697_247_706_422_02),
            (10, 5.0, 0.018_384_570_336_648_132),
            (10, 10.0, 0.214_582_343_107_347_33),
            (200, 190.0, 0.027_968_164_458_745_344),
        ];
        for (c, a, want) in table {
            let got = erlang_b(c, a).unwrap();
            assert!((got - want).abs() < TOL, "B({c}, {a}) = {got}, want {want}");
        }
        assert_eq!(erlang_b(3, 0.0).unwrap(), 0.0);
    }

    #[test]
    fn erlang_c_matches_the_direct_sum_even_for_many_servers() {
        // `C = (a^c/c!)/(1−ρ) / (Σ_{k<c} a^k/k! + (a^c/c!)/(1−ρ))`, exact fractions for small
        // c, 50-digit arithmetic for c = 200 and 1000 (where a^c/c! overflows an f64).
        let table = [
            (2, 1.0, 1.0 / 3.0),
            (3, 2.5, 0.702_247_191_011_236),
            (4, 3.6, 0.787_753_264_295_362_4),
            (10, 8.0, 0.409_180_150_796_443_54),
            (200, 190.0, 0.365_263_856_562_546_4),
            (1000, 990.0, 0.659_080_421_880_854_4),
        ];
        for (c, a, want) in table {
            let got = erlang_c(c, a).unwrap();
            assert!((got - want).abs() < 1e-10, "C({c}, {a}) = {got}, want {want}");
        }
    }

    #[test]
    fn mm4_at_rho_0_9() {
        // λ = 3.6/s, E[S] = 1 s, c = 4: R = 2.9694 s; exact fractions give
        // Wq = 1.969383160738406 s, L = 10.68977937865826, Lq = 7.089779378658262.
        let m = mmc(3.6, 1.0, 4).unwrap();
        assert!((m.mean_response_s - 2.9694).abs() < 5e-5, "{m:?}");
        assert!((m.mean_wait_s - 1.969_383_160_738_406).abs() < TOL, "{m:?}");
        assert!((m.mean_in_system - 10.689_779_378_658_262).abs() < 1e-11, "{m:?}");
        assert!((m.mean_in_queue - 7.089_779_378_658_262).abs() < 1e-11, "{m:?}");
        assert!((m.utilization - 0.9).abs() < TOL && (m.offered_load_erlangs - 3.6).abs() < TOL);
    }

    #[test]
    fn one_and_two_servers_have_closed_forms() {
        // M/M/1: P(wait) = ρ, R = E[S]/(1 − ρ). M/M/2: C = 2ρ²/(1 + ρ), R = E[S]/(1 − ρ²).
        for rho in [0.1, 0.5, 0.9, 0.99] {
            let m1 = mmc(rho / 2.0, 2.0, 1).unwrap();
            assert!((m1.p_wait - rho).abs() < TOL && (m1.mean_response_s - 2.0 / (1.0 - rho)).abs() < 1e-9);
            let m2 = mmc(2.0 * rho, 1.0, 2).unwrap();
            assert!((m2.p_wait - 2.0 * rho * rho / (1.0 + rho)).abs() < TOL, "{m2:?}");
            assert!((m2.mean_response_s - 1.0 / (1.0 - rho * rho)).abs() < 1e-9, "{m2:?}");
        }
    }

    #[test]
    fn bad_inputs_name_the_parameter_and_the_fix() {
        let cases: [(Result<MmcMetrics, AnalyticError>, &str); 5] = [
            (
                mmc(4.0, 1.0, 4),
                "ρ = 1.00 ≥ 1: the M/M/c queue is unstable; lower the arrival rate below 4.00/s",
            ),
            (mmc(-1.0, 1.0, 1), "arrival rate λ [1/s] must be finite and > 0, got -1"),
            (mmc(1.0, f64::NAN, 1), "mean service time E[S] [s] must be finite and > 0, got NaN"),
            (mmc(1.0, 1.0, 0), "servers c must be ≥ 1, got 0"),
            (mmc(f64::INFINITY, 1.0, 1), "arrival rate λ [1/s] must be finite"),
        ];
        for (got, want) in cases {
            let e = got.unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        assert!(erlang_c(2, 2.0).unwrap_err().to_string().contains("< c = 2"));
        assert!(erlang_b(1, -0.5).unwrap_err().to_string().contains("offered load"));
    }
}
