//! `servesim capacity`: the cheapest configuration (fewest cores, then least memory) that
//! holds a target rate within a latency SLO, with evidence.
//!
//! Candidates (cores × workers × handler × threads) are visited cheapest first. Each is
//! pruned when a bound proves it cannot work, and otherwise confirmed by simulation at the
//! target rate plus headroom, with open Poisson arrivals: it meets the SLO when the
//! figure's 95% CI lies under the limit. The screens, in order:
//!
//! 1. memory over the cap;
//! 2. a capacity bound below the rate (bottleneck analysis, [`sim::stability`]);
//! 3. a request's own work over the SLO: latency is at least the work, so its quantile q
//!    is at least `μ − σ·√((1 − q)/q)` (Cantelli's inequality; `μ` for the mean);
//! 4. for a mean-latency SLO, an open-queueing lower bound on the mean at each resource
//!    (cores, lock, threadpool, event loop), [`crate::analytic::open_response_lower_bound`]:
//!    it holds whatever the scheduling, so it prunes only what cannot meet the SLO in
//!    steady state. No such bound exists for a percentile from the work alone, so
//!    percentile SLOs skip this screen.
//!
//! Every screen uses a lower bound on the mean work and an upper bound on its variance, so
//! rounding token counts or drawing from wide distributions never prunes a candidate that
//! could meet the SLO. Batched candidates get screens 1 and 2, and 3 for a mean SLO only
//! (the mean work of a batched request is bounded, its spread is not). Closed clients do
//! not arise: the search replaces the scenario's clients with open arrivals at the target
//! rate, so MVA, which solves closed networks, has no candidate to screen.
//!
//! The answer's knee — the highest rate that still meets the SLO — is found by bisection,
//! with an interval from the CI of the figure.

use crate::scenario::{ClientKind, Handler, Override, Scenario, ScenarioError};
use crate::sim::{self, Bottleneck, Figures, SimError, SimReport};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

mod screen;
use screen::{latency_bound_ms, resources, work_floor_ms};

/// Which latency figure the SLO bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SloMetric {
    /// Mean latency.
    Mean,
    /// Median.
    P50,
    /// 95th percentile.
    P95,
    /// 99th percentile.
    P99,
}

/// A latency objective, e.g. `p95=300ms`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    /// The figure bounded.
    pub metric: SloMetric,
    /// Its limit [ms].
    pub limit_ms: f64,
}

/// Why a capacity query is malformed or cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum CapacityError {
    /// A flag's value is malformed.
    #[error("{flag} {value}: {message}")]
    Flag {
        /// The flag.
        flag: &'static str,
        /// Its value.
        value: String,
        /// What is wrong and how to write it.
        message: String,
    },
    /// The scenario is invalid.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// A candidate cannot be simulated.
    #[error(transparent)]
    Sim(#[from] SimError),
}

fn flag_err(flag: &'static str, value: &str, message: &str) -> CapacityError {
    CapacityError::Flag { flag, value: value.into(), message: message.into() }
}

/// A duration such as `300ms`, `1.5s` or `250` (milliseconds) → ms.
fn parse_ms(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("us").or_else(|| s.strip_suffix("µs")) {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e3)
    } else {
        (s, 1.0)
    };
    num.trim().parse::<f64>().ok().map(|v| v * scale).filter(|v| v.is_finite() && *v > 0.0)
}

impl FromStr for Slo {
    type Err = CapacityError;

    fn from_str(s: &str) -> Result<Self, CapacityError> {
        let bad = |m: &str| flag_err("--slo", s, m);
        let (metric, limit) =
            s.split_once('=').ok_or_else(|| bad("expected METRIC=LIMIT, e.g. p95=300ms"))?;
        let metric = match metric.trim() {
            "mean" => SloMetric::Mean,
            "p50" => SloMetric::P50,
            "p95" => SloMetric::P95,
            "p99" => SloMetric::P99,
            _ => return Err(bad("METRIC must be mean, p50, p95 or p99")),
        };
        let limit_ms =
            parse_ms(limit).ok_or_else(|| bad("LIMIT must be a positive duration, e.g. 300ms or 1.5s"))?;
        Ok(Slo { metric, limit_ms })
    }
}

