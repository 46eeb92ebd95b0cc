//! Bottleneck bounds: throughput and response time bracketed from the demands alone, in
//! O(K) work, for pruning before anything is solved or simulated.
//!
//! Source: E. Lazowska et al., *Quantitative System Performance* (1984), ch. 5: §5.2
//! asymptotic bounds, §5.3 balanced system bounds (J. Zahorjan, K. Sevcik, D. Eager,
//! B. Galler, "Balanced job bound analysis of queueing networks", CACM 25(2), 1982). With
//! `D = Σ D_k`, `D_max = max_k D_k/c_k` (delay stations excluded), N users and think time Z:
//!
//! ```text
//! asymptotic   N/(N·D + Z) ≤ X(N) ≤ min(N/(D + Z), 1/D_max)
//!              max(D, N·D_max − Z) ≤ R(N) ≤ N·D
//! open         λ < λ_sat = 1/D_max,   R(λ) ≥ D
//! ```
//!
//! A c-server station counts as `D/c` towards the bottleneck. Response-time bounds follow
//! from the throughput bounds by Little's law, `R = N/X − Z`.

use super::error::AnalyticError;
use super::network::{ClosedNetwork, Station, StationKind};

/// Two-sided bounds at one population of a closed network.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClosedBounds {
    /// Population N.
    pub population: u32,
    /// Lower (pessimistic) bound on throughput [1/s].
    pub throughput_lower_per_s: f64,
    /// Upper (optimistic) bound on throughput [1/s].
    pub throughput_upper_per_s: f64,
    /// Lower bound on response time, think time excluded \[s\].
    pub response_lower_s: f64,
    /// Upper bound on response time, think time excluded \[s\].
    pub response_upper_s: f64,
}

impl ClosedBounds {
    /// Derives the response bounds from the throughput bounds by `R = N/X − Z`.
    fn from_throughput(population: u32, think_s: f64, lower_per_s: f64, upper_per_s: f64) -> Self {
        let n = f64::from(population);
        Self {
            population,
            throughput_lower_per_s: lower_per_s,
            throughput_upper_per_s: upper_per_s,
            response_lower_s: n / upper_per_s - think_s,
            response_upper_s: n / lower_per_s - think_s,
        }
    }
}

/// Bounds of an open network (Poisson arrivals, no think time).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OpenBounds {
    /// Saturation rate `λ_sat = 1/D_max` [1/s]: every larger arrival rate is unstable;
    /// infinite when no station saturates.
    pub max_arrival_rate_per_s: f64,
    /// Response time of a request alone, `D = Σ D_k`, a lower bound at any rate \[s\].
    pub min_response_s: f64,
}

/// Asymptotic bounds for `population` users of `network` (Lazowska et al. §5.2).
///
/// The optimistic side holds for any network. The pessimistic side assumes a request
/// waits behind every other user at every single-server station (`N·D_k`) and, at a
/// c-server station, behind all of them served c at a time (`D_k·(1 + (N − 1)/c)`), which
/// holds in the product-form networks [`mva`](super::mva()) solves. Fails when
/// `population` is 0.
pub fn asymptotic_bounds(network: &ClosedNetwork, population: u32) -> Result<ClosedBounds, AnalyticError> {
    check_population(population)?;
    let n = f64::from(population);
    let think_s = network.think_s();
    let optimistic = (n / (network.total_demand_s() + think_s)).min(network.max_throughput_per_s());
    let worst_s: f64 = network.stations().iter().map(|s| worst_residence_s(s, n)).sum();
    let pessimistic = n / (worst_s + think_s);
    Ok(ClosedBounds::from_throughput(population, think_s, pessimistic, optimistic))
}

/// Largest residence time of one request at `station` among `n` users \[s\].
fn worst_residence_s(station: &Station, n: f64) -> f64 {
    let d = station.demand_s();
    match station.kind() {
        StationKind::Queueing => n * d,
        StationKind::Delay => d,
        StationKind::MultiServer(c) => d * (1.0 + (n - 1.0) / f64::from(c)),
    }
}

/// Open-network bounds: `λ_sat = 1/D_max`, `R ≥ D` (Lazowska et al. §5.2).
pub fn open_bounds(stations: &[Station]) -> OpenBounds {
    let d_max = stations.iter().map(Station::demand_per_server_s).fold(0.0, f64::max);
    OpenBounds {
        max_arrival_rate_per_s: 1.0 / d_max,
        min_response_s: stations.iter().map(Station::demand_s).sum(),
    }
}

