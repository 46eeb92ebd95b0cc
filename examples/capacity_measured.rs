//! Example: a capacity plan, proven by measurement.
//!
//! The service is the validation suite's Mini-GPT (`models/validate.toml`: GIL, 0.25 ms of
//! interpreter work and 0.15 ms of kernels per token, 20 tokens) with a batched step that
//! pays the interpreter work once per step (0.25 ms locked + 0.10 ms free, plus 0.05 ms per
//! sequence) and a KV cache of 0.13 MB per sequence (2 layers × K, V × 128 positions × 64
//! floats), all on this machine's calibration. The question: the cheapest configuration on
//! at most 2 cores that holds 150 req/s (open loop, Poisson) at p95 ≤ 30 ms, checked with
//! 10% headroom.
//!
//! [`Planner`] searches cores, workers, handlers, threads and continuous-batching sizes,
//! cheapest first (cores, then memory), prunes by bounds and simulates the rest. Its answer
//! and the closest strictly cheaper candidate it simulated and rejected are then measured on
//! the real server at the target rate: the answer must meet the SLO and the cheaper one must
//! not. A configuration meets it only if no request failed: a server that sheds load with
//! 503s keeps the p95 of the requests it does serve low, and that is not holding the rate.
//!
//! Run: `flock /tmp/servesim-measure.lock cargo run --release --example capacity_measured`
//! (about 20 s on 2 cores; up to 30 s more if other processes keep the CPUs busy). Writes nothing (the calibration, `validation/calibration.json`,
//! only when it was taken on another machine).

mod common;
use common::{Quiet, calibration, root, sets};
use servesim::experiment::{
    CapacityQuery, Config, MeasureOptions, MeasureReport, Planner, Slo, Verdict, measure,
};
use servesim::scenario::Scenario;
use servesim::sim::{self, SimReport};
use std::path::Path;
use std::time::Duration;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The rate to hold (req/s).
const TARGET_RPS: f64 = 150.0;
/// The objective.
const SLO: &str = "p95=30ms";
/// Measured requests per run (after the warm-up), and runs per configuration (own seeds).
const REQUESTS: u64 = 600;
const REPEATS: u64 = 2;
/// The longest total wait for a quiet machine (the table shows how busy other processes
/// kept it around each measurement).
const WAIT_BUDGET: Duration = Duration::from_secs(30);

/// The scenario's own overrides: calibration, batched step and KV-cache memory.
fn base(calibration: &Path) -> Vec<String> {
    vec![
        format!("cost.calibration={:?}", calibration.display().to_string()),
        "batching.step_locked_ms=0.25".into(),
        "batching.step_free_ms=0.10".into(),
        "batching.seq_free_ms=0.05".into(),
        "system.seq_memory_mb=0.13".into(),
    ]
}

/// One configuration at `rate`, as the planner runs it (open Poisson arrivals).
fn scenario(calibration: &Path, c: &Config, rate: f64, requests: u64, seed: u64) -> Result<Scenario> {
    let handler = serde_json::to_value(c.handler)?;
    let mut list = base(calibration);
    list.extend([
        format!("batching.mode={:?}", if c.max_batch == 0 { "none" } else { "continuous" }),
        format!("batching.max_batch={}", c.max_batch.max(1)),
        format!("system.cores={}", c.cores),
        format!("system.workers={}", c.workers),
        format!("worker.threads={}", c.threads),
        format!("worker.handler={handler}"),
        "clients.kind=\"open\"".into(),
        format!("clients.rate_rps={rate}"),
        format!("run.requests={requests}"),
        "run.warmup_requests=50".into(),
        format!("run.seed={seed}"),
    ]);
    Ok(Scenario::load(&root().join("models/validate.toml"), &sets(&list)?)?)
}

fn describe(c: &Config) -> String {
    let handler = serde_json::to_value(c.handler).ok().and_then(|v| v.as_str().map(String::from));
    let how = match (c.max_batch, handler.unwrap_or_default()) {
        (0, h) if h == "async-blocking" => h,
        (0, h) => format!("{h} × {} threads", c.threads),
        (b, _) => format!("continuous batching ≤ {b}"),
    };
    format!("{} core, {} worker, {how}", c.cores, c.workers)
}

/// What became of a candidate.
fn verdict(v: &Verdict) -> String {
    match v {
        Verdict::TooMuchMemory { memory_mb } => format!("pruned: {memory_mb:.0} MB over the cap"),
        Verdict::BoundBelowTarget { capacity_rps, bottleneck } => {
            format!("pruned: capacity bound {capacity_rps:.0} req/s ({bottleneck:?})")
        }
        Verdict::WorkOverSlo { demand_ms } => format!("pruned: {demand_ms:.1} ms of work"),
        Verdict::LatencyBoundOverSlo { bound_ms, resource } => {
            format!("pruned: mean latency ≥ {bound_ms:.1} ms ({resource:?})")
        }
        Verdict::Misses { value_ms, ci95_ms, .. } => {
            format!("simulated: p95 {value_ms:.1} ± {ci95_ms:.1} ms, misses")
        }
        Verdict::Meets { value_ms, ci95_ms } => {
            format!("simulated: p95 {value_ms:.1} ± {ci95_ms:.1} ms, meets")
        }
    }
}

/// A configuration predicted and measured at the target rate.
struct Checked {
    config: Config,
    role: &'static str,
    pred: SimReport,
    meas: Vec<MeasureReport>,
    /// Largest share of the machine other processes used around its measurements.
    other_cpu: f64,
}

impl Checked {
    /// Failed requests (503 refusals included) over its measurements.
    fn failed(&self) -> u64 {
        self.meas.iter().map(|m| m.errors.max(m.rejected)).sum()
    }