/// A memory size such as `16GiB`, `512MiB`, `2GB` → megabytes (10⁶ bytes).
pub fn parse_memory_mb(s: &str) -> Result<f64, CapacityError> {
    let t = s.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bytes: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "KiB" => 1024.0,
        "MiB" => 1024f64.powi(2),
        "GiB" => 1024f64.powi(3),
        "TiB" => 1024f64.powi(4),
        _ => {
            return Err(flag_err(
                "--max-memory",
                s,
                "the unit must be one of B, KB, MB, GB, TB, KiB, MiB, GiB, TiB",
            ));
        }
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v * bytes / 1e6),
        _ => Err(flag_err("--max-memory", s, "expected a positive size, e.g. 16GiB")),
    }
}

/// What to plan for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityQuery {
    /// Rate the configuration must hold [requests/s].
    pub target_rps: f64,
    /// The latency objective.
    pub slo: Slo,
    /// Memory cap over all workers [MB], if any.
    pub max_memory_mb: Option<f64>,
    /// Most cores to consider.
    pub max_cores: u32,
    /// Extra load the answer must absorb: it is checked at `target_rps · (1 + headroom)`.
    pub headroom: f64,
}

/// Threadpool sizes tried.
const THREADS: [u32; 8] = [1, 2, 4, 8, 16, 32, 40, 64];
/// Handlers tried, in order of preference among equally cheap candidates.
const HANDLERS: [Handler; 3] = [Handler::Sync, Handler::AsyncOffload, Handler::AsyncBlocking];
/// Bisection steps for the knee (the interval shrinks by 2⁻¹⁰).
const KNEE_STEPS: u32 = 10;

/// Largest batch sizes tried (continuous batching), when the scenario has step costs.
const BATCHES: [u32; 6] = [2, 4, 8, 16, 32, 64];

/// One configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// CPU cores.
    pub cores: u32,
    /// Worker processes.
    pub workers: u32,
    /// Handler.
    pub handler: Handler,
    /// Threadpool size.
    pub threads: u32,
    /// Largest batch of continuous batching (0: no batching).
    pub max_batch: u32,
}

impl Config {
    fn overrides(&self, rate_rps: f64) -> Vec<Override> {
        let o = |p: &str, v: toml::Value| Override { path: p.into(), value: v };
        let handler = serde_json::to_value(self.handler).ok().and_then(|v| v.as_str().map(String::from));
        let batching = if self.max_batch == 0 { "none" } else { "continuous" };
        vec![
            o("batching.mode", batching.into()),
            o("batching.max_batch", i64::from(self.max_batch.max(1)).into()),
            o("system.cores", i64::from(self.cores).into()),
            o("system.workers", i64::from(self.workers).into()),
            o("worker.threads", i64::from(self.threads).into()),
            o("worker.handler", handler.unwrap_or_default().into()),
            o("clients.kind", "open".into()),
            o("clients.rate_rps", rate_rps.into()),
        ]
    }
}

/// What became of a candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// Its workers need more memory than the cap.
    TooMuchMemory {
        /// Memory needed [MB].
        memory_mb: f64,
    },
    /// Its capacity bound is below the rate it must hold.
    BoundBelowTarget {
        /// The bound [requests/s].
        capacity_rps: f64,
        /// The resource that sets it.
        bottleneck: Bottleneck,
    },
    /// A request's own CPU work already exceeds the SLO: a lower bound on the SLO's figure
    /// of the work (its mean, or its quantile by Cantelli's inequality) is over the limit.
    WorkOverSlo {
        /// Mean work per request [ms].
        demand_ms: f64,
    },
    /// The open-system lower bound on mean latency of one resource is over a mean-latency
    /// SLO ([`crate::analytic::open_response_lower_bound`]).
    LatencyBoundOverSlo {
        /// The bound [ms].
        bound_ms: f64,
        /// The resource that gives it.
        resource: Bottleneck,
    },
    /// Simulated, and the figure's CI is not under the limit.
    Misses {
        /// The simulated figure [ms].
        value_ms: f64,
        /// Its CI half-width [ms].
        ci95_ms: f64,
        /// Requests refused by the admission queue.
        rejected: u64,
    },
    /// Simulated, and it meets the SLO.
    Meets {
        /// The simulated figure [ms].
        value_ms: f64,
        /// Its CI half-width [ms].
        ci95_ms: f64,
    },
}

