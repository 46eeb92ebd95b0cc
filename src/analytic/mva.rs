//! Exact Mean Value Analysis of a closed network with think time, with queueing, delay and
//! load-dependent multi-server stations.
//!
//! Source: E. Lazowska, J. Zahorjan, G. Graham, K. Sevcik, *Quantitative System
//! Performance* (1984), ch. 6 (exact MVA) and §8.3 (load-dependent stations); M. Reiser and
//! S. Lavenberg, "Mean-value analysis of closed multichain queuing networks", JACM 27(2),
//! 1980. A c-server station of demand D serves `min(j, c)/D` requests per second with `j`
//! present; its residence time uses the marginal queue-length distribution.

use super::error::{AnalyticError, check};

/// How a station serves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StationKind {
    /// One server, FIFO or processor sharing (load independent).
    Queueing,
    /// Infinite servers: no waiting.
    Delay,
    /// `c` servers (load dependent).
    MultiServer(u32),
}

/// A station and its service demand per request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Station {
    /// How it serves.
    pub kind: StationKind,
    /// Service demand per request (visits × service time) [s].
    pub demand_s: f64,
}

/// The solution at one population.
#[derive(Debug, Clone, PartialEq)]
pub struct MvaPoint {
    /// Population (users).
    pub n: u32,
    /// Throughput [1/s].
    pub throughput: f64,
    /// Response time, think time excluded [s].
    pub response_s: f64,
    /// Mean number at each station.
    pub queue: Vec<f64>,
    /// Utilization of each station (per server).
    pub utilization: Vec<f64>,
}

fn residence(st: &Station, q_prev: f64, marg: &[f64], n: usize) -> f64 {
    match st.kind {
        StationKind::Queueing => st.demand_s * (1.0 + q_prev),
        StationKind::Delay => st.demand_s,
        StationKind::MultiServer(c) => {
            // Σ_j j/μ(j) · p(j−1 | n−1), μ(j) = min(j, c)/D.
            (1..=n).map(|j| j as f64 * st.demand_s / (j.min(c as usize) as f64) * marg[j - 1]).sum()
        }
    }
}

/// Solves the network for populations 1..=`max_n` with think time `think_s` [s].
pub fn mva(stations: &[Station], think_s: f64, max_n: u32) -> Result<Vec<MvaPoint>, AnalyticError> {
    check("think time Z", think_s, think_s >= 0.0, "≥ 0")?;
    check("population", f64::from(max_n), max_n >= 1, "≥ 1")?;
    for st in stations {
        check("station demand", st.demand_s, st.demand_s >= 0.0, "≥ 0")?;
        if let StationKind::MultiServer(c) = st.kind {
            check("servers c", f64::from(c), c >= 1, "≥ 1")?;
        }
    }
    let k = stations.len();
    let mut q = vec![0.0; k];
    // Marginal distributions p(j | n) of the load-dependent stations, j = 0..=n.
    let mut marg: Vec<Vec<f64>> = vec![vec![1.0]; k];
    let mut out = Vec::with_capacity(max_n as usize);
    for n in 1..=max_n as usize {
        let r: Vec<f64> = (0..k).map(|i| residence(&stations[i], q[i], &marg[i], n)).collect();
        let response_s: f64 = r.iter().sum();
        let x = n as f64 / (think_s + response_s);
        q = r.iter().map(|ri| x * ri).collect();
        for (i, st) in stations.iter().enumerate() {
            if let StationKind::MultiServer(c) = st.kind {
                let mut p = vec![0.0; n + 1];
                for j in 1..=n {
                    let mu = j.min(c as usize) as f64 / st.demand_s;
                    p[j] = if st.demand_s > 0.0 { x / mu * marg[i][j - 1] } else { 0.0 };
                }
                p[0] = (1.0 - p[1..].iter().sum::<f64>()).max(0.0);
                marg[i] = p;
            }
        }
        let utilization = stations
            .iter()
            .map(|st| match st.kind {
                StationKind::Queueing => x * st.demand_s,
                StationKind::Delay => 0.0,
                StationKind::MultiServer(c) => x * st.demand_s / f64::from(c),
            })
            .collect();
        out.push(MvaPoint { n: n as u32, throughput: x, response_s, queue: q.clone(), utilization });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: f64 = 1e-9;

    fn st(kind: StationKind, demand_s: f64) -> Station {
        Station { kind, demand_s }
    }

    #[test]
    fn single_queue_hand_computed() {
        // One queueing station, D = 1, Z = 1. N=1: R = 1, X = 0.5, Q = 0.5.
        // N=2: R = 1.5, X = 2/2.5 = 0.8, Q = 1.2. N=3: R = 2.2, X = 3/3.2.
        let p = mva(&[st(StationKind::Queueing, 1.0)], 1.0, 3).unwrap();
        assert!((p[0].throughput - 0.5).abs() < TOL);
        assert!((p[1].response_s - 1.5).abs() < TOL && (p[1].throughput - 0.8).abs() < TOL);
        assert!((p[2].response_s - 2.2).abs() < TOL);
    }

    #[test]
    fn multi_server_matches_the_machine_repairman_model() {
        // N users, think Z (exponential), one c-server station with demand D: a birth–death
        // chain (Engset / machine repairman, Kleinrock vol. 1 §3.8). Compute its stationary
        // distribution directly and compare throughput.
        let (d, z, c) = (0.4, 1.0, 2u32);
        for n in 1..=8u32 {
            let mut w = vec![1.0f64];
            for j in 1..=n as usize {
                let up = (n as usize - (j - 1)) as f64 / z;
                let down = j.min(c as usize) as f64 / d;
                w.push(w[j - 1] * up / down);
            }
            let total: f64 = w.iter().sum();
            let x: f64 = w.iter().enumerate().map(|(j, p)| p / total * j.min(c as usize) as f64 / d).sum();
            let got = mva(&[st(StationKind::MultiServer(c), d)], z, n).unwrap()[n as usize - 1].throughput;
            assert!((got - x).abs() < 1e-9, "n={n}: {got} vs {x}");
        }
    }

    #[test]
    fn enough_servers_means_no_waiting() {
        let p = mva(&[st(StationKind::MultiServer(8), 0.3), st(StationKind::Delay, 0.2)], 0.5, 8).unwrap();
        for pt in p {
            assert!((pt.response_s - 0.5).abs() < 1e-9, "{pt:?}");
        }
    }

    #[test]
    fn bad_inputs_are_refused() {
        assert!(mva(&[], -1.0, 3).unwrap_err().to_string().contains("think time Z must be ≥ 0"));
        assert!(
            mva(&[st(StationKind::MultiServer(0), 1.0)], 0.0, 3)
                .unwrap_err()
                .to_string()
                .contains("servers c")
        );
    }
}
