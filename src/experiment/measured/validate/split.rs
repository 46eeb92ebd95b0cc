//! Closed loops on several workers: how each measured run split its users over the
//! workers, and the point predicted again with that split.
//!
//! A closed-loop user keeps one connection, so its requests all go to one worker, and how
//! the users fall on the workers is not load balancing but luck of the balancer:
//!
//! ```text
//!  servesim's own server   each worker counts the connections it accepted (/stats);
//!                          the kernel's SO_REUSEPORT hash chose → the point's prediction
//!                          is over the hash's draws, and HashDraws gives their spread
//!  a [target] service      the load generator reads which process answered each user
//!                          (x-worker-pid); how the service balances is not known to
//!                          servesim → the point's prediction uses system.balancer as the
//!                          scenario says; no HashDraws (uvicorn's workers, say, share one
//!                          listening socket: no hash, whichever wakes first accepts —
//!                          balancer "accept")
//!  either                  the point simulated again with each run's split (balancer
//!                          "hash" given the split: each user's requests on its worker)
//! ```
//!
//! The difference between the two predictions is the balancer's luck; what remains against
//! the measurement is the model's error.

use super::{Compared, MeasureReport, spread};
use crate::experiment::measured::Window;
use crate::load::PID_HEADER;
use crate::scenario::{Balancer, ClientKind, Scenario};
use crate::sim;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Where a [`SplitCheck`]'s users per worker were read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SplitSource {
    /// servesim's own server: the connections each worker accepted, from its own counters.
    #[default]
    Accepted,
    /// A `[target]` service: the process that answered most of each user's requests, from
    /// the `x-worker-pid` header of its responses.
    Answered,
}

/// Users on several workers: each run's split and the prediction given it. The point's
/// main prediction is made without the measurement — over the hash's draws for servesim's
/// own server (each replication draws its own split), with `system.balancer` for a target;
/// this one is with the split the runs had.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitCheck {
    /// Where the users per worker were read (left out of JSON when `accepted`).
    #[serde(default, skip_serializing_if = "SplitSource::is_accepted")]
    pub read_from: SplitSource,
    /// The balancer of the point's main prediction (the scenario's `system.balancer`; left
    /// out of JSON when `hash`).
    #[serde(default = "hash_balancer", skip_serializing_if = "is_hash")]
    pub balancer: Balancer,
    /// Each pass's users per worker, worker order (for a target: the processes that
    /// answered, then a 0 for each worker that answered no one).
    pub users: Vec<Vec<u32>>,
    /// Each pass's requests answered per worker, same order.
    pub requests: Vec<Vec<u64>>,
    /// Throughput predicted with each pass's split (mean over the passes) vs measured.
    pub throughput_rps: Compared,
    /// p95 predicted with each pass's split vs measured.
    pub p95_ms: Compared,
    /// The prediction over the hash's whole distribution of splits, when it has few enough
    /// distinct splits to simulate each; never for a target (the hash models
    /// `SO_REUSEPORT`, which a target's workers need not use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<HashDraws>,
}

fn hash_balancer() -> Balancer {
    Balancer::Hash
}

fn is_hash(b: &Balancer) -> bool {
    *b == Balancer::Hash
}

impl SplitSource {
    fn is_accepted(&self) -> bool {
        *self == SplitSource::Accepted
    }
}

/// What the hash's luck alone does to a point: every distinct split of the users over the
/// workers (workers are alike, so a split is a multiset of counts), simulated, weighted by
/// its probability when each user's connection lands on a worker uniformly at random.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HashDraws {
    /// Distinct splits simulated.
    pub splits: usize,
    /// Throughput: the expectation over the splits (req/s).
    pub throughput_mean: f64,
    /// Throughput: 10th and 90th percentiles over the splits (req/s).
    pub throughput_p10: f64,
    /// See `throughput_p10`.
    pub throughput_p90: f64,
    /// p95 latency: 10th and 90th percentiles over the splits (ms).
    pub p95_p10: f64,
    /// See `p95_p10`.
    pub p95_p90: f64,
    /// Where the measured throughput falls in the distribution: the probability of a split
    /// giving less.
    pub measured_throughput_rank: f64,
}

