//! Exact Mean Value Analysis of a [`ClosedNetwork`], including load-dependent multi-server
//! stations.
//!
//! Sources: E. Lazowska, J. Zahorjan, G. Graham, K. Sevcik, *Quantitative System
//! Performance* (1984), ch. 6 (exact MVA) and ch. 8 (load-dependent centres); M. Reiser and
//! S. Lavenberg, "Mean-value analysis of closed multichain queuing networks", JACM 27(2),
//! 1980; G. Bolch et al., *Queueing Networks and Markov Chains* (2006), §8.2 (the
//! multi-server residence time below). For n = 1, 2, …, N, with `Q_k(0) = 0`:
//!
//! ```text
//! queueing    R_k(n) = D_k·(1 + Q_k(n−1))                         (arrival theorem)
//! delay       R_k(n) = D_k
//! c servers   R_k(n) = D_k/c·(1 + Q_k(n−1) + Σ_{j=0}^{c−2} (c−1−j)·p_k(j | n−1))
//! X(n) = n / (Z + Σ_k R_k(n)),   Q_k(n) = X(n)·R_k(n)                (Little)
//! p_k(j | n) = X(n)·D_k/j · p_k(j−1 | n−1)   for 1 ≤ j < c
//! ```
//!
//! The textbook closes the marginals with `p_k(0 | n) = 1 − Σ_{j≥1} p_k(j | n)`, which
//! cancels catastrophically near saturation: with 32 servers and 300 users the throughput
//! comes out wrong by more than half. Here instead
//! `p_k(0 | n) = p_k(0 | n−1) · X(n) / X_{−k}(n)`, where `X_{−k}` is the throughput of the
//! same network without station k (both sides are `G_{−k}(n)/G(n)` in terms of
//! normalizing constants, and `X(n) = G(n−1)/G(n)`). Every step then multiplies or adds
//! positive numbers; the tests check 40 servers and 400 users against 60-digit arithmetic
//! and against the machine-repairman distribution, to 1e-11 relative. The price is
//! one complement network per subset of multi-server stations, hence
//! [`MAX_MULTI_SERVER_STATIONS`].

use super::error::AnalyticError;
use super::network::{ClosedNetwork, Station, StationKind};
use std::collections::HashMap;
use std::rc::Rc;

/// Most multi-server stations [`mva`] accepts: it solves one complement network per subset
/// of them (2¹⁰ networks at most).
pub const MAX_MULTI_SERVER_STATIONS: usize = 10;

/// Largest population [`mva`] accepts; its cost grows as `N · K · min(c, N)`.
pub const MAX_POPULATION: u32 = 100_000;

/// The exact solution at one population.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MvaPoint {
    /// Population N (users).
    pub population: u32,
    /// Throughput X(N) [1/s].
    pub throughput_per_s: f64,
    /// Response time R(N) = Σ_k R_k(N), think time excluded \[s\].
    pub response_s: f64,
    /// Residence time R_k(N) at each station, in the network's order \[s\].
    pub residence_s: Vec<f64>,
    /// Mean number Q_k(N) at each station, waiting or in service.
    pub queue_length: Vec<f64>,
    /// Utilization of each server, `X·D_k/c_k`; 0 for a delay station (infinitely many
    /// servers).
    pub utilization: Vec<f64>,
}

/// Solves `network` exactly for every population 1..=`max_population`.
///
/// Fails when `max_population` is 0 or above [`MAX_POPULATION`], or when the network has
/// more than [`MAX_MULTI_SERVER_STATIONS`] multi-server stations.
pub fn mva(network: &ClosedNetwork, max_population: u32) -> Result<Vec<MvaPoint>, AnalyticError> {
    if !(1..=MAX_POPULATION).contains(&max_population) {
        return Err(AnalyticError::Param {
            param: "largest population N_max",
            rule: format!("between 1 and {MAX_POPULATION}"),
            got: f64::from(max_population),
        });
    }
    let multi: Vec<usize> = (0..network.stations().len())
        .filter(|&k| matches!(network.stations()[k].kind(), StationKind::MultiServer(_)))
        .collect();
    if multi.len() > MAX_MULTI_SERVER_STATIONS {
        return Err(AnalyticError::Param {
            param: "number of multi-server stations",
            rule: format!(
                "≤ {MAX_MULTI_SERVER_STATIONS} for exact MVA; merge identical stations or use the bounds"
            ),
            got: multi.len() as f64,
        });
    }
    let mut solver = Solver { network, max_n: max_population as usize, multi, memo: HashMap::new() };
    let mut points = Vec::with_capacity(max_population as usize);
    solver.recurse(0, |n, x, residence_s| points.push(point(network.stations(), n, x, residence_s)));
    Ok(points)
}

