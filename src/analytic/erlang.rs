//! Single-station open queues: M/M/c (Erlang C), M/G/1 (Pollaczek–Khinchine) and M/G/1
//! processor sharing. Source: L. Kleinrock, *Queueing Systems*, vol. 1 (1975), §3.5 (M/M/c),
//! §5.7 (P–K), §4.4 of vol. 2 (PS).

use super::error::{AnalyticError, check};

/// Erlang's B formula: blocking probability of M/M/c/c with offered load `a = λ·E[S]`,
/// by the stable recursion `B(k) = a·B(k−1) / (k + a·B(k−1))`.
pub fn erlang_b(c: u32, a: f64) -> Result<f64, AnalyticError> {
    check("c", f64::from(c), c >= 1, "≥ 1")?;
    check("offered load a", a, a >= 0.0, "≥ 0")?;
    Ok((1..=c).fold(1.0, |b, k| a * b / (f64::from(k) + a * b)))
}

/// Erlang's C formula: probability that an arrival waits in M/M/c,
/// `C = B / (1 − ρ(1 − B))` with `ρ = a/c`.
pub fn erlang_c(c: u32, a: f64) -> Result<f64, AnalyticError> {
    let b = erlang_b(c, a)?;
    let rho = a / f64::from(c);
    if rho >= 1.0 {
        return Err(AnalyticError::Unstable { rho, max_rate: f64::NAN });
    }
    Ok(b / (1.0 - rho * (1.0 - b)))
}

/// Steady state of M/M/c.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MmcResult {
    /// Utilization per server, `λ·E[S]/c`.
    pub rho: f64,
    /// Probability of waiting (Erlang C).
    pub p_wait: f64,
    /// Mean wait in queue [s].
    pub wait_s: f64,
    /// Mean response time [s].
    pub response_s: f64,
    /// Mean number in system.
    pub in_system: f64,
    /// Mean number waiting.
    pub in_queue: f64,
}

fn rates(lambda: f64, service_s: f64) -> Result<(), AnalyticError> {
    check("arrival rate λ", lambda, lambda > 0.0, "> 0")?;
    check("mean service time E[S]", service_s, service_s > 0.0, "> 0")
}

/// M/M/c with arrival rate `lambda` [1/s], mean service `service_s` [s] and `c` servers:
/// `Wq = C·E[S] / (c(1 − ρ))`, `R = Wq + E[S]`.
pub fn mmc(lambda: f64, service_s: f64, c: u32) -> Result<MmcResult, AnalyticError> {
    rates(lambda, service_s)?;
    check("c", f64::from(c), c >= 1, "≥ 1")?;
    let a = lambda * service_s;
    let rho = a / f64::from(c);
    if rho >= 1.0 {
        return Err(AnalyticError::Unstable { rho, max_rate: f64::from(c) / service_s });
    }
    let p_wait = erlang_c(c, a)?;
    let wait_s = p_wait * service_s / (f64::from(c) * (1.0 - rho));
    let response_s = wait_s + service_s;
    Ok(MmcResult {
        rho,
        p_wait,
        wait_s,
        response_s,
        in_system: lambda * response_s,
        in_queue: lambda * wait_s,
    })
}

fn stable(lambda: f64, service_s: f64) -> Result<f64, AnalyticError> {
    rates(lambda, service_s)?;
    let rho = lambda * service_s;
    if rho >= 1.0 {
        return Err(AnalyticError::Unstable { rho, max_rate: 1.0 / service_s });
    }
    Ok(rho)
}

/// M/G/1 FIFO mean response time by Pollaczek–Khinchine:
/// `R = E[S] + ρ·E[S]·(1 + SCV) / (2(1 − ρ))`, with SCV the squared coefficient of
/// variation of service (1 for M/M/1, 0 for M/D/1).
pub fn mg1_response(lambda: f64, service_s: f64, scv: f64) -> Result<f64, AnalyticError> {
    check("SCV", scv, scv >= 0.0, "≥ 0")?;
    let rho = stable(lambda, service_s)?;
    Ok(service_s + rho * service_s * (1.0 + scv) / (2.0 * (1.0 - rho)))
}

/// M/G/1 processor sharing mean response time, `E[S] / (1 − ρ)` for any service
/// distribution (insensitivity).
pub fn mg1_ps(lambda: f64, service_s: f64) -> Result<f64, AnalyticError> {
    let rho = stable(lambda, service_s)?;
    Ok(service_s / (1.0 - rho))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: f64 = 1e-4;

    #[test]
    fn mm4_matches_the_published_figure() {
        // λ = 3.6/s, E[S] = 1 s, c = 4: ρ = 0.9, C = 0.7455, R = 2.9694 s (hand computation
        // with the Erlang B recursion: B(4) = 0.27069).
        let r = mmc(3.6, 1.0, 4).unwrap();
        assert!((erlang_b(4, 3.6).unwrap() - 0.27069).abs() < TOL);
        assert!((r.p_wait - 0.78776).abs() < TOL, "{r:?}");
        assert!((r.response_s - 2.9694).abs() < TOL, "{r:?}");
    }

    #[test]
    fn one_server_reduces_to_mm1_and_pk() {
        // M/M/1: R = 1/(μ − λ); P–K with SCV 1 agrees; M/D/1 waits half as long.
        for rho in [0.5, 0.8, 0.95] {
            let want = 1.0 / (1.0 - rho);
            assert!((mmc(rho, 1.0, 1).unwrap().response_s - want).abs() < 1e-12);
            assert!((mg1_response(rho, 1.0, 1.0).unwrap() - want).abs() < 1e-12);
            let md1 = mg1_response(rho, 1.0, 0.0).unwrap();
            assert!((md1 - (1.0 + rho / (2.0 * (1.0 - rho)))).abs() < 1e-12);
            assert!((mg1_ps(rho, 1.0).unwrap() - want).abs() < 1e-12);
        }
    }

    #[test]
    fn bad_inputs_name_the_parameter() {
        let e = mmc(5.0, 1.0, 4).unwrap_err().to_string();
        assert!(e.contains("unstable") && e.contains("below 4.0000/s"), "{e}");
        assert!(mmc(-1.0, 1.0, 1).unwrap_err().to_string().contains("arrival rate λ must be > 0"));
        assert!(mmc(1.0, f64::NAN, 1).unwrap_err().to_string().contains("E[S]"));
        assert!(erlang_b(0, 1.0).unwrap_err().to_string().contains("c must be ≥ 1"));
        assert!(mg1_response(0.5, 1.0, -1.0).unwrap_err().to_string().contains("SCV"));
    }
}