impl HashDraws {
    /// What the hash's distribution predicts, beside the `measured` throughput (req/s), in
    /// words: one sentence for the text table and the report alike.
    pub fn describe(&self, measured: f64) -> String {
        format!(
            "over the hash's {} distinct splits, throughput {:.1} req/s expected, {:.1}–{:.1} from \
             its 10th to 90th percentile (the measured {measured:.1} above {:.0}% of them); p95 \
             {:.1}–{:.1} ms",
            self.splits,
            self.throughput_mean,
            self.throughput_p10,
            self.throughput_p90,
            100.0 * self.measured_throughput_rank,
            self.p95_p10,
            self.p95_p90
        )
    }
}

/// At most this many distinct splits are simulated for [`HashDraws`].
const MAX_SPLITS: usize = 40;

/// The distinct splits of `users` over `workers` alike workers (counts in decreasing
/// order, zeros included) and the probability of each under a uniform hash; `None` beyond
/// [`MAX_SPLITS`].
fn hash_splits(users: u32, workers: u32) -> Option<Vec<(Vec<u32>, f64)>> {
    fn walk(left: u32, max: u32, slots: u32, cur: &mut Vec<u32>, out: &mut Vec<Vec<u32>>) -> bool {
        if slots == 0 {
            if left == 0 {
                out.push(cur.clone());
            }
            return out.len() <= MAX_SPLITS;
        }
        for k in (0..=max.min(left)).rev() {
            if k * slots < left {
                break;
            }
            cur.push(k);
            let ok = walk(left - k, k, slots - 1, cur, out);
            cur.pop();
            if !ok {
                return false;
            }
        }
        true
    }
    let mut out = Vec::new();
    if !walk(users, users, workers, &mut Vec::new(), &mut out) {
        return None;
    }
    use statrs::function::gamma::ln_gamma;
    let lf = |n: u32| ln_gamma(f64::from(n) + 1.0);
    Some(
        out.into_iter()
            .map(|split| {
                // Assignments of users giving these counts to workers in this order, times
                // the distinct orders of the counts, over all workers^users assignments.
                let mut ln = lf(users) - split.iter().map(|&k| lf(k)).sum::<f64>();
                let mut orders = lf(workers);
                let mut i = 0;
                while i < split.len() {
                    let j = split[i..].iter().take_while(|&&k| k == split[i]).count();
                    orders -= lf(j as u32);
                    i += j;
                }
                ln += orders - f64::from(users) * f64::from(workers).ln();
                (split, ln.exp())
            })
            .collect(),
    )
}

/// The prediction over the hash's distribution of splits (see [`HashDraws`]).
fn hash_draws(sc: &Scenario, measured_throughput: f64) -> Option<HashDraws> {
    let splits = hash_splits(sc.clients.users, sc.system.workers)?;
    let mut runs: Vec<(f64, f64, f64)> = splits
        .par_iter()
        .map(|(split, p)| {
            // Two replications each: the spread that matters here is between the splits.
            let mut with = sc.clone();
            with.system.split = split.clone();
            with.run.replications = with.run.replications.min(2);
            sim::simulate(&with).ok().map(|r| (*p, r.figures.throughput_rps, r.figures.latency_ms.p95))
        })
        .collect::<Option<_>>()?;
    let quantile = |runs: &mut Vec<(f64, f64, f64)>, key: fn(&(f64, f64, f64)) -> f64, q: f64| {
        runs.sort_by(|a, b| key(a).total_cmp(&key(b)));
        let mut acc = 0.0;
        for r in runs.iter() {
            acc += r.0;
            if acc >= q {
                return key(r);
            }
        }
        runs.last().map_or(f64::NAN, key)
    };
    let total: f64 = runs.iter().map(|r| r.0).sum();
    Some(HashDraws {
        splits: runs.len(),
        throughput_mean: runs.iter().map(|r| r.0 * r.1).sum::<f64>() / total,
        throughput_p10: quantile(&mut runs, |r| r.1, 0.1 * total),
        throughput_p90: quantile(&mut runs, |r| r.1, 0.9 * total),
        p95_p10: quantile(&mut runs, |r| r.2, 0.1 * total),
        p95_p90: quantile(&mut runs, |r| r.2, 0.9 * total),
        measured_throughput_rank: runs.iter().filter(|r| r.1 < measured_throughput).map(|r| r.0).sum::<f64>()
            / total,
    })
}