    /// Whether the measurements meet the SLO: mean p95 under the limit and no request
    /// failed or refused.
    fn meets(&self, limit_ms: f64) -> bool {
        self.failed() == 0 && self.measured(|m| m.latency_ms.p95).0 <= limit_ms
    }

    fn measured(&self, f: fn(&MeasureReport) -> f64) -> (f64, f64, f64) {
        let v: Vec<f64> = self.meas.iter().map(f).collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        (mean, v.iter().copied().fold(f64::INFINITY, f64::min), v.iter().copied().fold(0.0, f64::max))
    }
}

fn check(calibration: &Path, config: Config, role: &'static str, quiet: &mut Quiet) -> Result<Checked> {
    let pred = sim::simulate(&scenario(calibration, &config, TARGET_RPS, 4000, 1)?)?;
    let opts = MeasureOptions { max_wall_s: 60.0, ..MeasureOptions::default() };
    let mut other = quiet.wait();
    let mut meas = Vec::new();
    for seed in 1..=REPEATS {
        meas.push(measure(&scenario(calibration, &config, TARGET_RPS, REQUESTS, seed)?, &opts)?);
        other = other.max(quiet.wait());
    }
    Ok(Checked { config, role, pred, meas, other_cpu: other })
}

fn main() -> Result<()> {
    let file = root().join("models/validate.toml");
    let (path, cal) = calibration(&file)?;
    println!("calibration: {} ({}, {})", path.display(), cal.machine.hostname, cal.machine.date);

    let slo: Slo = SLO.parse()?;
    let query =
        CapacityQuery { target_rps: TARGET_RPS, slo, max_memory_mb: None, max_cores: 2, headroom: 0.1 };
    println!("== plan: {TARGET_RPS:.0} req/s at {SLO}, ≤ 2 cores, checked at +10%");
    let report = Planner::new(&file, &sets(&base(&path))?, query)?.run()?;
    // Consecutive candidates with the same verdict on one line.
    let mut i = 0;
    while i < report.evaluated.len() {
        let e = &report.evaluated[i];
        let why = verdict(&e.verdict);
        let same = report.evaluated[i..].iter().take_while(|o| verdict(&o.verdict) == why).count();
        let more = if same > 1 { format!(" (+{} more)", same - 1) } else { String::new() };
        println!("   {:<58} {:>6.2} MB  {why}", format!("{}{more}", describe(&e.config)), e.memory_mb);
        i += same;
    }
    let answer = report.answer.as_ref().ok_or("no configuration on 2 cores meets the target")?;
    let cheaper = report.cheaper.as_ref().ok_or("the planner simulated no cheaper candidate to measure")?;
    let (a, c) = (&answer.config, &cheaper.config);
    assert!(
        c.cores < a.cores || (c.cores == a.cores && cheaper.memory_mb < answer.memory_mb),
        "the next cheaper candidate costs less than the answer (fewer cores, or less memory)"
    );
    println!(
        "   answer: {}; knee {:.0} req/s ({} pruned, {} simulated)\n",
        describe(&answer.config),
        answer.knee.rps,
        report.pruned,
        report.simulated
    );

    println!("== measured at {TARGET_RPS:.0} req/s: {REPEATS} runs × {REQUESTS} requests each");
    let mut quiet = Quiet(WAIT_BUDGET);
    let rows = [
        check(&path, answer.config, "answer", &mut quiet)?,
        check(&path, cheaper.config, "cheaper, rejected", &mut quiet)?,
    ];
    println!(
        "{:<18} {:<36} {:>14} {:>22} {:>14} {:>22} {:>7} {:>6} {:>6}",
        "",
        "configuration",
        "pred p95 ms",
        "meas p95 ms [min,max]",
        "pred req/s",
        "meas req/s [min,max]",
        "failed",
        "meets",
        "other"
    );
    let limit = slo.limit_ms;
    for r in &rows {
        let (p95, p95_lo, p95_hi) = r.measured(|m| m.latency_ms.p95);
        let (x, x_lo, x_hi) = r.measured(|m| m.throughput_rps);
        let f = &r.pred.figures;
        println!(
            "{:<18} {:<36} {:>14} {:>22} {:>14} {:>22} {:>7} {:>6} {:>5.0}%",
            r.role,
            describe(&r.config),
            format!("{:.1} ± {:.1}", f.latency_ms.p95, r.pred.ci95.latency_ms.p95),
            format!("{p95:.1} [{p95_lo:.1}, {p95_hi:.1}]"),
            format!("{:.1} ± {:.1}", f.throughput_rps, r.pred.ci95.throughput_rps),
            format!("{x:.1} [{x_lo:.1}, {x_hi:.1}]"),
            r.failed(),
            if r.meets(limit) { "yes" } else { "no" },
            100.0 * r.other_cpu,
        );
    }
    println!("(failed: requests that failed or were refused with 503; other: share of the machine");
    println!(" other processes used around the measurements)");

    let [ok, rejected] = &rows;
    let predicted_meets = |r: &Checked| r.pred.figures.latency_ms.p95 <= limit && r.pred.rejected == 0;
    assert!(predicted_meets(ok), "the answer is predicted to meet the SLO");
    assert!(!predicted_meets(rejected), "the cheaper candidate is predicted to miss it");
    assert!(
        ok.meets(limit),
        "measured: the planner's answer meets {SLO} at {TARGET_RPS} req/s, no request failed"
    );
    assert!(!rejected.meets(limit), "measured: the cheaper candidate misses {SLO} at {TARGET_RPS} req/s");
    assert!(ok.measured(|m| m.throughput_rps).0 >= 0.9 * TARGET_RPS, "the answer holds the rate");
    Ok(())
}