impl Verdict {
    /// Tags of the verdicts that prune without simulating, in the order the screens run.
    pub const SCREENS: [&'static str; 4] =
        ["too-much-memory", "bound-below-target", "work-over-slo", "latency-bound-over-slo"];

    /// Its `verdict` tag in JSON.
    pub fn tag(&self) -> &'static str {
        match self {
            Verdict::TooMuchMemory { .. } => "too-much-memory",
            Verdict::BoundBelowTarget { .. } => "bound-below-target",
            Verdict::WorkOverSlo { .. } => "work-over-slo",
            Verdict::LatencyBoundOverSlo { .. } => "latency-bound-over-slo",
            Verdict::Misses { .. } => "misses",
            Verdict::Meets { .. } => "meets",
        }
    }
}

/// A visited candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The configuration.
    pub config: Config,
    /// Its memory [MB].
    pub memory_mb: f64,
    /// What became of it.
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// The highest rate that still meets the SLO.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Knee {
    /// Where the simulated figure crosses the limit [requests/s].
    pub rps: f64,
    /// Where its upper 95% bound crosses it.
    pub lo_rps: f64,
    /// Where its lower 95% bound crosses it.
    pub hi_rps: f64,
}

/// The chosen configuration with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The configuration.
    pub config: Config,
    /// Its memory [MB].
    pub memory_mb: f64,
    /// Simulated figures at `target · (1 + headroom)`.
    pub figures: Figures,
    /// Their CI half-widths.
    pub ci95: Figures,
    /// The resource that bounds it.
    pub bottleneck: Bottleneck,
    /// Its capacity bound [requests/s].
    pub capacity_rps: f64,
    /// The knee.
    pub knee: Knee,
}

/// The result of a capacity search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityReport {
    /// The question.
    pub query: CapacityQuery,
    /// The cheapest configuration that meets it, if any does.
    pub answer: Option<Answer>,
    /// The closest candidate strictly cheaper than the answer (fewer cores, or as many and
    /// less memory) that was simulated and missed — the evidence that the answer is the
    /// cheapest. `None` without an answer, or when every cheaper candidate was pruned.
    pub cheaper: Option<Evaluation>,
    /// Candidates pruned without simulation.
    pub pruned: usize,
    /// The same, by verdict (the `verdict` tags of `evaluated`), every screen listed.
    pub pruned_by: BTreeMap<String, usize>,
    /// Candidates simulated.
    pub simulated: usize,
    /// Every candidate visited, cheapest first.
    pub evaluated: Vec<Evaluation>,
}

/// Every configuration up to `max_cores`; batched ones only when the scenario gives step
/// costs.
fn candidates(q: &CapacityQuery, batching: bool) -> Vec<Config> {
    let mut out = Vec::new();
    for cores in 1..=q.max_cores {
        for workers in 1..=cores {
            for handler in HANDLERS {
                let threads: &[u32] =
                    if handler == Handler::AsyncBlocking { &THREADS[..1] } else { &THREADS };
                out.extend(threads.iter().map(|&threads| Config {
                    cores,
                    workers,
                    handler,
                    threads,
                    max_batch: 0,
                }));
            }
            if batching {
                out.extend(BATCHES.iter().map(|&max_batch| Config {
                    cores,
                    workers,
                    handler: Handler::Sync,
                    threads: 1,
                    max_batch,
                }));
            }
        }
    }
    out
}

/// The last simulated miss, in search order, that costs strictly less than `answer`
/// (cores, memory): fewer cores, or as many and less memory.
fn closest_cheaper(evaluated: &[Evaluation], answer: (u32, f64)) -> Option<Evaluation> {
    let cheaper =
        |e: &Evaluation| e.config.cores < answer.0 || (e.config.cores == answer.0 && e.memory_mb < answer.1);
    evaluated.iter().rev().find(|e| matches!(e.verdict, Verdict::Misses { .. }) && cheaper(e)).cloned()
}