/// Packs one population's results.
fn point(stations: &[Station], n: usize, x: f64, residence_s: &[f64]) -> MvaPoint {
    MvaPoint {
        population: n as u32,
        throughput_per_s: x,
        response_s: residence_s.iter().sum(),
        residence_s: residence_s.to_vec(),
        queue_length: residence_s.iter().map(|r| x * r).collect(),
        utilization: stations.iter().map(|s| x * s.demand_per_server_s()).collect(),
    }
}

/// The recursion over populations, with the complement networks' throughputs memoized.
struct Solver<'a> {
    network: &'a ClosedNetwork,
    max_n: usize,
    /// Indices of the multi-server stations; bit b of a mask stands for `multi[b]`.
    multi: Vec<usize>,
    /// Throughputs X(1..=N) of the network without the multi-server stations in the mask.
    memo: HashMap<u32, Rc<[f64]>>,
}

impl Solver<'_> {
    /// X(1..=N) of the network without the multi-server stations in `removed`.
    fn throughputs(&mut self, removed: u32) -> Rc<[f64]> {
        if let Some(x) = self.memo.get(&removed) {
            return Rc::clone(x);
        }
        let x: Rc<[f64]> = self.recurse(removed, |_, _, _| {}).into();
        self.memo.insert(removed, Rc::clone(&x));
        x
    }

    /// Runs MVA on the network without the stations in `removed`, calling
    /// `visit(n, X(n), R_k(n))` for each population (absent stations have `R_k = 0`), and
    /// returns X(1..=N).
    fn recurse(&mut self, removed: u32, mut visit: impl FnMut(usize, f64, &[f64])) -> Vec<f64> {
        let mut states = self.states(removed);
        let think_s = self.network.think_s();
        let mut residence_s = vec![0.0; states.len()];
        let mut xs = Vec::with_capacity(self.max_n);
        for n in 1..=self.max_n {
            for (r, state) in residence_s.iter_mut().zip(&states) {
                *r = state.residence_s();
            }
            let cycle_s = think_s + residence_s.iter().sum::<f64>();
            // Nothing left to pass through (a complement of only zero-demand stations and
            // no think time): users would cycle infinitely fast.
            let x = if cycle_s > 0.0 { n as f64 / cycle_s } else { f64::INFINITY };
            for (state, &r) in states.iter_mut().zip(&residence_s) {
                state.advance(n, x, r);
            }
            visit(n, x, &residence_s);
            xs.push(x);
        }
        xs
    }

    /// Initial (population 0) state of every station, complements solved as needed.
    fn states(&mut self, removed: u32) -> Vec<State> {
        let stations = self.network.stations();
        let mut states: Vec<State> = stations.iter().map(State::empty).collect();
        for b in 0..self.multi.len() {
            let (bit, k) = (1u32 << b, self.multi[b]);
            if removed & bit != 0 {
                states[k] = State::Absent;
            } else if let State::Multi(m) = &mut states[k] {
                m.complement_x = self.throughputs(removed | bit);
                m.marginal = vec![0.0; m.servers.min(self.max_n)];
                m.marginal[0] = 1.0;
            }
        }
        states
    }
}

/// A station's state at the current population.
enum State {
    /// Removed (in a complement network).
    Absent,
    /// One server: the mean queue length Q(n−1).
    Queueing { demand_s: f64, queue: f64 },
    /// Infinite servers.
    Delay { demand_s: f64 },
    /// c servers.
    Multi(MultiState),
}