/// Balanced job bounds for `population` users (Lazowska et al. §5.3, Zahorjan et al. 1982),
/// tighter than the asymptotic ones. With `D`, `D_max` and `D_avg = D/K` over the K
/// queueing stations of positive demand:
///
/// ```text
/// N / (D + Z + (N−1)·D_max / (1 + Z/(N·D)))  ≤  X(N)
///     ≤  min(1/D_max, N / (D + Z + (N−1)·D_avg / (1 + Z/D)))
/// ```
///
/// Delay stations are folded into the think time (exact for throughput: in a product-form
/// network only the sum of the infinite-server demands matters). Fails when `population`
/// is 0, or when a station has more than one server: the balanced-system argument does
/// not cover them.
pub fn balanced_job_bounds(network: &ClosedNetwork, population: u32) -> Result<ClosedBounds, AnalyticError> {
    check_population(population)?;
    let mut queueing_s = Vec::new();
    let mut delay_s = 0.0;
    for station in network.stations() {
        match (station.kind(), station.demand_s()) {
            (StationKind::Delay, d) => delay_s += d,
            (_, 0.0) => {}
            (StationKind::Queueing | StationKind::MultiServer(1), d) => queueing_s.push(d),
            (StationKind::MultiServer(_), _) => {
                return Err(AnalyticError::Unsupported {
                    method: "balanced job bounds",
                    fix: "use the asymptotic bounds or exact MVA for multi-server stations",
                });
            }
        }
    }
    let think_s = network.think_s();
    let (lower, upper) = balanced_throughput(&queueing_s, think_s + delay_s, f64::from(population));
    Ok(ClosedBounds::from_throughput(population, think_s, lower, upper))
}

/// Balanced job bounds on throughput for single-server demands `demands_s` (all > 0) and
/// think time `think_s`.
fn balanced_throughput(demands_s: &[f64], think_s: f64, n: f64) -> (f64, f64) {
    if demands_s.is_empty() {
        // Only delays: every user cycles in exactly Z.
        let x = n / think_s;
        return (x, x);
    }
    let d: f64 = demands_s.iter().sum();
    let d_max = demands_s.iter().copied().fold(0.0, f64::max);
    let d_avg = d / demands_s.len() as f64;
    let lower = n / (d + think_s + (n - 1.0) * d_max / (1.0 + think_s / (n * d)));
    let upper = n / (d + think_s + (n - 1.0) * d_avg / (1.0 + think_s / d));
    (lower, upper.min(1.0 / d_max))
}

fn check_population(population: u32) -> Result<(), AnalyticError> {
    if population >= 1 {
        Ok(())
    } else {
        Err(AnalyticError::Param { param: "population N", rule: "≥ 1".into(), got: 0.0 })
    }
}

#[cfg(test)]
mod tests {
    use super::super::mva::mva;
    use super::*;

    /// Slack for rounding when a bound meets the exact value.
    const TOL: f64 = 1e-12;

    fn net(stations: Vec<Station>, think_s: f64) -> ClosedNetwork {
        ClosedNetwork::new(stations, think_s).unwrap()
    }

    #[test]
    fn asymptotic_bounds_hand_computed() {
        // D = 0.2 + 1.0 = 1.2 s, D_max = max(0.2, 1.0/4) = 0.25 s, Z = 1 s.
        // N = 2: X ≤ min(2/2.2, 4) = 0.909…; worst R = 2·0.2 + 1.0·(1 + 1/4) = 1.65 s.
        // N = 64: X ≤ 4, R ≥ 64·0.25 − 1 = 15 s.
        let net = net(vec![Station::queueing(0.2).unwrap(), Station::multi_server(4, 1.0).unwrap()], 1.0);
        let b2 = asymptotic_bounds(&net, 2).unwrap();
        assert!(
            (b2.throughput_upper_per_s - 2.0 / 2.2).abs() < TOL && (b2.response_lower_s - 1.2).abs() < TOL
        );
        assert!(
            (b2.response_upper_s - 1.65).abs() < TOL && (b2.throughput_lower_per_s - 2.0 / 2.65).abs() < TOL
        );
        let b64 = asymptotic_bounds(&net, 64).unwrap();
        assert!((b64.throughput_upper_per_s - 4.0).abs() < TOL && (b64.response_lower_s - 15.0).abs() < TOL);
    }

