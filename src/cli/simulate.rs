//! `servesim simulate`.

use super::common::{ScenarioArgs, flag_override};
use clap::Args;
use servesim::experiment;

/// Predict throughput and latency of a scenario with the discrete-event simulator.
///
/// Prints every figure with its 95% confidence interval over independent replications:
/// throughput, latency (mean, p50, p95, p99, max), waits per stage (thread, lock, loop),
/// utilization (cores, lock, threads, loop), mean number in system, the Little's-law
/// residual, and the capacity bound with its bottleneck. The same scenario and seed give
/// the same figures (timing fields aside).
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  servesim simulate models/seed-sync.toml\n  \
    servesim simulate models/seed-sync.toml --set worker.threads=4 --set worker.lock=none\n  \
    servesim simulate models/mmc.toml --replications 20 --json | jq .latency_ms")]
pub struct SimulateArgs {
    #[command(flatten)]
    scenario: ScenarioArgs,

    /// Base seed (overrides run.seed).
    #[arg(long)]
    seed: Option<u64>,

    /// Independent replications (overrides run.replications).
    #[arg(long, short = 'r')]
    replications: Option<u32>,

    /// Print one JSON object on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `servesim simulate`.
pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let mut extra = Vec::new();
    if let Some(seed) = args.seed {
        let seed =
            anyhow::Context::context(i64::try_from(seed), "--seed must be at most 9223372036854775807")?;
        extra.push(flag_override("run.seed", seed));
    }
    if let Some(r) = args.replications {
        extra.push(flag_override("run.replications", i64::from(r)));
    }
    let sc = args.scenario.load(&extra)?;
    let out = experiment::simulate(&sc)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", out.table(&sc));
    }
    // Figures of nothing are no result: a run cut short before any request was measured
    // fails, naming what stopped it.
    if out.report.completed == 0 {
        let why: Vec<String> = out.report.truncated_by.iter().map(ToString::to_string).collect();
        anyhow::bail!(
            "no request was measured{}: every figure above is empty; raise the limit that \
             stopped it (run.max_events, run.max_sim_s) or lower run.warmup_requests",
            if why.is_empty() { String::new() } else { format!(" ({})", why.join("; ")) }
        );
    }
    Ok(())
}