/// A multi-server station's state.
struct MultiState {
    servers: usize,
    demand_s: f64,
    /// Mean queue length Q(n−1).
    queue: f64,
    /// `p(j | n−1)` for `0 ≤ j < min(c, N)` (zero beyond n−1).
    marginal: Vec<f64>,
    /// Throughput of the network without this station, X_{−k}(1..=N).
    complement_x: Rc<[f64]>,
}

impl State {
    fn empty(station: &Station) -> Self {
        let demand_s = station.demand_s();
        match station.kind() {
            StationKind::Queueing => State::Queueing { demand_s, queue: 0.0 },
            StationKind::Delay => State::Delay { demand_s },
            StationKind::MultiServer(c) => State::Multi(MultiState {
                servers: c as usize,
                demand_s,
                queue: 0.0,
                marginal: Vec::new(),
                complement_x: Rc::from([]),
            }),
        }
    }

    /// Residence time R_k(n) from the state at n−1 \[s\].
    fn residence_s(&self) -> f64 {
        match self {
            State::Absent => 0.0,
            State::Queueing { demand_s, queue } => demand_s * (1.0 + queue),
            State::Delay { demand_s } => *demand_s,
            State::Multi(m) => m.residence_s(),
        }
    }

    /// Moves the state to population `n`, given X(n) and this station's R_k(n).
    fn advance(&mut self, n: usize, x: f64, residence_s: f64) {
        match self {
            State::Queueing { queue, .. } => *queue = x * residence_s,
            State::Multi(m) => m.advance(n, x, residence_s),
            State::Absent | State::Delay { .. } => {}
        }
    }
}

impl MultiState {
    fn residence_s(&self) -> f64 {
        let c = self.servers as f64;
        // E[(c − 1 − J)⁺] for J ~ p(· | n−1): servers an arrival finds idle besides its own.
        let spare_servers: f64 =
            self.marginal.iter().enumerate().map(|(j, p)| (c - 1.0 - j as f64) * p).sum();
        self.demand_s / c * (1.0 + self.queue + spare_servers)
    }