fn figure(f: &Figures, m: SloMetric) -> f64 {
    let l = &f.latency_ms;
    match m {
        SloMetric::Mean => l.mean,
        SloMetric::P50 => l.p50,
        SloMetric::P95 => l.p95,
        SloMetric::P99 => l.p99,
    }
}

/// A capacity search over one scenario's workload and costs.
pub struct Planner {
    text: String,
    origin: std::path::PathBuf,
    base_dir: std::path::PathBuf,
    sets: Vec<Override>,
    query: CapacityQuery,
    worker_memory_mb: f64,
    seq_memory_mb: f64,
    batching: bool,
}

impl Planner {
    /// Reads the scenario; its clients are replaced by open Poisson arrivals at the rates
    /// the search tries.
    pub fn new(file: &Path, sets: &[Override], query: CapacityQuery) -> Result<Self, CapacityError> {
        if !(query.target_rps.is_finite() && query.target_rps > 0.0) {
            return Err(flag_err("--target-rps", &query.target_rps.to_string(), "must be a rate > 0"));
        }
        if !(query.headroom.is_finite() && query.headroom >= 0.0) {
            return Err(flag_err("--headroom", &query.headroom.to_string(), "must be ≥ 0 (0.1 = 10%)"));
        }
        if query.max_cores == 0 {
            return Err(flag_err("--max-cores", "0", "must be ≥ 1"));
        }
        let text = std::fs::read_to_string(file)
            .map_err(|source| ScenarioError::Read { path: file.to_owned(), source })?;
        let base_dir = file.parent().unwrap_or(Path::new(".")).to_owned();
        let base = Scenario::parse(&text, file, &base_dir, sets)?;
        let b = &base.batching;
        let has_steps = [&b.step_locked_ms, &b.step_free_ms, &b.seq_locked_ms, &b.seq_free_ms]
            .iter()
            .any(|d| !d.is_zero())
            || base.cost.calibrated.as_ref().is_some_and(|c| !c.batch_steps.is_empty());
        Ok(Self {
            worker_memory_mb: base.system.worker_memory_mb,
            seq_memory_mb: base.system.seq_memory_mb,
            batching: has_steps,
            text,
            origin: file.to_owned(),
            base_dir,
            sets: sets.to_vec(),
            query,
        })
    }

    fn scenario(&self, c: &Config, rate: f64) -> Result<Scenario, CapacityError> {
        let all: Vec<Override> = self.sets.iter().cloned().chain(c.overrides(rate)).collect();
        let mut sc = Scenario::parse(&self.text, &self.origin, &self.base_dir, &all)?;
        sc.clients.kind = ClientKind::Open;
        Ok(sc)
    }

    fn prune(&self, c: &Config, memory_mb: f64, rate: f64) -> Result<Option<Verdict>, CapacityError> {
        if self.query.max_memory_mb.is_some_and(|cap| memory_mb > cap) {
            return Ok(Some(Verdict::TooMuchMemory { memory_mb }));
        }
        let sc = self.scenario(c, rate)?;
        let st = sim::stability(&sc);
        if st.capacity_rps <= rate {
            return Ok(Some(Verdict::BoundBelowTarget {
                capacity_rps: st.capacity_rps,
                bottleneck: st.bottleneck,
            }));
        }
        let Slo { metric, limit_ms } = self.query.slo;
        if c.max_batch > 0 {
            // A full batch shares each step the most, so `demand_ms` bounds the mean work of
            // a batched request from below; its spread is not bounded.
            let over = metric == SloMetric::Mean && st.demand_ms > limit_ms;
            return Ok(over.then_some(Verdict::WorkOverSlo { demand_ms: st.demand_ms }));
        }
        let own = resources(&sc)[0].2;
        if work_floor_ms(own, metric) > limit_ms {
            return Ok(Some(Verdict::WorkOverSlo { demand_ms: own.mean_ms }));
        }
        if metric == SloMetric::Mean
            && let Some((bound_ms, resource)) = latency_bound_ms(&sc, rate)
            && bound_ms > limit_ms
        {
            return Ok(Some(Verdict::LatencyBoundOverSlo { bound_ms, resource }));
        }
        Ok(None)
    }

