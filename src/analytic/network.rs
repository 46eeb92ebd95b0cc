//! Closed queueing networks: stations with service demands, and a population of users who
//! think between requests (Lazowska et al., *Quantitative System Performance*, 1984, ch. 3–4).
//!
//! ```text
//!   ┌──────────── think Z ◄───────────┐
//!   │                                 │
//!   └──► station 1 ──► … ──► station K┘     N users circulate; R = Σ residence times
//! ```
//!
//! A station's demand `D_k` \[s\] is visits × mean service time per visit: the service one
//! request needs there in total.

use super::error::{AnalyticError, non_negative, servers};

/// How a station serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StationKind {
    /// One server (FIFO with exponential service, or processor sharing): load independent.
    Queueing,
    /// Infinitely many servers: a request never waits (a pure delay).
    Delay,
    /// `c` identical servers: with `j` requests present it completes `min(j, c)/D` per
    /// second (load dependent).
    MultiServer(u32),
}

/// A station and the service demand of one request there.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Station {
    kind: StationKind,
    demand_s: f64,
}

impl Station {
    /// A single-server station with demand `demand_s` \[s\] (finite, ≥ 0).
    pub fn queueing(demand_s: f64) -> Result<Self, AnalyticError> {
        non_negative("station demand D [s]", demand_s)?;
        Ok(Self { kind: StationKind::Queueing, demand_s })
    }

    /// A delay (infinite-server) station with demand `demand_s` \[s\] (finite, ≥ 0).
    pub fn delay(demand_s: f64) -> Result<Self, AnalyticError> {
        non_negative("station demand D [s]", demand_s)?;
        Ok(Self { kind: StationKind::Delay, demand_s })
    }

    /// A station of `servers_c` ≥ 1 servers and demand `demand_s` \[s\] (finite, ≥ 0).
    pub fn multi_server(servers_c: u32, demand_s: f64) -> Result<Self, AnalyticError> {
        servers("servers c of a multi-server station", servers_c)?;
        non_negative("station demand D [s]", demand_s)?;
        Ok(Self { kind: StationKind::MultiServer(servers_c), demand_s })
    }

    /// How it serves.
    pub fn kind(&self) -> StationKind {
        self.kind
    }

    /// Service demand per request \[s\].
    pub fn demand_s(&self) -> f64 {
        self.demand_s
    }

    /// Number of servers; `None` for a delay station (infinitely many).
    pub fn servers(&self) -> Option<u32> {
        match self.kind {
            StationKind::Queueing => Some(1),
            StationKind::Delay => None,
            StationKind::MultiServer(c) => Some(c),
        }
    }

    /// Demand per server `D/c` \[s\]: the inverse of the throughput this station can carry
    /// when saturated; 0 for a delay station, which never saturates.
    pub fn demand_per_server_s(&self) -> f64 {
        self.servers().map_or(0.0, |c| self.demand_s / f64::from(c))
    }
}

/// A closed network: stations and a think time, validated.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClosedNetwork {
    stations: Vec<Station>,
    think_s: f64,
}

impl ClosedNetwork {
    /// A network of `stations` whose users think `think_s` \[s\] (finite, ≥ 0) between a
    /// reply and their next request. Fails when the total demand plus think time is 0:
    /// the users would cycle infinitely fast.
    pub fn new(stations: Vec<Station>, think_s: f64) -> Result<Self, AnalyticError> {
        non_negative("think time Z [s]", think_s)?;
        let network = Self { stations, think_s };
        let cycle_s = network.total_demand_s() + think_s;
        if cycle_s > 0.0 {
            Ok(network)
        } else {
            Err(AnalyticError::Param {
                param: "total demand D plus think time Z [s]",
                rule: "> 0 (give a station a demand or the users a think time)".into(),
                got: cycle_s,
            })
        }
    }

    /// The stations, in the order given.
    pub fn stations(&self) -> &[Station] {
        &self.stations
    }

    /// Think time Z \[s\].
    pub fn think_s(&self) -> f64 {
        self.think_s
    }

    /// Total demand `D = Σ D_k` \[s\]: the response time of a request alone.
    pub fn total_demand_s(&self) -> f64 {
        self.stations.iter().map(Station::demand_s).sum()
    }

    /// Bottleneck demand `D_max = max_k D_k/c_k` \[s\] (delay stations excluded); 0 when
    /// every station is a delay.
    pub fn bottleneck_demand_s(&self) -> f64 {
        self.stations.iter().map(Station::demand_per_server_s).fold(0.0, f64::max)
    }

    /// Index of the bottleneck station (the first of equals); `None` when no station
    /// saturates.
    pub fn bottleneck(&self) -> Option<usize> {
        let d_max = self.bottleneck_demand_s();
        if d_max > 0.0 { self.stations.iter().position(|s| s.demand_per_server_s() == d_max) } else { None }
    }

    /// Largest throughput any population can reach, `1/D_max` [1/s]; infinite when no
    /// station saturates.
    pub fn max_throughput_per_s(&self) -> f64 {
        1.0 / self.bottleneck_demand_s()
    }

    /// The knee `N* = (D + Z)/D_max` where the two asymptotes of throughput cross: below
    /// it users rarely queue behind one another, above it the bottleneck is saturated
    /// (Lazowska et al. §5.2). Infinite when no station saturates.
    pub fn knee_population(&self) -> f64 {
        (self.total_demand_s() + self.think_s) / self.bottleneck_demand_s()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bottleneck_counts_servers_and_skips_delays() {
        // Demands per server: 0.2, 1.0/4 = 0.25, delay 5 (ignored). D = 6.2, D_max = 0.25.
        let net = ClosedNetwork::new(
            vec![
                Station::queueing(0.2).unwrap(),
                Station::multi_server(4, 1.0).unwrap(),
                Station::delay(5.0).unwrap(),
            ],
            1.8,
        )
        .unwrap();
        assert_eq!(net.total_demand_s(), 6.2);
        assert_eq!(net.bottleneck_demand_s(), 0.25);
        assert_eq!(net.bottleneck(), Some(1));
        assert_eq!(net.max_throughput_per_s(), 4.0);
        assert_eq!(net.knee_population(), 32.0);
    }

    #[test]
    fn all_delay_network_never_saturates() {
        let net = ClosedNetwork::new(vec![Station::delay(1.0).unwrap()], 0.0).unwrap();
        assert_eq!(net.bottleneck(), None);
        assert_eq!(net.max_throughput_per_s(), f64::INFINITY);
    }

    #[test]
    fn invalid_stations_and_networks_are_refused() {
        let cases = [
            (Station::queueing(-1.0).unwrap_err(), "station demand D [s] must be finite and ≥ 0, got -1"),
            (Station::delay(f64::NAN).unwrap_err(), "station demand D [s] must be finite"),
            (Station::multi_server(0, 1.0).unwrap_err(), "servers c of a multi-server station must be ≥ 1"),
            (ClosedNetwork::new(vec![], -1.0).unwrap_err(), "think time Z [s] must be finite and ≥ 0"),
            (ClosedNetwork::new(vec![Station::queueing(0.0).unwrap()], 0.0).unwrap_err(), "give a station"),
        ];
        for (e, want) in cases {
            assert!(e.to_string().contains(want), "{e}");
        }
    }
}