impl SplitCheck {
    /// `5+3` (one pass) or `5+3, 4+4`.
    pub fn users_label(&self) -> String {
        let one = |u: &Vec<u32>| u.iter().map(u32::to_string).collect::<Vec<_>>().join("+");
        self.users.iter().map(one).collect::<Vec<_>>().join(", ")
    }

    /// What the point's main prediction is, in a few words: `hash's draws` or the balancer.
    pub fn predicted_by(&self) -> &'static str {
        balancer_name(self.balancer)
    }
}

/// A balancer as the report names its prediction.
pub(crate) fn balancer_name(b: Balancer) -> &'static str {
    match b {
        Balancer::Hash => "hash's draws",
        Balancer::RoundRobin => "round-robin",
        Balancer::Random => "random",
        Balancer::LeastOutstanding => "least-outstanding",
        Balancer::Accept => "shared accept queue",
    }
}

/// A balancer as the scenario names it, and what it does.
pub(crate) fn balancer_said(b: Balancer) -> &'static str {
    match b {
        Balancer::Hash => {
            "\"hash\" (each connection hashed to a worker uniformly at random, as SO_REUSEPORT does)"
        }
        Balancer::RoundRobin => "\"round-robin\" (each request to the next worker in turn)",
        Balancer::Random => "\"random\" (each request to a worker drawn at random)",
        Balancer::LeastOutstanding => {
            "\"least-outstanding\" (each request to the worker with the fewest in it)"
        }
        Balancer::Accept => {
            "\"accept\" (one listening socket shared: the first worker to wake accepts every \
             connection waiting, so users that connect together land on one worker)"
        }
    }
}

/// Whether a point is checked with its measured split: a closed loop on several workers,
/// balanced by the hash (servesim's own server) or served by a `[target]`.
pub(super) fn wanted(sc: &Scenario) -> bool {
    sc.system.workers > 1
        && sc.clients.kind == ClientKind::Closed
        && (sc.system.balancer == Balancer::Hash || sc.target.is_some())
}

/// One run's users and requests per worker, worker order; or why its split is not known.
fn run_split(sc: &Scenario, m: &MeasureReport) -> Result<(Vec<u32>, Vec<u64>), String> {
    let (users, workers) = (u64::from(sc.clients.users), sc.system.workers as usize);
    let count = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    let (mut u, mut r): (Vec<u32>, Vec<u64>) = if sc.target.is_some() {
        // Every process of the service's group is listed; the workers are those that
        // answered. One that answered no one is indistinguishable from the supervisor.
        let answered: Vec<_> = m.workers.iter().filter(|w| w.connections > 0 || w.completed > 0).collect();
        if answered.iter().all(|w| w.connections == 0) {
            return Err(format!("no response named the worker that answered it ({PID_HEADER})"));
        }
        if answered.len() > workers {
            return Err(format!(
                "{} processes answered for system.workers = {workers} (a worker replaced during the run?)",
                answered.len()
            ));
        }
        answered.iter().map(|w| (count(w.connections), w.completed)).unzip()
    } else {
        if m.workers.len() != workers {
            return Err(format!("{} workers reported for system.workers = {workers}", m.workers.len()));
        }
        m.workers.iter().map(|w| (count(w.connections), w.completed)).unzip()
    };
    let sum: u64 = u.iter().map(|&n| u64::from(n)).sum();
    if sum != users {
        return Err(match sc.target {
            Some(_) => {
                format!("{} of {users} users got no response naming its worker", users.saturating_sub(sum))
            }
            None => format!(
                "the workers accepted {sum} connections for {users} users (a client reconnected, or a \
                 worker was replaced)"
            ),
        });
    }
    u.resize(workers, 0);
    r.resize(workers, 0);
    Ok((u, r))
}