    fn simulate(&self, c: &Config, rate: f64) -> Result<SimReport, CapacityError> {
        Ok(sim::simulate(&self.scenario(c, rate)?)?)
    }

    /// Figure and CI half-width at `rate`; an admission refusal counts as a miss.
    fn judge(&self, r: &SimReport) -> Verdict {
        let m = self.query.slo.metric;
        let (value_ms, ci95_ms) = (figure(&r.figures, m), figure(&r.ci95, m));
        if value_ms + ci95_ms <= self.query.slo.limit_ms && r.rejected == 0 && !r.stability.unstable {
            Verdict::Meets { value_ms, ci95_ms }
        } else {
            Verdict::Misses { value_ms, ci95_ms, rejected: r.rejected }
        }
    }

    /// Runs the search.
    pub fn run(&self) -> Result<CapacityReport, CapacityError> {
        let q = &self.query;
        let rate = q.target_rps * (1.0 + q.headroom);
        let memory = |c: &Config| {
            f64::from(c.workers) * (self.worker_memory_mb + f64::from(c.max_batch) * self.seq_memory_mb)
        };
        let mut all: Vec<(Config, f64)> =
            candidates(q, self.batching).into_iter().map(|c| (c, memory(&c))).collect();
        // Fewest cores, then least memory; the candidate order breaks ties.
        all.sort_by(|a, b| {
            (a.0.cores, a.1).partial_cmp(&(b.0.cores, b.1)).unwrap_or(std::cmp::Ordering::Equal)
        });
        let mut report = CapacityReport {
            query: q.clone(),
            answer: None,
            cheaper: None,
            pruned: 0,
            pruned_by: Verdict::SCREENS.iter().map(|t| (t.to_string(), 0)).collect(),
            simulated: 0,
            evaluated: Vec::new(),
        };
        for (config, memory_mb) in all {
            let verdict = match self.prune(&config, memory_mb, rate)? {
                Some(v) => {
                    report.pruned += 1;
                    *report.pruned_by.entry(v.tag().into()).or_default() += 1;
                    v
                }
                None => {
                    report.simulated += 1;
                    let r = self.simulate(&config, rate)?;
                    let v = self.judge(&r);
                    if let Verdict::Meets { .. } = v {
                        report.evaluated.push(Evaluation { config, memory_mb, verdict: v });
                        report.answer = Some(self.answer(config, memory_mb, &r)?);
                        report.cheaper = closest_cheaper(&report.evaluated, (config.cores, memory_mb));
                        return Ok(report);
                    }
                    v
                }
            };
            report.evaluated.push(Evaluation { config, memory_mb, verdict });
        }
        Ok(report)
    }

    fn answer(&self, config: Config, memory_mb: f64, r: &SimReport) -> Result<Answer, CapacityError> {
        Ok(Answer {
            config,
            memory_mb,
            figures: r.figures,
            ci95: r.ci95,
            bottleneck: r.stability.bottleneck,
            capacity_rps: r.stability.capacity_rps,
            knee: self.knee(&config, r.stability.capacity_rps)?,
        })
    }

