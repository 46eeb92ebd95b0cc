//! A lower bound on the mean response time of an open system, from one resource's work
//! alone: whatever the scheduling, the interleaving or the rest of the system.
//!
//! Requests arrive as a Poisson stream of rate λ. Each brings work `D` (i.i.d., mean μ,
//! variance σ²) for a resource of `c` servers, each of which does at most one second of
//! that work per second — it may run slower (shared cores), idle while work waits (a lock
//! handed over, a request busy elsewhere), serve in any order or interleave requests.
//! `T_b` is the time from a request's arrival until its work on the resource is done, so
//! its response time is at least `T_b`.
//!
//! The argument (workload comparison, then `H = λG`; Kleinrock vol. 1 ch. 5 for the M/G/1
//! workload, Scarf 1958 for the moment bound): pick a cap `k > 0` and count only the last
//! `m = min(D, k)` of each request's work. That work jumps by `m` at Poisson arrivals and
//! drains at rate ≤ c, so at every instant it is at least the workload of an M/G/1 queue of
//! speed c fed the same jumps, whose time average is `λ·E[m²] / (2c·(1 − λ·E[m]/c))`. A
//! request's counted work at time t into its stay is at most `min(m, T_b − t)` (what is
//! left needs that long at rate 1), so over its stay it contributes at most
//! `m·T_b − m²/2 ≤ k·T_b − m²/2`, and the time average is λ times the mean contribution:
//!
//! ```text
//! E[T] ≥ E[T_b] ≥ E[m]² / (2k) · (1 + 1/(c·(1 − λ·E[m]/c)))           for every k > 0
//! E[m] = E[min(D,k)] ≥ μ − (√(σ² + (k − μ)²) − (k − μ)) / 2         (Scarf's bound)
//! ```
//!
//! and, as a request is served at rate ≤ 1, `E[T_b] ≥ μ`. For a deterministic D = d on one
//! server (k = d) the bound is the M/D/1 response `d·(2 − ρ)/(2(1 − ρ))` itself: no bound
//! can be higher, as FIFO is one of the disciplines it covers. On c servers it is
//! `d/2·(1 + 1/(c(1 − ρ)))`, which M/D/c exceeds by up to `d/2` at light load. It bounds the
//! *mean* only: no bound on a percentile follows from the work alone (a
//! last-come-first-served server finishes most requests at once and a few very late).

use super::error::{AnalyticError, non_negative, positive, servers};
use super::mg1::{ServiceTime, mg1};

/// Caps tried: powers of 2^(1/4) times the mean work, from 1/2 to 64, and the mean plus
/// 0, ½, 1, … 4 standard deviations. Any cap gives a valid bound and the best is kept: for
/// deterministic work it is the mean itself, for narrow work about a deviation above it,
/// and near saturation a large cap keeps `E[min(D,k)]` close to μ.
const CAP_STEPS: std::ops::RangeInclusive<i32> = -4..=24;
const CAP_DEVIATIONS: std::ops::RangeInclusive<i32> = 0..=8;

/// Lower bound \[s\] on the mean time from arrival until a request's work on a resource of
/// `servers_c` servers is done, under Poisson arrivals at `arrival_rate_per_s` [1/s], when
/// each request needs work of mean `work_mean_s` \[s\] and variance `work_variance_s2`
/// \[s²\] there (see the module docs for the argument and its assumptions).
///
/// Returns 0 when requests need no work there. Fails when an input is out of range or
/// when `ρ = λ·μ/c ≥ 1` (no steady state: the mean grows without limit).
pub fn open_response_lower_bound(
    arrival_rate_per_s: f64,
    servers_c: u32,
    work_mean_s: f64,
    work_variance_s2: f64,
) -> Result<f64, AnalyticError> {
    positive("arrival rate λ [1/s]", arrival_rate_per_s)?;
    servers("servers c", servers_c)?;
    non_negative("mean work per request μ [s]", work_mean_s)?;
    non_negative("variance of work per request σ² [s²]", work_variance_s2)?;
    if work_mean_s == 0.0 {
        return Ok(0.0);
    }
    let c = f64::from(servers_c);
    let rho = arrival_rate_per_s * work_mean_s / c;
    if rho >= 1.0 {
        return Err(AnalyticError::Unstable {
            model: "open",
            rho,
            max_arrival_rate_per_s: c / work_mean_s,
            remedy: "add servers",
        });
    }
    let mut best = work_mean_s;
    let sd = work_variance_s2.sqrt();
    let by_mean = CAP_STEPS.map(|i| work_mean_s * 2f64.powf(f64::from(i) / 4.0));
    let by_sd = CAP_DEVIATIONS.filter(|_| sd > 0.0).map(|j| work_mean_s + sd * f64::from(j) / 2.0);
    for k in by_mean.chain(by_sd) {
        let capped = capped_mean_lower(work_mean_s, work_variance_s2, k);
        if capped <= 0.0 {
            continue;
        }
        // The speed-c queue in time units: service min(D,k)/c, second moment ≥ its mean².
        let wait_s = mg1(arrival_rate_per_s, ServiceTime::deterministic(capped / c)?)?.mean_wait_s;
        // Its mean workload is c × the time-unit workload (the FIFO wait); per request,
        // k·E[T_b] − E[m²]/2 covers it.
        let work_per_request_s2 = c * wait_s / arrival_rate_per_s;
        best = best.max((work_per_request_s2 + 0.5 * capped * capped) / k);
    }
    Ok(best)
}

