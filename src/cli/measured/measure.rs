//! `servesim measure`.

use crate::cli::common::ScenarioArgs;
use clap::Args;
use servesim::experiment::{self, MeasureOptions};
use servesim::server::Limits;
use std::path::PathBuf;

/// Measure a scenario on the real backend: start the real server with the scenario's knobs
/// on an ephemeral loopback port, play its clients with the load generator, stop it.
///
/// Prints the figures `simulate` prints — throughput, latency (mean, p50, p95, p99, max),
/// waits per stage, utilizations — measured once (no confidence intervals), plus errors,
/// per-worker memory and how the CPUs were split between server and load generator.
/// On a machine with more CPUs than system.cores, the server gets the first system.cores
/// CPUs and the load generator the rest; otherwise they share, and the report says so.
///
/// A scenario with a `[target]` section measures that service instead — started through
/// `target.start` (and stopped after, even on Ctrl-C) or already running at `target.url`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  servesim measure models/seed-sync.toml --set run.requests=500\n  \
    servesim measure models/seed-async-blocking.toml --set clients.users=8 --json | jq .throughput_rps")]
pub struct MeasureArgs {
    #[command(flatten)]
    scenario: ScenarioArgs,

    /// Longest the load run may take (s), at most 86400 (a day).
    #[arg(long, default_value_t = MeasureOptions::default().max_wall_s)]
    max_wall_s: f64,

    /// The Mini-GPT directory (default: models/mini-gpt).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,

    /// Show the server's log on stderr.
    #[arg(long)]
    server_log: bool,

    /// Print one JSON object on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `servesim measure`.
pub fn run(args: MeasureArgs) -> anyhow::Result<()> {
    let sc = args.scenario.load(&[])?;
    let opts = MeasureOptions {
        model_dir: args.model,
        max_wall_s: args.max_wall_s,
        show_server_stderr: args.server_log,
        limits: Limits::default(),
        ..MeasureOptions::default()
    };
    let _guard = sc.target.is_some().then_some(experiment::target::ServiceGuard);
    let report = experiment::measure(&sc, &opts)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table(&sc));
    }
    Ok(())
}