/// The split check of a point [`wanted`] checked, or why its runs' split is not known.
pub(super) fn check(
    sc: &Scenario,
    measured: &[MeasureReport],
    rates: &[(f64, &Window)],
    windows: &[&Window],
) -> Result<SplitCheck, String> {
    if measured.is_empty() {
        return Err("no run measured".into());
    }
    let (users, requests): (Vec<Vec<u32>>, Vec<Vec<u64>>) =
        measured.iter().map(|m| run_split(sc, m)).collect::<Result<Vec<_>, _>>()?.into_iter().unzip();
    let predicted: Vec<sim::SimReport> = users
        .iter()
        .map(|u| {
            let mut with = sc.clone();
            with.system.balancer = Balancer::Hash;
            with.system.split = u.clone();
            sim::simulate(&with).map_err(|e| format!("the simulator refused the split {u:?}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let n = predicted.len() as f64;
    let measured_throughput = measured.iter().map(|m| m.throughput_rps).sum::<f64>() / measured.len() as f64;
    let target = sc.target.is_some();
    let hash = if target { None } else { hash_draws(sc, measured_throughput) };
    let mean = |g: fn(&sim::SimReport) -> f64| predicted.iter().map(g).sum::<f64>() / n;
    let half = |g: fn(&sim::SimReport) -> f64| predicted.iter().map(|r| g(r).powi(2)).sum::<f64>().sqrt() / n;
    Ok(SplitCheck {
        read_from: if target { SplitSource::Answered } else { SplitSource::Accepted },
        balancer: sc.system.balancer,
        users,
        requests,
        throughput_rps: Compared::new(
            mean(|r| r.figures.throughput_rps),
            half(|r| r.ci95.throughput_rps),
            spread::throughput(rates),
        ),
        p95_ms: Compared::new(
            mean(|r| r.figures.latency_ms.p95),
            half(|r| r.ci95.latency_ms.p95),
            spread::quantile_ms(windows, 0.95),
        ),
        hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hashs_splits_are_every_multiset_of_counts_with_its_probability() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        let two = hash_splits(2, 2).unwrap();
        assert_eq!(two.iter().map(|s| s.0.clone()).collect::<Vec<_>>(), vec![vec![2, 0], vec![1, 1]]);
        assert!(close(two[0].1, 0.5) && close(two[1].1, 0.5), "{two:?}");
        // 3 users on 2 workers: all on one (2 of 8 assignments), else 2 + 1 (6 of 8).
        let three = hash_splits(3, 2).unwrap();
        assert!(close(three[0].1, 0.25) && close(three[1].1, 0.75), "{three:?}");
        // 4 users on 3 workers: 3^4 = 81 assignments; 2+1+1 takes 36 of them.
        let four = hash_splits(4, 3).unwrap();
        assert_eq!(four.len(), 4);
        let p = four.iter().find(|s| s.0 == [2, 1, 1]).unwrap().1;
        assert!(close(p, 36.0 / 81.0), "{four:?}");
        for (users, workers) in [(8, 2), (32, 2), (7, 3), (5, 5)] {
            let total: f64 = hash_splits(users, workers).unwrap().iter().map(|s| s.1).sum();
            assert!(close(total, 1.0), "{users} on {workers}: {total}");
        }
        // Too many distinct splits to simulate each.
        assert!(hash_splits(64, 8).is_none());
    }
}
