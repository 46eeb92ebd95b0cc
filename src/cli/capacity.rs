//! `servesim capacity`.

use super::common::ScenarioArgs;
use clap::Args;
use servesim::experiment::{CapacityQuery, CapacityReport, Config, Planner, Slo, Verdict, parse_memory_mb};

/// Find the cheapest configuration (fewest cores, then least memory) that holds a rate
/// within a latency SLO.
///
/// The scenario gives the workload and costs; its clients are replaced by open Poisson
/// arrivals. Candidates — cores × workers × handler × threads, and batch sizes when the
/// scenario has batched step costs — are visited cheapest first, pruned when a bound proves
/// they cannot work, and otherwise simulated at the target rate plus headroom: a candidate
/// meets the SLO when the figure's 95% CI lies under the limit.
///
/// The bounds: memory over the cap; a capacity bound below the rate (the bottleneck's
/// servers over its demand); a request's own work over the SLO (its mean, or for a
/// percentile the lower quantile bound μ − σ·√((1−q)/q) from Cantelli's inequality); and for
/// a mean-latency SLO, an open-queueing lower bound on mean latency at each resource that
/// holds for any scheduling. Each only prunes what cannot meet the SLO; no analytic bound
/// on a percentile exists from the work alone, so percentile SLOs are otherwise left to the
/// simulator.
///
/// For the answer it prints the bottleneck, the utilization of every resource, the knee —
/// the highest rate that still meets the SLO — with its interval, and the closest strictly
/// cheaper candidate that was simulated and missed.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    servesim capacity models/seed-sync.toml --target-rps 40 --slo p95=300ms\n  \
    servesim capacity models/seed-sync.toml --target-rps 100 --slo p99=1s --max-memory 16GiB --max-cores 8")]
pub struct CapacityArgs {
    #[command(flatten)]
    scenario: ScenarioArgs,

    /// Rate to hold [requests/s].
    #[arg(long)]
    target_rps: f64,

    /// Latency objective: mean|p50|p95|p99=LIMIT, e.g. p95=300ms.
    #[arg(long)]
    slo: Slo,

    /// Memory cap over all workers, e.g. 16GiB (each worker costs system.worker_memory_mb).
    #[arg(long)]
    max_memory: Option<String>,

    /// Most cores to consider.
    #[arg(long, default_value_t = 16)]
    max_cores: u32,

    /// Extra load the answer must absorb: it is checked at target × (1 + headroom).
    #[arg(long, default_value_t = 0.1)]
    headroom: f64,

    /// Print one JSON object on stdout instead of a summary.
    #[arg(long)]
    json: bool,
}

/// Runs `servesim capacity`.
pub fn run(args: CapacityArgs) -> anyhow::Result<()> {
    let max_memory_mb = args.max_memory.as_deref().map(parse_memory_mb).transpose()?;
    let query = CapacityQuery {
        target_rps: args.target_rps,
        slo: args.slo,
        max_memory_mb,
        max_cores: args.max_cores,
        headroom: args.headroom,
    };
    let report = Planner::new(&args.scenario.file, &args.scenario.set, query)?.run()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", summary(&report));
    }
    Ok(())
}

fn describe(c: &Config) -> String {
    let what = if c.max_batch > 0 {
        format!("continuous batching up to {}", c.max_batch)
    } else {
        format!("{} threads, {:?} handler", c.threads, c.handler)
    };
    format!("{} cores, {} worker(s), {what}", c.cores, c.workers)
}

fn summary(r: &CapacityReport) -> String {
    let q = &r.query;
    let mut s = format!(
        "target {} req/s (checked at {:.3} req/s, {:.0}% headroom), SLO {:?} ≤ {} ms\n",
        q.target_rps,
        q.target_rps * (1.0 + q.headroom),
        q.headroom * 100.0,
        q.slo.metric,
        q.slo.limit_ms
    );
    let by: Vec<String> = Verdict::SCREENS
        .iter()
        .map(|t| format!("{} {}", r.pruned_by.get(*t).copied().unwrap_or(0), screen_name(t)))
        .collect();
    s.push_str(&format!(
        "{} candidates pruned by bounds ({}), {} simulated\n\n",
        r.pruned,
        by.join(", "),
        r.simulated
    ));
    let Some(a) = &r.answer else {
        s.push_str("no configuration within the limits meets the SLO; raise --max-cores or --max-memory\n");
        return s;
    };
    let (f, ci) = (&a.figures, &a.ci95);
    s.push_str(&format!("answer: {} ({:.1} MB)\n", describe(&a.config), a.memory_mb));
    s.push_str(&format!(
        "  throughput {:.3} ± {:.3} req/s; latency p50 {:.2}, p95 {:.2} ± {:.2}, p99 {:.2} ms\n",
        f.throughput_rps,
        ci.throughput_rps,
        f.latency_ms.p50,
        f.latency_ms.p95,
        ci.latency_ms.p95,
        f.latency_ms.p99
    ));
    let u = &f.utilization;
    s.push_str(&format!(
        "  bottleneck {:?} (bound {:.2} req/s); utilization: cores {:.0}%, lock {:.0}%, threads {:.0}%, loop {:.0}%\n",
        a.bottleneck,
        a.capacity_rps,
        100.0 * u.cores,
        100.0 * u.lock,
        100.0 * u.threads,
        100.0 * u.event_loop
    ));
    if a.config.max_batch > 0 {
        s.push_str(&format!(
            "  batch scheduler: {:.2} ± {:.2} sequences per step of at most {} (the simulator reports no busy share for it)\n",
            f.mean_batch, ci.mean_batch, a.config.max_batch
        ));
    }
    s.push_str(&format!(
        "  knee: {:.2} req/s still meets the SLO (95% interval {:.2}–{:.2})\n",
        a.knee.rps, a.knee.lo_rps, a.knee.hi_rps
    ));
    match &r.cheaper {
        Some(e) => {
            let why = match &e.verdict {
                Verdict::Misses { value_ms, ci95_ms, rejected } => {
                    format!("{value_ms:.2} ± {ci95_ms:.2} ms, {rejected} refused")
                }
                other => format!("{other:?}"),
            };
            s.push_str(&format!(
                "next cheaper simulated: {} ({:.1} MB) — misses ({why})\n",
                describe(&e.config),
                e.memory_mb
            ));
        }
        None => s.push_str("next cheaper simulated: none — every cheaper candidate was pruned by a bound\n"),
    }
    s
}

/// How the summary names a screen's verdict tag.
fn screen_name(tag: &str) -> &str {
    match tag {
        "too-much-memory" => "memory",
        "bound-below-target" => "capacity",
        "work-over-slo" => "work",
        "latency-bound-over-slo" => "latency",
        other => other,
    }
}
