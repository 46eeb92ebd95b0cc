//! The analytic screens of a capacity search: bounds on a request's work at each resource
//! (a lower bound on the mean, an upper bound on the variance) and what they prove about
//! latency.

use super::SloMetric;
use crate::analytic;
use crate::scenario::{Handler, LockKind, Scenario};
use crate::sim::Bottleneck;
use crate::workload::Dist;

/// The simulator's cap on a draw of `workload.new_tokens`.
const MAX_TOKENS: f64 = 1_000_000.0;

/// A request's work at one resource [ms, ms²]: a lower bound on its mean and an upper
/// bound on its variance, as the simulator draws it (every part independently, per token
/// for the per-token parts).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Work {
    pub(super) mean_ms: f64,
    var_ms2: f64,
}

/// Bounds on the number of tokens a request generates: the simulator draws
/// `round(min(Y, MAX_TOKENS))`, which is within ½ of `min(Y, MAX_TOKENS)`; the cap lowers
/// the mean by at most Scarf's bound on `E[(Y − MAX)⁺]` and never widens the spread.
#[derive(Debug, Clone, Copy)]
struct Tokens {
    mean_lo: f64,
    mean_hi: f64,
    var_hi: f64,
}

fn variance(d: &Dist) -> f64 {
    d.scv() * d.mean() * d.mean()
}

fn tokens(d: &Dist) -> Tokens {
    if let Dist::Const(v) = d {
        let n = v.min(MAX_TOKENS).round();
        return Tokens { mean_lo: n, mean_hi: n, var_hi: 0.0 };
    }
    let (mean, var) = (d.mean(), variance(d));
    // Scarf: E[(Y − M)⁺] ≤ (√(σ² + (M − μ)²) − (M − μ))/2, written without cancellation.
    let over = MAX_TOKENS - mean;
    let capped_off = 0.5 * var / ((var + over * over).sqrt() + over);
    Tokens {
        mean_lo: (mean - capped_off - 0.5).max(0.0),
        mean_hi: mean + 0.5,
        var_hi: (var.sqrt() + 0.5).powi(2),
    }
}

/// Work of parts drawn once per request plus parts drawn once per token.
fn work(once: &[&Dist], per_token: &[&Dist], n: Tokens) -> Work {
    let (m1, v1): (f64, f64) = (once.iter().map(|d| d.mean()).sum(), once.iter().map(|d| variance(d)).sum());
    let (mt, vt): (f64, f64) =
        (per_token.iter().map(|d| d.mean()).sum(), per_token.iter().map(|d| variance(d)).sum());
    // Var(Σ_{i≤N} X_i) = E[N]·Var(X) + Var(N)·E[X]² for N independent of the i.i.d. X_i.
    Work { mean_ms: m1 + n.mean_lo * mt, var_ms2: v1 + n.mean_hi * vt + n.var_hi * mt * mt }
}

/// Quantile of the SLO's figure a request's latency cannot go below, from its own work
/// (latency ≥ work): the mean for a mean SLO, else `μ − σ·√((1 − q)/q)` by Cantelli's
/// inequality `P(W ≤ μ − t) ≤ σ²/(σ² + t²)`.
pub(super) fn work_floor_ms(w: Work, metric: SloMetric) -> f64 {
    let q: f64 = match metric {
        SloMetric::Mean => return w.mean_ms,
        SloMetric::P50 => 0.5,
        SloMetric::P95 => 0.95,
        SloMetric::P99 => 0.99,
    };
    (w.mean_ms - w.var_ms2.sqrt() * ((1.0 - q) / q).sqrt()).max(0.0)
}

/// Each resource of an unbatched configuration: its servers and a request's work there.
/// Lock hand-offs are left out (a lower bound needs only the work that surely happens).
pub(super) fn resources(sc: &Scenario) -> Vec<(Bottleneck, u32, Work)> {
    let c = &sc.cost;
    let n = tokens(&sc.workload.new_tokens);
    let loop_locked = [&c.loop_in_ms, &c.loop_out_ms];
    let loop_free = [&c.loop_in_free_ms, &c.loop_out_free_ms];
    let handler = [&c.request_locked_ms, &c.request_free_ms];
    let per_token = [&c.token_locked_ms, &c.token_free_ms];
    let everything: Vec<&Dist> = loop_locked.into_iter().chain(loop_free).chain(handler).collect();
    let workers = sc.system.workers;
    let mut out = vec![(Bottleneck::Cores, sc.system.cores, work(&everything, &per_token, n))];
    if sc.worker.lock != LockKind::None {
        let mut locked = vec![&c.request_locked_ms];
        if c.loop_lock {
            locked.extend(loop_locked);
        }
        out.push((Bottleneck::Lock, workers, work(&locked, &[&c.token_locked_ms], n)));
    }
    if sc.worker.handler == Handler::AsyncBlocking {
        out.push((Bottleneck::EventLoop, workers, work(&everything, &per_token, n)));
    } else {
        let threads = workers.saturating_mul(sc.worker.threads);
        out.push((Bottleneck::Threads, threads, work(&handler, &per_token, n)));
        let on_loop: Vec<&Dist> = loop_locked.into_iter().chain(loop_free).collect();
        out.push((Bottleneck::EventLoop, workers, work(&on_loop, &[], n)));
    }
    out
}

/// The largest open-system lower bound on mean latency over the resources, plus the mean
/// round trip (which follows the server's work), with the resource that gives it.
pub(super) fn latency_bound_ms(sc: &Scenario, rate_rps: f64) -> Option<(f64, Bottleneck)> {
    resources(sc)
        .into_iter()
        .filter_map(|(resource, servers, w)| {
            // An error means ρ ≥ 1 on rounded token counts: leave that to the simulator.
            let s = analytic::open_response_lower_bound(rate_rps, servers, w.mean_ms / 1e3, w.var_ms2 / 1e6);
            s.ok().map(|s| (s * 1e3, resource))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(ms, resource)| (ms + sc.cost.rtt_ms.mean(), resource))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_bounds_cover_rounded_token_counts() {
        // (new_tokens, per-token ms, floor of the mean, of the p95, of the p50): a constant
        // count is exact; a drawn one loses ½ token to rounding and widens by ½.
        let gamma = Dist::Gamma { mean: 20.0, cv: 0.5 };
        let cases = [
            (Dist::Const(20.0), 2.0, 40.0, 40.0, 40.0),
            (Dist::Const(19.6), 2.0, 40.0, 40.0, 40.0),
            (gamma.clone(), 2.0, 39.0, 39.0 - 2.0 * 10.5 * (0.05f64 / 0.95).sqrt(), 39.0 - 2.0 * 10.5),
        ];
        for (n, per_token, mean, p95, p50) in cases {
            let w = work(&[], &[&Dist::Const(per_token)], tokens(&n));
            for (metric, want) in [(SloMetric::Mean, mean), (SloMetric::P95, p95), (SloMetric::P50, p50)] {
                let got = work_floor_ms(w, metric);
                assert!((got - want).abs() < 1e-4, "{n:?} {metric:?}: {got}, want {want}");
            }
        }
    }
}