    /// Bisection between the checked rate (which meets the SLO) and the capacity bound, for
    /// the figure itself and for the ends of its CI.
    fn knee(&self, c: &Config, capacity_rps: f64) -> Result<Knee, CapacityError> {
        let limit = self.query.slo.limit_ms;
        let m = self.query.slo.metric;
        let start = self.query.target_rps * (1.0 + self.query.headroom);
        let hi = if capacity_rps.is_finite() { capacity_rps } else { start * 64.0 };
        let mut ends = [(start, hi); 3];
        for _ in 0..KNEE_STEPS {
            for (k, sign) in [(0usize, 0.0), (1, 1.0), (2, -1.0)] {
                let (lo, hi) = ends[k];
                let mid = 0.5 * (lo + hi);
                let r = self.simulate(c, mid)?;
                let v = figure(&r.figures, m) + sign * figure(&r.ci95, m);
                ends[k] = if v <= limit && !r.stability.unstable { (mid, hi) } else { (lo, mid) };
            }
        }
        Ok(Knee { rps: ends[0].0, lo_rps: ends[1].0, hi_rps: ends[2].0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_refuse_clearly() {
        assert_eq!("p95=300ms".parse::<Slo>().unwrap(), Slo { metric: SloMetric::P95, limit_ms: 300.0 });
        assert_eq!("mean=1.5s".parse::<Slo>().unwrap().limit_ms, 1500.0);
        assert!("p90=1s".parse::<Slo>().unwrap_err().to_string().contains("mean, p50, p95 or p99"));
        assert!("p95=-1ms".parse::<Slo>().unwrap_err().to_string().contains("positive duration"));
        assert!((parse_memory_mb("16GiB").unwrap() - 17179.869184).abs() < 1e-6);
        assert_eq!(parse_memory_mb("64 GB").unwrap(), 64_000.0);
        assert!(parse_memory_mb("3 parsecs").unwrap_err().to_string().contains("the unit must be"));
    }

    /// Writes a scenario file into a fresh temporary directory.
    fn scenario_file(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("servesim-capacity-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("scenario.toml");
        std::fs::write(&file, text).unwrap();
        file
    }

    /// 100 ms of deterministic lock-free work per request, no loop work.
    const D100: &str = r#"
        [worker]
        lock = "none"
        queue_limit = 1000000
        [workload]
        new_tokens = 0
        [cost]
        request_free_ms = 100.0
        [run]
        requests = 20000
        warmup_requests = 1000
        replications = 3
    "#;

    fn config(cores: u32, workers: u32, threads: u32) -> Config {
        Config { cores, workers, handler: Handler::Sync, threads, max_batch: 0 }
    }

    fn query(target_rps: f64, slo: &str, max_cores: u32) -> CapacityQuery {
        CapacityQuery { target_rps, slo: slo.parse().unwrap(), max_memory_mb: None, max_cores, headroom: 0.0 }
    }

    #[test]
    fn the_latency_bound_prunes_what_the_simulator_rejects() {
        // 9 req/s of 100 ms on one thread: ρ = 0.9, and the bound is the M/D/1 mean itself,
        // 0.1 s·(2 − 0.9)/(2·(1 − 0.9)) = 550 ms, over a 300 ms SLO: the candidate is pruned
        // without being simulated. The simulator agrees that it misses.
        let file = scenario_file("bound", D100);
        let planner = Planner::new(&file, &[], query(9.0, "mean=300ms", 2)).unwrap();
        let one = config(1, 1, 4);
        let Some(Verdict::LatencyBoundOverSlo { bound_ms, resource }) =
            planner.prune(&one, 16.0, 9.0).unwrap()
        else {
            panic!("not pruned by the latency bound");
        };
        assert!((bound_ms - 550.0).abs() < 1e-6 && resource == Bottleneck::Cores, "{bound_ms} {resource:?}");
        let sim = planner.simulate(&one, 9.0).unwrap();
        assert!(matches!(planner.judge(&sim), Verdict::Misses { .. }), "{:?}", sim.figures.latency_ms);
        // A p95 SLO is not screened by it: no bound on a percentile follows from the work.
        let p95 = Planner::new(&file, &[], query(9.0, "p95=300ms", 2)).unwrap();
        assert_eq!(p95.prune(&one, 16.0, 9.0).unwrap(), None);

        // The search: every 1-core candidate and the 2-core one with a single thread are
        // pruned by the bound; two threads on two cores meet the SLO. Nothing cheaper was
        // simulated, so there is no "next cheaper" to show.
        let report = planner.run().unwrap();
        let answer = report.answer.as_ref().expect("an answer");
        assert_eq!(answer.config, config(2, 1, 2));
        let by_bound: Vec<Config> = report
            .evaluated
            .iter()
            .filter(|e| matches!(e.verdict, Verdict::LatencyBoundOverSlo { .. }))
            .map(|e| e.config)
            .collect();
        assert!(by_bound.contains(&config(2, 1, 1)) && by_bound.iter().filter(|c| c.cores == 1).count() > 0);
        assert_eq!(report.pruned_by["latency-bound-over-slo"], by_bound.len());
        assert_eq!(report.pruned, report.pruned_by.values().sum::<usize>());
        assert_eq!(report.simulated + report.pruned, report.evaluated.len());
        assert_eq!(report.cheaper, None);
    }

    #[test]
    fn the_latency_bound_stays_under_the_simulated_mean_of_the_lesson_s_service() {
        // The GIL-bound Mini-GPT of the lesson at 44 req/s, where the bound is tightest (the
        // cores at ρ ≈ 0.88, the lock at ρ ≈ 0.73 per worker): every bound lies under what
        // the simulator finds, lower end of its CI included.
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/seed-sync.toml");
        let planner = Planner::new(&file, &[], query(44.0, "mean=300ms", 8)).unwrap();
        let blocking = Config { handler: Handler::AsyncBlocking, ..config(4, 4, 1) };
        for c in [config(4, 2, 4), config(4, 3, 2), blocking, config(5, 2, 4)] {
            let sc = planner.scenario(&c, 44.0).unwrap();
            let (bound_ms, _) = latency_bound_ms(&sc, 44.0).unwrap();
            let r = planner.simulate(&c, 44.0).unwrap();
            let (mean, ci) = (r.figures.latency_ms.mean, r.ci95.latency_ms.mean);
            assert!(
                bound_ms >= 80.0 - 1e-9 && bound_ms <= mean - ci,
                "{c:?}: bound {bound_ms} ms, simulated {mean} ± {ci}"
            );
        }
    }

    #[test]
    fn work_over_the_slo_is_proven_not_guessed() {
        // One request in 100 costs 5 s, the rest 1 ms: the mean work (51 ms) is over a 40 ms
        // p95, but the p95 of the work is 1 ms, so a lightly loaded server meets the SLO and
        // must not be pruned. A mean SLO of 40 ms is over the mean work, and is.
        let mut samples = vec!["1.0"; 99];
        samples.push("5000.0");
        let text = D100.replace(
            "request_free_ms = 100.0",
            &format!("request_free_ms = {{ dist = \"empirical\", samples = [{}] }}", samples.join(", ")),
        );
        let file = scenario_file("work", &text);
        let one = config(1, 1, 4);
        let p95 = Planner::new(&file, &[], query(1.0, "p95=40ms", 1)).unwrap();
        assert_eq!(p95.prune(&one, 16.0, 1.0).unwrap(), None);
        let mean = Planner::new(&file, &[], query(1.0, "mean=40ms", 1)).unwrap();
        let v = mean.prune(&one, 16.0, 1.0).unwrap();
        assert!(
            matches!(v, Some(Verdict::WorkOverSlo { demand_ms }) if (demand_ms - 50.99).abs() < 1e-9),
            "{v:?}"
        );
    }

    #[test]
    fn the_next_cheaper_is_strictly_cheaper_than_the_answer() {
        let e = |cores, memory_mb, verdict: Verdict| Evaluation {
            config: config(cores, 1, 1),
            memory_mb,
            verdict,
        };
        let miss = || Verdict::Misses { value_ms: 400.0, ci95_ms: 1.0, rejected: 0 };
        let pruned = || Verdict::BoundBelowTarget { capacity_rps: 1.0, bottleneck: Bottleneck::Lock };
        // Search order: cheapest first; the last two cost as much as the answer (5, 32).
        let evaluated = [e(4, 16.0, miss()), e(4, 64.0, miss()), e(5, 16.0, pruned()), e(5, 32.0, miss())];
        assert_eq!(closest_cheaper(&evaluated, (5, 32.0)), Some(evaluated[1].clone()));
        // Same cores, less memory counts as cheaper.
        assert_eq!(closest_cheaper(&evaluated[..3], (4, 64.0)), Some(evaluated[0].clone()));
        // Only pruned or equally cheap candidates: none.
        assert_eq!(closest_cheaper(&evaluated[2..], (5, 32.0)), None);
    }
}