    #[test]
    fn bounds_bracket_exact_mva() {
        let networks = [
            net(vec![Station::queueing(0.2).unwrap(), Station::multi_server(4, 1.0).unwrap()], 1.0),
            net(
                vec![
                    Station::queueing(0.05).unwrap(),
                    Station::queueing(0.03).unwrap(),
                    Station::delay(0.4).unwrap(),
                ],
                0.0,
            ),
            net(vec![Station::multi_server(40, 0.08).unwrap(), Station::queueing(0.004).unwrap()], 0.5),
        ];
        for network in &networks {
            for p in mva(network, 300).unwrap() {
                let b = asymptotic_bounds(network, p.population).unwrap();
                let x = p.throughput_per_s;
                assert!(
                    b.throughput_lower_per_s <= x * (1.0 + TOL)
                        && x <= b.throughput_upper_per_s * (1.0 + TOL)
                );
                let r = p.response_s;
                assert!(b.response_lower_s <= r + TOL && r <= b.response_upper_s + TOL, "{p:?} {b:?}");
            }
        }
    }

    #[test]
    fn balanced_job_bounds_are_exact_for_a_balanced_network_without_think_time() {
        // K = 4 stations of D_k = 0.25 s, Z = 0: X(N) = N/((K + N − 1)·D_k) on both sides.
        let net = net(vec![Station::queueing(0.25).unwrap(); 4], 0.0);
        for n in [1u32, 2, 5, 50] {
            let b = balanced_job_bounds(&net, n).unwrap();
            let want = f64::from(n) / ((3.0 + f64::from(n)) * 0.25);
            assert!(
                (b.throughput_lower_per_s - want).abs() < TOL
                    && (b.throughput_upper_per_s - want).abs() < TOL
            );
        }
    }

    #[test]
    fn balanced_job_bounds_bracket_mva_inside_the_asymptotic_ones() {
        let network = net(
            vec![
                Station::queueing(0.05).unwrap(),
                Station::queueing(0.03).unwrap(),
                Station::queueing(0.01).unwrap(),
                Station::delay(0.4).unwrap(),
            ],
            1.5,
        );
        for p in mva(&network, 200).unwrap() {
            let bjb = balanced_job_bounds(&network, p.population).unwrap();
            let asym = asymptotic_bounds(&network, p.population).unwrap();
            let x = p.throughput_per_s;
            assert!(
                bjb.throughput_lower_per_s <= x * (1.0 + TOL)
                    && x <= bjb.throughput_upper_per_s * (1.0 + TOL)
            );
            assert!(
                asym.throughput_lower_per_s <= bjb.throughput_lower_per_s * (1.0 + TOL),
                "{bjb:?} {asym:?}"
            );
            assert!(
                bjb.throughput_upper_per_s <= asym.throughput_upper_per_s * (1.0 + TOL),
                "{bjb:?} {asym:?}"
            );
            let r = p.response_s;
            assert!(bjb.response_lower_s <= r + TOL && r <= bjb.response_upper_s + TOL, "{p:?} {bjb:?}");
        }
    }

    #[test]
    fn open_bounds_hand_computed() {
        // D_max = max(0.01, 0.12/8, delay) = 0.015 s → λ_sat = 66.7/s; D = 0.33 s.
        let b = open_bounds(&[
            Station::queueing(0.01).unwrap(),
            Station::multi_server(8, 0.12).unwrap(),
            Station::delay(0.2).unwrap(),
        ]);
        assert!(
            (b.max_arrival_rate_per_s - 1.0 / 0.015).abs() < 1e-9 && (b.min_response_s - 0.33).abs() < TOL
        );
        assert_eq!(open_bounds(&[Station::delay(1.0).unwrap()]).max_arrival_rate_per_s, f64::INFINITY);
    }

    #[test]
    fn refusals_say_why() {
        let multi = net(vec![Station::multi_server(2, 1.0).unwrap()], 1.0);
        let e = balanced_job_bounds(&multi, 3).unwrap_err().to_string();
        assert!(e.contains("balanced job bounds apply to single-server") && e.contains("exact MVA"), "{e}");
        let e = asymptotic_bounds(&multi, 0).unwrap_err().to_string();
        assert_eq!(e, "population N must be ≥ 1, got 0");
    }
}
