//! `servesim sweep` and `servesim merge`.

use super::common::{ScenarioArgs, check_out_dir, flag_override};
use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use servesim::experiment::grid::{Axis, Grid, Shard};
use servesim::experiment::{self, SweepPlan};
use std::path::PathBuf;
use std::time::Instant;

/// Simulate a grid of configurations in parallel and write CSV, JSON and plots.
///
/// Every `--sweep` adds a dimension; the grid is their cartesian product, the first one
/// varying slowest. Every point runs with the same seed, so points see the same arrivals and
/// the same service demands (common random numbers) and differences between points are
/// differences between configurations, not noise. `--shard i/n` runs one slice of the grid
/// (points with index % n == i) so a large sweep can run as a Slurm array job or on any
/// batch scheduler; `servesim merge` joins the slices.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    servesim sweep models/seed-sync.toml --sweep clients.users=1,2,4,8,16,32,64\n  \
    servesim sweep models/seed-sync.toml --sweep worker.threads=1..=8 --sweep worker.lock=none,gil\n  \
    servesim sweep models/seed-sync.toml --sweep clients.users=1..=1000 --shard 3/10 --out results/shard-3\n  \
    servesim merge results/shard-* --out results/all")]
pub struct SweepArgs {
    #[command(flatten)]
    scenario: ScenarioArgs,

    /// A swept parameter: PATH=V1,V2,… (values are TOML; A..=B[:STEP] is an integer range).
    #[arg(long = "sweep", value_name = "PATH=VALUES")]
    sweeps: Vec<Axis>,

    /// Independent replications per point (overrides run.replications).
    #[arg(long, short = 'r')]
    replications: Option<u32>,

    /// Base seed, the same for every point (overrides run.seed).
    #[arg(long)]
    seed: Option<u64>,

    /// Run only slice INDEX of COUNT (0-based), e.g. 0/10.
    #[arg(long, value_name = "INDEX/COUNT")]
    shard: Option<Shard>,

    /// Output directory (default: plots/sweep-<scenario>).
    #[arg(long)]
    out: Option<PathBuf>,

    /// Print the whole result as one JSON object on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

/// Join the shard outputs of one sweep.
///
/// Every shard of the sweep that holds points must be given exactly once; shards of
/// different sweeps (another scenario, grid or seed), and a shard whose points are not the
/// ones its index gives it (a truncated or edited file), are refused. Writes the merged
/// sweep.json, sweep.csv and plots.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Shard output directories (or their sweep.json files).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,

    /// Output directory for the merged sweep.
    #[arg(long)]
    out: PathBuf,
}

fn progress(len: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} points, {elapsed} elapsed, ETA {eta}")
            .expect("valid template"),
    );
    bar
}

/// Runs `servesim sweep`.
pub fn run(args: SweepArgs) -> anyhow::Result<()> {
    let grid = Grid::new(args.sweeps)?;
    // The flags that stand for a --set are refused with their own name when swept too.
    for (flag, given, path) in [
        ("--replications", args.replications.is_some(), "run.replications"),
        ("--seed", args.seed.is_some(), "run.seed"),
    ] {
        if let Some(axis) = grid.axes.iter().find(|a| given && a.path == path) {
            anyhow::bail!(
                "{flag} and --sweep {}=… both give {path}: every point takes the swept value, so {flag} \
                 would be ignored; drop {flag} (or the --sweep, to run its value alone)",
                axis.path
            );
        }
    }
    let mut sets = args.scenario.set.clone();
    if let Some(r) = args.replications {
        sets.push(flag_override("run.replications", i64::from(r)));
    }
    if let Some(seed) = args.seed {
        let seed = i64::try_from(seed).context("--seed must be at most 9223372036854775807")?;
        sets.push(flag_override("run.seed", seed));
    }
    let shard = args.shard.unwrap_or_default();
    let plan = SweepPlan::new(&args.scenario.file, &sets, grid, shard)?;
    let dir = args.out.unwrap_or_else(|| experiment::default_out(plan.info()));
    check_out_dir("--out", &dir)?;
    let bar = progress(plan.len());
    let start = Instant::now();
    let out = plan.run(&|| bar.inc(1))?;
    bar.finish_and_clear();
    let files = out.write(&dir)?;
    if args.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        print!("{}", out.table());
        println!("\n{} points in {:.2} s; wrote:", out.points.len(), start.elapsed().as_secs_f64());
        for f in files {
            println!("  {}", f.display());
        }
    }
    Ok(())
}

/// Runs `servesim merge`.
pub fn run_merge(args: MergeArgs) -> anyhow::Result<()> {
    check_out_dir("--out", &args.out)?;
    let out = experiment::merge(&args.inputs)?;
    let files = out.write(&args.out)?;
    println!("merged {} points of sweep {} ({}); wrote:", out.points.len(), out.sweep.id, out.sweep.scenario);
    for f in files {
        println!("  {}", f.display());
    }
    Ok(())
}