    fn advance(&mut self, n: usize, x: f64, residence_s: f64) {
        self.queue = x * residence_s;
        let p0 = self.marginal[0] * x / self.complement_x[n - 1];
        for j in (1..self.marginal.len()).rev() {
            self.marginal[j] = x * self.demand_s / j as f64 * self.marginal[j - 1];
        }
        self.marginal[0] = if p0.is_finite() { p0 } else { 0.0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Agreement with hand computations in exact arithmetic.
    const TOL: f64 = 1e-12;
    /// Relative agreement with independent computations of the same exact quantities.
    const REL_TOL: f64 = 1e-11;

    fn queueing(d: f64) -> Station {
        Station::queueing(d).unwrap()
    }

    fn multi(c: u32, d: f64) -> Station {
        Station::multi_server(c, d).unwrap()
    }

    fn solve(stations: &[Station], think_s: f64, max_n: u32) -> Vec<MvaPoint> {
        mva(&ClosedNetwork::new(stations.to_vec(), think_s).unwrap(), max_n).unwrap()
    }

    fn close(got: f64, want: f64, rel: f64) -> bool {
        (got - want).abs() <= rel * want.abs().max(1.0)
    }

    #[test]
    fn single_queue_hand_computed() {
        // D = 1 s, Z = 1 s. N = 1: R = 1, X = 1/2. N = 2: R = 1·(1 + 0.5) = 1.5, X = 2/2.5.
        // N = 3: R = 1 + 0.8·1.5 = 2.2, X = 3/3.2, Q = X·R = 2.0625.
        let p = solve(&[queueing(1.0)], 1.0, 200);
        for (n, r, x, q) in [(1, 1.0, 0.5, 0.5), (2, 1.5, 0.8, 1.2), (3, 2.2, 0.9375, 2.0625)] {
            let pt = &p[n - 1];
            assert_eq!(pt.population as usize, n);
            assert!((pt.response_s - r).abs() < TOL && (pt.throughput_per_s - x).abs() < TOL, "{pt:?}");
            assert!((pt.queue_length[0] - q).abs() < TOL && (pt.utilization[0] - x).abs() < TOL, "{pt:?}");
        }
        // X(N) ≤ min(N/(D + Z), 1/D), and reaches 1/D when the server is saturated.
        assert!(p.iter().all(|pt| pt.throughput_per_s <= (pt.population as f64 / 2.0).min(1.0) + TOL));
        assert!(p[199].throughput_per_s > 1.0 - TOL);
    }

    #[test]
    fn balanced_network_without_think_time_has_a_closed_form() {
        // K equal queueing stations of demand D, Z = 0: X(N) = N/((K + N − 1)·D) and each
        // station holds N/K (Lazowska et al. §5.3; Zahorjan et al. 1982).
        let (k, d) = (3usize, 0.5);
        let p = solve(&vec![queueing(d); k], 0.0, 40);
        for pt in &p {
            let n = pt.population as f64;
            assert!(close(pt.throughput_per_s, n / ((k as f64 + n - 1.0) * d), REL_TOL), "{pt:?}");
            assert!(pt.queue_length.iter().all(|&q| close(q, n / k as f64, REL_TOL)), "{pt:?}");
        }
    }

    #[test]
    fn enough_servers_means_no_waiting() {
        // c = 8 ≥ N: R = D_multi + D_delay = 0.5 s, X = N/(R + Z) = N/1 s.
        let p = solve(&[multi(8, 0.3), Station::delay(0.2).unwrap()], 0.5, 8);
        for pt in &p {
            let x = f64::from(pt.population);
            assert!((pt.response_s - 0.5).abs() < TOL && (pt.throughput_per_s - x).abs() < TOL, "{pt:?}");
            assert!((pt.utilization[0] - x * 0.3 / 8.0).abs() < TOL && pt.utilization[1] == 0.0);
            assert!((pt.queue_length[1] - x * 0.2).abs() < TOL, "{pt:?}");
        }
    }

    #[test]
    fn queue_and_two_servers_hand_computed() {
        // Queueing D₁ = 1 and 2 servers D₂ = 1, Z = 0. Product form: π(n₁, n₂) ∝ D₂^n₂/β(n₂)
        // with β = 1, 1, 2, 4. N = 2: weights 1, 1, 1/2 → X = P(n₁ > 0)/D₁ = 2/2.5 = 0.8,
        // Q₁ = 3/2.5 = 1.2, Q₂ = 2/2.5 = 0.8. N = 3: weights 1, 1, 1/2, 1/4 → X = 2.5/2.75,
        // Q₁ = 5.5/2.75 = 2, Q₂ = 2.75/2.75 = 1.
        let p = solve(&[queueing(1.0), multi(2, 1.0)], 0.0, 3);
        for (n, x, q1, q2) in [(2, 0.8, 1.2, 0.8), (3, 10.0 / 11.0, 2.0, 1.0)] {
            let pt = &p[n - 1];
            assert!((pt.throughput_per_s - x).abs() < TOL, "{pt:?}");
            assert!((pt.queue_length[0] - q1).abs() < TOL && (pt.queue_length[1] - q2).abs() < TOL, "{pt:?}");
            assert!((pt.response_s - n as f64 / x).abs() < TOL, "{pt:?}");
        }
        // Alone and without think time, the two servers are busy whenever N ≥ 2.
        let alone = solve(&[multi(2, 1.0)], 0.0, 3);
        assert!((alone[0].response_s - 1.0).abs() < TOL && (alone[2].throughput_per_s - 2.0).abs() < TOL);
    }

    /// The machine-repairman model (Kleinrock vol. 1 §3.10, M/M/c//N): N users thinking
    /// exponentially for Z, one c-server station of demand D. Stationary distribution of
    /// the birth–death chain, in logarithms so that N = 400 does not overflow:
    /// `p(j) ∝ Π_{i≤j} ((N − i + 1)/Z) / (min(i, c)/D)`. Returns (X, Q).
    fn machine_repairman(c: u32, d: f64, z: f64, n: u32) -> (f64, f64) {
        let mut log_w = vec![0.0f64];
        for i in 1..=n {
            let up = f64::from(n - i + 1) / z;
            let down = f64::from(i.min(c)) / d;
            log_w.push(log_w[i as usize - 1] + (up / down).ln());
        }
        let top = log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let w: Vec<f64> = log_w.iter().map(|l| (l - top).exp()).collect();
        let total: f64 = w.iter().sum();
        let x = w.iter().zip(0u32..).map(|(p, j)| p * f64::from(j.min(c)) / d).sum::<f64>() / total;
        let q = w.iter().zip(0u32..).map(|(p, j)| p * f64::from(j)).sum::<f64>() / total;
        (x, q)
    }

    #[test]
    fn multi_server_matches_the_machine_repairman_model_up_to_saturation() {
        // Up to 40 servers and far past the knee, where the textbook p(0) = 1 − Σ p(j) loses
        // every digit.
        for (c, d, z, max_n) in [
            (1, 1.0, 1.0, 50),
            (2, 0.4, 1.0, 8),
            (4, 1.0, 1.0, 200),
            (16, 1.0, 1.0, 300),
            (40, 0.08, 0.5, 400),
        ] {
            let p = solve(&[multi(c, d)], z, max_n);
            for pt in &p {
                let (x, q) = machine_repairman(c, d, z, pt.population);
                assert!(close(pt.throughput_per_s, x, REL_TOL), "c={c} {pt:?} vs X={x}");
                assert!(close(pt.queue_length[0], q, REL_TOL), "c={c} {pt:?} vs Q={q}");
            }
        }
    }

    #[test]
    fn mixed_network_matches_sixty_digit_convolution() {
        // 40 servers of 80 ms, 8 of 30 ms, one of 2 ms, a 100 ms delay; Z = 0.5 s. Reference
        // from Buzen's convolution algorithm in 60-digit arithmetic: (N, X, R, Q of station 0).
        let stations = [multi(40, 0.08), multi(8, 0.03), queueing(0.002), Station::delay(0.1).unwrap()];
        let p = solve(&stations, 0.5, 400);
        let table = [
            (1, 1.404_494_382_022_472, 0.212, 0.112_359_550_561_797_75),
            (150, 208.552_051_168_486_9, 0.219_244_903_896_038_12, 16.684_164_156_736_664),
            (190, 254.012_673_464_254_82, 0.247_994_174_498_294, 20.321_042_923_902_84),
            (250, 266.666_185_389_413_6, 0.437_501_691_993_396_4, 21.333_531_561_482_41),
            (400, 266.666_666_666_666_7, 1.0, 21.333_570_326_255_604),
        ];
        for (n, x, r, q0) in table {
            let pt = &p[n - 1];
            assert!(close(pt.throughput_per_s, x, REL_TOL) && close(pt.response_s, r, REL_TOL), "{pt:?}");
            assert!(close(pt.queue_length[0], q0, REL_TOL), "{pt:?}");
        }
    }

    #[test]
    fn zero_demand_stations_change_nothing() {
        let plain = solve(&[queueing(1.0)], 1.0, 20);
        let padded = solve(&[multi(4, 0.0), queueing(1.0), Station::delay(0.0).unwrap()], 1.0, 20);
        for (a, b) in plain.iter().zip(&padded) {
            assert!((a.throughput_per_s - b.throughput_per_s).abs() < TOL, "{a:?} {b:?}");
            assert!((a.queue_length[0] - b.queue_length[1]).abs() < TOL && b.queue_length[0] == 0.0);
        }
    }

    #[test]
    fn bad_inputs_are_refused() {
        let net = ClosedNetwork::new(vec![queueing(1.0)], 0.0).unwrap();
        let e = mva(&net, 0).unwrap_err().to_string();
        assert!(e.contains("largest population N_max must be between 1 and 100000, got 0"), "{e}");
        let many = ClosedNetwork::new(vec![multi(2, 0.1); 11], 1.0).unwrap();
        let e = mva(&many, 3).unwrap_err().to_string();
        assert!(e.contains("number of multi-server stations must be ≤ 10"), "{e}");
    }
}