/// Lower bound on `E[min(D, k)]` over every distribution of mean `mean` and variance
/// `variance`: `mean − max E[(D − k)⁺]`, the latter by Scarf's bound.
fn capped_mean_lower(mean: f64, variance: f64, k: f64) -> f64 {
    let over = k - mean;
    let root = (variance + over * over).sqrt();
    // (√(σ² + x²) − x)/2, without cancellation when x ≫ σ.
    let excess = if over > 0.0 { 0.5 * variance / (root + over) } else { 0.5 * (root - over) };
    (mean - excess).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::super::erlang::mmc;
    use super::super::mg1::{md1, mm1};
    use super::super::ps::mg1_ps;
    use super::*;

    /// Slack for rounding where the bound meets a closed form.
    const TOL: f64 = 1e-12;

    #[test]
    fn deterministic_work_on_one_server_is_exactly_m_d_1() {
        for rho in [0.1, 0.5, 0.9, 0.99] {
            let got = open_response_lower_bound(rho / 0.033, 1, 0.033, 0.0).unwrap();
            let want = md1(rho / 0.033, 0.033).unwrap().mean_response_s;
            assert!((got - want).abs() < TOL * 1e3, "ρ = {rho}: {got}, M/D/1 {want}");
        }
        // On c servers: d/2·(1 + 1/(c(1 − ρ))) once that passes d.
        let got = open_response_lower_bound(4.0 * 0.95 / 0.08, 4, 0.08, 0.0).unwrap();
        assert!((got - 0.04 * (1.0 + 1.0 / (4.0 * 0.05))).abs() < TOL, "{got}");
    }

    #[test]
    fn never_above_the_exact_means_of_textbook_queues() {
        // (bound, exact mean response) for M/D/1, M/M/1, M/G/1-PS and M/M/c at loads up to
        // ρ = 0.99: FIFO and processor sharing are two of the disciplines it covers.
        for rho in [0.05, 0.3, 0.6, 0.8, 0.9, 0.95, 0.99] {
            let s = 0.08;
            let lambda = rho / s;
            let cases = [
                (open_response_lower_bound(lambda, 1, s, 0.0), md1(lambda, s).unwrap().mean_response_s),
                (open_response_lower_bound(lambda, 1, s, s * s), mm1(lambda, s).unwrap().mean_response_s),
                (
                    open_response_lower_bound(lambda, 1, s, 4.0 * s * s),
                    mg1_ps(lambda, s).unwrap().mean_response_s,
                ),
                (
                    open_response_lower_bound(4.0 * lambda, 4, s, s * s),
                    mmc(4.0 * lambda, s, 4).unwrap().mean_response_s,
                ),
            ];
            for (i, (bound, exact)) in cases.into_iter().enumerate() {
                let bound = bound.unwrap();
                // M/D/1 is met exactly: allow for rounding.
                let ok = bound >= s && bound <= exact * (1.0 + TOL);
                assert!(ok, "case {i}, ρ = {rho}: bound {bound}, exact {exact}");
            }
        }
    }

    #[test]
    fn rises_with_the_load_and_far_above_the_work_near_saturation() {
        // 50 ms of work with a CV of 0.2: the bound climbs with ρ and, at ρ = 0.999, is
        // more than 20 times the work (Scarf's bound costs most of the 1/(1 − ρ) growth
        // once the work varies).
        let at =
            |rho: f64, c: u32| open_response_lower_bound(f64::from(c) * rho / 0.05, c, 0.05, 0.0001).unwrap();
        for c in [1, 4] {
            let b = [0.5, 0.9, 0.99, 0.999].map(|rho| at(rho, c));
            assert!(b[0] >= 0.05 && b[0] <= b[1] && b[1] < b[2] && b[2] < b[3], "c = {c}: {b:?}");
        }
        assert!(at(0.999, 1) > 20.0 * 0.05, "{}", at(0.999, 1));
    }

    #[test]
    fn no_work_no_bound_and_bad_inputs_are_refused() {
        assert_eq!(open_response_lower_bound(10.0, 2, 0.0, 0.0).unwrap(), 0.0);
        let cases = [
            (open_response_lower_bound(0.0, 1, 0.1, 0.0), "arrival rate λ [1/s] must be finite and > 0"),
            (open_response_lower_bound(1.0, 0, 0.1, 0.0), "servers c must be ≥ 1"),
            (open_response_lower_bound(1.0, 1, -0.1, 0.0), "mean work per request μ [s]"),
            (open_response_lower_bound(1.0, 1, 0.1, f64::NAN), "variance of work per request σ² [s²]"),
            (open_response_lower_bound(20.0, 2, 0.1, 0.0), "ρ = 1.00 ≥ 1"),
        ];
        for (got, want) in cases {
            let e = got.unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
