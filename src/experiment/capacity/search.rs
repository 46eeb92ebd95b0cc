//! The search itself: candidates cheapest first, each screened by the bounds or simulated,
//! and the answer's knee by bisection.

use super::candidates::candidates;
use super::report::closest_cheaper;
use super::screen::{latency_bound_ms, resources, work_floor_ms};
use super::{
    Answer, CapacityError, CapacityQuery, CapacityReport, Config, Evaluation, Knee, Slo, SloMetric, Verdict,
    flag_err,
};
use crate::scenario::{ClientKind, MAX_RATE_RPS, MIN_RATE_RPS, Override, Scenario, show};
use crate::sim::{self, Figures, SimReport};
use std::path::Path;

/// Most cores a search considers (`--max-cores`): the candidates grow with its square, a
/// quarter of a million at 256, screened in about half a minute when none meets the SLO.
pub const MAX_CORES: u32 = 256;

/// Bisection steps for the knee (the interval shrinks by 2⁻¹⁰).
const KNEE_STEPS: u32 = 10;

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
            return Err(flag_err("--target-rps", &show(query.target_rps), "must be a rate > 0"));
        }
        if query.target_rps < MIN_RATE_RPS {
            return Err(flag_err(
                "--target-rps",
                &show(query.target_rps),
                &format!(
                    "must be at least {} req/s, the slowest open loop the simulator offers (clients.rate_rps)",
                    show(MIN_RATE_RPS)
                ),
            ));
        }
        if !(query.headroom.is_finite() && query.headroom >= 0.0) {
            return Err(flag_err("--headroom", &show(query.headroom), "must be ≥ 0 (0.1 = 10%)"));
        }
        let rate = query.target_rps * (1.0 + query.headroom);
        if rate > MAX_RATE_RPS {
            return Err(flag_err(
                "--target-rps",
                &show(query.target_rps),
                &format!(
                    "with --headroom {} is checked at {} req/s, more than the {} req/s an open loop \
                     may offer (clients.rate_rps); lower either",
                    show(query.headroom),
                    show(rate),
                    show(MAX_RATE_RPS)
                ),
            ));
        }
        if !(1..=MAX_CORES).contains(&query.max_cores) {
            return Err(flag_err(
                "--max-cores",
                &query.max_cores.to_string(),
                &format!("must be in 1..={MAX_CORES} (the candidates grow with its square)"),
            ));
        }
        let text = crate::scenario::read_scenario(file)?;
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
        // Parsed from the text rather than derived with `Scenario::with`, so that a
        // calibration is added after the candidate's overrides, as it is for a file.
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
    use crate::scenario::Handler;
    use crate::sim::Bottleneck;

    /// A fresh temporary directory, removed when the test ends, holding `text` as
    /// `scenario.toml`.
    fn scenario_dir(text: &str) -> tempfile::TempDir {
        let dir = tempfile::Builder::new().prefix("servesim-capacity-").tempdir().unwrap();
        std::fs::write(dir.path().join("scenario.toml"), text).unwrap();
        dir
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
        let dir = scenario_dir(D100);
        let file = dir.path().join("scenario.toml");
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
        let dir = scenario_dir(&text);
        let file = dir.path().join("scenario.toml");
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
}
