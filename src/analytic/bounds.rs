//! Asymptotic bottleneck bounds (Lazowska et al., *Quantitative System Performance*, §5.2):
//! `X(N) ≤ min(N / (D + Z), 1 / D_max)` and `R(N) ≥ max(D, N·D_max − Z)`, where a c-server
//! station counts as demand `D/c` towards the bottleneck.

use super::mva::{Station, StationKind};

/// Bounds at one population.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// Upper bound on throughput [1/s].
    pub max_throughput: f64,
    /// Lower bound on response time, think time excluded [s].
    pub min_response_s: f64,
    /// Largest stable open arrival rate, `1 / D_max` [1/s].
    pub max_open_rate: f64,
}

/// Bounds for `n` users with think time `think_s`.
pub fn bounds(stations: &[Station], think_s: f64, n: u32) -> Bounds {
    let total: f64 = stations.iter().map(|s| s.demand_s).sum();
    let d_max = stations
        .iter()
        .map(|s| match s.kind {
            StationKind::Queueing => s.demand_s,
            StationKind::Delay => 0.0,
            StationKind::MultiServer(c) => s.demand_s / f64::from(c.max(1)),
        })
        .fold(0.0, f64::max);
    let n = f64::from(n);
    let max_open_rate = if d_max > 0.0 { 1.0 / d_max } else { f64::INFINITY };
    Bounds {
        max_throughput: (n / (total + think_s)).min(max_open_rate),
        min_response_s: total.max(n * d_max - think_s),
        max_open_rate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_bracket_exact_mva() {
        let st = [
            Station { kind: StationKind::Queueing, demand_s: 0.2 },
            Station { kind: StationKind::MultiServer(4), demand_s: 1.0 },
        ];
        let exact = super::super::mva::mva(&st, 1.0, 64).unwrap();
        for p in exact {
            let b = bounds(&st, 1.0, p.n);
            assert!(p.throughput <= b.max_throughput + 1e-12, "{p:?} {b:?}");
            assert!(p.response_s >= b.min_response_s - 1e-12, "{p:?} {b:?}");
        }
        assert_eq!(bounds(&st, 1.0, 1000).max_throughput, 4.0);
    }
}
