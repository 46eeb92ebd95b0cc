//! `servesim capacity`.

use super::common::ScenarioArgs;
use clap::Args;
use servesim::experiment::{CapacityQuery, Planner, Slo, parse_memory_mb};

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

    /// Rate to hold (requests/s).
    #[arg(long)]
    target_rps: f64,

    /// Latency objective: mean|p50|p95|p99=LIMIT, e.g. p95=300ms.
    #[arg(long)]
    slo: Slo,

    /// Memory cap over all workers, e.g. 16GiB (each worker costs system.worker_memory_mb).
    #[arg(long)]
    max_memory: Option<String>,

    /// Most cores to consider, at most 256.
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
        print!("{}", report.summary());
    }
    Ok(())
}
